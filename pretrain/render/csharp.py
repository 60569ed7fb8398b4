"""C#: the program renderer and the concept renderer (docs/adding-a-language.md).

The program renderer spells the shared model's primitives as ``.Count/.Length/.Sort()/
.Sum()/Console.WriteLine/Console.ReadLine/.IndexOf/.Add/.RemoveAt/catch/.ToString()/null``. Concepts
are rendered as LINQ chains in a ``public static int`` method.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..programs.nodes import (
    BOOL, INT, LIST_INT, LIST_STR, STR, VOID, Append, Assign, CountOf, Find, ForEach, Function, IndexOf,
    IsNull, Len, ListCopy, ListLit, Null, ParseInt, Pop, Print, Raise, ReadLine, Sort, SortedCopy, Sum, ToStr,
    Try, TypeName, Var,
)
from ..programs.pipeline import Concept
from .base import ADD, CMP, INDENT, BraceRenderer, Rendering, mapped, pascal, predicate, quote

LANGUAGE = "csharp"


class CSharpRenderer(BraceRenderer):
    language = LANGUAGE

    def func(self, name) -> str:
        return pascal(name)

    def type_(self, t: str) -> str:
        if t in (LIST_INT, LIST_STR):
            self.imports.add("System.Collections.Generic")
        return {INT: "int", STR: "string", BOOL: "bool", LIST_INT: "List<int>",
                LIST_STR: "List<string>", VOID: "void"}[t]

    def e_Null(self, e: Null) -> str:
        return "null"

    def e_ListLit(self, e: ListLit) -> str:
        t = self.type_(e.type)
        if not e.items:
            return f"new {t}()"
        return f"new {t} {{ {', '.join(self.expr(i) for i in e.items)} }}"

    def e_ListCopy(self, e: ListCopy) -> str:
        return f"new {self.type_(e.type)}({self.expr(e.source)})"

    def e_Len(self, e: Len) -> str:
        return f"{self.atom(e.operand)}.{'Length' if e.operand.type == STR else 'Count'}"

    def e_Sum(self, e: Sum) -> str:
        self.imports.add("System.Linq")
        return f"{self.atom(e.operand)}.Sum()"

    def e_CountOf(self, e: CountOf) -> str:
        self.imports.add("System.Linq")
        self.lambdas = getattr(self, "lambdas", 0) + 1
        el = "el" if self.lambdas == 1 else f"el{self.lambdas}"  # nested lambdas need new names
        value = self.sub(e.value, CMP, right=True)
        self.lambdas -= 1
        return f"{self.atom(e.operand)}.Count({el} => {el} == {value})"

    def e_Find(self, e: Find) -> str:
        return f"{self.atom(e.operand)}.IndexOf({self.expr(e.sub)})"

    def e_IndexOf(self, e: IndexOf) -> str:
        return f"{self.atom(e.operand)}.IndexOf({self.expr(e.value)})"

    def e_ToStr(self, e: ToStr) -> str:
        return f"{self.atom(e.operand)}.ToString()"

    def e_TypeName(self, e: TypeName) -> str:
        return f"{self.atom(e.operand)}.GetType().Name"

    def e_IsNull(self, e: IsNull) -> str:
        return f"{self.atom(e.operand)} == null"

    def s_Assign(self, s: Assign) -> None:
        prefix = ""
        if s.declare:
            prefix = "var " if self.style.get("csharp_var", True) else self.type_(s.target.type) + " "
        self.emit(f"{prefix}{self.var(s.target.name)} = {self.expr(s.value)};")

    def s_Append(self, s: Append) -> None:
        self.emit(f"{self.var(s.target.name)}.Add({self.expr(s.value)});")

    def s_Pop(self, s: Pop) -> None:
        t = self.var(s.target.name)
        index = f"{t}.Count - 1" if s.index is None else self.expr(s.index)
        self.emit(f"{t}.RemoveAt({index});")

    def s_Sort(self, s: Sort) -> None:
        self.emit(f"{self.var(s.target.name)}.Sort();")

    def s_SortedCopy(self, s: SortedCopy) -> None:
        t = self.var(s.target.name)
        self.emit(f"var {t} = new {self.type_(s.target.type)}({self.var(s.source.name)});")
        self.emit(f"{t}.Sort();")

    def s_ForEach(self, s: ForEach) -> None:
        self.emit(f"foreach (var {self.var(s.var.name)} in {self.var(s.iterable.name)}) {{")
        self.block(s.body)
        self.emit("}")

    def s_Print(self, s: Print) -> None:
        self.imports.add("System")
        if s.label is not None and s.value is not None:
            if self.style.get("csharp_interpolation") and isinstance(s.value, Var):
                arg = f'$"{s.label} {{{self.expr(s.value)}}}"'
            else:
                arg = f"{quote(s.label + ' ')} + {self.sub(s.value, ADD, right=True)}"
        elif s.label is not None:
            arg = quote(s.label)
        else:
            arg = self.expr(s.value) if s.value is not None else ""
        self.emit(f"Console.WriteLine({arg});")

    def s_Raise(self, s: Raise) -> None:
        self.imports.add("System")
        self.emit(f"throw new ArgumentException({quote(s.message)});")

    def s_Try(self, s: Try) -> None:
        self.imports.add("System")
        self.emit("try {")
        self.block(s.body)
        err = self.var(s.error)
        self.emit(f"}} catch (ArgumentException {err}) {{" if s.print_error
                  else "} catch (ArgumentException) {")
        self.depth += 1
        if s.print_error:
            self.emit(f'Console.WriteLine("error: " + {err}.Message);')
        for h in s.handler:
            self.stmt(h)
        self.depth -= 1
        self.emit("}")

    def s_ReadLine(self, s: ReadLine) -> None:
        self.imports.add("System")
        self.emit(f"string {self.var(s.target.name)} = Console.ReadLine();")

    def s_ParseInt(self, s: ParseInt) -> None:
        self.imports.add("System")
        t = self.var(s.target.name)
        self.emit(f"int {t};")
        self.emit("try {")
        self.emit(f"    {t} = int.Parse({self.var(s.source.name)});")
        self.emit("} catch (FormatException) {")
        self.emit(f"    {t} = {self.expr(s.fallback)};")
        self.emit("}")

    def function(self, f: Function, *, main: bool = False) -> None:
        if f.doc:
            self.emit(f"/// <summary>{f.doc}</summary>")
        params = ", ".join(f"{self.type_(p.var.type)} {self.var(p.var.name)}" for p in f.params)
        self.emit(f"static {self.type_(f.returns)} {self.func(f.name)}({params})")
        self.emit("{")
        self.block(f.body)
        self.emit("}")

    def render_program(self) -> str:
        p = self.program
        assert p is not None
        self.depth = 1
        for f in p.functions:
            self.function(f)
            self.emit("")
        self.emit("static void Main(string[] args)")
        self.emit("{")
        self.block(p.main)
        self.emit("}")
        body = self.lines
        self.lines = []
        self.depth = 0
        for ns in sorted(self.imports | {"System"}):
            self.emit(f"using {ns};")
        self.emit("")
        self.emit(f"class {self.style.get('csharp_class', 'Program')}")
        self.emit("{")
        self.lines.extend(body)
        self.emit("}")
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Concepts (the Babel benchmark's pipeline functions, pretrain.programs.pipeline)

def render_concept(c: Concept) -> Rendering:
    src, lines, declared = c.param, [], False
    var = "ys" if c.domain == "list" else "t"
    for s in c.steps:
        k, a = s.kind, s.arg
        lhs = f"{var} = " if declared else f"var {var} = "
        if k.startswith("filter"):
            e = f"{src}.Where(x => {predicate(k, a, 'x')}).ToList()"
        elif k.startswith("map"):
            e = f"{src}.Select(x => {mapped(k, a, 'x')}).ToList()"
        elif k == "sort":
            e = f"{src}.OrderBy(x => x).ToList()"
        elif k == "reverse":
            e = f"Enumerable.Reverse({src}).ToList()"
        elif k == "unique":
            e = f"{src}.Distinct().ToList()"
        elif k == "take":
            e = f"{src}.Take({a}).ToList()"
        elif k == "drop":
            e = f"{src}.Skip({a}).ToList()"
        elif k == "strip":
            e = f"{src}.Trim(' ')"
        elif k == "lower":
            e = f"{src}.ToLower()"
        elif k == "upper":
            e = f"{src}.ToUpper()"
        elif k == "replace":
            e = f"{src}.Replace({quote(a[0])}, {quote(a[1])})"
        elif k == "rev":
            e = f"new string({src}.Reverse().ToArray())"
        lines.append(f"{lhs}{e};")
        declared, src = True, var
    t = c.terminal
    ret = {"count": f"{src}.Count", "length": f"{src}.Length", "sum": f"{src}.Sum()", "max": f"{src}.Max()",
           "min": f"{src}.Min()", "count_char": f"{src}.Count(ch => ch == '{t.arg}')"}[t.kind]
    lines.append(f"return {ret};")
    ptype = "List<int>" if c.domain == "list" else "string"
    return Rendering("csharp", f"public static int {c.name}({ptype} {c.param}) {{",
                     tuple(INDENT + ln for ln in lines), "}")


def literal(value: Any) -> str:
    """A test case's input or output as a C# literal."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return f"new List<int> {{ {', '.join(str(x) for x in value)} }}"
    return str(value)


