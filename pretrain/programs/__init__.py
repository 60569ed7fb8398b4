"""The shared program model of the embedded corpus.

One small, typed, AST-like model of a program (functions with typed parameters; statements:
assignments, if/else, loops, list operations, try/except, prints, returns; expressions) is
generated from a seed (:mod:`pretrain.programs.generate`, a pure function of ``(seed, index)``)
and rendered by one renderer per language (:mod:`pretrain.render`), so the *same* program exists
in every language of :data:`lensprobe.languages.LANGUAGES`. The node classes are in
:mod:`pretrain.programs.nodes`; the Babel benchmark's concept pipelines in
:mod:`pretrain.programs.pipeline`.
"""
from __future__ import annotations

from .generate import generate_program
from .nodes import (
    BOOL, INT, LISTS, LIST_INT, LIST_STR, SCALARS, STR, VOID, Append, Assign, AugAssign, BinOp,
    Call, Comment, Concat, CountOf, Expr, ExprStmt, Find, ForEach, ForRange, Function, If, IndexOf,
    IsNull, Item, Len, ListCopy, ListLit, Lit, Logic, Name, Not, Null, Param, ParseInt, Pop, Print,
    Program, Raise, ReadLine, Return, Sort, SortedCopy, Stmt, Sum, ToStr, Try, TypeName, Var, While,
    element_type,
)

__all__ = [
    "generate_program", "BOOL", "INT", "LISTS", "LIST_INT", "LIST_STR", "SCALARS", "STR", "VOID",
    "Append", "Assign", "AugAssign", "BinOp", "Call", "Comment", "Concat", "CountOf", "Expr",
    "ExprStmt", "Find", "ForEach", "ForRange", "Function", "If", "IndexOf", "IsNull", "Item", "Len",
    "ListCopy", "ListLit", "Lit", "Logic", "Name", "Not", "Null", "Param", "ParseInt", "Pop",
    "Print", "Program", "Raise", "ReadLine", "Return", "Sort", "SortedCopy", "Stmt", "Sum", "ToStr",
    "Try", "TypeName", "Var", "While", "element_type",
]
