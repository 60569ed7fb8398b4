"""Concept functions for the synthetic Babel benchmark (ARCHITECTURE section 11).

A *concept* is a made-up function name (``tally_odd``-like, but from nonsense syllables so it
carries no prior meaning) whose body is a pipeline of 1-3 primitive steps and a terminal, e.g.
keep odd values -> double each -> sort -> count. Each concept has one canonical rendering per
language (Python, PHP, C#, Go, C++), a reference evaluator in Python, and test cases that can be
executed in every language.

The canonical body is what a model must reproduce; its lines are the unit of *line accuracy*.
Python concepts additionally have alternative surface forms (nested lambda, a comment stating the
pipeline) used to augment the Python base corpus: knowledge stored in one surface form is not
extractable in another (section 11), so the base run must see several.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

LANGUAGES: tuple[str, ...] = ("python", "php", "csharp", "go", "cpp")

# --------------------------------------------------------------------------------------------
# Primitive steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One primitive pipeline step: ``kind`` with an optional integer or string argument."""

    domain: str          # "list" (list[int]) or "str"
    kind: str            # filter_odd, filter_even, filter_pos, filter_gt, map_double, map_square, map_add,
                         # map_neg, sort, reverse, unique, take, drop | strip, lower, upper, replace, rev
    arg: Any = None

    def apply(self, v: Any) -> Any:
        k, a = self.kind, self.arg
        if self.domain == "list":
            if k == "filter_odd":
                return [x for x in v if x % 2 != 0]
            if k == "filter_even":
                return [x for x in v if x % 2 == 0]
            if k == "filter_pos":
                return [x for x in v if x > 0]
            if k == "filter_gt":
                return [x for x in v if x > a]
            if k == "map_double":
                return [x * 2 for x in v]
            if k == "map_square":
                return [x * x for x in v]
            if k == "map_add":
                return [x + a for x in v]
            if k == "map_neg":
                return [-x for x in v]
            if k == "sort":
                return sorted(v)
            if k == "reverse":
                return v[::-1]
            if k == "unique":
                return list(dict.fromkeys(v))
            if k == "take":
                return v[:a]
            if k == "drop":
                return v[a:]
        else:
            if k == "strip":
                return v.strip(" ")
            if k == "lower":
                return v.lower()
            if k == "upper":
                return v.upper()
            if k == "replace":
                return v.replace(a[0], a[1])
            if k == "rev":
                return v[::-1]
        raise ValueError(f"unknown step {self}")

    def describe(self) -> str:
        k, a = self.kind, self.arg
        return {
            "filter_odd": "keep the odd values", "filter_even": "keep the even values",
            "filter_pos": "keep the positive values", "filter_gt": f"keep values greater than {a}",
            "map_double": "double each value", "map_square": "square each value",
            "map_add": f"add {a} to each value", "map_neg": "negate each value",
            "sort": "sort ascending", "reverse": "reverse the order", "unique": "drop repeated values",
            "take": f"keep the first {a}", "drop": f"skip the first {a}",
            "strip": "strip surrounding spaces", "lower": "lowercase it", "upper": "uppercase it",
            "replace": f"replace {a[0]!r} with {a[1]!r}" if k == "replace" else "", "rev": "reverse the text",
        }[k]


LIST_STEPS = ("filter_odd", "filter_even", "filter_pos", "filter_gt", "map_double", "map_square", "map_add",
              "map_neg", "sort", "reverse", "unique", "take", "drop")
STR_STEPS = ("strip", "lower", "upper", "replace", "rev")
LIST_TERMINALS = ("count", "sum", "max", "min")
STR_TERMINALS = ("length", "count_char")


@dataclass(frozen=True)
class Terminal:
    domain: str
    kind: str
    arg: Any = None

    def apply(self, v: Any) -> Any:
        if self.kind == "count" or self.kind == "length":
            return len(v)
        if self.kind == "sum":
            return sum(v)
        if self.kind == "max":
            return max(v)
        if self.kind == "min":
            return min(v)
        if self.kind == "count_char":
            return v.count(self.arg)
        raise ValueError(f"unknown terminal {self}")

    def describe(self) -> str:
        return {"count": "count them", "sum": "sum them", "max": "take the largest", "min": "take the smallest",
                "length": "measure its length", "count_char": f"count the {self.arg!r} characters"}[self.kind]