def checking_program(definitions: Sequence[str], checks: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """A ``Program`` class with ``definitions`` whose ``Main`` prints ``PASS name`` / ``FAIL name`` per check."""
    body = [f"{INDENT}{ln}" for d in definitions for ln in d.splitlines()]
    main = []
    for name, conds in checks:
        cond = " && ".join(f"{a} == {b}" for a, b in conds)
        main.append(f"{INDENT}{INDENT}{{ bool ok; try {{ ok = {cond}; }} catch (Exception) {{ ok = false; }} "
                    f"Console.WriteLine((ok ? \"PASS \" : \"FAIL \") + {quote(name)}); }}")
    return ("using System;\nusing System.Collections.Generic;\nusing System.Linq;\n\npublic class Program {\n"
            + "\n".join(body) + f"\n{INDENT}public static void Main() {{\n" + "\n".join(main) + f"\n{INDENT}}}\n}}\n")


#: terminal kind -> the identifier the concept rendering writes at its return (``None``: none there)
TERMINAL_FORMS: dict[str, str | None] = {"count": ".Count", "length": ".Length", "sum": ".Sum", "max": ".Max",
                                         "min": ".Min", "count_char": ".Count"}
#: what a Babel corpus document of concepts starts with
DOCUMENT_PREFIX = ""
RENDERER = CSharpRenderer
