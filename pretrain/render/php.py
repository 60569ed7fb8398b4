"""PHP: the program renderer and the concept renderer (docs/adding-a-language.md).

The program renderer spells the shared model's primitives as ``count/strlen/sort/gettype/
array_sum/array_search/strpos/echo/fgets/array_pop/array_splice/strval/null``. Concepts are rendered
with ``array_filter``/``array_map`` and arrow functions.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..programs.nodes import (
    BOOL, INT, LIST_INT, LIST_STR, STR, VOID, Append, Assign, Concat, CountOf, Find, ForEach, ForRange,
    Function, IndexOf, IsNull, Len, ListCopy, ListLit, Null, ParseInt, Pop, Print, Raise, ReadLine, Sort,
    SortedCopy, Sum, ToStr, Try, TypeName,
)
from ..programs.pipeline import Concept
from .base import ADD, CMP, INDENT, BraceRenderer, Rendering, camel, mapped, predicate, quote

LANGUAGE = "php"


class PhpRenderer(BraceRenderer):
    language = LANGUAGE

    def var(self, name) -> str:
        return "$" + camel(name)

    def func(self, name) -> str:
        return camel(name)

    def type_(self, t: str, nullable: bool = False) -> str:
        base = {INT: "int", STR: "string", BOOL: "bool", LIST_INT: "array", LIST_STR: "array",
                VOID: "void"}[t]
        return ("?" + base) if nullable else base

    def e_Null(self, e: Null) -> str:
        return "null"

    def e_ListLit(self, e: ListLit) -> str:
        return "[" + ", ".join(self.expr(i) for i in e.items) + "]"

    def e_ListCopy(self, e: ListCopy) -> str:
        return self.expr(e.source)  # arrays are values in PHP: assignment copies

    def e_Concat(self, e: Concat) -> str:
        return f"{self.sub(e.left, ADD)} . {self.sub(e.right, ADD, right=True)}"

    def e_Len(self, e: Len) -> str:
        fn = "strlen" if e.operand.type == STR else "count"
        return f"{fn}({self.expr(e.operand)})"

    def e_Sum(self, e: Sum) -> str:
        return f"array_sum({self.expr(e.operand)})"

    def e_CountOf(self, e: CountOf) -> str:
        return f"count(array_keys({self.expr(e.operand)}, {self.expr(e.value)}))"

    def e_Find(self, e: Find) -> str:
        return f"strpos({self.expr(e.operand)}, {self.expr(e.sub)})"

    def e_IndexOf(self, e: IndexOf) -> str:
        return f"array_search({self.expr(e.value)}, {self.expr(e.operand)})"

    def e_ToStr(self, e: ToStr) -> str:
        return f"strval({self.expr(e.operand)})"

    def e_TypeName(self, e: TypeName) -> str:
        return f"gettype({self.expr(e.operand)})"

    def e_IsNull(self, e: IsNull) -> str:
        if self.style.get("php_is_null"):
            return f"is_null({self.expr(e.operand)})"
        return f"{self.atom(e.operand)} === null"

    def s_Assign(self, s: Assign) -> None:
        self.emit(f"{self.var(s.target.name)} = {self.expr(s.value)};")

    def s_Append(self, s: Append) -> None:
        if self.style.get("php_array_push"):
            self.emit(f"array_push({self.var(s.target.name)}, {self.expr(s.value)});")
        else:
            self.emit(f"{self.var(s.target.name)}[] = {self.expr(s.value)};")

    def s_Pop(self, s: Pop) -> None:
        t = self.var(s.target.name)
        if s.index is None:
            self.emit(f"array_pop({t});")
        else:
            self.emit(f"array_splice({t}, {self.expr(s.index)}, 1);")

    def s_Sort(self, s: Sort) -> None:
        self.emit(f"sort({self.var(s.target.name)});")

    def s_SortedCopy(self, s: SortedCopy) -> None:
        t = self.var(s.target.name)
        self.emit(f"{t} = {self.var(s.source.name)};")
        self.emit(f"sort({t});")

    def s_ForEach(self, s: ForEach) -> None:
        self.emit(f"foreach ({self.var(s.iterable.name)} as {self.var(s.var.name)}) {{")
        self.block(s.body)
        self.emit("}")

    def s_ForRange(self, s: ForRange) -> None:
        i = self.var(s.var.name)
        self.emit(f"for ({i} = 0; {i} < {self.sub(s.stop, CMP)}; {i}++) {{")
        self.block(s.body)
        self.emit("}")

    def s_Print(self, s: Print) -> None:
        parts = []
        if s.label is not None:
            parts.append(quote(s.label + (" " if s.value is not None else "")))
        if s.value is not None:
            parts.append(self.sub(s.value, ADD, right=True))
        parts.append("PHP_EOL" if self.style.get("php_eol") else '"\\n"')
        self.emit(f"echo {' . '.join(parts)};")

    def s_Raise(self, s: Raise) -> None:
        self.emit(f"throw new InvalidArgumentException({quote(s.message)});")

    def s_Try(self, s: Try) -> None:
        self.emit("try {")
        self.block(s.body)
        err = self.var(s.error)
        self.emit(f"}} catch (InvalidArgumentException {err}) {{")
        self.depth += 1
        if s.print_error:
            self.emit(f'echo "error: " . {err}->getMessage() . "\\n";')
        for h in s.handler:
            self.stmt(h)
        self.depth -= 1
        self.emit("}")

    def s_ReadLine(self, s: ReadLine) -> None:
        self.emit(f"{self.var(s.target.name)} = trim(fgets(STDIN));")

    def s_ParseInt(self, s: ParseInt) -> None:
        t, src = self.var(s.target.name), self.var(s.source.name)
        self.emit("try {")
        self.emit(f"    if (!is_numeric({src})) {{")
        self.emit(f'        throw new InvalidArgumentException("not a number: " . {src});')
        self.emit("    }")
        self.emit(f"    {t} = intval({src});")
        self.emit("} catch (InvalidArgumentException $e) {")
        self.emit(f"    {t} = {self.expr(s.fallback)};")
        self.emit("}")

    def function(self, f: Function) -> None:
        if f.doc:
            self.emit("/**")
            self.emit(f" * {f.doc}")
            self.emit(" */")
        params = ", ".join(f"{self.type_(p.var.type, p.nullable)} {self.var(p.var.name)}"
                           for p in f.params)
        self.emit(f"function {self.func(f.name)}({params}): {self.type_(f.returns)}")
        self.emit("{")
        self.block(f.body)
        self.emit("}")

    def render_program(self) -> str:
        p = self.program
        assert p is not None
        self.emit("<?php")
        self.emit("")
        if self.style.get("php_strict"):
            self.emit("declare(strict_types=1);")
            self.emit("")
        for f in p.functions:
            self.function(f)
            self.emit("")
        for s in p.main:
            self.stmt(s)
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Concepts (the Babel benchmark's pipeline functions, pretrain.programs.pipeline)

def render_concept(c: Concept) -> Rendering:
    p = "$" + c.param
    src, lines = p, []
    var = "$ys" if c.domain == "list" else "$t"
    for s in c.steps:
        k, a = s.kind, s.arg
        if k.startswith("filter"):
            lines.append(f"{var} = array_values(array_filter({src}, fn($x) => {predicate(k, a, '$x')}));")
        elif k.startswith("map"):
            lines.append(f"{var} = array_map(fn($x) => {mapped(k, a, '$x')}, {src});")
        elif k == "sort":
            if src != var:
                lines.append(f"{var} = {src};")
            lines.append(f"sort({var});")
        elif k == "reverse":
            lines.append(f"{var} = array_reverse({src});")
        elif k == "unique":
            lines.append(f"{var} = array_values(array_unique({src}));")
        elif k == "take":
            lines.append(f"{var} = array_slice({src}, 0, {a});")
        elif k == "drop":
            lines.append(f"{var} = array_slice({src}, {a});")
        elif k == "strip":
            lines.append(f'{var} = trim({src}, " ");')
        elif k == "lower":
            lines.append(f"{var} = strtolower({src});")
        elif k == "upper":
            lines.append(f"{var} = strtoupper({src});")
        elif k == "replace":
            lines.append(f"{var} = str_replace({quote(a[0])}, {quote(a[1])}, {src});")
        elif k == "rev":
            lines.append(f"{var} = strrev({src});")
        src = var
    t = c.terminal
    ret = {"count": f"count({src})", "length": f"strlen({src})", "sum": f"array_sum({src})",
           "max": f"max({src})", "min": f"min({src})",
           "count_char": f"substr_count({src}, {quote(str(t.arg))})"}[t.kind]
    lines.append(f"return {ret};")
    return Rendering("php", f"function {c.name}({p}) {{", tuple(INDENT + ln for ln in lines), "}")


def literal(value: Any) -> str:
    """A test case's input or output as a PHP literal."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(str(x) for x in value) + "]"
    return str(value)


def checking_program(definitions: Sequence[str], checks: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """A script defining ``definitions`` that prints ``PASS name`` / ``FAIL name`` per check."""
    out = ["<?php"] + list(definitions)
    for name, conds in checks:
        cond = " && ".join(f"{a} === {b}" for a, b in conds)
        out.append(f"try {{ $ok = {cond}; }} catch (\\Throwable $e) {{ $ok = false; }}\n"
                   f"echo ($ok ? 'PASS ' : 'FAIL ') . {quote(name)} . \"\\n\";")
    return "\n".join(out) + "\n"


#: terminal kind -> the identifier the concept rendering writes at its return (``None``: none there)
TERMINAL_FORMS: dict[str, str | None] = {"count": "count", "length": "strlen", "sum": "array_sum", "max": "max",
                                         "min": "min", "count_char": "substr_count"}
#: what a Babel corpus document of concepts starts with
DOCUMENT_PREFIX = "<?php\n\n"
RENDERER = PhpRenderer
