"""A synthetic sweep table with known curves (long format, the dtypes of :func:`lensprobe.sweep.read_sweep`):
Babel line accuracy with bootstrap bounds, working-language rows (whole-model and per layer), LAPE counts
and a training loss, over :data:`STEPS`. The generating functions (:func:`line_acc`, :func:`python_share`,
:func:`logp`, :func:`lape_count`) are public so a test can recompute what a figure or analysis should show."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lensprobe.table import SWEEP_COLUMNS

STEPS = np.arange(0, 200, 10)        # 20 checkpoints
N_LAYERS = 3
LANGS = ("python", "php")
SPLITS = ("shared", "python_only")


def line_acc(lang: str, split: str, step: float) -> float:
    base = 0.6 if lang == "python" else 0.3
    bump = 0.2 * np.exp(-((step - 60) / 30) ** 2) if lang == "php" else 0.0
    return base + bump + (0.05 if split == "shared" else 0.0) + 0.001 * step / 10


def python_share(step: float) -> float:
    return float(np.clip(0.9 - step / 250, 0, 1))


def logp(lang_set: str, layer: int, step: float) -> float:
    return float(np.log(0.05 + 0.1 * layer + (0.001 * step if lang_set == "target" else 0.0)))


def lape_count(lang: str, step: float) -> float:
    return 10.0 + step / 10 + (5 if lang == "php" else 0)


def make_table() -> pd.DataFrame:
    rows = []

    def add(step, probe, language, identifier, layer, metric, value, n=10):
        rows.append(dict(run="synthetic", checkpoint=f"checkpoint-{step}", step=step, tokens=step * 100,
                         probe=probe, language=language, identifier=identifier, layer=layer, metric=metric,
                         value=value, n=n))

    for step in STEPS:
        step = int(step)
        for lang in LANGS:
            for split in SPLITS:
                v = line_acc(lang, split, step)
                add(step, "babel", lang, split, None, "line_acc", v)
                add(step, "babel", lang, split, None, "line_acc_lo", v - 0.04)
                add(step, "babel", lang, split, None, "line_acc_hi", v + 0.04)
        add(step, "working_language", "php", None, None, "eq1_python_share", python_share(step))
        add(step, "working_language", "php", "strlen", None, "eq1_python_share", python_share(step) + 0.05)
        add(step, "working_language", "php", "count", None, "eq1_python_share", python_share(step) - 0.05)
        for layer in range(1, N_LAYERS + 1):
            add(step, "working_language", "php", None, layer, "logp_target", logp("target", layer, step))
            add(step, "working_language", "php", None, layer, "logp_python", logp("python", layer, step))
        for lang in LANGS:
            add(step, "lape", lang, None, None, "n_neurons", lape_count(lang, step))
            add(step, "lape", lang, None, None, "null_n_neurons", 3.0)
            for layer in range(1, N_LAYERS + 1):
                add(step, "lape", lang, None, layer, "n_neurons", layer * (2 if lang == "php" else 1))
        add(step, "log", None, None, None, "train_loss", 5.0 / (1 + step))
    df = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    for col in ("layer", "step", "tokens", "n"):
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    for col in ("run", "checkpoint", "probe", "language", "identifier", "metric"):
        df[col] = df[col].astype("string")
    return df


def write_sweep(out_dir, table: pd.DataFrame | None = None):
    """Write the table as a sweep output directory (one parquet file per checkpoint); returns the directory."""
    table = make_table() if table is None else table
    res = Path(out_dir) / "results"
    res.mkdir(parents=True, exist_ok=True)
    for name, g in table.groupby("checkpoint"):
        g.to_parquet(res / f"{name}.parquet", index=False)
    return Path(out_dir)