@dataclass(frozen=True)
class Concept:
    """A named pipeline with test cases."""

    name: str
    domain: str
    steps: tuple[Step, ...]
    terminal: Terminal
    cases: tuple[tuple[Any, Any], ...] = field(default=(), compare=False)

    def evaluate(self, value: Any) -> Any:
        for s in self.steps:
            value = s.apply(value)
        return self.terminal.apply(value)

    def describe(self) -> str:
        parts = [s.describe() for s in self.steps] + [self.terminal.describe()]
        return ", ".join(parts[:-1]) + ", then " + parts[-1]

    @property
    def param(self) -> str:
        return "xs" if self.domain == "list" else "s"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "domain": self.domain,
                "steps": [[s.kind, s.arg] for s in self.steps],
                "terminal": [self.terminal.kind, self.terminal.arg],
                "cases": [list(c) for c in self.cases]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Concept":
        def arg(a):
            return tuple(a) if isinstance(a, list) else a
        return cls(d["name"], d["domain"], tuple(Step(d["domain"], k, arg(a)) for k, a in d["steps"]),
                   Terminal(d["domain"], d["terminal"][0], d["terminal"][1]),
                   tuple((arg(i) if d["domain"] == "str" else i, o) for i, o in d["cases"]))


# --------------------------------------------------------------------------------------------
# Random concepts
# --------------------------------------------------------------------------------------------

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr",
           "pl", "sn", "st", "tr", "zw", "qu", "th", "sk")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ee", "oa")
_CODAS = ("", "b", "d", "g", "k", "l", "m", "n", "p", "r", "rt", "sk", "st", "x", "z", "nd")


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def make_name(rng: random.Random) -> str:
    """A nonsense snake_case name of two parts (``zorb_quilt``): legal in all five languages."""
    return f"{_syllable(rng)}{_syllable(rng)}_{_syllable(rng)}"


_RESERVED = {"int", "for", "var", "func", "new", "map", "max", "min", "sum", "len", "sort", "string", "count",
             "list", "range", "true", "false", "null", "nil", "none", "go", "do", "if", "else"}


def _random_step(rng: random.Random, domain: str) -> Step:
    if domain == "list":
        kind = rng.choice(LIST_STEPS)
        arg = {"filter_gt": rng.randint(0, 5), "map_add": rng.randint(1, 9), "take": rng.randint(2, 4),
               "drop": rng.randint(1, 2)}.get(kind)
        return Step("list", kind, arg)
    kind = rng.choice(STR_STEPS)
    arg = None
    if kind == "replace":
        a = rng.choice("aeiou")
        b = rng.choice([c for c in "xyz-"])
        arg = (a, b)
    return Step("str", kind, arg)


