"""Python: the program renderer and the concept renderer (docs/adding-a-language.md).

The program renderer spells the shared model's primitives as ``len/sorted/type/sum/print/
input/.find/.index/except/.append/.pop/str/True/False/def/and/or/not/None``. Concepts are rendered
as a ``def`` of assignments and a ``return``; the Babel base corpus also writes them in other
surface forms (:func:`python_surface`).
"""
from __future__ import annotations

import random
from typing import Any, Sequence

from ..programs.nodes import (
    BOOL, LIST_INT, LIST_STR, VOID, Append, Assign, AugAssign, Comment, CountOf, Find, ForEach, ForRange,
    Function, If, IndexOf, IsNull, Len, ListCopy, ListLit, Lit, Logic, Not, Null, ParseInt, Pop, Print, Raise,
    ReadLine, Return, Sort, SortedCopy, Sum, ToStr, Try, TypeName, Var, While,
)
from ..programs.pipeline import Concept, Step, Terminal
from .base import INDENT, UNARY, Renderer, Rendering, mapped, prec, predicate, quote, snake

LANGUAGE = "python"


class PythonRenderer(Renderer):
    language = LANGUAGE
    semi = ""

    def var(self, name) -> str:
        return snake(name)

    func = var

    def empty_block(self) -> None:
        self.emit("pass")

    def block(self, stmts) -> None:
        super().block(stmts)
        if stmts and all(isinstance(x, Comment) for x in stmts):
            self.depth += 1
            self.emit("pass")
            self.depth -= 1

    def type_(self, t: str) -> str:
        return t

    def e_Lit(self, e: Lit) -> str:
        if e.type == BOOL:
            return "True" if e.value else "False"
        return super().e_Lit(e)

    def e_Null(self, e: Null) -> str:
        return "None"

    def e_ListLit(self, e: ListLit) -> str:
        return "[" + ", ".join(self.expr(i) for i in e.items) + "]"

    def e_ListCopy(self, e: ListCopy) -> str:
        return f"list({self.expr(e.source)})"

    def e_Logic(self, e: Logic) -> str:
        p = prec(e)
        return f"{self.sub(e.left, p)} {e.op} {self.sub(e.right, p, right=True)}"

    def e_Not(self, e: Not) -> str:
        return "not " + self.sub(e.operand, UNARY)

    def e_Len(self, e: Len) -> str:
        return f"len({self.expr(e.operand)})"

    def e_Sum(self, e: Sum) -> str:
        return f"sum({self.expr(e.operand)})"

    def e_CountOf(self, e: CountOf) -> str:
        return f"{self.atom(e.operand)}.count({self.expr(e.value)})"

    def e_Find(self, e: Find) -> str:
        return f"{self.atom(e.operand)}.find({self.expr(e.sub)})"

    def e_IndexOf(self, e: IndexOf) -> str:
        return f"{self.atom(e.operand)}.index({self.expr(e.value)})"

    def e_ToStr(self, e: ToStr) -> str:
        return f"str({self.expr(e.operand)})"

    def e_TypeName(self, e: TypeName) -> str:
        return f"type({self.expr(e.operand)}).__name__"

    def e_IsNull(self, e: IsNull) -> str:
        return f"{self.atom(e.operand)} is None"

    # statements
    def s_Assign(self, s: Assign) -> None:
        hint = ""
        if s.declare and self.style.get("python_hints") and s.target.type in (LIST_INT, LIST_STR) \
                and isinstance(s.value, ListLit) and not s.value.items:
            hint = f": {s.target.type}"
        self.emit(f"{self.var(s.target.name)}{hint} = {self.expr(s.value)}")

    def s_AugAssign(self, s: AugAssign) -> None:
        self.emit(f"{self.var(s.target.name)} {s.op}= {self.expr(s.value)}")

    def s_Append(self, s: Append) -> None:
        self.emit(f"{self.var(s.target.name)}.append({self.expr(s.value)})")

    def s_Pop(self, s: Pop) -> None:
        index = "" if s.index is None else self.expr(s.index)
        self.emit(f"{self.var(s.target.name)}.pop({index})")

    def s_Sort(self, s: Sort) -> None:
        self.emit(f"{self.var(s.target.name)}.sort()")

    def s_SortedCopy(self, s: SortedCopy) -> None:
        self.emit(f"{self.var(s.target.name)} = sorted({self.var(s.source.name)})")

    def s_If(self, s: If, keyword: str = "if") -> None:
        self.emit(f"{keyword} {self.expr(s.cond)}:")
        self.block(s.then)
        if len(s.orelse) == 1 and isinstance(s.orelse[0], If):
            self.s_If(s.orelse[0], "elif")
        elif s.orelse:
            self.emit("else:")
            self.block(s.orelse)

    def s_ForEach(self, s: ForEach) -> None:
        self.emit(f"for {self.var(s.var.name)} in {self.var(s.iterable.name)}:")
        self.block(s.body)

    def s_ForRange(self, s: ForRange) -> None:
        self.emit(f"for {self.var(s.var.name)} in range({self.expr(s.stop)}):")
        self.block(s.body)

    def s_While(self, s: While) -> None:
        self.emit(f"while {self.expr(s.cond)}:")
        self.block(s.body)

    def s_Print(self, s: Print) -> None:
        args = []
        if s.label is not None:
            args.append(quote(s.label))
        if s.value is not None:
            args.append(self.expr(s.value))
        if self.style.get("python_fstrings") and s.label is not None and s.value is not None \
                and isinstance(s.value, Var):
            self.emit(f'print(f"{s.label} {{{self.expr(s.value)}}}")')
            return
        self.emit(f"print({', '.join(args)})")

    def s_Return(self, s: Return) -> None:
        self.emit("return" if s.value is None else f"return {self.expr(s.value)}")

    def s_Raise(self, s: Raise) -> None:
        self.emit(f"raise ValueError({quote(s.message)})")

    def s_Try(self, s: Try) -> None:
        self.emit("try:")
        self.block(s.body)
        err = self.var(s.error)
        self.emit(f"except ValueError as {err}:" if s.print_error else "except ValueError:")
        handler = list(s.handler)
        self.depth += 1
        if s.print_error:
            self.emit(f'print("error:", {err})')
        for h in handler:
            self.stmt(h)
        if not handler and not s.print_error:
            self.emit("pass")
        self.depth -= 1

    def s_ReadLine(self, s: ReadLine) -> None:
        self.emit(f"{self.var(s.target.name)} = input()")

    def s_ParseInt(self, s: ParseInt) -> None:
        t = self.var(s.target.name)
        self.emit("try:")
        self.emit(f"    {t} = int({self.var(s.source.name)})")
        self.emit("except ValueError:")
        self.emit(f"    {t} = {self.expr(s.fallback)}")

    def function(self, f: Function) -> None:
        hints = self.style.get("python_hints", False)
        params = []
        for p in f.params:
            t = p.var.type + (" | None" if p.nullable else "")
            params.append(f"{self.var(p.var.name)}: {t}" if hints else self.var(p.var.name))
        ret = f" -> {'None' if f.returns == VOID else f.returns}" if hints else ""
        if f.doc and not self.style.get("docstrings", True):
            self.comment(f.doc)
        self.emit(f"def {self.func(f.name)}({', '.join(params)}){ret}:")
        self.depth += 1
        if f.doc and self.style.get("docstrings", True):
            self.emit(f'"""{f.doc}"""')
        self.depth -= 1
        self.block(f.body)

    def render_program(self) -> str:
        p = self.program
        assert p is not None
        for f in p.functions:
            self.function(f)
            self.emit("")
            self.emit("")
        self.emit("def main():")
        self.block(p.main)
        self.emit("")
        self.emit("")
        self.emit('if __name__ == "__main__":')
        self.emit("    main()")
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Concepts (the Babel benchmark's pipeline functions, pretrain.programs.pipeline)

def step_expression(step: Step, src: str) -> str:
    """One pipeline step as a Python expression over ``src``."""
    k, a = step.kind, step.arg
    if k.startswith("filter"):
        return f"[x for x in {src} if {predicate(k, a, 'x')}]"
    if k.startswith("map"):
        return f"[{mapped(k, a, 'x')} for x in {src}]"
    if k == "sort":
        return f"sorted({src})"
    if k in ("reverse", "rev"):
        return f"{src}[::-1]"
    if k == "unique":
        return f"list(dict.fromkeys({src}))"
    if k == "take":
        return f"{src}[:{a}]"
    if k == "drop":
        return f"{src}[{a}:]"
    if k == "strip":
        return f'{src}.strip(" ")'
    if k in ("lower", "upper"):
        return f"{src}.{k}()"
    if k == "replace":
        return f"{src}.replace({quote(a[0])}, {quote(a[1])})"
    raise ValueError(f"unknown step kind {k!r}")


def terminal_expression(t: Terminal, src: str) -> str:
    return {"count": f"len({src})", "length": f"len({src})", "sum": f"sum({src})", "max": f"max({src})",
            "min": f"min({src})", "count_char": f"{src}.count({quote(str(t.arg))})"}[t.kind]


def render_concept(c: Concept) -> Rendering:
    src, lines = c.param, []
    var = "ys" if c.domain == "list" else "t"
    for s in c.steps:
        lines.append(f"{INDENT}{var} = {step_expression(s, src)}")
        src = var
    lines.append(f"{INDENT}return {terminal_expression(c.terminal, src)}")
    return Rendering("python", f"def {c.name}({c.param}):", tuple(lines), "")


SURFACE_FORMS: tuple[str, ...] = ("def", "lambda", "comment")


def pipeline_expression(c: Concept) -> str:
    """The whole pipeline as one nested Python expression."""
    e = c.param
    for s in c.steps:
        e = step_expression(s, e)
    return terminal_expression(c.terminal, e)


def python_surface(concept: Concept, form: str, rng: random.Random | None = None) -> str:
    """Python text of ``concept`` in one surface form: ``def`` (canonical), ``lambda`` (a nested
    lambda, sometimes as a local function), or ``comment`` (a comment stating the pipeline,
    followed by a one-line call example)."""
    rng = rng or random.Random(0)
    if form == "def":
        return render_concept(concept).text
    if form == "lambda":
        expr = pipeline_expression(concept)
        if rng.random() < 0.5:
            return f"{concept.name} = lambda {concept.param}: {expr}\n"
        outer = f"make_{concept.name}"
        return (f"def {outer}():\n{INDENT}def inner({concept.param}):\n{INDENT}{INDENT}return {expr}\n"
                f"{INDENT}return inner\n{concept.name} = {outer}()\n")
    if form == "comment":
        x, y = concept.cases[0]
        return f"# {concept.name}({concept.param}): {concept.describe()}\n# {concept.name}({x!r}) == {y!r}\n"
    raise ValueError(f"unknown surface form {form!r}; expected one of {SURFACE_FORMS}")


def literal(value: Any) -> str:
    """A test case's input or output as a Python literal."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(str(x) for x in value) + "]"
    return str(value)


def checking_program(definitions: Sequence[str], checks: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """A script defining ``definitions`` that prints ``PASS name`` / ``FAIL name`` per check
    (``(name, [(call, expected), ...])``)."""
    out = list(definitions)
    for name, conds in checks:
        cond = " and ".join(f"{a} == {b}" for a, b in conds)
        out.append(f"try:\n{INDENT}_ok = {cond}\nexcept Exception:\n{INDENT}_ok = False\n"
                   f"print(('PASS ' if _ok else 'FAIL ') + {quote(name)})\n")
    return "\n".join(out)


#: terminal kind -> the identifier the concept rendering writes at its return (the Babel lens suite's
#: reference forms)
TERMINAL_FORMS: dict[str, str | None] = {"count": "len", "length": "len", "sum": "sum", "max": "max", "min": "min",
                                         "count_char": ".count"}
#: what a Babel corpus document of concepts starts with
DOCUMENT_PREFIX = ""
RENDERER = PythonRenderer
