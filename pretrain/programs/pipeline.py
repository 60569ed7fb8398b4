"""Pipeline functions: the Babel benchmark's concepts as a program model.

A :class:`Concept` is a named function whose body is a pipeline of 1-3 primitive :class:`Step` s
over a list of ints or a string and a :class:`Terminal` that turns the result into an int, e.g.
keep odd values -> double each -> sort -> count. ``Concept.evaluate`` is the reference evaluator
(in Python); each language's renderer spells the pipeline (``render_concept`` in
:mod:`pretrain.render.python`, ...). Drawing concepts and splits is :mod:`lensprobe.babel.concepts`'
and :mod:`lensprobe.babel.splits`' business (docs/babel.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
