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


# --------------------------------------------------------------------------- a sweep like the demo's
#: log-spaced checkpoints with step 0, as ``snapshots.log_max`` writes them, then every 30 steps
PAPER_STEPS = np.array([0, 1, 2, 4, 8, 16, 30, 60, 90, 120, 150, 158])
PAPER_SPLITS = ("shared", "python_only", "target_only", "control")
PAPER_LAYERS = 4


def paper_acc(lang: str, split: str, step: float, *, run: int = 0) -> float:
    """Line accuracy of a demo-like run: Python forgets then recovers, PHP learns; control stays low."""
    t = np.log1p(step) / np.log1p(PAPER_STEPS[-1])
    if lang == "python":
        level = {"shared": 0.95, "python_only": 0.9, "target_only": 0.02, "control": 0.03}[split]
        return float(level * (1 - 0.6 * np.sin(np.pi * t) ** 2) + 0.01 * run)
    level = {"shared": 0.8, "python_only": 0.35, "target_only": 0.5, "control": 0.08}[split]
    return float(0.02 + level * t ** 2 + 0.01 * run)


def paper_prior(split: str, step: float) -> float:
    """The body prior of PHP's completions on ``split``."""
    return float(0.01 + 0.06 * np.log1p(step) / np.log1p(PAPER_STEPS[-1]))


def paper_kept(step: float) -> int:
    """Prompts kept (the model generates the identifier) of 92: none before step 8."""
    return 0 if step < 8 else int(min(92, 5 + step // 3))


def paper_share(step: float) -> float:
    """Eq.1 Python share where prompts are kept: falls from 0.9 to 0.3."""
    return float(0.9 - 0.6 * np.log1p(step) / np.log1p(PAPER_STEPS[-1]))


def paper_layer_share(layer: int, step: float) -> float:
    """Per-layer share of kept prompts whose lens top-1 is Python (middle layers most)."""
    return float(paper_share(step) * (0.2 + 0.6 * (layer == 3) + 0.3 * (layer == 2)) if layer < PAPER_LAYERS else 0.0)


def paper_lape(lang: str, step: float) -> float:
    """LAPE neurons: PHP loses its neurons to Python over the run (20 in all)."""
    t = np.log1p(step) / np.log1p(PAPER_STEPS[-1])
    php = float(np.round(18 - 12 * t))
    return php if lang == "php" else 20.0 - php


#: the shuffled-label null's band of every language's count (least, mean, most over permutations)
PAPER_NULL = (14.0, 15.5, 17.0)


def make_paper_table(*, runs: int = 1, items: int = 6) -> pd.DataFrame:
    """A sweep table with every kind of row the demo writes, over :data:`PAPER_STEPS` (log-spaced, with
    step 0): Babel per split (four splits, intervals, the body prior) and per item, working-language
    suite rows (NaN with n = 0 where no prompt is kept) and per-layer shares, LAPE counts with the null
    band and the probability gap, and the training loss; ``runs`` seeds shift every accuracy by 0.01."""
    rows = []

    def add(run, step, probe, language, identifier, layer, metric, value, n):
        rows.append(dict(run=f"php-seed{run}", checkpoint=f"checkpoint-{step}", step=step, tokens=6_118_656 + 4096 * step,
                         probe=probe, language=language, identifier=identifier, layer=layer, metric=metric,
                         value=value, n=n))

    for run in range(runs):
        for step in map(int, PAPER_STEPS):
            for lang in LANGS:
                for split in PAPER_SPLITS:
                    v = paper_acc(lang, split, step, run=run)
                    for m, x in (("line_acc", v), ("line_acc_lo", max(v - 0.08, 0)), ("line_acc_hi", min(v + 0.08, 1))):
                        add(run, step, "babel", lang, split, None, m, x, items)
                    if lang == "php":
                        p = paper_prior(split, step)
                        for m, x in (("line_acc_prior", p), ("line_acc_prior_lo", p - 0.02),
                                     ("line_acc_prior_hi", p + 0.02)):
                            add(run, step, "babel", lang, split, None, m, x, items)
                    for i in range(items):  # per item: the split's value +- 0.1, the prior beside it
                        add(run, step, "babel", lang, f"{split}:concept{i}", None, "line_acc",
                            v + (0.1 if i % 2 else -0.1), 1)
                        if lang == "php":
                            add(run, step, "babel", lang, f"{split}:concept{i}", None, "line_acc_prior",
                                paper_prior(split, step), 1)
            kept = paper_kept(step)
            share = paper_share(step) if kept else np.nan
            add(run, step, "working_language", "php", None, None, "eq1_python_share", share, kept)
            add(run, step, "working_language", "php", None, None, "n_kept", kept, 92)
            add(run, step, "working_language", "php", None, None, "n_prompts", 92, 92)
            add(run, step, "working_language", "php", None, None, "exclude_last", 1, None)
            add(run, step, "working_language", "php", "python_only:*", None, "eq1_python_share",
                share, kept // 4)
            for layer in range(1, PAPER_LAYERS + 1):
                py = paper_layer_share(layer, step) if kept else np.nan
                tg = (1.0 if layer == PAPER_LAYERS else 0.1) if kept else np.nan
                add(run, step, "working_language", "php", None, layer, "share_python_top1", py, kept)
                add(run, step, "working_language", "php", None, layer, "share_target_top1", tg, kept)
                add(run, step, "working_language", "php", None, layer, "logp_target",
                    float(np.log(0.001 + (0.7 if layer == PAPER_LAYERS else 0.001 * layer))), kept)
                add(run, step, "working_language", "php", None, layer, "logp_python",
                    float(np.log(0.01 + 0.05 * (layer == 3))), kept)
            for lang in LANGS:
                add(run, step, "lape", lang, None, None, "n_neurons", paper_lape(lang, step), 8192)
                lo, mean, hi = PAPER_NULL
                add(run, step, "lape", lang, None, None, "null_n_neurons", mean, 8)
                add(run, step, "lape", lang, None, None, "null_n_neurons_lo", lo, 8)
                add(run, step, "lape", lang, None, None, "null_n_neurons_hi", hi, 8)
                for layer in range(1, PAPER_LAYERS + 1):
                    add(run, step, "lape", lang, None, layer, "n_neurons", paper_lape(lang, step) / PAPER_LAYERS, 8192)
            add(run, step, "lape", None, None, None, "prob_gap_mean", 0.5, 16384)
            add(run, step, "lape", None, None, None, "null_prob_gap_mean", 0.06, 8)
            add(run, step, "log", None, None, None, "train_loss", 3.0 / (1 + np.log1p(step)), None)
    df = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    for col in ("layer", "step", "tokens", "n"):
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    for col in ("run", "checkpoint", "probe", "language", "identifier", "metric"):
        df[col] = df[col].astype("string")
    return df