def _random_input(rng: random.Random, domain: str) -> Any:
    if domain == "list":
        return [rng.randint(-5, 12) for _ in range(rng.randint(3, 8))]
    words = ["data", "code", "lane", "mode", "pure", "note", "tree", "unit", "area", "idea"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.5:
        text = text.title()
    return " " * rng.randint(0, 2) + text + " " * rng.randint(0, 2)


def random_pipeline(rng: random.Random, name: str, *, max_steps: int = 3) -> Concept:
    """A concept without test cases: 1..max_steps distinct step kinds and a terminal (cheap; the
    filler's throwaway functions)."""
    while True:
        domain = "list" if rng.random() < 0.75 else "str"
        steps = tuple(_random_step(rng, domain) for _ in range(rng.randint(1, max_steps)))
        if len({s.kind for s in steps}) < len(steps):
            continue  # no repeated step kinds: keeps pipelines distinct and readable
        if domain == "list":
            terminal = Terminal("list", rng.choice(LIST_TERMINALS))
        else:
            kind = rng.choice(STR_TERMINALS)
            terminal = Terminal("str", kind, rng.choice("aeo") if kind == "count_char" else None)
        return Concept(name, domain, steps, terminal)


def random_concept(rng: random.Random, name: str, *, n_cases: int = 4, max_steps: int = 3) -> Concept:
    """A concept whose pipeline has 1..max_steps steps and whose test cases are non-degenerate."""
    if n_cases < 2:
        raise ValueError(f"n_cases: expected >= 2 (the tests must tell pipelines apart), got {n_cases}")
    while True:
        concept = random_pipeline(rng, name, max_steps=max_steps)
        domain, steps, terminal = concept.domain, concept.steps, concept.terminal
        cases = []
        for _ in range(60):
            x = _random_input(rng, domain)
            try:
                y = concept.evaluate(x)
            except ValueError:  # max/min of an empty list: not a valid case
                continue
            cases.append((x, y))
            if len(cases) == n_cases:
                break
        outs = {repr(o) for _, o in cases}
        if len(cases) == n_cases and len(outs) >= 2:  # the tests must tell pipelines apart
            return Concept(name, domain, steps, terminal, tuple(cases))


def make_concepts(n: int, *, seed: int, n_cases: int = 4, max_tries: int = 1000) -> list[Concept]:
    """``n`` concepts with unique names, none a substring of another (so token scans are exact), and
    unique canonical bodies in every language (a concept whose body in any language equals one
    already drawn is redrawn, up to ``max_tries`` times per concept): no body line sequence is
    shared between two concepts, so a body never carries another concept's knowledge
    (docs/babel.md, "Splits")."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < n:
        name = make_name(rng)
        if any(part in _RESERVED for part in name.split("_")):
            continue
        if any(name in other or other in name for other in names):
            continue
        names.append(name)
    seen: dict[str, set[tuple[str, ...]]] = {lang: set() for lang in LANGUAGES}
    out: list[Concept] = []
    for name in names:
        for _ in range(max_tries):
            concept = random_concept(rng, name, n_cases=n_cases)
            bodies = {lang: render(concept, lang).body for lang in LANGUAGES}
            if not any(bodies[lang] in seen[lang] for lang in LANGUAGES):
                break
        else:
            raise ValueError(f"cannot draw {n} concepts with distinct bodies (stuck at {len(out)} after "
                             f"{max_tries} tries): ask for fewer concepts")
        for lang, body in bodies.items():
            seen[lang].add(body)
        out.append(concept)
    return out


def concept_bodies(concepts: Sequence[Concept], language: str) -> dict[str, str]:
    """Body text of each concept in ``language`` as it appears in documents (the body lines joined
    by newlines, without header and footer), keyed by concept name."""
    return {c.name: "\n".join(render(c, language).body) for c in concepts}


def structure_key(concept: Concept) -> tuple[Any, ...]:
    """What a concept's body is made of, coarsest first: step count, domain, terminal, steps.
    Sorting by it puts structurally alike concepts next to each other (the split assignment's blocks)."""
    return (len(concept.steps), concept.domain, concept.terminal.kind,
            tuple((s.kind, repr(s.arg)) for s in concept.steps))


# --------------------------------------------------------------------------------------------
# Canonical renderings
# --------------------------------------------------------------------------------------------

def _pred(kind: str, arg: Any, x: str) -> str:
    return {"filter_odd": f"{x} % 2 != 0", "filter_even": f"{x} % 2 == 0", "filter_pos": f"{x} > 0",
            "filter_gt": f"{x} > {arg}"}[kind]


def _fn(kind: str, arg: Any, x: str) -> str:
    return {"map_double": f"{x} * 2", "map_square": f"{x} * {x}", "map_add": f"{x} + {arg}",
            "map_neg": f"-{x}"}[kind]


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


IND = "    "


def _python_step(step: Step, src: str) -> str:
    """One pipeline step as a Python expression over ``src``."""
    k, a = step.kind, step.arg
    if k.startswith("filter"):
        return f"[x for x in {src} if {_pred(k, a, 'x')}]"
    if k.startswith("map"):
        return f"[{_fn(k, a, 'x')} for x in {src}]"
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
        return f"{src}.replace({_q(a[0])}, {_q(a[1])})"
    raise ValueError(f"unknown step kind {k!r}")


def _python_terminal(t: Terminal, src: str) -> str:
    return {"count": f"len({src})", "length": f"len({src})", "sum": f"sum({src})", "max": f"max({src})",
            "min": f"min({src})", "count_char": f"{src}.count({_q(str(t.arg))})"}[t.kind]


def _python(c: Concept) -> Rendering:
    src, lines = c.param, []
    var = "ys" if c.domain == "list" else "t"
    for s in c.steps:
        lines.append(f"{IND}{var} = {_python_step(s, src)}")
        src = var
    lines.append(f"{IND}return {_python_terminal(c.terminal, src)}")
    return Rendering("python", f"def {c.name}({c.param}):", tuple(lines), "")


def _php(c: Concept) -> Rendering:
    p = "$" + c.param
    src, lines = p, []
    var = "$ys" if c.domain == "list" else "$t"
    for s in c.steps:
        k, a = s.kind, s.arg
        if k.startswith("filter"):
            lines.append(f"{var} = array_values(array_filter({src}, fn($x) => {_pred(k, a, '$x')}));")
        elif k.startswith("map"):
            lines.append(f"{var} = array_map(fn($x) => {_fn(k, a, '$x')}, {src});")
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
            lines.append(f"{var} = str_replace({_q(a[0])}, {_q(a[1])}, {src});")
        elif k == "rev":
            lines.append(f"{var} = strrev({src});")
        src = var
    t = c.terminal
    ret = {"count": f"count({src})", "length": f"strlen({src})", "sum": f"array_sum({src})",
           "max": f"max({src})", "min": f"min({src})",
           "count_char": f"substr_count({src}, {_q(str(t.arg))})"}[t.kind]
    lines.append(f"return {ret};")
    return Rendering("php", f"function {c.name}({p}) {{", tuple(IND + ln for ln in lines), "}")


def _csharp(c: Concept) -> Rendering:
    src, lines, declared = c.param, [], False
    var = "ys" if c.domain == "list" else "t"
    for s in c.steps:
        k, a = s.kind, s.arg
        lhs = f"{var} = " if declared else f"var {var} = "
        if k.startswith("filter"):
            e = f"{src}.Where(x => {_pred(k, a, 'x')}).ToList()"
        elif k.startswith("map"):
            e = f"{src}.Select(x => {_fn(k, a, 'x')}).ToList()"
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
            e = f"{src}.Replace({_q(a[0])}, {_q(a[1])})"
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
                     tuple(IND + ln for ln in lines), "}")


def _go(c: Concept) -> Rendering:
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
                    lines.append(f"{IND}if {_pred(k, a, 'x').replace(' % ', '%')} {{")
                    lines.append(f"{IND}{IND}{tmp} = append({tmp}, x)")
                    lines.append(f"{IND}}}")
                elif k.startswith("map"):
                    lines.append(f"{IND}{tmp} = append({tmp}, {_fn(k, a, 'x')})")
                else:
                    lines.append(f"{IND}if !seen{i}[x] {{")
                    lines.append(f"{IND}{IND}seen{i}[x] = true")
                    lines.append(f"{IND}{IND}{tmp} = append({tmp}, x)")
                    lines.append(f"{IND}}}")
                lines.append("}")
                lines.append(f"ys = {tmp}")
            elif k == "sort":
                lines.append("sort.Ints(ys)")
            elif k == "reverse":
                lines.append("for i, j := 0, len(ys)-1; i < j; i, j = i+1, j-1 {")
                lines.append(f"{IND}ys[i], ys[j] = ys[j], ys[i]")
                lines.append("}")
            elif k == "take":
                lines.append(f"if len(ys) > {a} {{")
                lines.append(f"{IND}ys = ys[:{a}]")
                lines.append("}")
            elif k == "drop":
                lines.append(f"if len(ys) > {a} {{")
                lines.append(f"{IND}ys = ys[{a}:]")
                lines.append("} else {")
                lines.append(f"{IND}ys = []int{{}}")
                lines.append("}")
        t = c.terminal.kind
        if t == "count":
            lines.append("return len(ys)")
        elif t == "sum":
            lines += ["total := 0", "for _, x := range ys {", f"{IND}total += x", "}", "return total"]
        else:
            op = ">" if t == "max" else "<"
            lines += ["best := ys[0]", "for _, x := range ys {", f"{IND}if x {op} best {{",
                      f"{IND}{IND}best = x", f"{IND}}}", "}", "return best"]
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
                lines.append(f"{lhs}strings.ReplaceAll({src}, {_q(a[0])}, {_q(a[1])})")
            elif k == "rev":
                lines.append(f"r := []rune({src})")
                lines.append("for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {")
                lines.append(f"{IND}r[i], r[j] = r[j], r[i]")
                lines.append("}")
                lines.append(f"{lhs}string(r)")
            src = "t"
        t = c.terminal
        if t.kind == "length":
            lines.append(f"return len({src})")
        else:
            lines.append(f"return strings.Count({src}, {_q(str(t.arg))})")
        header = f"func {c.name}(s string) int {{"
    return Rendering("go", header, tuple(IND + ln for ln in lines), "}")


def _cpp(c: Concept) -> Rendering:
    lines: list[str] = []
    if c.domain == "list":
        lines.append("std::vector<int> ys = xs;")
        for s in c.steps:
            k, a = s.kind, s.arg
            if k.startswith("filter"):
                lines.append("ys.erase(std::remove_if(ys.begin(), ys.end(), "
                             f"[](int x) {{ return !({_pred(k, a, 'x')}); }}), ys.end());")
            elif k.startswith("map"):
                lines.append("std::transform(ys.begin(), ys.end(), ys.begin(), "
                             f"[](int x) {{ return {_fn(k, a, 'x')}; }});")
            elif k == "sort":
                lines.append("std::sort(ys.begin(), ys.end());")
            elif k == "reverse":
                lines.append("std::reverse(ys.begin(), ys.end());")
            elif k == "unique":
                lines.append("std::vector<int> seen;")
                lines.append("for (int x : ys) {")
                lines.append(f"{IND}if (std::find(seen.begin(), seen.end(), x) == seen.end()) seen.push_back(x);")
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
    return Rendering("cpp", header, tuple(IND + ln for ln in lines), "}")


RENDERERS: dict[str, Callable[[Concept], Rendering]] = {
    "python": _python, "php": _php, "csharp": _csharp, "go": _go, "cpp": _cpp,
}


def render(concept: Concept, language: str) -> Rendering:
    """The canonical rendering of ``concept`` in ``language``."""
    try:
        return RENDERERS[language](concept)
    except KeyError:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}") from None


