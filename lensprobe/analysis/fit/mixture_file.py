"""The mixture file that ``lensprobe pretrain mixture`` reads.

YAML::

    tokens: {python: 11000000000, php: 5000000000}
    source: lensprobe.analysis.fit.recommend_mixture
    notes: |
      free-form provenance
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import yaml

from lensprobe.files import atomic_write_text

from .share import parse_tokens

__all__ = ["write_mixture", "read_mixture", "LANGUAGES"]

LANGUAGES = ("python", "php", "csharp", "go", "cpp")


def _validate(tokens: Mapping, where: str) -> dict[str, int]:
    if not isinstance(tokens, Mapping) or not tokens:
        raise ValueError(f"{where}: 'tokens' must be a non-empty mapping language -> token count")
    out = {}
    for lang, n in tokens.items():
        if lang not in LANGUAGES:
            raise ValueError(f"{where}: unknown language {lang!r} in tokens (canonical names: {', '.join(LANGUAGES)})")
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n < 0 or n != int(n):
            raise ValueError(f"{where}: tokens[{lang!r}] must be a non-negative whole number, got {n!r}")
        out[lang] = int(n)
    if sum(out.values()) == 0:
        raise ValueError(f"{where}: all token counts are zero")
    return out


def write_mixture(path, tokens: Mapping[str, float], *, source: str | None = None, notes: str | None = None) -> Path:
    """Validate and write a mixture file atomically (token counts are rounded to integers)."""
    rounded = {k: (int(round(v)) if isinstance(v, float) and math.isfinite(v) else v) for k, v in tokens.items()}
    doc: dict = {"tokens": _validate(rounded, str(path))}
    if source is not None:
        doc["source"] = str(source)
    if notes is not None:
        doc["notes"] = str(notes)
    return atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))


def read_mixture(path) -> dict:
    """Read and validate a mixture file; returns ``{"tokens": {...}, "source": ..., "notes": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mixture file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or "tokens" not in doc:
        raise ValueError(f"{path}: a mixture file needs a top-level 'tokens' mapping")
    tokens = doc["tokens"]
    if isinstance(tokens, Mapping):  # "5B"-style strings are accepted, as `lensprobe pretrain` does
        tokens = {k: (parse_tokens(v) if isinstance(v, str) else v) for k, v in tokens.items()}
    out = {"tokens": _validate(tokens, str(path)), "source": doc.get("source"), "notes": doc.get("notes")}
    out.update({k: v for k, v in doc.items() if k not in out})  # other keys are free-form
    return out
