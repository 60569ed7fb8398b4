"""Identifier suites generated from the synthetic Babel benchmark's concepts (lens items).

The working-language probe needs prompts that stop where a target-language identifier is written
and whose Python counterpart differs. The Babel concepts supply them in-distribution: every
concept's canonical body ends in a terminal (``return count($ys);`` in PHP, ``return len(ys)`` in
Python), so the canonical target rendering cut right before the terminal's identifier is a prompt
a tiny model trained on the Babel corpora has seen in kind (docs/babel.md, "Lens items").

Terminal -> (target form, Python form), the ``TERMINAL_FORMS`` of each language's renderer module
(:mod:`pretrain.render`):

=========== ======== ============== ============= =============== ================
terminal    Python   PHP            C#            Go              C++
=========== ======== ============== ============= =============== ================
count       len      count          .Count        len (same)      .size
length      len      strlen         .Length       len (same)      .size
sum         sum      array_sum      .Sum          (a loop)        ::accumulate
max         max      max (same)     .Max          (a loop)        ::max_element
min         min      min (same)     .Min          (a loop)        ::min_element
count_char  .count   substr_count   .Count        .Count          ::count (same)
=========== ======== ============== ============= =============== ================

"(same)": the written word equals Python's, so the lens cannot tell the languages apart and the
concept is skipped; "(a loop)": Go's body ends in ``return total`` / ``return best``, no identifier.
Skips are counted per split and terminal (:attr:`BabelLensItems.skipped`). Leading punctuation of
a form (``.``, ``::``) stays in the prompt (``return ys.`` -> ``Count``; ``return std::`` ->
``accumulate``), as in hand-written suites.

One prompt per concept: identifier ids are ``<split>:<target word>:<Python word>``
(``python_only:count:len``, ``shared:Count:count``), so the probe's rows, whose ``identifier``
column is the id, group per split (:func:`parse_babel_identifier`). Because prompts are concrete,
an identifier has as many prompts as its split has concepts with that terminal; the suite's
``min_prompts`` field (default 1 here) lowers the validator's usual 10 instead of padding with
duplicates.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lensprobe.suites import CURSOR, Suite, split_form, suite_from_dict
from lensprobe.babel.concepts import render
from lensprobe.babel.splits import SPLITS, TARGETS, BabelSplits
from lensprobe.files import atomic_write_text
from pretrain.programs.pipeline import Concept
from pretrain.render import language_module

__all__ = ["BabelLensItem", "BabelLensItems", "REFERENCE_FORMS", "TARGET_FORMS", "babel_lens_items", "babel_suite",
           "babel_suite_dict", "parse_babel_identifier", "write_babel_suite"]

#: terminal kind -> the Python identifier written at the return position
REFERENCE_FORMS: dict[str, str | None] = dict(language_module("python").TERMINAL_FORMS)

#: target language -> terminal kind -> the identifier its canonical rendering writes there
#: (``None``: no identifier at that point, e.g. Go's summing loop); each from ``TERMINAL_FORMS`` of
#: the language's renderer module (:mod:`pretrain.render`)
TARGET_FORMS: dict[str, dict[str, str | None]] = {t: dict(language_module(t).TERMINAL_FORMS) for t in TARGETS}

SKIP_SAME = "same identifier as Python"
SKIP_NONE = "no identifier at the return"
SKIP_FEW = "fewer concepts than min_prompts"


def _word(form: str) -> str:
    return split_form(form)[1] or form


@dataclass(frozen=True)
class BabelLensItem:
    """One lens prompt: ``concept``'s canonical ``language`` rendering cut before the terminal's identifier."""

    split: str
    concept: str
    terminal: str
    identifier: str
    language: str
    target_form: str
    reference_form: str
    prompt: str
    suffix: str

    @property
    def text(self) -> str:
        """prompt + written identifier + suffix: the concept's canonical rendering."""
        return self.prompt + _word(self.target_form) + self.suffix


