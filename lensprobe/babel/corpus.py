"""The synthetic Babel benchmark's corpora: concept splits and the documents each stage trains on.

Splits (seeded, disjoint): ``shared`` concepts are in both the Python and the target corpus;
``python_only`` ones only in Python (the analog of the paper's Python-specific subset);
``target_only`` ones only in one target language (its own knowledge, needed for the decline);
``control`` ones are never trained (the guessing baseline). All splits come from one pool of
concepts with unique bodies in every language, dealt by a seeded permutation blocked on structure
and redrawn until ``python_only`` and ``control`` match, so the two are exchangeable by
construction (:func:`make_splits`, docs/babel.md "Splits").

Stages (ARCHITECTURE section 11):

* ``base``: Python documents whose concepts appear in several surface forms (def / nested lambda /
  comment, weights configurable), plus target-language *filler* (syntax without concepts) that the
  recipe mixes in at ~2%: half general programs of the embedded generator, half the target's
  pipeline idioms on throwaway functions (each generated once, so they carry syntax, not
  knowledge; without them the continual run spends its first hundreds of steps on syntax); no
  filler document contains a concept's name or body (:class:`ConceptScan`);
* ``continual``: target documents with the shared and target-only concepts, plus the same Python
  documents as a small admixture (~5%).

:class:`BabelCorpus` has the interface of :class:`pretrain.corpora.Corpus` (``languages`` and an
unlimited, deterministic ``documents(language)``), so the ordinary tokenize / mixture / train
pipeline consumes it unchanged.
"""
from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from lensprobe.babel.concepts import (LANGUAGES, SURFACE_FORMS, Concept, concept_bodies, make_concepts, python_surface,
                               render, structure_key)

SPLITS: tuple[str, ...] = ("shared", "python_only", "target_only", "control")
TARGETS: tuple[str, ...] = tuple(lang for lang in LANGUAGES if lang != "python")
DEFAULT_SURFACE_WEIGHTS: dict[str, float] = {"def": 0.5, "lambda": 0.3, "comment": 0.2}
STAGES = ("base", "continual")


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
        from lensprobe.files import atomic_write_json

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


def _validate_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(SURFACE_FORMS)
    if unknown:
        raise ValueError(f"surface_weights: unknown form(s) {sorted(unknown)}; expected some of {SURFACE_FORMS}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"surface_weights: weights must be >= 0 with a positive sum, got {dict(weights)}")
    total = sum(weights.values())
    return {k: float(v) / total for k, v in weights.items()}


@dataclass
class BabelCorpus:
    """Unlimited, deterministic documents for one stage of the Babel benchmark.

    ``filler`` (base stage only) is a callable ``language -> Iterator[str]`` of target-language
    programs without concepts; by default the embedded program generator of :mod:`pretrain.corpora`.
    """

    splits: BabelSplits
    stage: str  # "base" or "continual"; no default (the stages share every other field)
    target: str = "php"
    surface_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SURFACE_WEIGHTS))
    seed: int = 0
    concepts_per_document: tuple[int, int] = (3, 6)
    filler: Callable[[str], Iterator[str]] | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage: expected one of {STAGES}, got {self.stage!r}")
        if self.target not in self.splits.targets:
            raise ValueError(f"target: {self.target!r} has no split (targets: {list(self.splits.targets)})")
        self.surface_weights = _validate_weights(self.surface_weights)
        lo, hi = self.concepts_per_document
        if not 1 <= lo <= hi:
            raise ValueError(f"concepts_per_document: expected 1 <= low <= high, got {self.concepts_per_document}")

    @property
    def languages(self) -> list[str]:
        return ["python", self.target]

    def documents(self, language: str) -> Iterator[Any]:
        from pretrain.corpora import Document

        if language not in self.languages:
            raise ValueError(f"Babel corpus ({self.stage}) has languages {self.languages}, not {language!r}")
        source = f"babel:{self.stage}:seed{self.splits.seed}"
        if language == self.target and self.stage == "base":
            for text in self._filler(language):
                yield Document(text=text, language=language, source=source + ":filler", licence="MIT")
            return
        rng = random.Random(f"{self.seed}:{self.stage}:{language}")
        concepts = self.splits.trained_in(language)
        if not concepts:
            raise ValueError(f"no concepts are trained in {language!r} (empty splits)")
        forms, weights = zip(*self.surface_weights.items())
        lo, hi = self.concepts_per_document
        while True:
            k = min(len(concepts), rng.randint(lo, hi))
            chosen = rng.sample(concepts, k)
            parts = []
            for c in chosen:
                if language == "python":
                    parts.append(python_surface(c, rng.choices(forms, weights)[0], rng))
                else:
                    parts.append(render(c, language).text)
            text = "\n".join(parts)
            if language == "php":
                text = "<?php\n\n" + text
            yield Document(text=text, language=language, source=source, licence="MIT")

    def _filler(self, language: str) -> Iterator[str]:
        """Filler documents, each checked against every concept's name and body (:class:`ConceptScan`)."""
        scan = ConceptScan(self.splits.all_concepts(), language)
        if self.filler is not None:
            source = self.filler(language)
        else:
            from pretrain.corpora import open_corpus

            corpus = open_corpus({"kind": "embedded", "seed": self.seed + 1000}, languages=[language])
            programs = (d.text for d in corpus.documents(language))
            pipelines = self.pipeline_filler(language, scan=scan)
            # alternately a throwaway-pipeline document and a general program of the embedded generator
            source = (next(programs) if i % 2 else next(pipelines) for i in itertools.count())
        for doc in source:
            if not scan.contains_concept(doc):  # filler carries no concept knowledge
                yield doc

    def pipeline_filler(self, language: str, *, scan: "ConceptScan | None" = None) -> Iterator[str]:
        """The target's pipeline idioms on throwaway functions: new nonsense names (none a concept's
        name or containing one) and pipelines whose body is no concept's body (redrawn otherwise);
        each function is generated once, so it carries syntax, not knowledge."""
        from lensprobe.babel.concepts import make_name, random_pipeline

        scan = scan or ConceptScan(self.splits.all_concepts(), language)
        rng = random.Random(f"{self.seed}:filler:{language}")
        lo, hi = self.concepts_per_document
        while True:
            parts: list[str] = []
            while len(parts) < rng.randint(lo, hi):
                name = make_name(rng)
                if scan.clashes_with_name(name):
                    continue
                rendering = render(random_pipeline(rng, name), language)
                if rendering.body in scan.body_lines:
                    continue
                parts.append(rendering.text)
            yield ("<?php\n\n" if language == "php" else "") + "\n".join(parts)


