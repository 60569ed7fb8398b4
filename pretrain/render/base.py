"""What every language's renderer shares: the program renderer's base classes, name cases, quoting,
operator precedence, and the concept rendering (:class:`Rendering`) with its pipeline helpers.

A language module (:mod:`pretrain.render.python`, ...) subclasses :class:`Renderer` (or
:class:`BraceRenderer` for the C family) and spells the program model's primitives; see
:mod:`pretrain.render` for what else a language module defines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lensprobe.languages import LANGUAGE_INFO

from ..programs.nodes import (
    BOOL, STR, AugAssign, BinOp, Call, Comment, Concat, ExprStmt, ForRange, If, Item, Lit, Logic, Not, Program,
    Return, Var, While,
)

#: operator precedence levels of the C family and Python (Go has its own, :mod:`pretrain.render.go`)
ATOM, UNARY, MUL, ADD, CMP, AND, OR = 100, 90, 80, 70, 50, 30, 20
PREC = {"*": MUL, "%": MUL, "+": ADD, "-": ADD, "<": CMP, ">": CMP, "<=": CMP, ">=": CMP,
        "==": CMP, "!=": CMP}


def prec(e) -> int:
    if isinstance(e, BinOp):
        return PREC[e.op]
    if isinstance(e, Concat):
        return ADD
    if isinstance(e, Logic):
        return AND if e.op == "and" else OR
    if isinstance(e, Not):
        return UNARY
    return ATOM


def snake(name) -> str:
    """``("max", "value")`` -> ``max_value``."""
    return "_".join(name)


def camel(name) -> str:
    return name[0] + "".join(w.capitalize() for w in name[1:])


def pascal(name) -> str:
    return "".join(w.capitalize() for w in name)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Renderer:
    """Renders one program (or one expression) of the shared model; subclasses spell one language."""

    language = ""  # a canonical name of lensprobe.languages
    indent_unit = "    "

    def __init__(self, program: Program | None = None):
        self.program = program
        self.style = dict(program.style) if program is not None else {}
        self.imports: set[str] = set()
        self.helpers: set[str] = set()
        self.lines: list[str] = []
        self.depth = 0

    # names -----------------------------------------------------------------------------------
    def var(self, name) -> str:
        return camel(name)

    def func(self, name) -> str:
        return camel(name)

    # plumbing --------------------------------------------------------------------------------
    def emit(self, text: str) -> None:
        for line in text.split("\n"):
            self.lines.append(self.indent_unit * self.depth + line if line else "")

    def block(self, stmts) -> None:
        self.depth += 1
        if not stmts:
            self.empty_block()
        for s in stmts:
            self.stmt(s)
        self.depth -= 1

    def empty_block(self) -> None:  # braces languages need nothing
        pass

    def sub(self, e, parent: int, *, right: bool = False) -> str:
        text = self.expr(e)
        p = prec(e)
        if p == ATOM:
            return text
        if isinstance(e, Logic) and parent in (AND, OR):
            return f"({text})"
        if p < parent or (p == parent and (right or parent in (ADD, MUL, AND, OR, CMP))):
            return f"({text})"
        return text

    def atom(self, e) -> str:
        """``e`` as a receiver / operand that must be atomic."""
        text = self.expr(e)
        return text if prec(e) == ATOM else f"({text})"

    def expr(self, e) -> str:
        method = getattr(self, "e_" + type(e).__name__)
        return method(e)

    def stmt(self, s) -> None:
        method = getattr(self, "s_" + type(s).__name__)
        method(s)

    # shared expression spellings -----------------------------------------------------------------
    def e_Var(self, e: Var) -> str:
        return self.var(e.name)

    def e_Lit(self, e: Lit) -> str:
        if e.type == STR:
            return quote(e.value)  # type: ignore[arg-type]
        if e.type == BOOL:
            return "true" if e.value else "false"
        return str(e.value)

    def e_BinOp(self, e: BinOp) -> str:
        p = PREC[e.op]
        return f"{self.sub(e.left, p)} {e.op} {self.sub(e.right, p, right=True)}"

    def e_Concat(self, e: Concat) -> str:
        return f"{self.sub(e.left, ADD)} + {self.sub(e.right, ADD, right=True)}"

    def e_Logic(self, e: Logic) -> str:
        p = prec(e)
        op = "&&" if e.op == "and" else "||"
        return f"{self.sub(e.left, p)} {op} {self.sub(e.right, p, right=True)}"

    def e_Not(self, e: Not) -> str:
        return "!" + self.atom(e.operand)

    def e_Item(self, e: Item) -> str:
        return f"{self.atom(e.operand)}[{self.expr(e.index)}]"

    def e_Call(self, e: Call) -> str:
        return f"{self.func(e.name)}({', '.join(self.expr(a) for a in e.args)})"

    @property
    def comment_prefix(self) -> str:
        return LANGUAGE_INFO[self.language].line_comment

    def comment(self, text: str) -> None:
        self.emit(f"{self.comment_prefix} {text}")

    def s_Comment(self, s: Comment) -> None:
        self.comment(s.text)

    def s_ExprStmt(self, s: ExprStmt) -> None:
        self.emit(self.expr(s.value) + self.semi)

    semi = ";"

    # whole program ---------------------------------------------------------------------------
    def render_program(self) -> str:
        raise NotImplementedError



class BraceRenderer(Renderer):
    """Shared statement shapes of the C-family languages."""

    paren_cond = True

    def cond(self, e) -> str:
        text = self.expr(e)
        return f"({text})" if self.paren_cond else text

    def s_If(self, s: If, prefix: str = "") -> None:
        self.emit(f"{prefix}if {self.cond(s.cond)} {{")
        self.block(s.then)
        if len(s.orelse) == 1 and isinstance(s.orelse[0], If):
            self._else_if(s.orelse[0])
        elif s.orelse:
            self.emit("} else {")
            self.block(s.orelse)
            self.emit("}")
        else:
            self.emit("}")

    def _else_if(self, s: If) -> None:
        self.emit(f"}} else if {self.cond(s.cond)} {{")
        self.block(s.then)
        if len(s.orelse) == 1 and isinstance(s.orelse[0], If):
            self._else_if(s.orelse[0])
        elif s.orelse:
            self.emit("} else {")
            self.block(s.orelse)
            self.emit("}")
        else:
            self.emit("}")

    def s_While(self, s: While) -> None:
        self.emit(f"while {self.cond(s.cond)} {{")
        self.block(s.body)
        self.emit("}")

    def s_ForRange(self, s: ForRange) -> None:
        i = self.var(s.var.name)
        self.emit(f"for ({self.decl_int()} {i} = 0; {i} < {self.sub(s.stop, CMP)}; {i}++) {{")
        self.block(s.body)
        self.emit("}")

    def decl_int(self) -> str:
        return "int"

    def s_AugAssign(self, s: AugAssign) -> None:
        self.emit(f"{self.var(s.target.name)} {s.op}= {self.expr(s.value)};")

    def s_Return(self, s: Return) -> None:
        self.emit("return;" if s.value is None else f"return {self.expr(s.value)};")


# ----------------------------------------------------------------------------------------------
# Concept renderings (the Babel benchmark's pipeline functions, :mod:`pretrain.programs.pipeline`)

INDENT = "    "


@dataclass(frozen=True)
class Rendering:
    """A function in one language: header line, body lines (indented), closing line (or '')."""

    language: str
    header: str
    body: tuple[str, ...]
    footer: str

    @property
    def text(self) -> str:
        lines = [self.header, *self.body]
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines) + "\n"

    @property
    def prompt(self) -> str:
        """What a completion starts from: the header line *without* its newline.

        Byte-level BPE merges a newline with the next line's indentation (``"\n    "`` is one
        token), so a prompt ending in a bare newline would end on a token the model never saw
        there; the completion starts with that newline instead."""
        return self.header


def predicate(kind: str, arg: Any, x: str) -> str:
    """The condition of a ``filter_*`` step over the element ``x`` (C-family and Python spelling)."""
    return {"filter_odd": f"{x} % 2 != 0", "filter_even": f"{x} % 2 == 0", "filter_pos": f"{x} > 0",
            "filter_gt": f"{x} > {arg}"}[kind]


def mapped(kind: str, arg: Any, x: str) -> str:
    """The value of a ``map_*`` step for the element ``x``."""
    return {"map_double": f"{x} * 2", "map_square": f"{x} * {x}", "map_add": f"{x} + {arg}",
            "map_neg": f"-{x}"}[kind]
