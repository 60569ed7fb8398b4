"""What every figure over training shares: the x axis, the stage bands and readable labels.

* :func:`x_scale` decides the scale from the checkpoints themselves: linear, or logarithmic when
  they are log-spaced (a linear axis would crush the early ones into one corner) — ``symlog`` with
  its linear part below the first positive checkpoint when step 0 is among them, never a range
  below the smallest value (docs/sweep.md, "Figures");
* :func:`set_x_axis` applies it with limits that hold every point and plain tick labels;
* :func:`shade_stages` draws the stages of a :class:`~lensprobe.analysis.stages.StageResult` in
  neutral greys (no data line is grey);
* :func:`metric_label` turns a metric name into an axis label.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["STAGE_COLORS", "DATA_COLORS", "SPLIT_TITLES", "x_scale", "set_x_axis", "shade_stages", "stage_list", "stage_handles",
           "metric_label", "human_number", "X_LABELS"]

#: stage bands: neutral greys, distinct from every data colour
STAGE_COLORS = {"translation": "#e2e2e2", "transition": "#c4c4c4", "stabilization": "#eeeeee"}
#: data colours (tab10 without its grey)
DATA_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")

X_LABELS = {"step": "training step", "tokens": "tokens seen", "checkpoint": "checkpoint"}

#: panel order and titles of the Babel splits (docs/babel.md); other identifiers follow, sorted
SPLIT_TITLES = {"python_only": "Python-only concepts", "shared": "shared concepts",
                "target_only": "{target}-only concepts", "control": "control concepts (never trained)"}

METRIC_LABELS = {
    "line_acc": "line accuracy",
    "exact_match": "exact match",
    "pass@1": "pass@1",
    "line_acc_prior": "line accuracy of the body prior",
    "eq1_python_share": "Python share of the lens' top-1 (Eq. 1)",
    "eq1_target_share": "target share of the lens' top-1 (Eq. 1)",
    "eq1_mass_python_share": "Python share of the lens' probability mass",
    "eq1_mass_target_share": "target share of the lens' probability mass",
    "share_python_top1": "prompts whose lens top-1 is Python",
    "share_target_top1": "prompts whose lens top-1 is the target",
    "logp_target": "P(target identifier)",
    "logp_python": "P(Python identifier)",
    "n_neurons": "language-specific neurons (LAPE)",
    "n_exclusive": "neurons of one language only (LAPE)",
    "prob_gap_mean": "mean probability gap of the selected neurons",
    "final_accuracy": "final-layer accuracy",
    "train_loss": "training loss",
    "val_loss": "validation loss",
}


def metric_label(metric: str) -> str:
    """A readable axis label for ``metric`` (``*_all_prompts`` variants say so)."""
    suffix = ""
    if metric.endswith("_all_prompts"):
        metric, suffix = metric[: -len("_all_prompts")], ", all prompts"
    label = METRIC_LABELS.get(metric)
    if label is None:
        label = metric.replace("_", " ")
    return label + suffix


def human_number(v: float) -> str:
    """``0``, ``30``, ``1,500``, ``12k``, ``6.1M``, ``2B``: short tick and table labels."""
    if v is None or not np.isfinite(v):
        return ""
    a = abs(v)
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e4, "k")):
        if a >= div:
            return f"{v / div:.3g}{unit}" if unit != "k" else f"{v / 1e3:.3g}k"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:.3g}"


def x_scale(values: Iterable[float]) -> tuple[str, float | None]:
    """``("linear", None)``, ``("log", None)`` or ``("symlog", linthresh)`` for checkpoints at ``values``.

    Log-spaced: the largest positive value is at least 20 times the smallest and more than a third of
    the positive checkpoints lie in the lowest tenth of the range (where a linear axis crushes them).
    With a value <= 0 among them the log scale is ``symlog``, linear up to the smallest positive value.
    """
    v = np.asarray([float(x) for x in values if x is not None and np.isfinite(float(x))], dtype=float)
    v = np.unique(v)
    pos = v[v > 0]
    if len(pos) < 3 or pos.max() < 20 * pos.min():
        return "linear", None
    crushed = np.mean(pos <= pos.min() + 0.1 * (pos.max() - pos.min()))
    if crushed <= 1 / 3:
        return "linear", None
    return ("symlog", float(pos.min())) if (v <= 0).any() else ("log", None)


def _tick_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: human_number(v))


def set_x_axis(ax: Any, values: Iterable[float], *, x: str = "step") -> str:
    """Scale (:func:`x_scale`), limits holding every value (with a margin) and label of ``ax``'s x
    axis; returns the scale."""
    from matplotlib.ticker import LogLocator, NullFormatter, SymmetricalLogLocator

    v = np.asarray([float(a) for a in values if a is not None and np.isfinite(float(a))], dtype=float)
    ax.set_xlabel(X_LABELS.get(x, x))
    if not len(v):
        return "linear"
    scale, linthresh = x_scale(v)
    lo, hi = float(v.min()), float(v.max())
    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
        ax.xaxis.set_major_locator(SymmetricalLogLocator(linthresh=linthresh, base=10))
        # left: just below the lowest value, never a decade below zero (no -10^0 tick, nothing clipped)
        left = lo - 0.12 * linthresh if lo >= 0 else lo * 1.3
        ax.set_xlim(left, hi * 1.25)
    elif scale == "log":
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.set_xlim(lo / 1.25, hi * 1.25)
    else:
        span = (hi - lo) or max(abs(hi), 1.0)
        ax.set_xlim(lo - 0.04 * span, hi + 0.04 * span)
    ax.xaxis.set_major_formatter(_tick_formatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    return scale


def stage_list(stages: Any) -> list[tuple[str, float, float]]:
    """(name, start, end) from a :class:`~lensprobe.analysis.stages.StageResult` or its ``to_dict()`` form."""
    if stages is None:
        return []
    items = stages.get("stages", []) if isinstance(stages, Mapping) else stages.stages
    out = []
    for st in items:
        if isinstance(st, Mapping):
            out.append((str(st["name"]), float(st["start_step"]), float(st["end_step"])))
        else:
            out.append((st.name, float(st.start_step), float(st.end_step)))
    return out


def shade_stages(ax: Any, stages: Any, *, label: bool = True) -> list[Any]:
    """Shade the stages (a :class:`~lensprobe.analysis.stages.StageResult` or its dict from
    ``stages.json``) on ``ax`` in neutral greys; each band's ``gid`` is ``stage:<name>``."""
    spans = []
    for name, start, end in stage_list(stages):
        span = ax.axvspan(start, end, color=STAGE_COLORS.get(name, "#ebebeb"), zorder=0, lw=0,
                          label=f"{name} stage" if label else None)
        span.set_gid(f"stage:{name}")
        spans.append(span)
        for edge in (start, end):
            ax.axvline(edge, color="0.55", lw=0.6, zorder=0.5).set_gid("stage_edge")
    return spans


def stage_handles(stages: Any) -> list[tuple[Any, str]]:
    """Legend entries (handle, label) of the stages, in order."""
    from matplotlib.patches import Patch

    seen: dict[str, Any] = {}
    for name, _s, _e in stage_list(stages):
        seen.setdefault(name, Patch(facecolor=STAGE_COLORS.get(name, "#ebebeb"), edgecolor="0.6", lw=0.5))
    return [(h, f"{name} stage") for name, h in seen.items()]