# --------------------------------------------------------------------------------------------
# Python surface forms (augmentation of the base corpus)
# --------------------------------------------------------------------------------------------

SURFACE_FORMS: tuple[str, ...] = ("def", "lambda", "comment")


def _python_expr(c: Concept) -> str:
    """The whole pipeline as one nested Python expression."""
    e = c.param
    for s in c.steps:
        e = _python_step(s, e)
    return _python_terminal(c.terminal, e)


def python_surface(concept: Concept, form: str, rng: random.Random | None = None) -> str:
    """Python text of ``concept`` in one surface form: ``def`` (canonical), ``lambda`` (a nested
    lambda, sometimes as a local function), or ``comment`` (a comment stating the pipeline,
    followed by a one-line call example)."""
    rng = rng or random.Random(0)
    if form == "def":
        return render(concept, "python").text
    if form == "lambda":
        expr = _python_expr(concept)
        if rng.random() < 0.5:
            return f"{concept.name} = lambda {concept.param}: {expr}\n"
        outer = f"make_{concept.name}"
        return (f"def {outer}():\n{IND}def inner({concept.param}):\n{IND}{IND}return {expr}\n"
                f"{IND}return inner\n{concept.name} = {outer}()\n")
    if form == "comment":
        x, y = concept.cases[0]
        return f"# {concept.name}({concept.param}): {concept.describe()}\n# {concept.name}({x!r}) == {y!r}\n"
    raise ValueError(f"unknown surface form {form!r}; expected one of {SURFACE_FORMS}")