@dataclass
class BabelLensItems:
    """Lens items of one target language, and what was skipped (``skipped``: dicts with split,
    terminal, target_form, reason, n)."""

    target: str
    seed: int
    split_names: tuple[str, ...]
    items: list[BabelLensItem] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    min_prompts: int = 1

    def counts(self) -> dict[str, int]:
        """Prompts per identifier id (in suite order)."""
        return dict(Counter(it.identifier for it in self.items))

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame([it.__dict__ for it in self.items],
                            columns=["split", "concept", "terminal", "identifier", "language", "target_form",
                                     "reference_form", "prompt", "suffix"])

    def skipped_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.skipped, columns=["split", "terminal", "target_form", "reason", "n"])

    def n_skipped(self, reason: str | None = None) -> int:
        return sum(s["n"] for s in self.skipped if reason is None or s["reason"] == reason)

    def to_dict(self) -> dict[str, Any]:
        """The suite as YAML-ready data in the schema of ``probes/README.md``."""
        if not self.items:
            raise ValueError(f"no lens items for target {self.target!r} in splits {list(self.split_names)}: "
                             f"every concept was skipped ({self._skip_text()})")
        by_id: dict[str, list[BabelLensItem]] = {}
        for it in self.items:
            by_id.setdefault(it.identifier, []).append(it)
        identifiers = []
        for ident, its in by_id.items():
            first = its[0]
            identifiers.append({
                "id": ident, "target_forms": [first.target_form], "reference_forms": [first.reference_form],
                "n_prompts": len(its),
                "notes": f"split {first.split}, terminal {first.terminal}: one prompt per concept",
                "templates": [{"id": it.concept, "text": it.prompt + CURSOR + it.suffix} for it in its],
            })
        return {
            "language": self.target, "version": 1, "reference_language": "python",
            "description": (f"Babel lens items for {self.target}: canonical concept bodies cut before the return "
                            f"identifier (splits seed {self.seed}; splits {', '.join(self.split_names)}). "
                            f"Skipped: {self._skip_text()}."),
            "source": f"lensprobe.babel.suite (splits seed {self.seed})",
            "min_prompts": self.min_prompts,
            "n_prompts": max(len(v) for v in by_id.values()),
            "identifiers": identifiers,
        }

    def _skip_text(self) -> str:
        if not self.skipped:
            return "none"
        per: Counter = Counter()
        for s in self.skipped:
            per[(s["terminal"], s["reason"])] += s["n"]
        return "; ".join(f"{t} x{n} ({r})" for (t, r), n in sorted(per.items()))

    def suite(self, *, name: str | None = None) -> Suite:
        return suite_from_dict(self.to_dict(), name=name or f"babel_{self.target}")


def parse_babel_identifier(identifier: str) -> tuple[str, str, str]:
    """``"python_only:count:len"`` -> ``("python_only", "count", "len")``."""
    parts = str(identifier).split(":")
    if len(parts) != 3 or parts[0] not in SPLITS:
        raise ValueError(f"not a Babel suite identifier (split:target:python): {identifier!r}")
    return parts[0], parts[1], parts[2]


def _cut(concept: Concept, language: str, form: str) -> tuple[str, str]:
    """(prompt, suffix) of the canonical rendering around the return line's identifier."""
    r = render(concept, language)
    if "{{" in r.text or "}}" in r.text:  # would read as a slot reference in the suite schema
        raise RuntimeError(f"{language} rendering of {concept.name} contains '{{{{' or '}}}}'")
    lead, word = split_form(form)
    last = r.body[-1]
    ret = last.find("return ")
    at = last.find(lead + word, ret) if ret >= 0 else -1
    if at < 0:
        raise RuntimeError(f"{language} rendering of {concept.name} ({concept.terminal.kind}) does not write "
                           f"{form!r} on its return line {last!r}: update TERMINAL_FORMS in pretrain/render/{language}.py")
    at += len(lead)
    head = "\n".join([r.header, *r.body[:-1], last[:at]])
    tail_lines = [last[at + len(word):]] + ([r.footer] if r.footer else [])
    prompt, suffix = head, "\n".join(tail_lines) + "\n"
    if prompt + word + suffix != r.text:  # pragma: no cover - a renderer with a multi-line return
        raise RuntimeError(f"cannot cut the {language} rendering of {concept.name} at {form!r}")
    return prompt, suffix


def _split_names(splits: BabelSplits, target: str, split_names: Sequence[str] | None) -> tuple[str, ...]:
    if split_names is None:
        return tuple(s for s in SPLITS if s != "target_only" or target in splits.targets)
    names = tuple(split_names)
    if not names:
        raise ValueError("split_names: empty")
    for s in names:
        if s not in SPLITS:
            raise ValueError(f"split_names: unknown split {s!r}; expected some of {SPLITS}")
    if "target_only" in names and target not in splits.targets:
        raise ValueError(f"split_names: the splits have no target_only concepts for {target!r} "
                         f"(targets: {list(splits.targets)})")
    if len(set(names)) != len(names):
        raise ValueError(f"split_names: repeated split in {names}")
    return names


