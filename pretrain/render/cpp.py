"""C++: the program renderer and the concept renderer (docs/adding-a-language.md).

The program renderer spells the shared model's primitives as ``.size()/.push_back/
.pop_back/.erase/std::sort/std::accumulate/std::to_string/catch/std::cout``. Concepts are rendered
with ``<algorithm>`` over a copied vector or string.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..programs.nodes import (
    BOOL, INT, LIST_INT, LIST_STR, STR, VOID, Append, Assign, Concat, CountOf, Find, ForEach, Function,
    IndexOf, IsNull, Len, ListCopy, ListLit, Lit, Null, ParseInt, Pop, Print, Raise, ReadLine, Sort,
    SortedCopy, Sum, ToStr, Try, TypeName, element_type,
)
from ..programs.pipeline import Concept
from .base import ADD, ATOM, INDENT, BraceRenderer, Rendering, mapped, prec, predicate, quote, snake

LANGUAGE = "cpp"


class CppRenderer(BraceRenderer):
    language = LANGUAGE

    def var(self, name) -> str:
        return snake(name)

    func = var

    def type_(self, t: str) -> str:
        if t in (STR, LIST_STR):
            self.imports.add("string")
        if t in (LIST_INT, LIST_STR):
            self.imports.add("vector")
        return {INT: "int", STR: "std::string", BOOL: "bool", LIST_INT: "std::vector<int>",
                LIST_STR: "std::vector<std::string>", VOID: "void"}[t]

    def param_type(self, t: str) -> str:
        base = self.type_(t)
        return base if t in (INT, BOOL) else f"const {base}&"

    def e_Null(self, e: Null) -> str:
        return "{}"  # a std::vector has no null: an empty one stands for "no list"

    def e_ListLit(self, e: ListLit) -> str:
        return f"{self.type_(e.type)}{{{', '.join(self.expr(i) for i in e.items)}}}"

    def e_ListCopy(self, e: ListCopy) -> str:
        return self.expr(e.source)

    def e_Concat(self, e: Concat) -> str:
        left = self.sub(e.left, ADD)
        if isinstance(e.left, Lit):
            self.imports.add("string")
            left = f"std::string({left})"
        return f"{left} + {self.sub(e.right, ADD, right=True)}"

    def e_Len(self, e: Len) -> str:
        method = "length" if e.operand.type == STR else "size"
        return f"{self.atom(e.operand)}.{method}()"  # size_t: converts implicitly where an int is needed

    def e_Sum(self, e: Sum) -> str:
        self.imports.add("numeric")
        v = self.atom(e.operand)
        return f"std::accumulate({v}.begin(), {v}.end(), 0)"

    def e_CountOf(self, e: CountOf) -> str:
        self.imports.add("algorithm")
        v = self.atom(e.operand)
        return f"static_cast<int>(std::count({v}.begin(), {v}.end(), {self.expr(e.value)}))"

    def e_Find(self, e: Find) -> str:
        return f"static_cast<int>({self.atom(e.operand)}.find({self.expr(e.sub)}))"

    def e_IndexOf(self, e: IndexOf) -> str:
        self.imports.add("algorithm")
        v = self.atom(e.operand)
        return f"static_cast<int>(std::find({v}.begin(), {v}.end(), {self.expr(e.value)}) - {v}.begin())"

    def e_ToStr(self, e: ToStr) -> str:
        self.imports.add("string")
        return f"std::to_string({self.expr(e.operand)})"

    def e_TypeName(self, e: TypeName) -> str:
        self.imports.update(("typeinfo", "string"))
        return f"std::string(typeid({self.expr(e.operand)}).name())"

    def e_IsNull(self, e: IsNull) -> str:
        return f"{self.atom(e.operand)}.empty()"

    def s_Assign(self, s: Assign) -> None:
        prefix = self.type_(s.target.type) + " " if s.declare else ""
        value = s.value
        if s.declare and isinstance(value, ListLit):
            text = "{" + ", ".join(self.expr(i) for i in value.items) + "}"
            self.emit(f"{prefix}{self.var(s.target.name)} = {text};" if value.items
                      else f"{prefix}{self.var(s.target.name)};")
            return
        self.emit(f"{prefix}{self.var(s.target.name)} = {self.expr(value)};")

    def s_Append(self, s: Append) -> None:
        self.emit(f"{self.var(s.target.name)}.push_back({self.expr(s.value)});")

    def s_Pop(self, s: Pop) -> None:
        t = self.var(s.target.name)
        if s.index is None:
            self.emit(f"{t}.pop_back();")
        else:
            self.emit(f"{t}.erase({t}.begin() + {self.sub(s.index, ADD, right=True)});")

    def s_Sort(self, s: Sort) -> None:
        self.imports.add("algorithm")
        t = self.var(s.target.name)
        self.emit(f"std::sort({t}.begin(), {t}.end());")

    def s_SortedCopy(self, s: SortedCopy) -> None:
        self.imports.add("algorithm")
        t = self.var(s.target.name)
        self.emit(f"{self.type_(s.target.type)} {t} = {self.var(s.source.name)};")
        self.emit(f"std::sort({t}.begin(), {t}.end());")

    def s_ForEach(self, s: ForEach) -> None:
        elem = element_type(s.iterable.type)
        decl = "int" if elem == INT else "const std::string&"
        self.emit(f"for ({decl} {self.var(s.var.name)} : {self.var(s.iterable.name)}) {{")
        self.block(s.body)
        self.emit("}")

    def s_Print(self, s: Print) -> None:
        self.imports.add("iostream")
        parts = ["std::cout"]
        if s.label is not None:
            parts.append(quote(s.label + (" " if s.value is not None else "")))
        if s.value is not None:
            text = self.expr(s.value)
            parts.append(text if prec(s.value) == ATOM else f"({text})")
        parts.append("std::endl" if self.style.get("cpp_endl", True) else '"\\n"')
        self.emit(" << ".join(parts) + ";")

    def s_Raise(self, s: Raise) -> None:
        self.imports.add("stdexcept")
        self.emit(f"throw std::invalid_argument({quote(s.message)});")

    def s_Try(self, s: Try) -> None:
        self.imports.add("stdexcept")
        self.emit("try {")
        self.block(s.body)
        err = self.var(s.error)
        self.emit(f"}} catch (const std::invalid_argument& {err}) {{")
        self.depth += 1
        if s.print_error:
            self.imports.add("iostream")
            self.emit(f'std::cout << "error: " << {err}.what() << std::endl;')
        for h in s.handler:
            self.stmt(h)
        self.depth -= 1
        self.emit("}")

    def s_ReadLine(self, s: ReadLine) -> None:
        self.imports.update(("iostream", "string"))
        t = self.var(s.target.name)
        self.emit(f"std::string {t};")
        self.emit(f"std::getline(std::cin, {t});")

    def s_ParseInt(self, s: ParseInt) -> None:
        self.imports.update(("stdexcept", "string"))
        t = self.var(s.target.name)
        self.emit(f"int {t};")
        self.emit("try {")
        self.emit(f"    {t} = std::stoi({self.var(s.source.name)});")
        self.emit("} catch (const std::invalid_argument&) {")
        self.emit(f"    {t} = {self.expr(s.fallback)};")
        self.emit("}")

    def function(self, f: Function) -> None:
        if f.doc:
            self.emit(f"// {f.doc}")
        params = ", ".join(f"{self.param_type(p.var.type)} {self.var(p.var.name)}" for p in f.params)
        self.emit(f"{self.type_(f.returns)} {self.func(f.name)}({params}) {{")
        self.block(f.body)
        self.emit("}")

    def render_program(self) -> str:
        p = self.program
        assert p is not None
        for f in p.functions:
            self.function(f)
            self.emit("")
        self.emit("int main() {")
        self.block(p.main)
        self.depth += 1
        self.emit("return 0;")
        self.depth -= 1
        self.emit("}")
        body = self.lines
        self.lines = [f"#include <{h}>" for h in sorted(self.imports)]
        self.lines.append("")
        self.lines.extend(body)
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Concepts (the Babel benchmark's pipeline functions, pretrain.programs.pipeline)

def render_concept(c: Concept) -> Rendering:
    lines: list[str] = []
    if c.domain == "list":
        lines.append("std::vector<int> ys = xs;")
        for s in c.steps:
            k, a = s.kind, s.arg
            if k.startswith("filter"):
                lines.append("ys.erase(std::remove_if(ys.begin(), ys.end(), "
                             f"[](int x) {{ return !({predicate(k, a, 'x')}); }}), ys.end());")
            elif k.startswith("map"):
                lines.append("std::transform(ys.begin(), ys.end(), ys.begin(), "
                             f"[](int x) {{ return {mapped(k, a, 'x')}; }});")
            elif k == "sort":
                lines.append("std::sort(ys.begin(), ys.end());")
            elif k == "reverse":
                lines.append("std::reverse(ys.begin(), ys.end());")
            elif k == "unique":
                lines.append("std::vector<int> seen;")
                lines.append("for (int x : ys) {")
                lines.append(f"{INDENT}if (std::find(seen.begin(), seen.end(), x) == seen.end()) seen.push_back(x);")
                lines.append("}")
                lines.append("ys = seen;")
            elif k == "take":
                lines.append(f"if (ys.size() > {a}) ys.resize({a});")
            elif k == "drop":
                lines.append(f"ys.erase(ys.begin(), ys.begin() + std::min<size_t>({a}, ys.size()));")
        t = c.terminal.kind
        ret = {"count": "(int)ys.size()", "sum": "std::accumulate(ys.begin(), ys.end(), 0)",
               "max": "*std::max_element(ys.begin(), ys.end())",
               "min": "*std::min_element(ys.begin(), ys.end())"}[t]
        lines.append(f"return {ret};")
        header = f"int {c.name}(std::vector<int> xs) {{"
    else:
        lines.append("std::string t = s;")
        for s in c.steps:
            k, a = s.kind, s.arg
            if k == "strip":
                lines.append("t.erase(0, t.find_first_not_of(' '));")
                lines.append("t.erase(t.find_last_not_of(' ') + 1);")
            elif k in ("lower", "upper"):
                fn = "::tolower" if k == "lower" else "::toupper"
                lines.append(f"std::transform(t.begin(), t.end(), t.begin(), {fn});")
            elif k == "replace":
                lines.append(f"std::replace(t.begin(), t.end(), '{a[0]}', '{a[1]}');")
            elif k == "rev":
                lines.append("std::reverse(t.begin(), t.end());")
        t = c.terminal
        if t.kind == "length":
            lines.append("return (int)t.size();")
        else:
            lines.append(f"return (int)std::count(t.begin(), t.end(), '{t.arg}');")
        header = f"int {c.name}(std::string s) {{"
    return Rendering("cpp", header, tuple(INDENT + ln for ln in lines), "}")


def literal(value: Any) -> str:
    """A test case's input or output as a C++ literal."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "std::vector<int>{" + ", ".join(str(x) for x in value) + "}"
    return str(value)


def checking_program(definitions: Sequence[str], checks: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """A program with ``definitions`` whose ``main`` prints ``PASS name`` / ``FAIL name`` per check."""
    main = []
    for name, conds in checks:
        cond = " && ".join(f"{a} == {b}" for a, b in conds)
        main.append(f'{INDENT}std::cout << (({cond}) ? "PASS " : "FAIL ") << {quote(name)} << "\\n";')
    head = ("#include <algorithm>\n#include <cctype>\n#include <iostream>\n#include <numeric>\n"
            "#include <string>\n#include <vector>\n\n")
    return head + "\n".join(definitions) + "\nint main() {\n" + "\n".join(main) + f"\n{INDENT}return 0;\n}}\n"


#: terminal kind -> the identifier the concept rendering writes at its return (``None``: none there)
TERMINAL_FORMS: dict[str, str | None] = {"count": ".size", "length": ".size", "sum": "::accumulate",
                                         "max": "::max_element", "min": "::min_element", "count_char": "::count"}
#: what a Babel corpus document of concepts starts with
DOCUMENT_PREFIX = ""
RENDERER = CppRenderer
