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
from lensprobe.present.axes import DATA_COLORS, metric_label, set_x_axis
from lensprobe.present.curves import lape_curves

__all__ = ["lape_null_summary", "plot_lape_counts", "plot_lape_layers", "plot_lape_layer_heatmap", "plot_lape_gap",
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


def lape_null_summary(curves: pd.DataFrame) -> dict[str, str]:
    """Per language, where its counts lie against the null, in words (``"below the null band at 6 of
    11 checkpoints, inside at 5"``), from :func:`lensprobe.present.curves.lape_curves`."""
    out = {}
    for lang, g in curves.groupby("language", sort=False):
        g = g[g["position"].notna()]
        if g.empty:
            continue
        band = bool(g["band"].all())
        where = "the null band" if band else "the null mean"
        counts = g["position"].value_counts()
        order = ("below", "inside", "above") if band else ("below", "equal", "above")
        words = {"below": "below", "inside": "inside", "above": "above", "equal": "equal to"}
        parts = []
        for pos in (p for p in order if p in counts):
            parts.append(f"{words[pos]} {'it' if parts else where} at {counts[pos]}"
                         + ("" if parts else f" of {len(g)} checkpoints"))
        out[str(lang)] = ", ".join(parts)
    return out


def plot_lape_counts(table: pd.DataFrame, *, metric: str = "n_neurons", languages: Sequence[str] | None = None,
                     x: str = "step", null: bool = True, gap: bool = True, ax=None, figsize=None):
    """Neurons per language over training (whole model) against the shuffled-label null.

    Per language: the measured count (solid), the null's mean over permutations (dashed, same
    colour) and the band between the permutations' least and most (rows ``null_<metric>_lo/_hi``;
    older tables have the mean only). The title says where the counts lie against the null. At the
    defaults LAPE selects a fixed number of neurons; under shuffled labels most are shared by all
    languages and count for each, so counts *below* the null are what language-specific neurons look
    like — the probability gap (right panel, with ``gap`` when the table has ``prob_gap_mean`` rows)
    tells a language signal from none (docs/lape.md).
    """
    import matplotlib.pyplot as plt

    df = _lape_rows(table)
    xcol = _x_column(df, x)
    curves = lape_curves(df, metric=metric, languages=languages, x=xcol)
    gaps = df[df["metric"].isin(["prob_gap_mean", "null_prob_gap_mean"]) & df["language"].isna()
              & df["layer"].isna()]
    two = gap and ax is None and not gaps.empty
    if ax is None:
        fig, axes = plt.subplots(1, 2 if two else 1, figsize=figsize or ((11, 4.2) if two else (7.5, 4.2)),
                                 layout="constrained", squeeze=False, width_ratios=[1.5, 1] if two else [1])
        ax = axes[0][0]
    else:
        fig = ax.figure
    order = list(dict.fromkeys(curves["language"]))
    palette = dict(zip(order, DATA_COLORS))
    numeric = xcol != "checkpoint"
    for lang in order:
        g = curves[curves["language"] == lang]
        if numeric:
            g = g.sort_values("x")
        xs = g["x"].to_numpy(float) if numeric else np.arange(len(g))
        (line,) = ax.plot(xs, g["value"].to_numpy(float), "-o", ms=4, color=palette[lang], label=lang)
        line.set_gid(f"lape:{lang}")
        if null and g["null"].notna().any():
            (nl,) = ax.plot(xs, g["null"].to_numpy(float), "--", lw=1.2, color=palette[lang], alpha=0.8)
            nl.set_gid(f"null:{lang}")
            if g["band"].any():
                band = ax.fill_between(xs, g["null_lo"].to_numpy(float), g["null_hi"].to_numpy(float),
                                       color=palette[lang], alpha=0.15, lw=0)
                band.set_gid(f"band:null:{lang}")
    if numeric:
        set_x_axis(ax, curves["x"], x=xcol)
    else:
        ticks = list(dict.fromkeys(curves["x"]))
        ax.set_xticks(range(len(ticks)), ticks, rotation=45, ha="right")
        ax.set_xlabel(xcol)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    if null and curves["null"].notna().any():
        handles.append(Line2D([], [], color="0.4", ls="--"))
        labels.append("shuffled-label null (mean)")
        if curves["band"].any():
            handles.append(Patch(facecolor="0.5", alpha=0.25, lw=0))
            labels.append("null band (least-most over permutations)")
    ax.legend(handles, labels, fontsize=7, loc="best")
    ax.set_ylabel(metric_label(metric))
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", color="0.9", lw=0.6)
    summary = lape_null_summary(curves) if null else {}
    ax.set_title("\n".join(f"{lang}: {text}" for lang, text in summary.items()) or "neurons per language",
                 fontsize=8.5)
    fig.suptitle("LAPE language-specific neurons against the shuffled-label null", fontsize=11)
    if two:
        gx = axes[0][1]
        for name, ls, label in (("prob_gap_mean", "-", "true labels"), ("null_prob_gap_mean", "--", "shuffled labels")):
            g = gaps[gaps["metric"] == name].groupby(xcol)["value"].mean()
            if len(g):
                (gl,) = gx.plot(g.index.to_numpy(float), g.to_numpy(float), ls=ls, marker="o", ms=3.5,
                                color="0.2", label=label)
                gl.set_gid(f"gap:{name}")
        set_x_axis(gx, curves["x"], x=xcol) if numeric else None
        gx.set_ylim(0, 1)
        gx.set_ylabel("mean activation-probability gap")
        gx.set_title("language specificity of the selected neurons\n(under shuffled labels they are shared: "
                     "counts sit near the total)", fontsize=8.5)
        gx.legend(fontsize=7)
        gx.grid(axis="y", color="0.9", lw=0.6)
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
