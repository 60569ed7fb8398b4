"""The mixture file: training tokens per language, written by the data-mix fits
(:mod:`lensprobe.analysis.fit`) and read by pretraining (``lensprobe pretrain --mixture``,
``data.mixture`` in a pretrain config). One reader, one validator, used by both.

YAML::

    tokens: {python: 11000000000, php: 5B}
    source: lensprobe.analysis.fit.recommend_mixture
    notes: |
      free-form provenance

``tokens`` maps canonical language names (:data:`lensprobe.languages.LANGUAGES`) to whole,
non-negative token counts (numbers or strings read by :func:`lensprobe.token_counts.parse_token_count`,
e.g. ``"5B"``), at least one of them positive. Every other top-level key is free-form and kept.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import yaml

from lensprobe.files import atomic_write_text
from lensprobe.languages import LANGUAGES, canonical_language_or_none
from lensprobe.token_counts import parse_token_count

__all__ = ["validate_mixture_tokens", "read_mixture", "write_mixture", "load_mixture_file"]


def validate_mixture_tokens(tokens: Any, where: str) -> dict[str, int]:
    """The ``tokens`` mapping of a mixture, checked and parsed (language -> whole token count).

    ``ValueError`` naming ``where`` and the field for: not a non-empty mapping, a language that is not
    a canonical name, a count that is not a whole non-negative number, or all counts zero.
    """
    if not isinstance(tokens, Mapping) or not tokens:
        raise ValueError(f"{where}: field 'tokens' must be a non-empty mapping language -> token count, "
                         f"got {tokens!r}")
    out: dict[str, int] = {}
    for lang, value in tokens.items():
        if lang not in LANGUAGES:
            alias = canonical_language_or_none(lang) if isinstance(lang, str) else None
            hint = f"write {alias!r}" if alias else f"canonical names: {', '.join(LANGUAGES)}"
            raise ValueError(f"{where}: field 'tokens': unknown language {lang!r} ({hint})")
        try:
            out[lang] = parse_token_count(value)
        except ValueError as exc:
            raise ValueError(f"{where}: field 'tokens.{lang}': {exc}") from None
    if sum(out.values()) == 0:
        raise ValueError(f"{where}: field 'tokens': all token counts are zero")
    return out


def read_mixture(path: str | Path) -> dict[str, Any]:
    """Read and validate a mixture file: ``{"tokens": {...}, "source": ..., "notes": ..., **other keys}``."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: no such mixture file") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, Mapping) or "tokens" not in doc:
        raise ValueError(f"{path}: field 'tokens' missing: a mixture file needs a top-level 'tokens' "
                         "mapping language -> token count")
    out: dict[str, Any] = {"tokens": validate_mixture_tokens(doc["tokens"], str(path)),
                           "source": doc.get("source"), "notes": doc.get("notes")}
    out.update({k: v for k, v in doc.items() if k not in out})  # other keys are free-form
    return out


def load_mixture_file(path: str | Path) -> dict[str, int]:
    """Only the validated ``tokens`` of a mixture file (what pretraining needs)."""
    return read_mixture(path)["tokens"]


def write_mixture(path: str | Path, tokens: Mapping[str, float], *, source: str | None = None,
                  notes: str | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Validate and write a mixture file atomically (float token counts are rounded to integers).
    ``extra``: further top-level keys (free-form, kept by :func:`read_mixture`; not ``tokens``,
    ``source`` or ``notes``)."""
    rounded = {k: (int(round(v)) if isinstance(v, float) and math.isfinite(v) else v) for k, v in tokens.items()}
    doc: dict[str, Any] = {"tokens": validate_mixture_tokens(rounded, str(path))}
    if source is not None:
        doc["source"] = str(source)
    if notes is not None:
        doc["notes"] = str(notes)
    clash = sorted(set(extra or {}) & {"tokens", "source", "notes"})
    if clash:
        raise ValueError(f"{path}: extra keys {clash} clash with the mixture file's own fields")
    doc.update(extra or {})
    return atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))
