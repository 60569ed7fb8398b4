"""The closed loop's figure (docs/fit.md, "The closed loop"): Algorithm 1's prediction against the
mixture runs that were trained, like the paper's Figures 6-7, and predicted against actual."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lensprobe.files import atomic_write_bytes

__all__ = ["plot_loop", "save_loop_figure"]

_KIND_COLOR = {"natural": "C2", "recommended": "C3", "grid": "C1"}


def _kind(point: str) -> str:
    return "grid" if point.startswith("grid") else point


def plot_loop(curve: pd.DataFrame, table: pd.DataFrame, *, band: pd.DataFrame | None = None,
              recommendation: Mapping[str, Any] | None = None, natural_share: float | None = None,
              confidence: float = 0.9, metric_label: str = "PHP line accuracy (python_only + shared)") -> plt.Figure:
    """Left: the continual run's checkpoints at their Eq.2 share (horizontal bars: the share's
    interval) with the smoothed prediction and its band; the mixture runs at their Eq.3 share (one
    marker per seed, bars: the item interval) and their predictions (open squares). Right: predicted
    against actual with the identity line."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
    c = curve.sort_values("share")
    ax.errorbar(c["share"], c["value"], xerr=[c["share"] - c["share_lo"], c["share_hi"] - c["share"]], fmt="o",
                color="0.55", ms=4, lw=0.8, label="continual checkpoints (Eq.2 share)")
    if band is not None:
        b = band.sort_values("share")
        ax.plot(b["share"], b["predicted"], color="C0", lw=1.6, label="prediction (smoothed along the share)")
        ax.fill_between(b["share"], b["predicted_lo"], b["predicted_hi"], color="C0", alpha=0.18,
                        label=f"{confidence:.0%} interval (items/seeds, loss noise)")
    for point, g in table.groupby("point", sort=False):
        col = _KIND_COLOR.get(_kind(str(point)), "C4")
        jitter = (np.arange(len(g)) - (len(g) - 1) / 2) * 0.004
        ax.errorbar(g["share"] + jitter, g["actual"], yerr=[g["actual"] - g["actual_lo"], g["actual_hi"] - g["actual"]],
                    fmt="o", color=col, ms=6, lw=1, capsize=2)
        ax.errorbar(g["share"].iloc[:1], g["predicted"].iloc[:1],
                    yerr=[g["predicted"].iloc[:1] - g["predicted_lo"].iloc[:1],
                          g["predicted_hi"].iloc[:1] - g["predicted"].iloc[:1]],
                    fmt="s", mfc="none", mec=col, ecolor=col, ms=9, lw=1, capsize=3)
        label = str(point) + ("" if bool(g["feasible"].iloc[0]) else " (infeasible: cap)")
        ax.annotate(label, (float(g["share"].iloc[0]), float(g["actual"].max())), textcoords="offset points",
                    xytext=(-6, 8), fontsize=8, color=col, ha="right")
    ax.plot([], [], "o", color="C3", label="mixture runs: actual (Eq.3 share)")
    ax.plot([], [], "s", mfc="none", mec="C3", label="mixture runs: predicted")
    if recommendation is not None and recommendation.get("share") is not None:
        r = float(recommendation["share"])
        ax.axvline(r, color="C3", ls="--", lw=1)
        lo_hi = recommendation.get("share_interval")
        if lo_hi and all(v is not None for v in lo_hi):
            ax.axvspan(float(lo_hi[0]), float(lo_hi[1]), color="C3", alpha=0.08)
        ax.annotate(f"Algorithm 1: P = {r:.3g}", (r, 0.98), xycoords=("data", "axes fraction"), fontsize=8,
                    color="C3", xytext=(4, -10), textcoords="offset points")
    if natural_share is not None:
        ax.axvline(natural_share, color="C2", ls=":", lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("share of the Python system (continual: Eq.2 from the loss; mixtures: Eq.3 from the tokens)")
    ax.set_ylabel(metric_label)
    ax.legend(fontsize=7, loc="center right")
    ax.set_title("Algorithm 1's prediction against trained mixture runs", fontsize=10)

    per = table.groupby("point", sort=False).agg(predicted=("predicted", "first"), lo=("predicted_lo", "first"),
                                                 hi=("predicted_hi", "first"), actual=("actual", "mean"),
                                                 alo=("actual_lo", "min"), ahi=("actual_hi", "max")).reset_index()
    for row in per.itertuples():
        col = _KIND_COLOR.get(_kind(str(row.point)), "C4")
        ax2.errorbar(row.actual, row.predicted, xerr=[[row.actual - row.alo], [row.ahi - row.actual]],
                     yerr=[[row.predicted - row.lo], [row.hi - row.predicted]], fmt="o", color=col, capsize=2)
        ax2.annotate(str(row.point), (row.actual, row.predicted), textcoords="offset points", xytext=(4, 4),
                     fontsize=8, color=col)
    vals = np.concatenate([per[["predicted", "lo", "hi", "actual", "alo", "ahi"]].to_numpy(float).ravel(), [0.0]])
    top = float(np.nanmax(vals)) * 1.08 + 0.02
    ax2.plot([0, top], [0, top], ls="--", color="0.5", lw=1)
    ax2.set_xlim(0, top)
    ax2.set_ylim(0, top)
    ax2.set_xlabel("actual (mixture run, last checkpoint)")
    ax2.set_ylabel("predicted (continual run at the Eq.3 share)")
    mae = float((per["predicted"] - per["actual"]).abs().mean())
    rho = per[["predicted", "actual"]].corr(method="spearman").iloc[0, 1] if len(per) >= 3 else math.nan
    ax2.set_title(f"predicted vs actual: Spearman {rho:.2f}, MAE {mae:.3f} ({len(per)} points)", fontsize=10)
    fig.tight_layout()
    return fig


def save_loop_figure(fig: plt.Figure, path: str | Path, *, formats=("png", "svg"), dpi: int = 130) -> list[Path]:
    """Write ``fig`` as ``path.<fmt>`` for each format (atomically) and close it."""
    path = Path(path)
    written = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(atomic_write_bytes(path.with_suffix("." + fmt), buf.getvalue()))
    plt.close(fig)
    return written
