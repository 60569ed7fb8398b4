"""Per-language renderers of the shared program model (:mod:`pretrain.programs`).

Each renderer spells the model's primitives idiomatically: Python ``len/sorted/type/sum/print/
input/.find/.index/except/.append/.pop/str/True/False/def/and/or/not/None``; PHP ``count/strlen/
sort/gettype/array_sum/array_search/strpos/echo/fgets/array_pop/array_splice/strval/null``; C#
``.Count/.Length/.Sort()/.Sum()/Console.WriteLine/Console.ReadLine/.IndexOf/.Add/.RemoveAt/catch/
.ToString()/null``; Go ``len/append/sort.Ints/fmt.Println/strings.Index/strconv/nil/func`` and C++
``.size()/.push_back/.pop_back/.erase/std::sort/std::accumulate/std::to_string/catch/std::cout``.
Imports, usings, includes and small helpers are collected while rendering and emitted in front.
"""
from __future__ import annotations

from .programs import (
    BOOL, INT, LIST_INT, LIST_STR, STR, VOID, Append, Assign, AugAssign, BinOp, Call, Comment,
    Concat, CountOf, ExprStmt, Find, ForEach, ForRange, Function, If, IndexOf, IsNull, Item, Len,
    ListCopy, ListLit, Lit, Logic, Not, Null, ParseInt, Pop, Print, Program, Raise, ReadLine, Return,
    Sort, SortedCopy, Sum, ToStr, Try, TypeName, Var, While, check_language, element_type,
)

_ATOM, _UNARY, _MUL, _ADD, _CMP, _AND, _OR = 100, 90, 80, 70, 50, 30, 20
_PREC = {"*": _MUL, "%": _MUL, "+": _ADD, "-": _ADD, "<": _CMP, ">": _CMP, "<=": _CMP, ">=": _CMP,
         "==": _CMP, "!=": _CMP}


def _prec(e) -> int:
    if isinstance(e, BinOp):
        return _PREC[e.op]
    if isinstance(e, Concat):
        return _ADD
    if isinstance(e, Logic):
        return _AND if e.op == "and" else _OR
    if isinstance(e, Not):
        return _UNARY
    return _ATOM


def _snake(name) -> str:
    return "_".join(name)


def _camel(name) -> str:
    return name[0] + "".join(w.capitalize() for w in name[1:])


def _pascal(name) -> str:
    return "".join(w.capitalize() for w in name)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Renderer:
    language = ""
    indent_unit = "    "
    comment_prefix = "//"

    def __init__(self, program: Program | None = None):
        self.program = program
        self.style = dict(program.style) if program is not None else {}
        self.imports: set[str] = set()
        self.helpers: set[str] = set()
        self.lines: list[str] = []
        self.depth = 0

    # names -----------------------------------------------------------------------------------
    def var(self, name) -> str:
        return _camel(name)

    def func(self, name) -> str:
        return _camel(name)

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
        p = _prec(e)
        if p == _ATOM:
            return text
        if isinstance(e, Logic) and parent in (_AND, _OR):
            return f"({text})"
        if p < parent or (p == parent and (right or parent in (_ADD, _MUL, _AND, _OR, _CMP))):
            return f"({text})"
        return text

    def atom(self, e) -> str:
        """``e`` as a receiver / operand that must be atomic."""
        text = self.expr(e)
        return text if _prec(e) == _ATOM else f"({text})"

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
            return _quote(e.value)  # type: ignore[arg-type]
        if e.type == BOOL:
            return "true" if e.value else "false"
        return str(e.value)

    def e_BinOp(self, e: BinOp) -> str:
        p = _PREC[e.op]
        return f"{self.sub(e.left, p)} {e.op} {self.sub(e.right, p, right=True)}"

    def e_Concat(self, e: Concat) -> str:
        return f"{self.sub(e.left, _ADD)} + {self.sub(e.right, _ADD, right=True)}"

    def e_Logic(self, e: Logic) -> str:
        p = _prec(e)
        op = "&&" if e.op == "and" else "||"
        return f"{self.sub(e.left, p)} {op} {self.sub(e.right, p, right=True)}"

    def e_Not(self, e: Not) -> str:
        return "!" + self.atom(e.operand)

    def e_Item(self, e: Item) -> str:
        return f"{self.atom(e.operand)}[{self.expr(e.index)}]"

    def e_Call(self, e: Call) -> str:
        return f"{self.func(e.name)}({', '.join(self.expr(a) for a in e.args)})"

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


