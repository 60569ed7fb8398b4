"""The synthetic Babel benchmark's corpora: the documents each training stage sees, built from the
concept splits of :mod:`lensprobe.babel.splits`.

Stages (docs/babel.md):

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
pipeline consumes it unchanged; ``pretrain`` opens it as the corpus kind ``babel``
(:data:`pretrain.corpora.CORPUS_PLUGINS`), without importing this module itself.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from lensprobe.babel.concepts import concept_bodies, make_name, random_pipeline, render
from lensprobe.babel.splits import BabelSplits, make_splits
from pretrain.corpora import Document, open_corpus
from pretrain.programs.pipeline import Concept
from pretrain.render import language_module
from pretrain.render.python import SURFACE_FORMS, python_surface

DEFAULT_SURFACE_WEIGHTS: dict[str, float] = {"def": 0.5, "lambda": 0.3, "comment": 0.2}
STAGES = ("base", "continual")


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

    def documents(self, language: str) -> Iterator[Document]:
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
            text = language_module(language).DOCUMENT_PREFIX + "\n".join(parts)
            yield Document(text=text, language=language, source=source, licence="MIT")

    def _filler(self, language: str) -> Iterator[str]:
        """Filler documents, each checked against every concept's name and body (:class:`ConceptScan`)."""
        scan = ConceptScan(self.splits.all_concepts(), language)
        if self.filler is not None:
            source = self.filler(language)
        else:
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
            yield language_module(language).DOCUMENT_PREFIX + "\n".join(parts)


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