class ConceptScan:
    """Finds concepts in a text by name, or by body: a concept's body text in ``language`` as
    documents write it (the body lines joined by newlines, header excluded), anywhere in the text.

    Every body ends in its return line, so only the bodies whose last line the text contains are
    searched (a few thousand documents a second)."""

    def __init__(self, concepts: Sequence[Concept], language: str) -> None:
        self.language = language
        self.names = tuple(c.name for c in concepts)
        self.body_lines = {render(c, language).body for c in concepts}
        self._by_last: dict[str, list[tuple[str, str]]] = {}
        for name, body in concept_bodies(concepts, language).items():
            self._by_last.setdefault(body.rsplit("\n", 1)[-1], []).append((name, body))

    def clashes_with_name(self, name: str) -> bool:
        """Whether a new name contains a concept's name or is contained in one."""
        return any(name in n or n in name for n in self.names)

    def found(self, text: str) -> list[str]:
        """Names of the concepts whose name or body ``text`` contains."""
        hits = {n for n in self.names if n in text}
        for last, group in self._by_last.items():
            if last in text:
                hits.update(n for n, body in group if body in text)
        return sorted(hits)

    def contains_concept(self, text: str) -> bool:
        if any(n in text for n in self.names):
            return True
        return any(body in text for last, group in self._by_last.items() if last in text for _, body in group)


SPLIT_SIZE_KEYS = ("n_shared", "n_python_only", "n_target_only", "n_control", "n_cases")
SPEC_KEYS = ("stage", "target", "seed", "splits", "surface_weights", "concepts_per_document", "targets")


def babel_corpus(*, languages: Sequence[str] | None = None, **spec: Any) -> BabelCorpus:
    """A :class:`BabelCorpus` from a corpus spec (``{kind: babel, stage, target, seed, splits: {...}}``).

    ``stage`` (``base`` or ``continual``) is required: the two stages share every other field.

    Errors name the spec field (``data.corpus.<field>`` in a recipe). ``splits`` holds the split
    sizes (keys of :func:`make_splits`) or ``{file: PATH}`` for a saved manifest; base and
    continual runs with the same seed and sizes share their splits.
    """
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"babel corpus: unknown field(s) {unknown}; expected some of {list(SPEC_KEYS)}")
    if "stage" not in spec:  # no default: a silent "base" turned a continual run into filler-only training
        raise ValueError(f"babel corpus: stage: required, one of {list(STAGES)}")
    stage = spec["stage"]  # its value is checked by BabelCorpus
    target = spec.get("target", "php")
    seed = spec.get("seed", 0)
    if not isinstance(seed, int):
        raise ValueError(f"babel corpus: seed: expected an integer, got {seed!r}")
    split_spec = dict(spec.get("splits") or {})
    if "file" in split_spec:
        splits = BabelSplits.load(split_spec.pop("file"))
        if split_spec:
            raise ValueError(f"babel corpus: splits: 'file' excludes other fields, got {sorted(split_spec)}")
    else:
        bad = sorted(set(split_spec) - set(SPLIT_SIZE_KEYS))
        if bad:
            raise ValueError(f"babel corpus: splits: unknown field(s) {bad}; expected some of {list(SPLIT_SIZE_KEYS)}")
        targets = tuple(spec.get("targets") or (target,))
        try:
            splits = make_splits(seed=seed, targets=targets, **split_spec)
        except ValueError as exc:
            raise ValueError(f"babel corpus: splits: {exc}") from exc
    corpus = BabelCorpus(splits, stage=stage, target=target,
                         surface_weights=spec.get("surface_weights") or dict(DEFAULT_SURFACE_WEIGHTS), seed=seed,
                         concepts_per_document=tuple(spec.get("concepts_per_document") or (3, 6)))
    if languages is not None:
        extra = sorted(set(languages) - set(corpus.languages))
        if extra:
            raise ValueError(f"babel corpus ({stage}, target {target}) has languages {corpus.languages}; "
                             f"not {extra}")
    return corpus