# ----------------------------------------------------------------------------------------------
class PythonRenderer(_Renderer):
    language = "python"
    comment_prefix = "#"
    semi = ""

    def var(self, name) -> str:
        return _snake(name)

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
        p = _prec(e)
        return f"{self.sub(e.left, p)} {e.op} {self.sub(e.right, p, right=True)}"

    def e_Not(self, e: Not) -> str:
        return "not " + self.sub(e.operand, _UNARY)

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
            args.append(_quote(s.label))
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
        self.emit(f"raise ValueError({_quote(s.message)})")

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
class _BraceRenderer(_Renderer):
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
        self.emit(f"for ({self.decl_int()} {i} = 0; {i} < {self.sub(s.stop, _CMP)}; {i}++) {{")
        self.block(s.body)
        self.emit("}")

    def decl_int(self) -> str:
        return "int"

    def s_AugAssign(self, s: AugAssign) -> None:
        self.emit(f"{self.var(s.target.name)} {s.op}= {self.expr(s.value)};")

    def s_Return(self, s: Return) -> None:
        self.emit("return;" if s.value is None else f"return {self.expr(s.value)};")


# ----------------------------------------------------------------------------------------------
class PhpRenderer(_BraceRenderer):
    language = "php"

    def var(self, name) -> str:
        return "$" + _camel(name)

    def func(self, name) -> str:
        return _camel(name)

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
        return f"{self.sub(e.left, _ADD)} . {self.sub(e.right, _ADD, right=True)}"

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
        self.emit(f"for ({i} = 0; {i} < {self.sub(s.stop, _CMP)}; {i}++) {{")
        self.block(s.body)
        self.emit("}")

    def s_Print(self, s: Print) -> None:
        parts = []
        if s.label is not None:
            parts.append(_quote(s.label + (" " if s.value is not None else "")))
        if s.value is not None:
            parts.append(self.sub(s.value, _ADD, right=True))
        parts.append("PHP_EOL" if self.style.get("php_eol") else '"\\n"')
        self.emit(f"echo {' . '.join(parts)};")

    def s_Raise(self, s: Raise) -> None:
        self.emit(f"throw new InvalidArgumentException({_quote(s.message)});")

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
class CSharpRenderer(_BraceRenderer):
    language = "csharp"

    def func(self, name) -> str:
        return _pascal(name)

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
        value = self.sub(e.value, _CMP, right=True)
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
                arg = f"{_quote(s.label + ' ')} + {self.sub(s.value, _ADD, right=True)}"
        elif s.label is not None:
            arg = _quote(s.label)
        else:
            arg = self.expr(s.value) if s.value is not None else ""
        self.emit(f"Console.WriteLine({arg});")

    def s_Raise(self, s: Raise) -> None:
        self.imports.add("System")
        self.emit(f"throw new ArgumentException({_quote(s.message)});")

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


class GoRenderer(_BraceRenderer):
    """Go, spaced the way gofmt spaces binary expressions (go/printer's cutoff and depth rules)."""

    language = "go"
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
        text_prec, parent_prec = _prec(child), _prec(parent)
        if text_prec == _ATOM:
            return False
        if isinstance(child, Logic) and parent_prec in (_AND, _OR):
            return True
        return text_prec < parent_prec or (text_prec == parent_prec and (
            right or parent_prec in (_ADD, _MUL, _AND, _OR, _CMP)))

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
        stop = stop if _prec(s.stop) > _CMP else f"({stop})"
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
            args.append(_quote(s.label))
        if s.value is not None:
            args.append(self.at_depth(s.value, 2 if args else 1))
        self.emit(f"fmt.Println({', '.join(args)})")

    def s_Raise(self, s: Raise) -> None:
        self.emit(f"panic({_quote(s.message)})")

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
class CppRenderer(_BraceRenderer):
    language = "cpp"

    def var(self, name) -> str:
        return _snake(name)

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
        left = self.sub(e.left, _ADD)
        if isinstance(e.left, Lit):
            self.imports.add("string")
            left = f"std::string({left})"
        return f"{left} + {self.sub(e.right, _ADD, right=True)}"

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
            self.emit(f"{t}.erase({t}.begin() + {self.sub(s.index, _ADD, right=True)});")

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
            parts.append(_quote(s.label + (" " if s.value is not None else "")))
        if s.value is not None:
            text = self.expr(s.value)
            parts.append(text if _prec(s.value) == _ATOM else f"({text})")
        parts.append("std::endl" if self.style.get("cpp_endl", True) else '"\\n"')
        self.emit(" << ".join(parts) + ";")

    def s_Raise(self, s: Raise) -> None:
        self.imports.add("stdexcept")
        self.emit(f"throw std::invalid_argument({_quote(s.message)});")

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


RENDERERS: dict[str, type[_Renderer]] = {
    "python": PythonRenderer, "php": PhpRenderer, "csharp": CSharpRenderer, "go": GoRenderer,
    "cpp": CppRenderer,
}


def render(program: Program, language: str) -> str:
    """Source text of ``program`` in ``language``."""
    return RENDERERS[check_language(language)](program).render_program()


def render_expression(expr, language: str) -> str:
    """One expression in ``language`` (imports it would need are not included)."""
    return RENDERERS[check_language(language)]().expr(expr)
