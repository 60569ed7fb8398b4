"""Seaborn figures of LAPE results (each returns a :class:`matplotlib.figure.Figure`).

Inputs are the long table of :func:`lensprobe.probes.lape.lape_over_series` / a sweep (columns of
``lensprobe.table.SWEEP_COLUMNS``, rows with ``probe == "lape"``) or a single
:class:`~lensprobe.lape.LapeResult`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lensprobe.lape.selection import LapeResult

__all__ = ["plot_lape_counts", "plot_lape_layers", "plot_lape_layer_heatmap", "plot_lape_gap",
           "plot_counts_over_steps", "plot_layer_distribution"]


def _lape_rows(table: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a DataFrame, got {type(table).__name__}")
    missing = {"metric", "value", "language", "layer"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)}")
    df = table[table["probe"] == "lape"] if "probe" in table.columns else table
    if df.empty:
        raise ValueError("table has no LAPE rows (probe == 'lape')")
    return df


def _x_column(df: pd.DataFrame, x: str) -> str:
    if x in df.columns and df[x].notna().any():
        return x
    if "checkpoint" in df.columns:
        return "checkpoint"
    raise ValueError(f"table has no usable {x!r} or 'checkpoint' column")


def _axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def plot_lape_counts(table: pd.DataFrame, *, metric: str = "n_neurons", languages: Sequence[str] | None = None,
                     x: str = "step", null: bool = True, ax=None, figsize=(6.5, 3.8)):
    """Neurons per language over training (whole model), with the shuffled-label null dashed."""
    import seaborn as sns

    df = _lape_rows(table)
    xcol = _x_column(df, x)
    whole = df[df["layer"].isna() & df["language"].notna()]
    if languages is not None:
        whole = whole[whole["language"].isin(languages)]
    real = whole[whole["metric"] == metric]
    if real.empty:
        raise ValueError(f"no whole-model rows with metric {metric!r}")
    fig, ax = _axes(ax, figsize)
    order = list(dict.fromkeys(real["language"]))
    palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
    sns.lineplot(data=real, x=xcol, y="value", hue="language", hue_order=order, palette=palette,
                 marker="o", ax=ax)
    nulls = whole[whole["metric"] == "null_" + metric]
    if null and not nulls.empty:
        sns.lineplot(data=nulls, x=xcol, y="value", hue="language", hue_order=order, palette=palette,
                     linestyle="--", alpha=0.6, ax=ax, legend=False)
        ax.plot([], [], color="grey", linestyle="--", label="shuffled-label null")
        ax.legend()
    ax.set_xlabel(xcol)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("LAPE neurons per language")
    fig.tight_layout()
    return fig


def _layer_counts(source: pd.DataFrame | LapeResult, checkpoint) -> pd.DataFrame:
    if isinstance(source, LapeResult):
        return source.counts()
    df = _lape_rows(source)
    per = df[(df["metric"] == "n_neurons") & df["layer"].notna()]
    if "checkpoint" in per.columns and per["checkpoint"].nunique() > 1:
        if checkpoint is None:
            key = "step" if "step" in per.columns and per["step"].notna().all() else "checkpoint"
            checkpoint = per.sort_values(key)["checkpoint"].iloc[-1]
        per = per[per["checkpoint"] == checkpoint]
        if per.empty:
            raise ValueError(f"no LAPE layer rows for checkpoint {checkpoint!r}")
    return per.rename(columns={"value": "n_neurons"})[["language", "layer", "n_neurons"]]


def plot_lape_layers(source: pd.DataFrame | LapeResult, *, checkpoint=None, ax=None, figsize=(6.5, 3.8)):
    """Layer distribution of each language's neurons at one checkpoint (default: the last)."""
    import seaborn as sns

    counts = _layer_counts(source, checkpoint).copy()
    counts["layer"] = counts["layer"].astype(int)
    fig, ax = _axes(ax, figsize)
    sns.barplot(data=counts, x="layer", y="n_neurons", hue="language", ax=ax)
    ax.set_xlabel("layer (block)")
    ax.set_ylabel("neurons")
    title = "LAPE neurons per layer"
    if checkpoint is not None:
        title += f" ({checkpoint})"
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_lape_layer_heatmap(table: pd.DataFrame, *, language: str, x: str = "step", ax=None, figsize=(7, 3.5)):
    """Heatmap layer x training step of one language's neuron count."""
    import seaborn as sns

    df = _lape_rows(table)
    xcol = _x_column(df, x)
    per = df[(df["metric"] == "n_neurons") & df["layer"].notna() & (df["language"] == language)]
    if per.empty:
        raise ValueError(f"no LAPE layer rows for language {language!r}")
    grid = per.pivot_table(index="layer", columns=xcol, values="value", aggfunc="mean").sort_index(ascending=False)
    grid.index = grid.index.astype(int)
    fig, ax = _axes(ax, figsize)
    sns.heatmap(grid, ax=ax, cmap="viridis", annot=grid.shape[1] <= 12, fmt=".0f", cbar_kws={"label": "neurons"})
    ax.set_title(f"LAPE neurons of {language} per layer")
    ax.set_xlabel(xcol)
    ax.set_ylabel("layer (block)")
    fig.tight_layout()
    return fig


def plot_lape_gap(table: pd.DataFrame, *, x: str = "step", ax=None, figsize=(6.5, 3.8)):
    """Largest and mean per-neuron probability gap of the selected neurons, true labels vs null."""
    import seaborn as sns

    df = _lape_rows(table)
    xcol = _x_column(df, x)
    names = {"prob_gap_max": "max gap", "prob_gap_mean": "mean gap",
             "null_prob_gap_max": "max gap (null)", "null_prob_gap_mean": "mean gap (null)"}
    sel = df[df["metric"].isin(names) & df["language"].isna()].copy()
    if sel.empty:
        raise ValueError("no prob_gap rows in the table")
    sel["series"] = sel["metric"].map(names)
    sel["labels"] = np.where(sel["metric"].str.startswith("null_"), "shuffled", "true")
    fig, ax = _axes(ax, figsize)
    sns.lineplot(data=sel, x=xcol, y="value", hue="series", style="labels", marker="o", ax=ax)
    ax.set_ylabel("activation-probability gap")
    ax.set_title("Language specificity of LAPE neurons")
    fig.tight_layout()
    return fig


#: names used by :mod:`lensprobe.present.figures`
plot_counts_over_steps = plot_lape_counts
plot_layer_distribution = plot_lape_layers
