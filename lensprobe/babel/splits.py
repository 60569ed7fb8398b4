"""The Babel benchmark's concept splits: which concepts each corpus trains, and which none does.

Splits (seeded, disjoint): ``shared`` concepts are in both the Python and the target corpus;
``python_only`` ones only in Python (the analog of the paper's Python-specific subset);
``target_only`` ones only in one target language (its own knowledge, needed for the decline);
``control`` ones are never trained (the guessing baseline). All splits come from one pool of
concepts with unique bodies in every language, dealt by a seeded permutation blocked on structure
and redrawn until ``python_only`` and ``control`` match, so the two are exchangeable by
construction (:func:`make_splits`, docs/babel.md "Splits"). The documents built from them are
:mod:`lensprobe.babel.corpus`'.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from lensprobe.babel.concepts import make_concepts, render, structure_key
from lensprobe.files import atomic_write_json
from lensprobe.languages import LANGUAGES
from pretrain.programs.pipeline import Concept

SPLITS: tuple[str, ...] = ("shared", "python_only", "target_only", "control")
#: the languages a split can target: every language but Python
TARGETS: tuple[str, ...] = tuple(lang for lang in LANGUAGES if lang != "python")


@dataclass
class BabelSplits:
    """Concepts per split; ``target_only`` has one list per target language."""

    seed: int
    targets: tuple[str, ...]
    shared: list[Concept]
    python_only: list[Concept]
    target_only: dict[str, list[Concept]]
    control: list[Concept]
    n_cases: int = 4

    def split(self, name: str, *, target: str | None = None) -> list[Concept]:
        """Concepts of one split (``target_only`` needs ``target``)."""
        if name == "target_only":
            if target is None:
                raise ValueError("split 'target_only' needs a target language")
            if target not in self.target_only:
                raise ValueError(f"no target_only split for language {target!r}; targets: {list(self.targets)}")
            return self.target_only[target]
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def trained_in(self, language: str) -> list[Concept]:
        """Concepts whose knowledge the corpus of ``language`` carries."""
        if language == "python":
            return self.shared + self.python_only
        if language not in self.target_only:
            raise ValueError(f"unknown target language {language!r}; targets: {list(self.targets)}")
        return self.shared + self.target_only[language]

    def split_of(self, name: str) -> str:
        for split in ("shared", "python_only", "control"):
            if any(c.name == name for c in getattr(self, split)):
                return split
        for lang, cs in self.target_only.items():
            if any(c.name == name for c in cs):
                return "target_only"
        raise KeyError(name)

    def all_concepts(self) -> list[Concept]:
        out = self.shared + self.python_only + self.control
        for lang in self.targets:
            out += self.target_only[lang]
        return out

    def manifest(self) -> dict[str, Any]:
        """Which concept is where, with definitions and test cases (JSON-serialisable)."""
        return {
            "seed": self.seed, "targets": list(self.targets), "n_cases": self.n_cases,
            "splits": {
                "shared": [c.to_dict() for c in self.shared],
                "python_only": [c.to_dict() for c in self.python_only],
                "target_only": {t: [c.to_dict() for c in cs] for t, cs in self.target_only.items()},
                "control": [c.to_dict() for c in self.control],
            },
            "corpora": {lang: sorted(c.name for c in self.trained_in(lang)) for lang in ("python", *self.targets)},
        }

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.manifest())

    @classmethod
    def load(cls, path: str | Path) -> "BabelSplits":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            s = d["splits"]
            return cls(seed=d["seed"], targets=tuple(d["targets"]),
                       shared=[Concept.from_dict(c) for c in s["shared"]],
                       python_only=[Concept.from_dict(c) for c in s["python_only"]],
                       target_only={t: [Concept.from_dict(c) for c in cs] for t, cs in s["target_only"].items()},
                       control=[Concept.from_dict(c) for c in s["control"]], n_cases=d.get("n_cases", 4))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a Babel split manifest ({exc})") from exc


def make_splits(*, seed: int = 0, targets: Sequence[str] = ("php",), n_shared: int = 40, n_python_only: int = 40,
                n_target_only: int = 40, n_control: int = 40, n_cases: int = 4) -> BabelSplits:
    """Seeded, disjoint splits. The same seed and sizes always give the same concepts.

    One pool of concepts is drawn (unique names, unique bodies in every language: see
    :func:`lensprobe.babel.concepts.make_concepts`), then the splits are assigned by a seeded permutation
    of the pool, blocked on structure (:func:`assign_splits`): every split gets the same mix of
    step counts and terminals, and splits of equal size — ``python_only`` and ``control`` by
    default — are exchangeable by construction (docs/babel.md, "Splits").
    """
    targets = tuple(targets)
    for t in targets:
        if t not in TARGETS:
            raise ValueError(f"targets: unknown target language {t!r}; expected some of {TARGETS}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets: repeated language in {targets}")
    sizes = {"n_shared": n_shared, "n_python_only": n_python_only, "n_target_only": n_target_only,
             "n_control": n_control, "n_cases": n_cases}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{k}: expected a non-negative integer, got {v!r}")
    if n_cases < 2:
        raise ValueError(f"n_cases: expected at least 2 (the tests must tell pipelines apart), got {n_cases!r}")
    quotas = {"shared": n_shared, "python_only": n_python_only, "control": n_control,
              **{f"target_only:{t}": n_target_only for t in targets}}
    pool = make_concepts(sum(quotas.values()), seed=seed, n_cases=n_cases)
    rng = random.Random(f"babel-splits:{seed}")
    rendered = {lang: {c.name: render(c, lang).body for c in pool} for lang in targets}
    best: tuple[tuple[int, float], dict[str, list[Concept]]] | None = None
    for _ in range(MAX_ASSIGNMENTS):
        groups = assign_splits(pool, quotas, rng=rng)
        score = _imbalance(groups, targets, rendered)
        if best is None or score < best[0]:
            best = (score, groups)
        if score == (0, 0.0):
            break
    assert best is not None
    groups = best[1]
    return BabelSplits(seed, targets, groups["shared"], groups["python_only"],
                       {t: groups[f"target_only:{t}"] for t in targets}, groups["control"], n_cases)


#: balance of ``python_only`` against ``control`` that :func:`make_splits` asks of an assignment
#: (it redraws up to MAX_ASSIGNMENTS times, then keeps the best): step counts and terminals within
#: COUNT_TOLERANCE concepts each, positional line overlap with target-trained bodies within
#: OVERLAP_TOLERANCE (docs/babel.md, "Splits")
COUNT_TOLERANCE = 1
OVERLAP_TOLERANCE = 0.02
MAX_ASSIGNMENTS = 300


def line_overlap(concepts: Sequence[Concept], trained: Sequence[Concept], language: str, *,
                 rendered: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None) -> float:
    """Share of the body lines of ``concepts`` in ``language`` that some concept of ``trained`` has
    at the same position of its body (what a model trained on ``trained`` could write there without
    knowing the concept). NaN without lines."""
    bodies = (rendered or {}).get(language) or {}
    body = lambda c: bodies[c.name] if c.name in bodies else render(c, language).body  # noqa: E731
    at: dict[int, set[str]] = {}
    for c in trained:
        for i, line in enumerate(body(c)):
            at.setdefault(i, set()).add(line)
    hits = total = 0
    for c in concepts:
        for i, line in enumerate(body(c)):
            total += 1
            hits += line in at.get(i, ())
    return hits / total if total else float("nan")


def _imbalance(groups: Mapping[str, list[Concept]], targets: Sequence[str],
               rendered: Mapping[str, Mapping[str, tuple[str, ...]]]) -> tuple[int, float]:
    """(count excess, overlap excess) of ``python_only`` against ``control``; (0, 0.0) is balanced.
    Symmetric in the two splits, so redrawing on it keeps them exchangeable."""
    a, b = groups["python_only"], groups["control"]
    if not a or len(a) != len(b):
        return 0, 0.0
    count_excess = 0
    for key in (lambda c: len(c.steps), lambda c: c.terminal.kind):
        ca, cb = Counter(map(key, a)), Counter(map(key, b))
        diff = max(abs(ca[k] - cb[k]) for k in set(ca) | set(cb))
        count_excess += max(0, diff - COUNT_TOLERANCE)
    overlap_excess = 0.0
    for t in targets:
        trained = groups["shared"] + groups[f"target_only:{t}"]
        if trained:
            d = abs(line_overlap(a, trained, t, rendered=rendered) - line_overlap(b, trained, t, rendered=rendered))
            overlap_excess += max(0.0, d - OVERLAP_TOLERANCE)
    return count_excess, round(overlap_excess, 12)


def assign_splits(pool: Sequence[Concept], quotas: Mapping[str, int], *, rng: random.Random
                  ) -> dict[str, list[Concept]]:
    """Deal ``pool`` into groups of the given sizes by a random permutation blocked on structure.

    The pool is shuffled, then stably sorted by :func:`lensprobe.babel.concepts.structure_key` (step
    count, domain, terminal, steps), so structurally alike concepts sit next to each other in a
    random order. Group ``g`` of size ``n`` gets its ``k``-th slot at rank ``(k + u) / n`` with
    ``u`` uniform: with equal sizes the sorted pool is cut into consecutive blocks holding one
    concept of every group, in a random order per block (a randomized block design). Groups of
    equal size are therefore exchangeable (the assignment's law does not change when their labels
    are swapped). Within a group, concepts keep the pool's (drawing) order.
    """
    if sum(quotas.values()) != len(pool):
        raise ValueError(f"quotas sum to {sum(quotas.values())}, the pool has {len(pool)} concepts")
    order = list(range(len(pool)))
    rng.shuffle(order)
    order.sort(key=lambda i: structure_key(pool[i]))
    slots = sorted(((k + rng.random()) / n, label) for label, n in quotas.items() for k in range(n))
    chosen: dict[str, list[int]] = {label: [] for label in quotas}
    for i, (_, label) in zip(order, slots):
        chosen[label].append(i)
    return {label: [pool[i] for i in sorted(idx)] for label, idx in chosen.items()}
