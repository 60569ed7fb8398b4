"""Seaborn figures of a sweep table (each function takes the long-format table, returns a Figure).

* :func:`plot_performance` — performance over steps with shaded stages (paper Fig. 2), optionally
  with the Python-side curve beside it (transfer vs forgetting);
* :func:`plot_working_language` — the Eq.1 working-language share over steps (Fig. 3);
* :func:`plot_lape_counts` — LAPE language-specific neuron counts over steps (Fig. 4);
* :func:`plot_layer_heatmap` — checkpoint x layer heatmap of each language's lens probability mass;
* :func:`plot_predicted_vs_actual` — the fitting module's Figures 6-7.

:func:`save_figure` writes PNG and SVG.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lensprobe.babel.rows import summary_rows  # noqa: E402
from lensprobe.files import atomic_write_bytes  # noqa: E402
from lensprobe.present import fit_figures, lape_figures  # noqa: E402

STAGE_COLORS = {"translation": "#c6dbef", "transition": "#fdd0a2", "stabilization": "#d9d9d9"}


def _require(table: pd.DataFrame, what: str, **conds: Any) -> pd.DataFrame:
    sel = table
    for col, val in conds.items():
        if val is None:
            continue
        if isinstance(val, (list, tuple, set)):
            sel = sel[sel[col].isin(list(val))]
        else:
            sel = sel[sel[col] == val]
    if sel.empty:
        have = sorted(map(str, table["metric"].dropna().unique()))[:30]
        raise ValueError(f"{what}: no rows with {conds} in the sweep table (metrics present: {have})")
    return sel


def _xscale(ax: plt.Axes, steps: pd.Series) -> None:
    s = pd.to_numeric(steps, errors="coerce").dropna()
    if len(s) > 2 and s.max() > 0 and s[s > 0].min() * 50 < s.max():
        ax.set_xscale("symlog", linthresh=max(1.0, float(s[s > 0].min())))


def _stage_list(stages: Any) -> list[tuple[str, float, float]]:
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


def shade_stages(ax: plt.Axes, stages: Any, *, label: bool = True) -> None:
    """Shade the stages of a :class:`lensprobe.analysis.stages.StageResult` (or its dict from
    ``stages.json``) on ``ax``."""
    for name, start, end in _stage_list(stages):
        ax.axvspan(start, end, color=STAGE_COLORS.get(name, "#eeeeee"), alpha=0.5, zorder=0,
                   label=name if label else None)


def plot_performance(table: pd.DataFrame, *, metric: str = "line_acc", probe: str | None = "babel",
                     language: str | None = None, stages: Any = None, python_language: str = "python",
                     show_python: bool = True, prior_identifiers: Sequence[str] = ("python_only",),
                     ax: plt.Axes | None = None) -> plt.Figure:
    """Performance over steps, one line per identifier (e.g. Babel split) in ``language``.

    Rows ``<metric>_lo`` / ``<metric>_hi`` (bootstrap intervals) are drawn as bands when present.
    With ``show_python`` the Python-side curve of the same metric is drawn dashed: a target curve
    that falls while Python's holds is a disconnect, both falling is forgetting. Rows
    ``<metric>_prior`` of ``prior_identifiers`` (the Babel body prior, docs/babel.md) are drawn as
    a grey dashed baseline in ``language``. The Babel probe's per-item rows are left out.
    """
    table = summary_rows(table)
    sel = _require(table, "plot_performance", metric=metric, probe=probe)
    langs = sorted(map(str, sel["language"].dropna().unique()))
    if language is None:
        targets = [l for l in langs if l != python_language]
        language = targets[0] if targets else langs[0]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7.5, 4.2))
    shade_stages(ax, stages)
    show = [language] + ([python_language] if show_python and python_language in langs and
                         python_language != language else [])
    palette = dict(zip(sorted(map(str, sel["identifier"].fillna("all").unique())), sns.color_palette("tab10")))
    for lang in show:
        d = sel[sel["language"] == lang].copy()
        d["identifier"] = d["identifier"].fillna("all")
        mean = d.groupby(["identifier", "step"])["value"].mean().reset_index()
        for ident, g in mean.groupby("identifier"):
            style = "-" if lang == language else "--"
            ax.plot(g["step"], g["value"], style, marker="o", ms=3, color=palette.get(ident),
                    label=f"{lang}: {ident}")
            scope = table if probe is None else table[table["probe"] == probe]
            band = [scope[(scope["metric"] == f"{metric}{s}") & (scope["language"] == lang)
                          & (scope["identifier"].fillna("all") == ident)]
                    .groupby("step")["value"].mean() for s in ("_lo", "_hi")]
            if not band[0].empty and not band[1].empty:
                lo, hi = band[0].reindex(g["step"]), band[1].reindex(g["step"])
                ax.fill_between(g["step"], lo.to_numpy(float), hi.to_numpy(float), color=palette.get(ident),
                                alpha=0.15 if lang == language else 0.07, linewidth=0)
    scope = table if probe is None else table[table["probe"] == probe]
    for ident in prior_identifiers:  # the body prior: a completion scored against the split's other bodies
        prior = scope[(scope["metric"] == f"{metric}_prior") & (scope["language"] == language)
                      & (scope["identifier"] == ident)].groupby("step")["value"].mean()
        if not prior.empty:
            ax.plot(prior.index, prior.to_numpy(float), ls=(0, (5, 3)), color="0.35", lw=1.3,
                    label=f"{language}: {ident} body prior")
    _xscale(ax, sel["step"])
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over training ({language}{' vs ' + python_language if len(show) > 1 else ''})")
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    return fig


#: points of the working-language figure resting on fewer prompts than this are drawn hollow
FEW_PROMPTS = 10


def plot_working_language(table: pd.DataFrame, *, metric: str = "eq1_python_share",
                          probe: str | None = "working_language", languages: Sequence[str] | None = None,
                          by_identifier: bool = False, stages: Mapping[str, Any] | None = None,
                          few: int = FEW_PROMPTS, ax: plt.Axes | None = None) -> plt.Figure:
    """The working-language share (Eq.1) over steps: one line per target language (or identifier).

    Per language the suite-level rows (``identifier`` empty: Eq.1 over all identifiers' prompts)
    are drawn; ``by_identifier`` draws the per-identifier rows instead (and Babel suites' pooled
    ``<split>:*`` rows). A point's ``n`` is the number of prompts its share rests on (summed over
    the finite rows averaged into it, e.g. seeds): points with ``n < few`` are hollow and labelled
    ``n=…``; a share with no prompt kept is NaN: a gap in the line, an ``x`` on the axis
    (docs/suites.md).
    """
    if isinstance(few, bool) or not isinstance(few, int) or few < 0:
        raise ValueError(f"few must be a non-negative int, got {few!r}")
    sel = _require(table, "plot_working_language", metric=metric, probe=probe, language=languages)
    sel = sel[sel["layer"].isna()] if sel["layer"].isna().any() else sel
    pooled = sel["identifier"].isna()
    if by_identifier:
        sel = sel[~pooled] if (~pooled).any() else sel
    elif pooled.any():
        sel = sel[pooled]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7.5, 4.2))
    if stages and len(stages) == 1:
        shade_stages(ax, next(iter(stages.values())))
    hue = "identifier" if by_identifier else "language"
    n = pd.to_numeric(sel["n"], errors="coerce").astype(float) if "n" in sel else np.nan
    sel = sel.assign(n=np.where(sel["value"].notna(), n, 0.0))  # prompts behind the finite values
    d = sel.groupby([hue, "step"]).agg(value=("value", "mean"), n=("n", "sum")).reset_index()
    keys = sorted(d[hue].unique(), key=str)
    palette = dict(zip(keys, sns.color_palette("tab10", n_colors=max(len(keys), 1))))
    n_few = n_none = 0
    for key in keys:
        g = d[d[hue] == key].sort_values("step")
        ax.plot(g["step"], g["value"], "-o", ms=4, color=palette[key], label=str(key))
        weak = g[(g["n"] < few) & g["value"].notna()]
        n_few += len(weak)
        ax.scatter(weak["step"], weak["value"], s=22, facecolors="white", edgecolors=palette[key], zorder=3)
        for x, y, n in zip(weak["step"], weak["value"], weak["n"]):
            ax.annotate(f"n={int(n)}", (x, y), xytext=(0, 5), textcoords="offset points", ha="center",
                        fontsize=6, color=palette[key])
        empty = g[g["value"].isna()]  # no prompt kept: a gap in the line, an x on the axis
        n_none += len(empty)
        ax.scatter(empty["step"], np.full(len(empty), 0.01), marker="x", s=18, color=palette[key],
                   transform=ax.get_xaxis_transform(), clip_on=False, zorder=3)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    _xscale(ax, d["step"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.set_title("working language (logit lens): " + metric)
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if n_few:
        handles.append(Line2D([], [], ls="", marker="o", ms=4, mfc="white", mec="grey"))
        labels.append(f"n < {few} prompts")
    if n_none:
        handles.append(Line2D([], [], ls="", marker="x", ms=4, color="grey"))
        labels.append("no prompt kept (NaN)")
    ax.legend(handles, labels, title=hue, fontsize=7)
    fig.tight_layout()
    return fig


def plot_layer_heatmap(table: pd.DataFrame, *, language: str, probe: str | None = "working_language",
                       metrics: Sequence[str] = ("logp_target", "logp_python")) -> plt.Figure:
    """Checkpoint x layer heatmaps of the lens probability mass of each language's token sets
    (geometric mean over prompts: exp of the mean log P(set); suite-level rows when present)."""
    sel = _require(table, "plot_layer_heatmap", probe=probe, language=language, metric=list(metrics))
    sel = sel[sel["layer"].notna()]
    if "identifier" in sel.columns and sel["identifier"].isna().any():
        sel = sel[sel["identifier"].isna()]  # the suite-level rows (all identifiers' prompts)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        d = sel[sel["metric"] == metric]
        piv = d.groupby(["step", "layer"])["value"].mean().unstack("layer").sort_index()
        sns.heatmap(np.exp(piv), ax=ax, vmin=0, vmax=1, cmap="viridis", cbar_kws={"label": "P(set)"})
        ax.set_title(f"{language}: {metric.replace('logp_', 'P(')}{')' if metric.startswith('logp_') else ''}")
        ax.set_xlabel("layer")
        ax.set_ylabel("step")
    fig.tight_layout()
    return fig


def plot_lape_counts(table: pd.DataFrame, **kwargs: Any) -> plt.Figure:
    """LAPE counts per language over steps (delegates to :mod:`lensprobe.present.lape_figures`)."""
    return lape_figures.plot_lape_counts(table, **kwargs)


def plot_lape_layers(table: pd.DataFrame, **kwargs: Any) -> plt.Figure:
    """LAPE layer distribution (delegates to :mod:`lensprobe.present.lape_figures`)."""
    return lape_figures.plot_lape_layers(table, **kwargs)


def plot_predicted_vs_actual(*args: Any, **kwargs: Any) -> plt.Figure:
    """Predicted vs actual performance against the Python share (delegates to :mod:`lensprobe.analysis.fit`)."""
    ax = fit_figures.plot_predicted_vs_actual(*args, **kwargs)
    return ax.figure if isinstance(ax, plt.Axes) else ax


def save_figure(fig: plt.Figure, path: str | Path, *, formats: Sequence[str] = ("png", "svg"),
                dpi: int = 130) -> list[Path]:
    """Write ``fig`` as ``path.<fmt>`` for each format (atomically) and close it."""
    import io

    path = Path(path)
    written = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(atomic_write_bytes(path.with_suffix("." + fmt), buf.getvalue()))
    plt.close(fig)
    return written