# --------------------------------------------------------------------------------------------
# Executable tests per language
# --------------------------------------------------------------------------------------------

def _lit(v: Any, language: str) -> str:
    if isinstance(v, str):
        return _q(v)
    if isinstance(v, list):
        inner = ", ".join(str(x) for x in v)
        return {"python": f"[{inner}]", "php": f"[{inner}]", "csharp": f"new List<int> {{ {inner} }}",
                "go": f"[]int{{{inner}}}", "cpp": f"std::vector<int>{{{inner}}}"}[language]
    return str(v)


def checking_program(concepts: Sequence[Concept], language: str, *, bodies: dict[str, str] | None = None) -> str:
    """One program defining ``concepts`` (canonical, or the texts in ``bodies`` by name) and
    checking every test case; it prints ``PASS <name>`` / ``FAIL <name>`` per concept and exits 0.

    A concept whose definition does not compile makes the whole program fail in compiled
    languages: evaluate generated code one concept per program there.
    """
    defs = [bodies[c.name] if bodies and c.name in bodies else render(c, language).text for c in concepts]
    checks = []
    for c in concepts:
        conds = []
        for x, y in c.cases:
            conds.append((f"{c.name}({_lit(x, language)})", _lit(y, language)))
        checks.append((c.name, conds))
    if language == "python":
        out = list(defs)
        for name, conds in checks:
            cond = " and ".join(f"{a} == {b}" for a, b in conds)
            out.append(f"try:\n{IND}_ok = {cond}\nexcept Exception:\n{IND}_ok = False\n"
                       f"print(('PASS ' if _ok else 'FAIL ') + {_q(name)})\n")
        return "\n".join(out)
    if language == "php":
        out = ["<?php"] + defs
        for name, conds in checks:
            cond = " && ".join(f"{a} === {b}" for a, b in conds)
            out.append(f"try {{ $ok = {cond}; }} catch (\\Throwable $e) {{ $ok = false; }}\n"
                       f"echo ($ok ? 'PASS ' : 'FAIL ') . {_q(name)} . \"\\n\";")
        return "\n".join(out) + "\n"
    if language == "csharp":
        body = [f"{IND}{ln}" for d in defs for ln in d.splitlines()]
        main = []
        for name, conds in checks:
            cond = " && ".join(f"{a} == {b}" for a, b in conds)
            main.append(f"{IND}{IND}{{ bool ok; try {{ ok = {cond}; }} catch (Exception) {{ ok = false; }} "
                        f"Console.WriteLine((ok ? \"PASS \" : \"FAIL \") + {_q(name)}); }}")
        return ("using System;\nusing System.Collections.Generic;\nusing System.Linq;\n\npublic class Program {\n"
                + "\n".join(body) + f"\n{IND}public static void Main() {{\n" + "\n".join(main) + f"\n{IND}}}\n}}\n")
    if language == "go":
        main = []
        for name, conds in checks:
            cond = " && ".join(f"{a} == {b}" for a, b in conds)
            main.append(f'{IND}if {cond} {{\n{IND}{IND}fmt.Println("PASS " + {_q(name)})\n{IND}}} else {{\n'
                        f'{IND}{IND}fmt.Println("FAIL " + {_q(name)})\n{IND}}}')
        text = "\n".join(defs)
        imports = ["fmt"] + (["sort"] if "sort." in text else []) + (["strings"] if "strings." in text else [])
        imp = "import (\n" + "".join(f'{IND}"{i}"\n' for i in imports) + ")\n"
        return "package main\n\n" + imp + "\n" + text + "\nfunc main() {\n" + "\n".join(main) + "\n}\n"
    if language == "cpp":
        main = []
        for name, conds in checks:
            cond = " && ".join(f"{a} == {b}" for a, b in conds)
            main.append(f'{IND}std::cout << (({cond}) ? "PASS " : "FAIL ") << {_q(name)} << "\\n";')
        head = ("#include <algorithm>\n#include <cctype>\n#include <iostream>\n#include <numeric>\n"
                "#include <string>\n#include <vector>\n\n")
        return head + "\n".join(defs) + "\nint main() {\n" + "\n".join(main) + f"\n{IND}return 0;\n}}\n"
    raise ValueError(f"unknown language {language!r}")
