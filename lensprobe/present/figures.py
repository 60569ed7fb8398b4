"""Figures of a sweep table as a paper prints them (each function takes the long table, returns a Figure).

* :func:`plot_performance` — the paper's Figure 2 layout: one panel per split (Babel identifier), the
  target language's curve with its interval, Python's beside it (dashed), the control split and the
  body prior as baselines, the stages as neutral bands, the legend below the panels;
* :func:`plot_working_language` — Figure 3: the lens' working language per layer at a few
  checkpoints, and its Eq.1 Python share over checkpoints, with 95% Wilson intervals on the prompts
  kept and the number of prompts under every point;
* :func:`plot_lape_counts` — LAPE neurons per language against the shuffled-label null band (Fig. 4);
* :func:`plot_layer_heatmap` — checkpoint x layer lens probability of each language's token set
  (log colour scale, values written in the cells) beside per-layer curves;
* :func:`plot_predicted_vs_actual` — the fitting module's Figures 6-7.

Every figure over training uses one x axis (:mod:`lensprobe.present.axes`): steps (or tokens, ``x=``),
logarithmic where the checkpoints are log-spaced. No function here selects a matplotlib backend: in
Jupyter figures show inline, elsewhere matplotlib falls back to a non-interactive one.
:func:`save_figure` writes PNG and SVG.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lensprobe.files import atomic_write_bytes
from lensprobe.present import fit_figures, lape_figures
from lensprobe.present.axes import (DATA_COLORS, SPLIT_TITLES, STAGE_COLORS, human_number, metric_label, set_x_axis, shade_stages,
                                    stage_handles, stage_list)
from lensprobe.present.curves import layer_curves, performance_curves, share_curve

__all__ = ["plot_performance", "plot_working_language", "plot_layer_heatmap", "plot_lape_counts", "plot_lape_layers",
           "plot_predicted_vs_actual", "save_figure", "shade_stages", "STAGE_COLORS", "SPLIT_TITLES", "FEW_PROMPTS"]

#: points of the working-language share resting on fewer prompts than this are drawn hollow
FEW_PROMPTS = 10

TARGET_COLOR, PYTHON_COLOR, CONTROL_COLOR, PRIOR_COLOR = DATA_COLORS[0], DATA_COLORS[1], DATA_COLORS[4], "0.15"


def _unit_range(values: Sequence[float]) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(len(v)) and v.min() >= 0 and v.max() <= 1


def _languages_error(what: str, language: str, have: Sequence[str]) -> ValueError:
    return ValueError(f"{what}: no rows for language {language!r}; the table has {', '.join(have) or 'none'}")


def plot_performance(table: pd.DataFrame, *, metric: str = "line_acc", probe: str | None = "babel",
                     language: str | None = None, stages: Any = None, python_language: str = "python",
                     show_python: bool = True, control: str | None = "control", prior: bool = True,
                     identifiers: Sequence[str] | None = None, x: str = "step") -> plt.Figure:
    """Performance over training, one panel per identifier (Babel split) of ``language``.

    Per panel: ``language``'s curve with its 95% interval (across seeds when there are several runs,
    else the ``<metric>_lo/_hi`` rows), Python's on the same split dashed (target falls while Python
    holds: lost access; both fall: forgetting), the ``control`` split of ``language`` (concepts never
    trained: the guessing baseline) and the split's body prior ``<metric>_prior`` (docs/babel.md) as
    baselines; the stages as neutral bands. Lines carry ``gid`` ``<language>:<identifier>``,
    ``control``, ``prior:<identifier>``; bands ``band:<gid>``.
    """
    curves = performance_curves(table, metric=metric, probe=probe, x=x)
    langs = sorted(map(str, curves["language"].unique()))
    if language is None:
        targets = [lang for lang in langs if lang != python_language]
        language = targets[0] if targets else langs[0]
    elif language not in langs:
        raise _languages_error(f"plot_performance ({metric!r}" + (f" of probe {probe!r})" if probe else ")"),
                               language, langs)
    mine = curves[curves["language"] == language]
    have = list(dict.fromkeys(mine["identifier"]))
    if identifiers is None:
        ordered = [s for s in SPLIT_TITLES if s in have] + sorted(s for s in have if s not in SPLIT_TITLES)
        panels = [s for s in ordered if s != control] or ordered
    else:
        missing = [s for s in identifiers if s not in have]
        if missing:
            raise ValueError(f"plot_performance: no {metric!r} rows of {language!r} for identifier(s) "
                             f"{', '.join(missing)}; the table has {', '.join(map(str, have))}")
        panels = list(identifiers)
    ctl = mine[mine["identifier"] == control] if control is not None else mine.iloc[:0]
    py = curves[curves["language"] == python_language] if show_python and python_language != language else None
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.5 * n + 0.8, 3.9), sharey=True, squeeze=False, layout="constrained")
    unit = _unit_range(pd.concat([mine["value"], mine["lo"], mine["hi"]]))

    def draw(ax, d: pd.DataFrame, *, color: str, ls: Any, gid: str, label: str, band_alpha: float, marker: str = "o"):
        d = d.sort_values("x")
        (line,) = ax.plot(d["x"], d["value"], ls=ls, marker=marker, ms=3.5, lw=1.6, color=color, label=label)
        line.set_gid(gid)
        if d["lo"].notna().any():
            band = ax.fill_between(d["x"].to_numpy(float), d["lo"].to_numpy(float), d["hi"].to_numpy(float),
                                   color=color, alpha=band_alpha, lw=0)
            band.set_gid(f"band:{gid}")
        return line

    for ax, ident in zip(axes[0], panels):
        shade_stages(ax, stages, label=False)
        if len(ctl):
            draw(ax, ctl, color=CONTROL_COLOR, ls=(0, (4, 1.5, 1, 1.5)), gid="control", marker="",
                 label=f"{language}: control split (baseline)", band_alpha=0.12)
        d = mine[mine["identifier"] == ident]
        if prior and d["prior"].notna().any():
            pr = d.sort_values("x")
            (line,) = ax.plot(pr["x"], pr["prior"], ls=":", lw=1.6, color=PRIOR_COLOR,
                              label=f"{language}: body prior (baseline)")
            line.set_gid(f"prior:{ident}")
        if py is not None and (py["identifier"] == ident).any():
            draw(ax, py[py["identifier"] == ident], color=PYTHON_COLOR, ls="--", gid=f"{python_language}:{ident}",
                 label=python_language, band_alpha=0.12)
        draw(ax, d, color=TARGET_COLOR, ls="-", gid=f"{language}:{ident}", label=language, band_alpha=0.22)
        ax.set_title(SPLIT_TITLES.get(ident, str(ident)).format(target=language.upper() if len(language) <= 3
                                                                  else language.capitalize()), fontsize=10)
        set_x_axis(ax, curves["x"], x=x)
        if unit:
            ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", color="0.9", lw=0.6)
    axes[0][0].set_ylabel(metric_label(metric))
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    for h, lab in stage_handles(stages):
        handles.append(h)
        labels.append(lab)
    rank = {language: 0, python_language: 1}
    order = sorted(range(len(labels)), key=lambda i: (rank.get(labels[i], 2), i))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
               ncol=min(len(labels), 4), fontsize=8, frameon=False)
    fig.suptitle(f"{metric_label(metric).capitalize()} of {language} over training, per split", fontsize=11)
    return fig


def _pick_steps(steps: Sequence[float], k: int = 3) -> list[float]:
    steps = sorted(set(float(s) for s in steps))
    if len(steps) <= k:
        return steps
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, k)).astype(int))
    return [steps[i] for i in idx]


def _draw_layers(ax, table: pd.DataFrame, *, language: str, prompts_suffix: str, steps: Sequence[float] | None,
                 probe: str | None) -> bool:
    """Panel (a) of Figure 3: per layer, the share of kept prompts whose lens top-1 is Python (solid)
    or the target (dashed) at a few checkpoints. False when the table has no per-layer rows."""
    metrics = ("share_python_top1" + prompts_suffix, "share_target_top1" + prompts_suffix)
    try:
        lay = layer_curves(table, metrics=metrics, probe=probe, language=language)
    except ValueError:
        return False
    py = lay[lay["metric"] == metrics[0]]
    kept = py.groupby("step")["n"].max()
    chosen = list(steps) if steps is not None else _pick_steps(kept[kept > 0].index)
    if not chosen:
        return False
    shades = plt.get_cmap("viridis")(np.linspace(0.0, 0.8, len(chosen))[::-1])
    excluded = table[(table["metric"] == "exclude_last") & (table["language"] == language)]["value"] \
        if "exclude_last" in set(table["metric"]) else pd.Series(dtype=float)
    layers = sorted(lay["layer"].unique())
    if excluded.notna().any() and int(excluded.max()) > 0:  # the final layer(s): not counted by Eq.1
        k = int(excluded.max())
        span = ax.axvspan(max(layers) - k + 0.5, max(layers) + 0.3, color="0.93", lw=0, zorder=0)
        span.set_gid("excluded_layers")
        ax.text(max(layers) - k / 2 + 0.4, 0.5, "not in Eq. 1", rotation=90, ha="center", va="center",
                fontsize=7, color="0.45")
    offsets = np.linspace(-0.06, 0.06, len(chosen)) if len(chosen) > 1 else [0.0]
    for color, step, marker, dx in zip(shades, chosen, "os^Dv", offsets):  # offset: equal lines stay visible
        for metric, ls in zip(metrics, ("-", "--")):
            d = lay[(lay["metric"] == metric) & (lay["step"] == step)].sort_values("layer")
            if d.empty:
                continue
            n = int(d["n"].max())
            label = f"step {human_number(step)} (n={n})" if ls == "-" else None
            (line,) = ax.plot(d["layer"] + dx, d["value"], ls=ls, marker=marker, ms=4, color=color, label=label)
            line.set_gid(f"layer:{metric}:{step:g}")
            if ls == "-":  # the Python share's interval (the target's would hide it)
                band = ax.fill_between(d["layer"].to_numpy(float), d["lo"].to_numpy(float), d["hi"].to_numpy(float),
                                       color=color, alpha=0.12, lw=0)
                band.set_gid(f"band:layer:{metric}:{step:g}")
    ax.set_xticks(layers)
    ax.set_xlim(min(layers) - 0.3, max(layers) + 0.3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer (block)")
    ax.set_ylabel("share of kept prompts")
    ax.set_title(f"(a) {language}: lens top-1 per layer", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="-"), Line2D([], [], color="0.3", ls="--")]
    labels += ["top-1 is Python", f"top-1 is {language}"]
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2, frameon=False)
    ax.grid(axis="y", color="0.9", lw=0.6)
    return True


def plot_working_language(table: pd.DataFrame, *, metric: str = "eq1_python_share",
                          probe: str | None = "working_language", languages: Sequence[str] | None = None,
                          by_identifier: bool = False, stages: Mapping[str, Any] | None = None,
                          few: int = FEW_PROMPTS, layers: bool = True, layer_steps: Sequence[float] | None = None,
                          x: str = "step") -> plt.Figure:
    """Figure 3: the working language per layer and over checkpoints.

    (a), when the table has per-layer rows and ``layers``: per layer, the share of kept prompts whose
    lens top-1 token is Python / the target at up to three checkpoints (first, middle and last with a
    kept prompt, or ``layer_steps``), 95% Wilson bands, ``n`` in the legend.

    (b): ``metric`` (Eq.1 Python share) over checkpoints per target language (suite-level rows: all
    identifiers' prompts; ``by_identifier``: one line per identifier) with a 95% Wilson band on the
    prompts kept; the number of prompts kept is written under every point; points with ``n < few``
    are hollow; a share without a kept prompt, or whose kept prompts' lens never ranks either
    identifier first at a counted layer, is NaN: a gap in the line and an ``x`` (docs/suites.md).
    ``stages`` ({language: StageResult or its dict}) are shaded when there is one language.
    """
    if isinstance(few, bool) or not isinstance(few, int) or few < 0:
        raise ValueError(f"few must be a non-negative int, got {few!r}")
    d = share_curve(table, metric=metric, probe=probe, by_identifier=by_identifier, languages=languages, x=x)
    suffix = "_all_prompts" if metric.endswith("_all_prompts") else ""
    wl_langs = sorted(map(str, table.loc[(table["metric"] == metric), "language"].dropna().unique()))
    if languages is not None:
        wl_langs = [lang for lang in wl_langs if lang in set(languages)]
    two = layers and len(wl_langs) >= 1
    fig = plt.figure(figsize=(11.5 if two else 7.5, 4.4), layout="constrained")
    if two:
        ax_layers, ax = fig.subplots(1, 2, width_ratios=[1, 1.5])
        if not _draw_layers(ax_layers, table, language=wl_langs[0], prompts_suffix=suffix, steps=layer_steps,
                            probe=probe):
            fig.delaxes(ax_layers)
    else:
        ax = fig.subplots()
    stage_source = None
    if stages and len(stages) == 1:
        stage_source = next(iter(stages.values()))
        shade_stages(ax, stage_source, label=False)
    keys = sorted(d["key"].unique(), key=str)
    palette = dict(zip(keys, DATA_COLORS * (len(keys) // len(DATA_COLORS) + 1)))
    n_few = n_none = 0
    n_labels: list[tuple[int, pd.DataFrame, str, Any]] = []
    for i, key in enumerate(keys):
        g = d[d["key"] == key].sort_values("x")
        color = palette[key]
        (line,) = ax.plot(g["x"], g["value"], "-o", ms=4, color=color, label=str(key))
        line.set_gid(f"share:{key}")
        band = ax.fill_between(g["x"].to_numpy(float), g["lo"].to_numpy(float), g["hi"].to_numpy(float),
                               color=color, alpha=0.18, lw=0)
        band.set_gid(f"band:share:{key}")
        weak = g[(g["n"] < few) & g["value"].notna()]
        n_few += len(weak)
        ax.scatter(weak["x"], weak["value"], s=24, facecolors="white", edgecolors=color, zorder=3)
        empty = g[g["value"].isna()]  # no share: a gap in the line, an x under it
        n_none += len(empty)
        if len(empty):  # just under the data, in the strip of prompt counts
            ax.scatter(empty["x"], np.full(len(empty), -0.035), marker="x", s=22, color=color, zorder=3,
                       clip_on=False)
        if len(keys) <= 3:  # the prompts behind every point, in a strip under the data
            n_labels.append((i, g, color, key))
    ax.axhline(0.5, color="0.55", lw=0.8, ls=":")
    set_x_axis(ax, d["x"], x=x)
    fig.canvas.draw()  # lay the figure out: label positions below are measured in pixels
    for i, g, color, key in n_labels:
        last = -np.inf
        shown = np.where(g["value"].notna(), g["n"], g["kept"])  # NaN shares: the prompts kept anyway
        for xv, nv in sorted(zip(g["x"], shown), reverse=True):  # right to left: the last checkpoint keeps its n
            px = ax.transData.transform((float(xv), 0.0))[0]
            if abs(last - px) < 13:
                continue
            last = px
            t = ax.text(xv, -0.085 - 0.045 * i, f"{int(nv)}", ha="center", va="center", fontsize=6.5, color=color)
            t.set_gid(f"n:{key}")
    ax.set_ylim(-0.065 - 0.045 * len(keys) if len(keys) <= 3 else -0.02, 1.04)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel(metric_label(metric))
    ax.set_title(("(b) " if two and len(fig.axes) > 1 else "") + "over training (95% Wilson interval; "
                 "n = prompts kept, under each point)", fontsize=10)
    ax.grid(axis="y", color="0.9", lw=0.6)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="0.6", alpha=0.3, lw=0))
    labels.append("95% interval")
    if n_few:
        handles.append(Line2D([], [], ls="", marker="o", ms=4, mfc="white", mec="0.4"))
        labels.append(f"n < {few} prompts")
    if n_none:
        handles.append(Line2D([], [], ls="", marker="x", ms=4, color="0.4"))
        labels.append("no share (NaN): no prompt kept\nor no counted top-1 in either set")
    for h, lab in stage_handles(stage_source):
        handles.append(h)
        labels.append(lab)
    ax.legend(handles, labels, title="identifier" if by_identifier else "language", fontsize=7, title_fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Working language (logit lens)", fontsize=11)
    return fig


def _set_label(metric: str, language: str) -> str:
    return metric_label(metric).replace("target", language)


def plot_layer_heatmap(table: pd.DataFrame, *, language: str, probe: str | None = "working_language",
                       metrics: Sequence[str] = ("logp_target", "logp_python")) -> plt.Figure:
    """Checkpoint x layer lens probability of each language's token set (geometric mean over the
    kept prompts: exp of the mean log P(set); suite-level rows), on a log colour scale fitted to the
    data with the values written in the cells, beside per-layer curves at the first and last
    checkpoint (solid: the first metric's set, dashed: the second's)."""
    sel = table[table["metric"].isin(list(metrics)) & table["layer"].notna()]
    if probe is not None:
        sel = sel[sel["probe"] == probe]
    have = sorted(map(str, sel["language"].dropna().unique()))
    if language not in have:
        raise _languages_error(f"plot_layer_heatmap ({', '.join(metrics)})", language, have)
    sel = sel[sel["language"] == language]
    if "identifier" in sel.columns and sel["identifier"].isna().any():
        sel = sel[sel["identifier"].isna()]  # the suite-level rows (all identifiers' prompts)
    grids = {m: np.exp(sel[sel["metric"] == m].groupby(["step", "layer"])["value"].mean().unstack("layer").sort_index())
             for m in metrics}
    finite = np.concatenate([g.to_numpy(float).ravel() for g in grids.values()])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    vmin = max(float(finite.min()) if len(finite) else 1e-4, 1e-6)
    norm = LogNorm(vmin=vmin, vmax=max(1.0, vmin * 10))
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(4.2 * len(metrics) + 4.4, 4.3), layout="constrained",
                             width_ratios=[1] * len(metrics) + [1.1])
    mesh = None
    for ax, metric in zip(axes, metrics):
        grid = grids[metric]
        mesh = ax.pcolormesh(np.arange(grid.shape[1] + 1), np.arange(grid.shape[0] + 1), grid.to_numpy(float),
                             cmap="viridis", norm=norm, shading="flat")
        mesh.set_gid(f"heatmap:{metric}")
        ax.invert_yaxis()
        ax.set_xticks(np.arange(grid.shape[1]) + 0.5, [str(int(c)) for c in grid.columns])
        ax.set_yticks(np.arange(grid.shape[0]) + 0.5, [human_number(float(s)) for s in grid.index])
        if grid.size <= 240:
            for (i, j), v in np.ndenumerate(grid.to_numpy(float)):
                if np.isfinite(v):
                    light = norm(v) > 0.55 if np.isfinite(norm(v)) else False
                    ax.text(j + 0.5, i + 0.5, f"{v:.2f}" if v >= 0.01 else f"{v:.0e}", ha="center", va="center",
                            fontsize=6, color="black" if light else "white")
        ax.set_title(_set_label(metric, language), fontsize=10)
        ax.set_xlabel("layer (block)")
        ax.set_ylabel("training step")
    fig.colorbar(mesh, ax=list(axes[: len(metrics)]), label="P(set), log scale", shrink=0.9)
    ax = axes[-1]
    steps = sorted(grids[metrics[0]].index)
    handles, labels = [], []
    for color, step in zip((DATA_COLORS[0], DATA_COLORS[3]), [steps[0], steps[-1]] if len(steps) > 1 else steps):
        for metric, ls in zip(metrics, ("-", "--")):
            row = grids[metric].loc[step]
            (line,) = ax.plot(row.index.astype(int), row.to_numpy(float), ls=ls, marker="o", ms=3.5, color=color)
            line.set_gid(f"curve:{metric}:{step:g}")
        handles.append(Line2D([], [], color=color, marker="o", ms=3.5))
        labels.append(f"step {human_number(float(step))}")
    for metric, ls in zip(metrics, ("-", "--")):
        handles.append(Line2D([], [], color="0.3", ls=ls, lw=1.4))
        labels.append(_set_label(metric, language))
    ax.set_yscale("log")
    ax.set_xticks(sorted(int(c) for c in grids[metrics[0]].columns))
    ax.set_xlabel("layer (block)")
    ax.set_ylabel("P(set)")
    ax.set_title("per layer, first and last checkpoint", fontsize=10)
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), frameon=False, ncol=2,
              handlelength=2.6)
    ax.grid(color="0.9", lw=0.6)
    fig.suptitle(f"{language}: lens probability of each language's identifier tokens", fontsize=11)
    return fig


def plot_lape_counts(table: pd.DataFrame, **kwargs: Any) -> plt.Figure:
    """LAPE counts per language against the shuffled-label null (:mod:`lensprobe.present.lape_figures`)."""
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
    path = Path(path)
    written = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(atomic_write_bytes(path.with_suffix("." + fmt), buf.getvalue()))
    plt.close(fig)
    return written


# names kept for callers of the previous module layout
_stage_list = stage_list
