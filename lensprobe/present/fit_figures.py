"""Seaborn figures for the fitting module (matplotlib is imported lazily)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lensprobe.present.axes import set_x_axis

__all__ = ["plot_predicted_vs_actual", "plot_share_curve", "plot_law_fit"]


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_predicted_vs_actual(result, *, ax=None):
    """Like the paper's Figures 6–7: performance against the estimated Python-system share —
    the continual run (share from the loss, Eq.2) as a line, the mixture runs (share from the token
    counts, Eq.3) as points, with the value predicted for each mixture as an open marker."""
    import seaborn as sns

    ax = _ax(ax)
    curve = result.curve.sort_values("share")
    sns.scatterplot(data=curve, x="share", y="value", ax=ax, color="0.6", s=14, label="continual run (Eq.2 share)")
    sns.lineplot(data=curve, x="share", y="smoothed", ax=ax, color="C0", estimator=None, sort=True, label="sliding mean")
    tab = result.table
    sns.scatterplot(data=tab, x="share", y="actual", ax=ax, color="C3", s=60, marker="o", label="mixture runs (Eq.3 share)")
    ax.scatter(tab["share"], tab["predicted"], facecolors="none", edgecolors="C3", s=90, marker="s", label="predicted")
    for _, row in tab.iterrows():
        ax.annotate(str(row["run"]), (row["share"], row["actual"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("estimated share of the Python system")
    ax.set_ylabel(result.metric)
    ax.legend(fontsize=8)
    return ax


def plot_share_curve(share, *, fit=None, ax=None, x_values=None):
    """Eq.2 share over steps (points clipped to [0, 1] in grey), with an optional log-linear fit.

    The x axis is the figures' one (:func:`lensprobe.present.axes.set_x_axis`), its scale decided by
    ``x_values`` (e.g. the checkpoints' steps, so panels side by side agree) or by the logged steps."""
    ax = _ax(ax)
    df = share.to_dataframe()
    for clipped, color, label in ((False, "C0", "Eq.2 share"), (True, "0.7", "clipped to [0, 1]")):
        d = df[df["clipped"] == clipped]
        if len(d):
            ax.scatter(d["step"], d["share"], s=16, color=color, label=label)
    if fit is not None:
        xs = np.geomspace(max(df["step"].min(), 1), df["step"].max(), 200)
        ax.plot(xs, fit.predict(xs), color="C1", label=str(fit).split("  (")[0])
    ax.legend(fontsize=8)
    set_x_axis(ax, df["step"] if x_values is None else x_values)
    ax.set_ylabel("estimated Python-system share (Eq.2)")
    return ax


def plot_law_fit(fit, df: pd.DataFrame, *, ax=None, label: str | None = None):
    """Predicted against observed for a fitted law (identity line dashed)."""
    import seaborn as sns

    ax = _ax(ax)
    pred = fit.predict(df)
    obs = df[fit.y].to_numpy(float)
    sns.scatterplot(x=obs, y=pred, ax=ax, s=20, label=label)
    lo, hi = float(min(obs.min(), pred.min())), float(max(obs.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], ls="--", color="0.5")
    ax.set_xlabel(f"observed {fit.y}")
    ax.set_ylabel(f"predicted ({fit.law.name})")
    return ax
