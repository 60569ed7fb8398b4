"""The Babel probe's rows in a sweep table: per-split summaries and per-item rows.

The probe writes one row per (split, language, metric) with ``identifier = split`` and, beside them,
one row per item with ``identifier = "<split>:<concept>"`` (n = 1). Readers pick one kind; this
module is table-only (no model, no torch) so figures and the report can use it cheaply.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from lensprobe.babel.splits import SPLITS

__all__ = ["is_item_identifier", "summary_rows", "item_rows"]


def is_item_identifier(identifier: Any) -> bool:
    """Whether a Babel row's ``identifier`` names one item (``"python_only:zorb_quilt"``), not a split."""
    return isinstance(identifier, str) and identifier.split(":", 1)[0] in SPLITS and ":" in identifier


def _item_mask(table: pd.DataFrame) -> pd.Series:
    if "probe" not in table.columns or "identifier" not in table.columns:
        return pd.Series(False, index=table.index)
    return (table["probe"] == "babel") & table["identifier"].map(is_item_identifier).astype(bool)


def summary_rows(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the Babel probe's per-item rows (every other row kept)."""
    return table[~_item_mask(table)]


def item_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The Babel probe's per-item rows of a sweep table, with ``split`` and ``concept`` columns."""
    out = table[_item_mask(table)].copy()
    parts = out["identifier"].str.split(":", n=1)
    out["split"], out["concept"] = parts.str[0], parts.str[1]
    return out
