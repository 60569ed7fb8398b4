"""The sweep table: the one long format of every per-checkpoint measurement.

Every probe returns rows with :data:`ROW_COLUMNS`; whatever runs it over checkpoints
(:func:`lensprobe.sweep.run_sweep`, on disk or in memory, and the convenience functions built on
it) prepends :data:`CHECKPOINT_COLUMNS`, giving :data:`SWEEP_COLUMNS`. :func:`to_table` gives rows
the table's column order and dtypes, :func:`sort_table` its row order, so a table computed in
memory equals the one read back from disk (see ``docs/sweep.md``).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

__all__ = ["ROW_COLUMNS", "CHECKPOINT_COLUMNS", "SWEEP_COLUMNS", "SORT_COLUMNS", "stamp_rows", "to_table",
           "sort_table", "empty_table"]

#: Columns every probe row has.
ROW_COLUMNS: tuple[str, ...] = ("probe", "language", "identifier", "layer", "metric", "value", "n")
#: Columns added per checkpoint (all None for a model that is not part of a series).
CHECKPOINT_COLUMNS: tuple[str, ...] = ("run", "checkpoint", "step", "tokens")
#: The full long format of a sweep table.
SWEEP_COLUMNS: tuple[str, ...] = CHECKPOINT_COLUMNS + ROW_COLUMNS
#: The row order of a table (missing values first).
SORT_COLUMNS: tuple[str, ...] = ("step", "checkpoint", "probe", "language", "identifier", "layer", "metric")

_INTEGER_COLUMNS = ("layer", "step", "tokens", "n")
_TEXT_COLUMNS = ("run", "checkpoint", "probe", "language", "identifier", "metric")


def stamp_rows(rows: Iterable[Mapping[str, Any]], *, run: str | None = None, checkpoint: str | None = None,
               step: int | None = None, tokens: int | None = None) -> list[dict[str, Any]]:
    """Probe rows (:data:`ROW_COLUMNS`) with the checkpoint columns in front (:data:`SWEEP_COLUMNS`)."""
    stamp = dict(run=run, checkpoint=checkpoint, step=step, tokens=tokens)
    return [{**stamp, **{c: r.get(c) for c in ROW_COLUMNS}} for r in rows]


def to_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """A frame of :data:`SWEEP_COLUMNS` in the table's dtypes: nullable integers (``Int64``) for
    layer, step, tokens and n, float values, ``string`` for the text columns."""
    df = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    for col in _INTEGER_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    for col in _TEXT_COLUMNS:
        df[col] = df[col].astype("string")
    return df


def sort_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the table's order (:data:`SORT_COLUMNS`, missing values first, stable), index reset."""
    return df.sort_values(list(SORT_COLUMNS), na_position="first", kind="stable").reset_index(drop=True)


def empty_table() -> pd.DataFrame:
    """A table without rows (the columns and dtypes of :func:`to_table`)."""
    return to_table([])