def babel_lens_items(splits: BabelSplits, *, target: str = "php", split_names: Sequence[str] | None = None,
                     min_prompts: int = 1) -> BabelLensItems:
    """Lens items for every concept of ``split_names`` whose terminal identifier differs between
    ``target`` and Python. ``split_names`` defaults to every split (``target_only`` only when the
    splits have one for ``target``). Identifiers with fewer than ``min_prompts`` concepts are dropped
    (counted in ``skipped``)."""
    if target not in TARGET_FORMS:
        raise ValueError(f"target: expected one of {sorted(TARGET_FORMS)}, got {target!r}")
    if isinstance(min_prompts, bool) or not isinstance(min_prompts, int) or min_prompts < 1:
        raise ValueError(f"min_prompts: expected a positive int, got {min_prompts!r}")
    names = _split_names(splits, target, split_names)
    out = BabelLensItems(target=target, seed=splits.seed, split_names=names, min_prompts=min_prompts)
    skipped: Counter = Counter()
    for split in names:
        concepts = splits.split(split, target=target if split == "target_only" else None)
        candidates: dict[str, list[BabelLensItem]] = {}
        for c in concepts:
            kind = c.terminal.kind
            form, ref = TARGET_FORMS[target][kind], REFERENCE_FORMS[kind]
            if form is None:
                skipped[(split, kind, None, SKIP_NONE)] += 1
                continue
            if _word(form) == _word(ref):
                skipped[(split, kind, form, SKIP_SAME)] += 1
                continue
            ident = f"{split}:{_word(form)}:{_word(ref)}"
            prompt, suffix = _cut(c, target, form)
            candidates.setdefault(ident, []).append(
                BabelLensItem(split, c.name, kind, ident, target, form, ref, prompt, suffix))
        order = list(REFERENCE_FORMS)
        for ident, its in sorted(candidates.items(), key=lambda kv: (order.index(kv[1][0].terminal), kv[0])):
            if len(its) < min_prompts:
                skipped[(split, its[0].terminal, its[0].target_form, SKIP_FEW)] += len(its)
            else:
                out.items.extend(its)
    out.skipped = [dict(split=s, terminal=t, target_form=f, reason=r, n=n) for (s, t, f, r), n in skipped.items()]
    return out


def babel_suite_dict(splits: BabelSplits, *, target: str = "php", split_names: Sequence[str] | None = None,
                     min_prompts: int = 1) -> dict[str, Any]:
    """The generated suite as plain YAML-ready data."""
    return babel_lens_items(splits, target=target, split_names=split_names, min_prompts=min_prompts).to_dict()


def babel_suite(splits: BabelSplits, *, target: str = "php", split_names: Sequence[str] | None = None,
                min_prompts: int = 1) -> Suite:
    """The generated suite, validated like a YAML file (usable by :class:`WorkingLanguageProbe`)."""
    return babel_lens_items(splits, target=target, split_names=split_names, min_prompts=min_prompts).suite()


def _block_dumper():
    """A yaml SafeDumper that writes multi-line strings as ``|`` blocks (readable code)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def str_rep(dumper, data):
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, str_rep)
    return Dumper


def write_babel_suite(splits: BabelSplits, path: str | os.PathLike, *, target: str = "php",
                      split_names: Sequence[str] | None = None, min_prompts: int = 1) -> Path:
    """Write the generated suite as a YAML file that :func:`lensprobe.load_suite` loads (atomic);
    returns the path. The file is checked by loading it back."""
    import yaml

    data = babel_suite_dict(splits, target=target, split_names=split_names, min_prompts=min_prompts)
    text = yaml.dump(data, Dumper=_block_dumper(), sort_keys=False, allow_unicode=True, width=1000)
    if yaml.safe_load(text) != data:  # pragma: no cover - guards the block-style dumper
        raise RuntimeError("the generated suite does not survive a YAML round trip")
    suite_from_dict(data, name=Path(path).stem, path=str(path))  # raise before writing anything invalid
    return Path(atomic_write_text(path, text))
