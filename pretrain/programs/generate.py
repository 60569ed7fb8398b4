"""Seeded generator of small, typed programs in the shared model (:mod:`pretrain.programs.nodes`).

Every choice comes from ``random.Random`` seeded by ``(seed, index)``, so the ``index``-th
program of a stream is a pure function of both and the stream is unlimited. Generation tracks
scopes, types, mutability and use, so that each rendering is valid in its language: variables are
used only where they are declared, parameters are never mutated (C++ takes them by const
reference), a list is never changed while it is iterated, every declared variable is read (Go
rejects unused variables), helper functions call only earlier helpers (C++ needs declarations
before use) and ``Try`` bodies never ``return`` (Go renders them as a closure with ``recover``).
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from .nodes import (
    BOOL, INT, LIST_INT, LIST_STR, LISTS, STR, VOID, Append, Assign, AugAssign, BinOp, Call, Comment,
    Concat, CountOf, ExprStmt, Find, ForEach, ForRange, Function, If, IndexOf, IsNull, Item, Len,
    ListCopy, ListLit, Lit, Logic, Not, Null, Param, ParseInt, Pop, Print, Program, Raise, ReadLine,
    Return, Sort, SortedCopy, Sum, ToStr, Try, TypeName, Var, While, element_type,
)

# Vocabulary: words chosen to be no keyword or builtin in any of the five languages (checked in
# the tests), and never the identifiers the suites probe (len, count, sum, ...).
_NOUNS = {
    INT: ["total", "limit", "offset", "best", "current", "position", "counter", "score", "width",
          "height", "amount", "steps", "budget", "threshold", "level", "depth", "capacity", "age",
          "price", "weight", "quota", "rank", "margin", "size"],
    STR: ["message", "label", "text", "line", "name", "word", "title", "prefix", "suffix",
          "greeting", "summary", "key", "city", "color", "status", "note", "code", "owner",
          "path", "token", "header", "user"],
    BOOL: ["found", "valid", "ready", "done", "matched", "enabled", "changed", "active",
           "visible", "allowed", "complete", "dirty", "pending", "passed"],
    LIST_INT: ["values", "scores", "numbers", "ages", "prices", "totals", "sizes", "points",
               "grades", "weights", "levels", "ranks", "offsets", "samples", "readings"],
    LIST_STR: ["names", "words", "labels", "parts", "tokens", "lines", "titles", "keys", "tags",
               "cities", "colors", "users", "paths", "notes", "codes"],
}
_MODIFIERS = ["max", "min", "new", "next", "last", "first", "raw", "clean", "main", "extra", "old",
              "best", "total", "other", "final", "local", "base", "top"]
_VERBS = ["compute", "collect", "build", "check", "merge", "scan", "summarize", "normalize",
          "report", "validate", "measure", "pick", "process", "render", "update", "clean", "score",
          "describe", "gather", "inspect", "tally", "rank", "trim", "group", "encode", "prepare"]
_LOOP_VARS = [("i",), ("j",), ("k",), ("idx",), ("step",), ("slot",), ("tick",), ("turn",)]
_WORDS = ["apple", "banana", "cherry", "north", "south", "alpha", "beta", "gamma", "delta", "red",
          "green", "blue", "admin", "guest", "error", "ready", "pending", "done", "hello",
          "world", "main", "test", "data", "config", "report", "user", "item", "node", "left",
          "right", "open", "closed", "paris", "tokyo", "lima", "oslo", "x", "id", "ok", "new"]
_ERROR_NAMES = [("err",), ("error",), ("exc",)]
RESERVED = {"err", "error", "exc", "e", "ex", "r", "el", "v", "n", "target", "values_"}


@dataclass
class _Info:
    var: Var
    mutable: bool
    used: bool = False
    nullable: bool = False
    locked: int = 0


class _Scope:
    _serial = itertools.count()

    def __init__(self):
        self.vars: dict[tuple, _Info] = {}
        self.order: list[tuple] = []
        self.serial = next(_Scope._serial)  # identifies the scope in the visibility cache

    def add(self, info: _Info) -> None:
        self.vars[info.var.name] = info
        self.order.append(info.var.name)


class _Generator:
    def __init__(self, seed: int, index: int):
        self.seed, self.index = seed, index
        self.rng = random.Random(f"lensprobe-programs:{seed}:{index}")
        self.taken: set[tuple] = set()
        self.functions: list[Function] = []
        self.scopes: list[_Scope] = []
        self.in_try = 0
        self.depth = 0
        self.returns: str = VOID
        self._flat: list[_Info] = []
        self._flat_key: tuple = ()
        self._version = 0  # bumped whenever a scope is pushed, popped or loses a variable

    # names -----------------------------------------------------------------------------------
    def fresh(self, type_: str) -> tuple:
        rng = self.rng
        for attempt in range(30):
            noun = rng.choice(_NOUNS[type_])
            if attempt < 4 and rng.random() < 0.65:
                name: tuple = (noun,)
            else:
                name = (rng.choice(_MODIFIERS), noun)
            if name not in self.taken and name[-1] not in RESERVED and len(set(name)) == len(name):
                self.taken.add(name)
                return name
        n = 2
        while (noun, str(n)) in self.taken:
            n += 1
        self.taken.add((noun, str(n)))
        return (noun, str(n))

    def fresh_loop_var(self) -> tuple:
        for name in _LOOP_VARS:
            if name not in self.taken:
                self.taken.add(name)
                return name
        return self.fresh(INT)

    def fresh_function_name(self) -> tuple:
        rng = self.rng
        while True:
            kind = rng.choice(list(_NOUNS))
            noun = rng.choice(_NOUNS[kind])
            name = (rng.choice(_VERBS), noun)
            if rng.random() < 0.25:
                name = (name[0], rng.choice(_MODIFIERS), noun)
            if name not in self.taken and len(set(name)) == len(name):
                self.taken.add(name)
                return name

    # scopes ----------------------------------------------------------------------------------
    def visible(self, type_: str | None = None, *, mutable: bool = False, unlocked: bool = False,
                nullable: bool | None = None) -> list[_Info]:
        key = (len(self.scopes), sum(len(sc.order) for sc in self.scopes), self.scopes[-1].serial if self.scopes else -1, self._version)
        if key != self._flat_key:
            seen: dict[tuple, _Info] = {}
            for scope in self.scopes:
                for name in scope.order:
                    seen[name] = scope.vars[name]
            self._flat, self._flat_key = list(seen.values()), key
        return [info for info in self._flat
                if (type_ is None or info.var.type == type_) and (not mutable or info.mutable)
                and (not unlocked or not info.locked)
                and (nullable is None or info.nullable == nullable)]

    def use(self, info: _Info) -> Var:
        info.used = True
        return info.var

    def declare(self, type_: str, *, mutable: bool = True, name: tuple | None = None) -> _Info:
        info = _Info(Var(name or self.fresh(type_), type_), mutable)
        self.scopes[-1].add(info)
        return info

    def block(self, fill, *extra_scope: _Info) -> tuple:
        """Run ``fill(out)`` in a new scope; then read every variable nobody read (Go)."""
        scope = _Scope()
        for info in extra_scope:
            scope.add(info)
        self.scopes.append(scope)
        self._version += 1
        self.depth += 1
        out: list = []
        fill(out)
        self.depth -= 1
        self.flush_unused(scope, out)
        self.scopes.pop()
        self._version += 1
        return tuple(out)

    def flush_unused(self, scope: _Scope, out: list) -> None:
        returns_last = bool(out) and isinstance(out[-1], Return)
        tail = out.pop() if returns_last else None
        for name in scope.order:
            info = scope.vars[name]
            if info.used:
                continue
            info.used = True
            label = " ".join(info.var.name) + ":"
            value = Len(info.var) if info.var.type in LISTS else info.var
            out.append(Print(label, value))
        if tail is not None:
            out.append(tail)

    # expressions -----------------------------------------------------------------------------
    def lit(self, type_: str):
        rng = self.rng
        if type_ == INT:
            return Lit(rng.choice([0, 1, 1, 2, 3, 5, 10, 100, rng.randint(0, 50)]), INT)
        if type_ == STR:
            words = rng.sample(_WORDS, rng.choice([1, 1, 1, 2]))
            text = " ".join(words)
            if rng.random() < 0.2:
                text = text.capitalize()
            return Lit(text, STR)
        if type_ == BOOL:
            return Lit(rng.random() < 0.5, BOOL)
        elem = element_type(type_)
        return ListLit(tuple(self.lit(elem) for _ in range(rng.randint(0, 5))), type_)

    def callable_functions(self, type_: str) -> list[Function]:
        return [f for f in self.functions if f.returns == type_]

    def call(self, f: Function, depth: int) -> Call:
        args = []
        for p in f.params:
            if p.nullable and self.rng.random() < 0.2:
                args.append(Null(p.var.type))
            else:
                args.append(self.expr(p.var.type, depth + 1))
        return Call(f.name, tuple(args), f.returns)

    def expr(self, type_: str, depth: int = 0):
        rng = self.rng
        deep = depth >= 2
        options: list[tuple[float, object]] = []
        vars_ = [i for i in self.visible(type_) if not i.nullable]
        if vars_:
            options.append((6.0, lambda: self.use(rng.choice(vars_))))
        if type_ != BOOL or (deep and not vars_):  # constant conditions make dead code (C# warns)
            options.append((2.0 if type_ in (INT, STR) else 1.0, lambda: self.lit(type_)))
        fns = self.callable_functions(type_)
        if fns and not deep:
            options.append((1.5, lambda: self.call(rng.choice(fns), depth)))
        lists = [i for i in self.visible() if i.var.type in LISTS and not i.nullable]
        strs = [i for i in self.visible(STR)]
        if type_ == INT:
            if lists:
                options.append((3.0, lambda: Len(self.use(rng.choice(lists)))))
            ints = [i for i in lists if i.var.type == LIST_INT]
            if ints:
                options.append((2.0, lambda: Sum(self.use(rng.choice(ints)))))
            if lists and not deep:
                def count_of():
                    info = rng.choice(lists)
                    return CountOf(self.use(info), self.expr(element_type(info.var.type), 2))
                options.append((1.0, count_of))
            if strs:
                options.append((1.5, lambda: Len(self.use(rng.choice(strs)))))
                if not deep:
                    options.append((1.0, lambda: Find(self.use(rng.choice(strs)), self.lit(STR))))
            if not deep:
                def arith():
                    op = rng.choice(["+", "+", "-", "*", "%"])
                    right = Lit(rng.randint(2, 9), INT) if op == "%" else self.expr(INT, depth + 1)
                    return BinOp(op, self.expr(INT, depth + 1), right, INT)
                options.append((2.0, arith))
        elif type_ == STR:
            if not deep:
                options.append((2.0, lambda: ToStr(self.expr(INT, depth + 1))))
                options.append((2.0, lambda: Concat(self.expr(STR, depth + 1), self.expr(STR, depth + 1))))
                typed = [i for i in self.visible() if not i.nullable]
                if typed:
                    options.append((0.7, lambda: TypeName(self.use(rng.choice(typed)))))
        elif type_ == BOOL:
            if not deep:
                def compare():
                    if rng.random() < 0.8:
                        left = self.expr(INT, depth + 1)
                        right = self.expr(INT, depth + 1)
                        if right == left:
                            right = self.lit(INT)
                        if isinstance(left, Lit) and isinstance(right, Lit):
                            ints_ = [i for i in self.visible(INT) if not i.nullable]
                            if ints_:  # constant conditions make dead code (C# warns)
                                left = self.use(rng.choice(ints_))
                            elif lists:
                                left = Len(self.use(rng.choice(lists)))
                            elif strs:
                                left = Len(self.use(rng.choice(strs)))
                        return BinOp(rng.choice(["<", ">", "<=", ">=", "==", "!="]), left, right, BOOL)
                    strs_ = self.visible(STR)
                    left = self.use(rng.choice(strs_)) if strs_ else ToStr(self.expr(INT, depth + 1))
                    return BinOp(rng.choice(["==", "!="]), left, self.lit(STR), BOOL)
                options.append((5.0, compare))
                def operand():
                    x = self.expr(BOOL, depth + 1)
                    return compare() if isinstance(x, Lit) else x

                def logic():
                    left, right = operand(), operand()
                    for _ in range(3):
                        if right != left:
                            break
                        right = compare()
                    return Logic(rng.choice(["and", "or"]), left, right)
                options.append((1.5, logic))
                def negation():
                    x = operand()
                    return Not(compare() if isinstance(x, Not) else x)  # no double negation
                options.append((1.0, negation))
        else:
            same = [i for i in self.visible(type_) if not i.nullable]
            if same and not deep:
                options.append((1.0, lambda: ListCopy(self.use(rng.choice(same)), type_)))
        total = sum(w for w, _ in options)
        x = rng.random() * total
        for w, make in options:
            x -= w
            if x <= 0:
                return make()  # type: ignore[operator]
        return options[-1][1]()  # type: ignore[operator]

    def scalar_expr(self):
        return self.expr(self.rng.choice([INT, INT, STR, BOOL]))

    # statements ------------------------------------------------------------------------------
    def statements(self, out: list, n: int) -> None:
        for _ in range(n):
            self.statement(out)

    def statement(self, out: list) -> None:
        rng = self.rng
        nested_ok = self.depth < 3
        kinds: list[tuple[float, str]] = [(3.0, "declare"), (1.2, "print"), (0.6, "comment")]
        if self.visible(INT, mutable=True):
            kinds.append((2.0, "augassign"))
        if self.visible(STR, mutable=True):
            kinds.append((1.0, "extend_str"))
        if self.visible(BOOL, mutable=True):
            kinds.append((0.8, "set_flag"))
        mut_lists = [i for t in LISTS for i in self.visible(t, mutable=True, unlocked=True)]
        all_lists = [i for t in LISTS for i in self.visible(t) if not i.nullable]
        if mut_lists:
            kinds += [(2.5, "append"), (1.0, "pop"), (0.7, "erase"), (0.8, "sort")]
        if all_lists:
            kinds += [(0.8, "sorted_copy"), (0.8, "search"), (0.6, "first_item")]
        if self.visible(STR):
            kinds.append((0.7, "find"))
        if nested_ok:
            kinds.append((2.0, "if"))
            if all_lists:
                kinds.append((2.5, "foreach"))
            kinds.append((0.8, "for_range"))
            if mut_lists:
                kinds.append((0.5, "drain"))
            if not self.in_try:
                kinds.append((0.8, "try"))
        if any(f.returns == VOID for f in self.functions):
            kinds.append((0.8, "call"))
        total = sum(w for w, _ in kinds)
        x = rng.random() * total
        for w, kind in kinds:
            x -= w
            if x <= 0:
                break
        getattr(self, "st_" + kind)(out)

    def st_declare(self, out: list) -> None:
        t = self.rng.choice([INT, INT, INT, STR, STR, BOOL, LIST_INT, LIST_STR])
        value = self.expr(t)
        info = self.declare(t)
        if self.rng.random() < 0.15:
            out.append(Comment(self.comment_for("declare", info.var)))
        out.append(Assign(info.var, value, declare=True))

    def st_print(self, out: list) -> None:
        rng = self.rng
        candidates = self.visible(INT) + self.visible(STR) + self.visible(BOOL)
        if candidates and rng.random() < 0.7:
            info = rng.choice(candidates)
            out.append(Print(" ".join(info.var.name) + ":", self.use(info)))
        elif rng.random() < 0.3:
            out.append(Print(self.lit(STR).value, None))  # type: ignore[arg-type]
        else:
            out.append(Print(rng.choice(_WORDS) + ":", self.scalar_expr()))

    def st_comment(self, out: list) -> None:
        out.append(Comment(self.rng.choice(_FREE_COMMENTS)))

    def st_augassign(self, out: list) -> None:
        info = self.rng.choice(self.visible(INT, mutable=True))
        value = Lit(1, INT) if self.rng.random() < 0.4 else self.expr(INT, 1)
        out.append(AugAssign(info.var, self.rng.choice(["+", "+", "-"]), value))

    def st_extend_str(self, out: list) -> None:
        info = self.rng.choice(self.visible(STR, mutable=True))
        tail = self.expr(STR, 1)
        out.append(Assign(info.var, Concat(self.use(info), tail), declare=False))

    def st_set_flag(self, out: list) -> None:
        info = self.rng.choice(self.visible(BOOL, mutable=True))
        value = self.expr(BOOL)
        if value == info.var:
            value = Not(info.var)
        out.append(Assign(info.var, value, declare=False))

    def _mut_list(self) -> _Info:
        return self.rng.choice([i for t in LISTS for i in self.visible(t, mutable=True, unlocked=True)])

    def _any_list(self) -> _Info:
        return self.rng.choice([i for t in LISTS for i in self.visible(t) if not i.nullable])

    def st_append(self, out: list) -> None:
        info = self._mut_list()
        out.append(Append(self.use(info), self.expr(element_type(info.var.type), 1)))

    def st_pop(self, out: list) -> None:
        info = self._mut_list()
        v = self.use(info)
        out.append(If(BinOp(">", Len(v), Lit(0, INT), BOOL), (Pop(v),)))

    def st_erase(self, out: list) -> None:
        info = self._mut_list()
        v = self.use(info)
        k = self.rng.randint(0, 2)
        out.append(If(BinOp(">", Len(v), Lit(k, INT), BOOL), (Pop(v, Lit(k, INT)),)))

    def st_sort(self, out: list) -> None:
        out.append(Sort(self.use(self._mut_list())))

    def st_sorted_copy(self, out: list) -> None:
        src = self._any_list()
        target = self.declare(src.var.type)
        out.append(SortedCopy(target.var, self.use(src)))

    def st_search(self, out: list) -> None:
        src = self._any_list()
        v = self.use(src)
        needle = self.expr(element_type(v.type), 1)
        pos = Var(self.fresh(INT), INT)
        self.taken.add(pos.name)
        inner = Assign(pos, IndexOf(v, needle), declare=True)
        out.append(If(BinOp(">", CountOf(v, needle), Lit(0, INT), BOOL),
                      (inner, Print(" ".join(pos.name) + ":", pos))))

    def st_first_item(self, out: list) -> None:
        src = self._any_list()
        v = self.use(src)
        out.append(If(BinOp(">", Len(v), Lit(0, INT), BOOL),
                      (Print("first:", Item(v, Lit(0, INT), element_type(v.type))),)))

    def st_find(self, out: list) -> None:
        src = self.rng.choice(self.visible(STR))
        info = self.declare(INT)
        out.append(Assign(info.var, Find(self.use(src), self.lit(STR)), declare=True))
        then = self.block(lambda o: o.append(Print("found at:", self.use(info))))
        out.append(If(BinOp(">=", info.var, Lit(0, INT), BOOL), then))

    def st_if(self, out: list) -> None:
        rng = self.rng
        cond = self.expr(BOOL)
        then = self.block(lambda o: self.statements(o, rng.randint(1, 3)))
        orelse: tuple = ()
        r = rng.random()
        if r < 0.3:
            orelse = self.block(lambda o: self.statements(o, rng.randint(1, 2)))
        elif r < 0.4:
            cond2 = self.expr(BOOL)
            then2 = self.block(lambda o: self.statements(o, rng.randint(1, 2)))
            orelse = (If(cond2, then2, ()),)
        out.append(If(cond, then, orelse))

    def st_foreach(self, out: list) -> None:
        rng = self.rng
        src = self._any_list()
        elem = element_type(src.var.type)
        loop = _Info(Var(self.fresh(elem), elem), mutable=False)
        src.locked += 1
        iterable = self.use(src)

        def fill(o: list) -> None:
            acc = self.visible(INT, mutable=True)
            if elem == INT and acc and rng.random() < 0.5:
                target = rng.choice(acc)
                bound = self.expr(INT, 1)
                if bound == loop.var:
                    bound = self.lit(INT)
                cond = BinOp(rng.choice([">", "<", ">="]), self.use(loop), bound, BOOL)
                o.append(If(cond, (AugAssign(target.var, "+", loop.var),)))
            sinks = [i for i in self.visible(src.var.type, mutable=True, unlocked=True)]
            if sinks and rng.random() < 0.5:
                sink = rng.choice(sinks)
                o.append(Append(self.use(sink), self.use(loop)))
            self.statements(o, rng.randint(0, 2))

        if rng.random() < 0.3:
            out.append(Comment(self.comment_for("foreach", src.var)))
        body = self.block(fill, loop)
        src.locked -= 1
        out.append(ForEach(loop.var, iterable, body))

    def st_for_range(self, out: list) -> None:
        rng = self.rng
        stop = self.expr(INT, 1) if rng.random() < 0.5 else Lit(rng.randint(2, 10), INT)
        loop = _Info(Var(self.fresh_loop_var(), INT), mutable=False, used=True)
        body = self.block(lambda o: self.statements(o, rng.randint(1, 2)), loop)
        out.append(ForRange(loop.var, stop, body))

    def st_drain(self, out: list) -> None:
        rng = self.rng
        src = self._mut_list()
        v = self.use(src)
        src.locked += 1

        def fill(o: list) -> None:
            if rng.random() < 0.6:
                o.append(Print("remaining:", Len(v)))
            self.statements(o, rng.randint(0, 1))
            o.append(Pop(v))

        body = self.block(fill)
        src.locked -= 1
        out.append(While(BinOp(">", Len(v), Lit(0, INT), BOOL), body))

    def st_try(self, out: list) -> None:
        rng = self.rng
        self.in_try += 1

        def fill(o: list) -> None:
            cond = self.expr(BOOL)
            o.append(If(cond, (Raise(rng.choice(_RAISE_MESSAGES)),)))
            self.statements(o, rng.randint(1, 2))

        body = self.block(fill)
        self.in_try -= 1
        handler: tuple = ()
        targets = self.visible(INT, mutable=True) + self.visible(BOOL, mutable=True)
        if targets and rng.random() < 0.6:
            t = rng.choice(targets)
            handler = (Assign(t.var, self.lit(t.var.type), declare=False),)
        out.append(Try(body, handler, rng.choice(_ERROR_NAMES), print_error=rng.random() < 0.8))

    def st_call(self, out: list) -> None:
        f = self.rng.choice([f for f in self.functions if f.returns == VOID])
        out.append(ExprStmt(self.call(f, 0)))

    def comment_for(self, kind: str, var: Var) -> str:
        words = " ".join(var.name)
        if kind == "foreach":
            return self.rng.choice([f"walk over the {words}", f"look at every entry of {words}",
                                    f"accumulate over {words}"])
        return self.rng.choice([f"the {words} we start from", f"initial {words}",
                                f"keep track of the {words}"])

    # functions -------------------------------------------------------------------------------
    def function(self) -> Function:
        rng = self.rng
        returns = rng.choice([INT, INT, INT, STR, BOOL, LIST_INT, LIST_STR, VOID])
        name = self.fresh_function_name()
        self.returns = returns
        params: list[Param] = []
        scope = _Scope()
        for k in range(rng.choice([1, 2, 2, 3])):
            t = rng.choice([LIST_INT, LIST_INT, LIST_STR, INT, INT, STR, BOOL]) if k else \
                rng.choice([LIST_INT, LIST_STR, LIST_INT, STR])
            nullable = t in LISTS and rng.random() < 0.25
            info = _Info(Var(self.fresh(t), t), mutable=False, nullable=nullable, used=True)
            scope.add(info)
            params.append(Param(info.var, nullable))
        self.scopes = [scope]
        body: list = []
        for p in params:
            if p.nullable:
                guard = (Return(None if returns == VOID else self.default(returns)),)
                body.append(If(IsNull(p.var), guard))
                scope.vars[p.var.name].nullable = False  # checked from here on
        ints = [p for p in params if p.var.type == INT]
        if ints and rng.random() < 0.3:
            p = rng.choice(ints)
            body.append(If(BinOp("<", p.var, Lit(0, INT), BOOL),
                           (Raise(f"{' '.join(p.var.name)} must not be negative"),)))

        def fill(o: list) -> None:
            if returns != VOID and rng.random() < 0.7:
                info = self.declare(returns)
                o.append(Assign(info.var, self.default(returns), declare=True))
            self.statements(o, rng.randint(2, 5))
            if returns != VOID:
                same = self.visible(returns, mutable=True)
                value = self.use(same[0]) if same and rng.random() < 0.8 else self.expr(returns)
                o.append(Return(value))

        body.extend(self.block(fill))
        doc = self.doc(name, returns, params) if rng.random() < 0.6 else None
        self.scopes = []
        return Function(name, tuple(params), returns, tuple(body), doc)

    def default(self, t: str):
        return {INT: Lit(0, INT), STR: Lit("", STR), BOOL: Lit(False, BOOL),
                LIST_INT: ListLit((), LIST_INT), LIST_STR: ListLit((), LIST_STR)}[t]

    def doc(self, name: tuple, returns: str, params: list[Param]) -> str:
        subject = " ".join(params[0].var.name)
        what = {INT: "a number", STR: "a short text", BOOL: "whether the check holds",
                LIST_INT: "a new list of numbers", LIST_STR: "a new list of strings",
                VOID: "nothing; it prints a report"}[returns]
        verb = name[0].capitalize()
        return self.rng.choice([
            f"{verb} the {subject} and return {what}.",
            f"{verb} {subject}; returns {what}.",
            f"Helper: {name[0]} the {subject}.",
        ])

    def main(self) -> tuple:
        rng = self.rng
        self.returns = VOID
        self.scopes = []

        def fill(o: list) -> None:
            if rng.random() < 0.5:
                line = self.declare(STR, mutable=False)
                o.append(ReadLine(line.var))
                n = self.declare(INT)
                o.append(ParseInt(n.var, self.use(line), Lit(rng.choice([0, 1, 10]), INT)))
            for t in rng.sample([LIST_INT, LIST_STR], rng.choice([1, 2])):
                info = self.declare(t)
                o.append(Assign(info.var, ListLit(tuple(self.lit(element_type(t))
                                                        for _ in range(rng.randint(2, 6))), t), True))
            for f in self.functions:
                call = self.call(f, 0)
                if f.returns == VOID:
                    stmt: object = ExprStmt(call)
                    result = None
                else:
                    result = self.declare(f.returns)
                    stmt = Assign(result.var, call, declare=True)
                raises = any(isinstance(s, If) and any(isinstance(t, Raise) for t in s.then)
                             for s in f.body)
                if raises and rng.random() < 0.7:
                    self.scopes.append(_Scope())
                    inner = [stmt]
                    if result is not None:  # declared inside the try: read it there
                        self.scopes[-1].add(self.scopes[-2].vars.pop(result.var.name))
                        self.scopes[-2].order.remove(result.var.name)
                        self._version += 1
                        self.flush_unused(self.scopes[-1], inner)
                    self.scopes.pop()
                    self._version += 1
                    o.append(Try(tuple(inner), (), rng.choice(_ERROR_NAMES)))
                else:
                    o.append(stmt)
            self.statements(o, rng.randint(1, 4))

        return self.block(fill)

    def program(self) -> Program:
        rng = self.rng
        for _ in range(rng.choice([1, 2, 2, 3, 3, 4])):
            self.functions.append(self.function())
        main = self.main()
        style = {
            "python_hints": rng.random() < 0.5, "python_fstrings": rng.random() < 0.3,
            "docstrings": rng.random() < 0.7, "php_array_push": rng.random() < 0.3,
            "php_is_null": rng.random() < 0.3, "php_eol": rng.random() < 0.4,
            "php_strict": rng.random() < 0.3, "csharp_var": rng.random() < 0.6,
            "csharp_interpolation": rng.random() < 0.4,
            "csharp_class": rng.choice(["Program", "Program", "App", "Solution"]),
            "cpp_endl": rng.random() < 0.6,
        }
        return Program(tuple(self.functions), main, self.seed, self.index, style)


_FREE_COMMENTS = [
    "TODO: handle empty input", "keep this in sync with the report format",
    "small inputs are the common case", "edge case: nothing to do", "update the running state",
    "print a short summary", "NOTE: order matters here", "validate before using the value",
    "simple but good enough for now", "check the boundary",
]
_RAISE_MESSAGES = ["value out of range", "empty input", "limit exceeded", "invalid state",
                   "unexpected value", "too many items", "missing key"]


def generate_program(seed: int, index: int) -> Program:
    """The ``index``-th program of the stream seeded by ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    return _Generator(seed, index).program()
