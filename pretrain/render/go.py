"""Go: the program renderer and the concept renderer (docs/adding-a-language.md).

The program renderer spells the shared model's primitives as ``len/append/sort.Ints/
fmt.Println/strings.Index/strconv/nil/func``. Concepts are rendered as loops over a copied slice (Go
has no filter/map), strings with the ``strings`` package.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..programs.nodes import (
    BOOL, INT, LIST_INT, LIST_STR, STR, VOID, Append, Assign, AugAssign, BinOp, Call, Concat, CountOf, Find,
    ForEach, ForRange, Function, IndexOf, IsNull, Item, Len, ListCopy, ListLit, Lit, Logic, Not, Null,
    ParseInt, Pop, Print, Raise, ReadLine, Return, Sort, SortedCopy, Sum, ToStr, Try, TypeName, While,
)
from ..programs.pipeline import Concept
from .base import (
    ADD, AND, ATOM, CMP, INDENT, MUL, OR, BraceRenderer, Rendering, mapped, prec, predicate, quote,
)

LANGUAGE = "go"


_GO_HELPERS = {
    "sumOf": "func sumOf(values []int) int {\n\ttotal := 0\n\tfor _, v := range values {\n"
             "\t\ttotal += v\n\t}\n\treturn total\n}",
    "countOf": "func countOf[T comparable](values []T, target T) int {\n\tn := 0\n"
               "\tfor _, v := range values {\n\t\tif v == target {\n\t\t\tn++\n\t\t}\n\t}\n"
               "\treturn n\n}",
    "indexOf": "func indexOf[T comparable](values []T, target T) int {\n"
               "\tfor i, v := range values {\n\t\tif v == target {\n\t\t\treturn i\n\t\t}\n\t}\n"
               "\treturn -1\n}",
}


_GO_PREC = {"*": 5, "%": 5, "+": 4, "-": 4, "<": 3, ">": 3, "<=": 3, ">=": 3, "==": 3, "!=": 3,
            "and": 2, "or": 1}


def _go_prec(e) -> int:
    if isinstance(e, BinOp):
        return _GO_PREC[e.op]
    if isinstance(e, Concat):
        return 4
    if isinstance(e, Logic):
        return _GO_PREC[e.op]
    return 0


class GoRenderer(BraceRenderer):
    """Go, spaced the way gofmt spaces binary expressions (go/printer's cutoff and depth rules)."""

    language = LANGUAGE
    indent_unit = "\t"
    paren_cond = False
    semi = ""
    go_depth = 1

    def at_depth(self, e, depth: int) -> str:
        saved, self.go_depth = self.go_depth, depth
        try:
            return self.expr(e)
        finally:
            self.go_depth = saved

    def args(self, *exprs) -> str:
        depth = self.go_depth + (1 if len(exprs) > 1 else 0)
        return ", ".join(self.at_depth(x, depth) for x in exprs)

    def _walk(self, e) -> tuple[bool, bool]:
        p = _go_prec(e)
        has4, has5 = p == 4, p == 5
        left, right = e.left, e.right
        if _go_prec(left) and not self._parens(left, e, False) and _go_prec(left) >= p:
            h4, h5 = self._walk(left)
            has4, has5 = has4 or h4, has5 or h5
        if _go_prec(right) and not self._parens(right, e, True) and _go_prec(right) > p:
            h4, h5 = self._walk(right)
            has4, has5 = has4 or h4, has5 or h5
        return has4, has5

    def _parens(self, child, parent, right: bool) -> bool:
        text_prec, parent_prec = prec(child), prec(parent)
        if text_prec == ATOM:
            return False
        if isinstance(child, Logic) and parent_prec in (AND, OR):
            return True
        return text_prec < parent_prec or (text_prec == parent_prec and (
            right or parent_prec in (ADD, MUL, AND, OR, CMP)))

    def _binary(self, e, op: str) -> str:
        depth = self.go_depth
        has4, has5 = self._walk(e)
        if has4 and has5:
            cutoff = 5 if depth == 1 else 4
        else:
            cutoff = 6 if depth == 1 else 4
        p = _go_prec(e)
        parts = []
        for child, right in ((e.left, False), (e.right, True)):
            if self._parens(child, e, right):
                inner = self.at_depth(child, depth)  # (depth + 1) reduced by go/printer's reduceDepth
                parts.append(f"({inner})")
            else:
                if right:
                    d = depth + 1
                else:
                    d = depth + (0 if _go_prec(child) == p else 1)
                parts.append(self.at_depth(child, d))
        sep = f" {op} " if p < cutoff else op
        return parts[0] + sep + parts[1]

    def e_BinOp(self, e: BinOp) -> str:
        return self._binary(e, e.op)

    def e_Concat(self, e: Concat) -> str:
        return self._binary(e, "+")

    def e_Logic(self, e: Logic) -> str:
        return self._binary(e, "&&" if e.op == "and" else "||")

    def e_Call(self, e: Call) -> str:
        return f"{self.func(e.name)}({self.args(*e.args)})"

    def e_Item(self, e: Item) -> str:
        return f"{self.atom(e.operand)}[{self.at_depth(e.index, self.go_depth + 1)}]"

    def e_Not(self, e: Not) -> str:
        return "!" + self.atom(e.operand)

    def type_(self, t: str) -> str:
        return {INT: "int", STR: "string", BOOL: "bool", LIST_INT: "[]int", LIST_STR: "[]string",
                VOID: ""}[t]

    def e_Null(self, e: Null) -> str:
        return "nil"

    def e_ListLit(self, e: ListLit) -> str:
        return f"{self.type_(e.type)}{{{', '.join(self.expr(i) for i in e.items)}}}"

    def e_ListCopy(self, e: ListCopy) -> str:
        return f"append({self.type_(e.type)}{{}}, {self.expr(e.source)}...)"

    def e_Len(self, e: Len) -> str:
        return f"len({self.expr(e.operand)})"

    def e_Sum(self, e: Sum) -> str:
        self.helpers.add("sumOf")
        return f"sumOf({self.expr(e.operand)})"

    def e_CountOf(self, e: CountOf) -> str:
        self.helpers.add("countOf")
        return f"countOf({self.args(e.operand, e.value)})"

    def e_Find(self, e: Find) -> str:
        self.imports.add("strings")
        return f"strings.Index({self.args(e.operand, e.sub)})"

    def e_IndexOf(self, e: IndexOf) -> str:
        self.helpers.add("indexOf")
        return f"indexOf({self.args(e.operand, e.value)})"

    def e_ToStr(self, e: ToStr) -> str:
        self.imports.add("strconv")
        return f"strconv.Itoa({self.expr(e.operand)})"

    def e_TypeName(self, e: TypeName) -> str:
        self.imports.add("fmt")
        return f'fmt.Sprintf("%T", {self.at_depth(e.operand, self.go_depth + 1)})'

    def e_IsNull(self, e: IsNull) -> str:
        return f"{self.atom(e.operand)} == nil"

    def s_Assign(self, s: Assign) -> None:
        op = ":=" if s.declare else "="
        self.emit(f"{self.var(s.target.name)} {op} {self.expr(s.value)}")

    def s_AugAssign(self, s: AugAssign) -> None:
        if isinstance(s.value, Lit) and s.value.value == 1:
            self.emit(f"{self.var(s.target.name)}{s.op}{s.op}")
        else:
            self.emit(f"{self.var(s.target.name)} {s.op}= {self.expr(s.value)}")

    def s_Append(self, s: Append) -> None:
        t = self.var(s.target.name)
        self.emit(f"{t} = append({t}, {self.at_depth(s.value, 2)})")

    def s_Pop(self, s: Pop) -> None:
        t = self.var(s.target.name)
        if s.index is None:
            self.emit(f"{t} = {t}[:len({t})-1]")
        else:
            i = self.expr(s.index)
            self.emit(f"{t} = append({t}[:{i}], {t}[{i}+1:]...)")

    def _sort_call(self, name: str, t: str) -> str:
        self.imports.add("sort")
        return f"sort.{'Ints' if t == LIST_INT else 'Strings'}({name})"

    def s_Sort(self, s: Sort) -> None:
        self.emit(self._sort_call(self.var(s.target.name), s.target.type))

    def s_SortedCopy(self, s: SortedCopy) -> None:
        t = self.var(s.target.name)
        self.emit(f"{t} := append({self.type_(s.target.type)}{{}}, {self.var(s.source.name)}...)")
        self.emit(self._sort_call(t, s.target.type))

    def s_ForEach(self, s: ForEach) -> None:
        self.emit(f"for _, {self.var(s.var.name)} := range {self.var(s.iterable.name)} {{")
        self.block(s.body)
        self.emit("}")

    def s_ForRange(self, s: ForRange) -> None:
        i = self.var(s.var.name)
        stop = self.at_depth(s.stop, 2)
        stop = stop if prec(s.stop) > CMP else f"({stop})"
        self.emit(f"for {i} := 0; {i} < {stop}; {i}++ {{")
        self.block(s.body)
        self.emit("}")

    def s_While(self, s: While) -> None:
        self.emit(f"for {self.expr(s.cond)} {{")
        self.block(s.body)
        self.emit("}")

    def s_Print(self, s: Print) -> None:
        self.imports.add("fmt")
        args = []
        if s.label is not None:
            args.append(quote(s.label))
        if s.value is not None:
            args.append(self.at_depth(s.value, 2 if args else 1))
        self.emit(f"fmt.Println({', '.join(args)})")

    def s_Raise(self, s: Raise) -> None:
        self.emit(f"panic({quote(s.message)})")

    def s_Return(self, s: Return) -> None:
        self.emit("return" if s.value is None else f"return {self.expr(s.value)}")

    def s_Try(self, s: Try) -> None:
        # Go has no exceptions: the idiom for a recoverable panic is a deferred recover().
        self.emit("func() {")
        self.depth += 1
        self.emit("defer func() {")
        self.depth += 1
        err = self.var(s.error)
        self.emit(f"if {err} := recover(); {err} != nil {{")
        self.depth += 1
        if s.print_error:
            self.imports.add("fmt")
            self.emit(f'fmt.Println("error:", {err})')
        for h in s.handler:
            self.stmt(h)
        self.depth -= 1
        self.emit("}")
        self.depth -= 1
        self.emit("}()")
        for b in s.body:
            self.stmt(b)
        self.depth -= 1
        self.emit("}()")

    def s_ReadLine(self, s: ReadLine) -> None:
        self.imports.add("fmt")
        t = self.var(s.target.name)
        self.emit(f"var {t} string")
        self.emit(f"fmt.Scanln(&{t})")

    def s_ParseInt(self, s: ParseInt) -> None:
        self.imports.add("strconv")
        t = self.var(s.target.name)
        self.emit(f"{t}, err := strconv.Atoi({self.var(s.source.name)})")
        self.emit("if err != nil {")
        self.emit(f"\t{t} = {self.expr(s.fallback)}")
        self.emit("}")

    def function(self, f: Function) -> None:
        if f.doc:
            self.emit(f"// {self.func(f.name)} {f.doc[0].lower() + f.doc[1:]}")
        params = ", ".join(f"{self.var(p.var.name)} {self.type_(p.var.type)}" for p in f.params)
        ret = "" if f.returns == VOID else " " + self.type_(f.returns)
        self.emit(f"func {self.func(f.name)}({params}){ret} {{")
        self.block(f.body)
        self.emit("}")

    def render_program(self) -> str:
        p = self.program
        assert p is not None
        for f in p.functions:
            self.function(f)
            self.emit("")
        self.emit("func main() {")
        self.block(p.main)
        self.emit("}")
        body = self.lines
        self.lines = ["package main", ""]
        if len(self.imports) == 1:
            self.lines.append(f'import "{next(iter(self.imports))}"')
            self.lines.append("")
        elif self.imports:
            self.lines.append("import (")
            self.lines.extend(f'\t"{imp}"' for imp in sorted(self.imports))
            self.lines.append(")")
            self.lines.append("")
        for name in sorted(self.helpers):
            self.lines.extend(_GO_HELPERS[name].split("\n"))
            self.lines.append("")
        self.lines.extend(body)
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Concepts (the Babel benchmark's pipeline functions, pretrain.programs.pipeline)

def render_concept(c: Concept) -> Rendering:
    lines: list[str] = []
    if c.domain == "list":
        lines.append("ys := append([]int{}, xs...)")
        for i, s in enumerate(c.steps):
            k, a = s.kind, s.arg
            if k.startswith("filter") or k.startswith("map") or k == "unique":
                tmp = f"t{i}"
                lines.append(f"{tmp} := []int{{}}")
                if k == "unique":
                    lines.append(f"seen{i} := map[int]bool{{}}")
                lines.append("for _, x := range ys {")
                if k.startswith("filter"):
                    lines.append(f"{INDENT}if {predicate(k, a, 'x').replace(' % ', '%')} {{")
                    lines.append(f"{INDENT}{INDENT}{tmp} = append({tmp}, x)")
                    lines.append(f"{INDENT}}}")
                elif k.startswith("map"):
                    lines.append(f"{INDENT}{tmp} = append({tmp}, {mapped(k, a, 'x')})")
                else:
                    lines.append(f"{INDENT}if !seen{i}[x] {{")
                    lines.append(f"{INDENT}{INDENT}seen{i}[x] = true")
                    lines.append(f"{INDENT}{INDENT}{tmp} = append({tmp}, x)")
                    lines.append(f"{INDENT}}}")
                lines.append("}")
                lines.append(f"ys = {tmp}")
            elif k == "sort":
                lines.append("sort.Ints(ys)")
            elif k == "reverse":
                lines.append("for i, j := 0, len(ys)-1; i < j; i, j = i+1, j-1 {")
                lines.append(f"{INDENT}ys[i], ys[j] = ys[j], ys[i]")
                lines.append("}")
            elif k == "take":
                lines.append(f"if len(ys) > {a} {{")
                lines.append(f"{INDENT}ys = ys[:{a}]")
                lines.append("}")
            elif k == "drop":
                lines.append(f"if len(ys) > {a} {{")
                lines.append(f"{INDENT}ys = ys[{a}:]")
                lines.append("} else {")
                lines.append(f"{INDENT}ys = []int{{}}")
                lines.append("}")
        t = c.terminal.kind
        if t == "count":
            lines.append("return len(ys)")
        elif t == "sum":
            lines += ["total := 0", "for _, x := range ys {", f"{INDENT}total += x", "}", "return total"]
        else:
            op = ">" if t == "max" else "<"
            lines += ["best := ys[0]", "for _, x := range ys {", f"{INDENT}if x {op} best {{",
                      f"{INDENT}{INDENT}best = x", f"{INDENT}}}", "}", "return best"]
        header = f"func {c.name}(xs []int) int {{"
    else:
        src = "s"
        for s in c.steps:
            k, a = s.kind, s.arg
            lhs = "t = " if src == "t" else "t := "
            if k == "strip":
                lines.append(f'{lhs}strings.Trim({src}, " ")')
            elif k == "lower":
                lines.append(f"{lhs}strings.ToLower({src})")
            elif k == "upper":
                lines.append(f"{lhs}strings.ToUpper({src})")
            elif k == "replace":
                lines.append(f"{lhs}strings.ReplaceAll({src}, {quote(a[0])}, {quote(a[1])})")
            elif k == "rev":
                lines.append(f"r := []rune({src})")
                lines.append("for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {")
                lines.append(f"{INDENT}r[i], r[j] = r[j], r[i]")
                lines.append("}")
                lines.append(f"{lhs}string(r)")
            src = "t"
        t = c.terminal
        if t.kind == "length":
            lines.append(f"return len({src})")
        else:
            lines.append(f"return strings.Count({src}, {quote(str(t.arg))})")
        header = f"func {c.name}(s string) int {{"
    return Rendering("go", header, tuple(INDENT + ln for ln in lines), "}")


def literal(value: Any) -> str:
    """A test case's input or output as a Go literal."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[]int{" + ", ".join(str(x) for x in value) + "}"
    return str(value)


def checking_program(definitions: Sequence[str], checks: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """A ``package main`` with ``definitions`` whose ``main`` prints ``PASS name`` / ``FAIL name`` per check."""
    main = []
    for name, conds in checks:
        cond = " && ".join(f"{a} == {b}" for a, b in conds)
        main.append(f'{INDENT}if {cond} {{\n{INDENT}{INDENT}fmt.Println("PASS " + {quote(name)})\n{INDENT}}} else {{\n'
                    f'{INDENT}{INDENT}fmt.Println("FAIL " + {quote(name)})\n{INDENT}}}')
    text = "\n".join(definitions)
    imports = ["fmt"] + (["sort"] if "sort." in text else []) + (["strings"] if "strings." in text else [])
    imp = "import (\n" + "".join(f'{INDENT}"{i}"\n' for i in imports) + ")\n"
    return "package main\n\n" + imp + "\n" + text + "\nfunc main() {\n" + "\n".join(main) + "\n}\n"


#: terminal kind -> the identifier the concept rendering writes at its return (``None``: none there,
#: e.g. the summing loop)
TERMINAL_FORMS: dict[str, str | None] = {"count": "len", "length": "len", "sum": None, "max": None, "min": None,
                                         "count_char": ".Count"}
#: what a Babel corpus document of concepts starts with
DOCUMENT_PREFIX = ""
RENDERER = GoRenderer
