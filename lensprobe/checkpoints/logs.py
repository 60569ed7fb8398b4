"""Loss logs written by pretrain: ``loss.jsonl`` (per optimizer step), ``val.jsonl`` (per snapshot)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, CheckpointWarning

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["load_loss_log", "load_val_log"]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            last = i == len(lines)
            warnings.warn(f"{path}:{i}: skipping unreadable line"
                          + (" (truncated by an interrupted write?)" if last else ""),
                          CheckpointWarning, stacklevel=3)
            continue
        if not isinstance(row, dict) or "step" not in row:
            warnings.warn(f"{path}:{i}: skipping line without a 'step' field", CheckpointWarning,
                          stacklevel=3)
            continue
        rows.append(row)
    return rows


def load_loss_log(path: str | Path) -> "pd.DataFrame":
    """Read a ``loss.jsonl`` training log into a DataFrame sorted by step.

    ``loss_by_language`` is flattened into ``loss_<language>`` columns. When a step appears more
    than once (a run resumed from an earlier checkpoint re-logs the steps after it) the LAST
    occurrence wins, because the resumed run is the one that produced the later checkpoints.
    Unreadable lines are skipped with a :class:`CheckpointWarning` naming file and line.
    """
    import pandas as pd

    path = Path(path)
    records, languages = [], set()
    for row in _read_jsonl(path):
        rec = {k: v for k, v in row.items() if k != "loss_by_language"}
        by_lang = row.get("loss_by_language") or {}
        if not isinstance(by_lang, dict):
            raise CheckpointError(f"{path}: step {row['step']}: 'loss_by_language' must be an object")
        for lang, value in by_lang.items():
            rec[f"loss_{lang}"] = value
            languages.add(str(lang))
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64")})
    else:
        df["step"] = _int_steps(df["step"], path)
        df = df.drop_duplicates("step", keep="last").sort_values("step", kind="stable").reset_index(drop=True)
    df.attrs["languages"] = sorted(languages)
    return df


def _int_steps(steps: "pd.Series", path: Path) -> "pd.Series":
    import pandas as pd

    numeric = pd.to_numeric(steps, errors="coerce")
    bad = steps[numeric.isna() | (numeric != numeric.round())]
    if len(bad):
        raise CheckpointError(f"{path}: 'step' must be an integer, got {bad.iloc[0]!r}")
    return numeric.astype("int64")


def load_val_log(path: str | Path) -> "pd.DataFrame":
    """Read a ``val.jsonl`` log (step, tokens, language, loss, bpb); last entry per (step, language) wins."""
    import pandas as pd

    path = Path(path)
    df = pd.DataFrame.from_records(_read_jsonl(path))
    if df.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "language": pd.Series(dtype=object),
                             "loss": pd.Series(dtype="float64")})
    if "language" not in df or df["language"].isna().any():
        raise CheckpointError(f"{path}: validation log rows need a 'language' field")
    df["step"] = _int_steps(df["step"], path)
    df = df.drop_duplicates(["step", "language"], keep="last")
    return df.sort_values(["step", "language"], kind="stable").reset_index(drop=True)

