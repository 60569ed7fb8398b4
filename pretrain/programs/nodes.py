"""The node classes of the shared program model: types, expressions, statements, functions, programs.

Nodes are frozen dataclasses; a renderer (:mod:`pretrain.render`) turns them into source text of
one language, the generator (:mod:`pretrain.programs.generate`) draws them from a seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


# Types ----------------------------------------------------------------------------------------
INT, STR, BOOL, LIST_INT, LIST_STR, VOID = "int", "str", "bool", "list[int]", "list[str]", "void"
SCALARS = (INT, STR, BOOL)
LISTS = (LIST_INT, LIST_STR)


def element_type(list_type: str) -> str:
    """``list[int]`` -> ``int``."""
    if list_type not in LISTS:
        raise ValueError(f"not a list type: {list_type!r}")
    return INT if list_type == LIST_INT else STR


Name = tuple[str, ...]
"""An identifier as lower-case words; each renderer applies its own case convention."""


# Expressions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Var:
    name: Name
    type: str


@dataclass(frozen=True)
class Lit:
    value: Union[int, str, bool]
    type: str


@dataclass(frozen=True)
class Null:
    """``None`` / ``null`` / ``nil``; only for (nullable) list parameters."""

    type: str


@dataclass(frozen=True)
class ListLit:
    items: tuple
    type: str


@dataclass(frozen=True)
class ListCopy:
    source: "Expr"
    type: str


@dataclass(frozen=True)
class BinOp:
    """Arithmetic (``+ - * %``, ints) or comparison (``< > <= >= == !=``)."""

    op: str
    left: "Expr"
    right: "Expr"
    type: str


@dataclass(frozen=True)
class Concat:
    left: "Expr"
    right: "Expr"
    type: str = STR


@dataclass(frozen=True)
class Logic:
    """``and`` / ``or``."""

    op: str
    left: "Expr"
    right: "Expr"
    type: str = BOOL


@dataclass(frozen=True)
class Not:
    operand: "Expr"
    type: str = BOOL


@dataclass(frozen=True)
class Len:
    """Length of a list or a string (len / count / strlen / .Count / .Length / .size())."""

    operand: "Expr"
    type: str = INT


@dataclass(frozen=True)
class Sum:
    operand: "Expr"
    type: str = INT


@dataclass(frozen=True)
class CountOf:
    """Occurrences of ``value`` in a list."""

    operand: "Expr"
    value: "Expr"
    type: str = INT


@dataclass(frozen=True)
class Find:
    """Position of ``sub`` in a string (-1 / false when absent)."""

    operand: "Expr"
    sub: "Expr"
    type: str = INT


@dataclass(frozen=True)
class IndexOf:
    """Position of ``value`` in a list."""

    operand: "Expr"
    value: "Expr"
    type: str = INT


@dataclass(frozen=True)
class ToStr:
    operand: "Expr"
    type: str = STR


@dataclass(frozen=True)
class TypeName:
    operand: "Expr"
    type: str = STR


@dataclass(frozen=True)
class IsNull:
    operand: "Expr"
    type: str = BOOL


@dataclass(frozen=True)
class Item:
    operand: "Expr"
    index: "Expr"
    type: str


@dataclass(frozen=True)
class Call:
    name: Name
    args: tuple
    type: str


Expr = Union[Var, Lit, Null, ListLit, ListCopy, BinOp, Concat, Logic, Not, Len, Sum, CountOf, Find,
             IndexOf, ToStr, TypeName, IsNull, Item, Call]


# Statements -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assign:
    target: Var
    value: Expr
    declare: bool


@dataclass(frozen=True)
class AugAssign:
    target: Var
    op: str  # "+" or "-"
    value: Expr


@dataclass(frozen=True)
class Append:
    target: Var
    value: Expr


@dataclass(frozen=True)
class Pop:
    """Remove the last element (``index is None``) or the element at ``index`` (erase)."""

    target: Var
    index: Expr | None = None


@dataclass(frozen=True)
class Sort:
    target: Var


@dataclass(frozen=True)
class SortedCopy:
    target: Var
    source: Var


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple
    orelse: tuple = ()


@dataclass(frozen=True)
class ForEach:
    var: Var
    iterable: Var
    body: tuple


@dataclass(frozen=True)
class ForRange:
    var: Var
    stop: Expr
    body: tuple


@dataclass(frozen=True)
class While:
    cond: Expr
    body: tuple


@dataclass(frozen=True)
class Print:
    label: str | None
    value: Expr | None


@dataclass(frozen=True)
class Return:
    value: Expr | None = None


@dataclass(frozen=True)
class Raise:
    message: str


@dataclass(frozen=True)
class Try:
    """Run ``body``; on the raised error run ``handler`` (the error is bound to ``error``)."""

    body: tuple
    handler: tuple
    error: Name = ("err",)
    print_error: bool = True


@dataclass(frozen=True)
class ReadLine:
    """Declare ``target`` (a string) and read one line of standard input into it."""

    target: Var


@dataclass(frozen=True)
class ParseInt:
    """Declare ``target`` (an int) parsed from ``source``; ``fallback`` when it is not a number."""

    target: Var
    source: Var
    fallback: Expr


@dataclass(frozen=True)
class ExprStmt:
    value: Expr


@dataclass(frozen=True)
class Comment:
    text: str


Stmt = Union[Assign, AugAssign, Append, Pop, Sort, SortedCopy, If, ForEach, ForRange, While, Print,
             Return, Raise, Try, ReadLine, ParseInt, ExprStmt, Comment]


@dataclass(frozen=True)
class Param:
    var: Var
    nullable: bool = False


@dataclass(frozen=True)
class Function:
    name: Name
    params: tuple
    returns: str
    body: tuple
    doc: str | None = None


@dataclass(frozen=True)
class Program:
    """A whole program: helper functions (each calls only earlier ones) and a main body."""

    functions: tuple
    main: tuple
    seed: int
    index: int
    style: dict = field(default_factory=dict, compare=False, hash=False)

    def string_literals(self) -> list[str]:
        """Every string literal (and raise message) in source order: identical across renderings."""
        out: list[str] = []
        _collect_strings(self.functions, out)
        _collect_strings(self.main, out)
        return out


def _collect_strings(node, out: list[str]) -> None:
    if isinstance(node, tuple):
        for item in node:
            _collect_strings(item, out)
        return
    if isinstance(node, Lit) and node.type == STR:
        out.append(node.value)  # type: ignore[arg-type]
        return
    if isinstance(node, Raise):
        out.append(node.message)
        return
    if isinstance(node, Print):
        if node.label is not None:
            out.append(node.label)
        if node.value is not None:
            _collect_strings(node.value, out)
        return
    if hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            if name in ("type", "name", "op", "text", "doc", "error", "message", "label"):
                continue
            _collect_strings(getattr(node, name), out)
