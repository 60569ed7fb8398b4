"""Figures of a demo-like synthetic sweep table (lensprobe.testing.tables.make_paper_table): what is drawn equals
the table's numbers recomputed here, every point lies inside the axes, the legend sits outside the data, stage
bands are neutral greys, labels are readable names, and the x axis is logarithmic on log-spaced checkpoints."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm, to_rgb
from scipy import stats

from lensprobe.present import figures as plot
from lensprobe.present.axes import STAGE_COLORS, set_x_axis, x_scale
from lensprobe.testing.tables import (LANGS, N_LAYERS, PAPER_LAYERS, PAPER_NULL, PAPER_STEPS, STEPS, lape_count,
                                      make_paper_table, make_table, paper_acc, paper_kept, paper_lape,
                                      paper_layer_share, paper_prior, paper_share)

STAGES = {"stages": [{"name": "translation", "start_step": 0, "end_step": 60},
                     {"name": "transition", "start_step": 60, "end_step": 120},
                     {"name": "stabilization", "start_step": 120, "end_step": 158}]}
RAW_NAMES = ("line_acc", "eq1_python_share", "n_neurons", "share_python_top1", "logp_")


@pytest.fixture(scope="module")
def paper():
    return make_paper_table()


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _by_gid(ax, prefix=""):
    return {a.get_gid(): a for a in [*ax.get_lines(), *ax.collections, *ax.patches, *ax.texts]
            if a.get_gid() and a.get_gid().startswith(prefix)}


def _band(coll):
    """(x, lo, hi) of a fill_between band."""
    v = coll.get_paths()[0].vertices
    n = (len(v) - 3) // 2
    # fill_between's path: a start point, the lower curve forward, the upper curve backward from its end, closed
    xs = v[1:n + 1, 0]
    lo = v[1:n + 1, 1]
    hi = v[n + 2:2 * n + 2, 1][::-1]
    return xs, lo, hi


def _assert_points_inside(ax):
    x0, x1 = sorted(ax.get_xlim())
    y0, y1 = sorted(ax.get_ylim())
    for ln in ax.get_lines():
        x = np.asarray(ln.get_xdata(), float)
        y = np.asarray(ln.get_ydata(), float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ln.get_transform() != ax.transData or not ok.any():
            continue
        assert (x[ok] >= x0).all() and (x[ok] <= x1).all(), (ln.get_gid(), x[ok], (x0, x1))
        assert (y[ok] >= y0).all() and (y[ok] <= y1).all(), (ln.get_gid(), y[ok], (y0, y1))


def _no_raw_names(fig):
    texts = [t.get_text() for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label, ax.title)]
    texts += [fig._suptitle.get_text()] if fig._suptitle else []
    for t in texts:
        assert not any(raw in t for raw in RAW_NAMES), t


# --------------------------------------------------------------------------- the x axis
def test_x_scale_follows_the_spacing_of_the_checkpoints():
    assert x_scale(STEPS) == ("linear", None)                       # every 10 steps
    assert x_scale(PAPER_STEPS) == ("symlog", 1.0)                  # log-spaced from step 0
    assert x_scale(2 ** np.arange(11)) == ("log", None)             # log-spaced, no step 0
    assert x_scale(6_118_656 + 4096 * PAPER_STEPS) == ("linear", None)  # tokens since a base: a narrow range
    assert x_scale(np.arange(0, 1000, 10)) == ("linear", None)


def test_symlog_axis_starts_at_zero_and_keeps_the_last_point():
    fig, ax = plt.subplots()
    ax.plot(PAPER_STEPS, PAPER_STEPS * 0 + 0.5, "o")
    set_x_axis(ax, PAPER_STEPS)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    assert ax.get_xscale() == "symlog"
    assert -1.0 < lo <= 0 and hi > PAPER_STEPS.max()  # no decade below zero (the old -10^0), 158 inside
    labels = [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
    assert labels[:3] == ["0", "1", "10"] and "100" in labels and not any(lab.startswith("−") for lab in labels)


# --------------------------------------------------------------------------- Figure 2
def test_performance_is_figure_2(paper):
    fig = plot.plot_performance(paper, language="php", stages=STAGES)
    fig.canvas.draw()
    assert [ax.get_title() for ax in fig.axes] == ["Python-only concepts", "shared concepts", "PHP-only concepts"]
    steps = PAPER_STEPS.astype(float)
    line_colors = set()
    for ax, split in zip(fig.axes, ("python_only", "shared", "target_only")):
        g = _by_gid(ax)
        php, py, ctl, prior = g[f"php:{split}"], g[f"python:{split}"], g["control"], g[f"prior:{split}"]
        np.testing.assert_allclose(php.get_xdata(), steps)
        np.testing.assert_allclose(php.get_ydata(), [paper_acc("php", split, s) for s in steps])
        np.testing.assert_allclose(py.get_ydata(), [paper_acc("python", split, s) for s in steps])
        np.testing.assert_allclose(ctl.get_ydata(), [paper_acc("php", "control", s) for s in steps])
        np.testing.assert_allclose(prior.get_ydata(), [paper_prior(split, s) for s in steps])
        assert php.get_linestyle() == "-" and py.get_linestyle() == "--" and prior.get_linestyle() == ":"
        xs, lo, hi = _band(g[f"band:php:{split}"])  # the probe's own _lo/_hi rows
        np.testing.assert_allclose(xs, steps)
        np.testing.assert_allclose(hi, [min(paper_acc("php", split, s) + 0.08, 1) for s in steps])
        np.testing.assert_allclose(lo, [max(paper_acc("php", split, s) - 0.08, 0) for s in steps])
        assert {f"band:python:{split}", "band:control"} <= set(g)
        # stage bands: neutral greys at the stages' steps, none the colour of a data line
        spans = [g[f"stage:{s['name']}"] for s in STAGES["stages"]]
        for span, st in zip(spans, STAGES["stages"]):
            assert (span.get_x(), span.get_x() + span.get_width()) == (st["start_step"], st["end_step"])
            r, gg, b = to_rgb(span.get_facecolor())
            assert r == gg == b and to_rgb(STAGE_COLORS[st["name"]]) == (r, gg, b)
        line_colors |= {to_rgb(ln.get_color()) for ln in ax.get_lines() if ln.get_gid() and ":" in ln.get_gid()
                        and not ln.get_gid().startswith("prior")}
        assert ax.get_xscale() == "symlog"
        _assert_points_inside(ax)
        assert ax.get_ylim() == (-0.02, 1.02)
    assert not line_colors & {to_rgb(c) for c in STAGE_COLORS.values()}
    assert all(r != g or g != b for r, g, b in line_colors)  # data lines are never grey
    assert fig.axes[0].get_ylabel() == "line accuracy"
    _no_raw_names(fig)
    # the legend is outside every panel's data area
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert all(not box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["php", "python"]
    assert {"php: control split (baseline)", "php: body prior (baseline)", "translation stage", "transition stage",
            "stabilization stage"} <= set(labels)


def test_performance_interval_across_seeds_is_student_t():
    table = make_paper_table(runs=3, items=2)
    fig = plot.plot_performance(table, language="php", identifiers=["python_only"])
    (ax,) = fig.axes
    g = _by_gid(ax)
    runs = np.array([[paper_acc("php", "python_only", s, run=r) for s in PAPER_STEPS] for r in range(3)])
    np.testing.assert_allclose(g["php:python_only"].get_ydata(), runs.mean(axis=0))
    half = stats.t.ppf(0.975, 2) * runs.std(axis=0, ddof=1) / np.sqrt(3)
    _xs, lo, hi = _band(g["band:php:python_only"])
    np.testing.assert_allclose(hi - lo, 2 * half, rtol=1e-9)


def test_performance_names_the_languages_it_has(paper):
    with pytest.raises(ValueError, match=r"language 'klingon'; the table has php, python"):
        plot.plot_performance(paper, language="klingon")
    with pytest.raises(ValueError, match=r"no rows with metric 'pass@1' of probe 'babel'"):
        plot.plot_performance(paper, metric="pass@1")


# --------------------------------------------------------------------------- Figure 3
def test_working_language_is_figure_3(paper):
    fig = plot.plot_working_language(paper, stages={"php": STAGES})
    layers_ax, ax = fig.axes
    # (a) per layer at the first, middle and last checkpoint with a kept prompt
    kept_steps = [s for s in PAPER_STEPS if paper_kept(s) > 0]
    chosen = [kept_steps[0], kept_steps[int(np.round((len(kept_steps) - 1) / 2))], kept_steps[-1]]
    g = _by_gid(layers_ax, "layer:share_python_top1:")
    assert sorted(g) == sorted(f"layer:share_python_top1:{s:g}" for s in chosen)
    for s in chosen:
        ln = g[f"layer:share_python_top1:{s:g}"]
        assert np.allclose(np.round(ln.get_xdata()), range(1, PAPER_LAYERS + 1))  # offset a little per checkpoint
        np.testing.assert_allclose(ln.get_ydata(), [paper_layer_share(k, s) for k in range(1, PAPER_LAYERS + 1)])
    legend = [t.get_text() for t in layers_ax.get_legend().get_texts()]
    assert legend[:3] == [f"step {s:g} (n={paper_kept(s)})" for s in chosen]
    assert "excluded_layers" in _by_gid(layers_ax)  # the final layer, left out of Eq. 1 (exclude_last = 1)
    # (b) over checkpoints: the share, its Wilson band on the kept prompts, n under every point
    g = _by_gid(ax)
    share = np.array([paper_share(s) if paper_kept(s) else np.nan for s in PAPER_STEPS])
    np.testing.assert_allclose(g["share:php"].get_ydata().astype(float), share)
    xs, lo, hi = _band(g["band:share:php"])
    n = np.array([paper_kept(s) for s in PAPER_STEPS], float)
    ok = n > 0
    share, n = share[ok], n[ok]
    z = 1.959963984540054
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    np.testing.assert_allclose(xs, PAPER_STEPS[ok])  # no band where no prompt is kept
    np.testing.assert_allclose(lo, centre - half)
    np.testing.assert_allclose(hi, centre + half)
    labels = [t for t in ax.texts if t.get_gid() == "n:php"]
    shown = {float(t.get_position()[0]): t.get_text() for t in labels}
    assert shown[158.0] == str(paper_kept(158)) and shown[0.0] == "0"
    assert all(shown[x] == str(paper_kept(x)) for x in shown)
    assert len(shown) >= len(PAPER_STEPS) - 2  # labels too close to a neighbour are left out, not overprinted
    hollow = [c for c in ax.collections if len(c.get_offsets()) and np.allclose(c.get_facecolor()[0][:3], 1.0)]
    assert [tuple(np.asarray(c.get_offsets(), float)[:, 0]) for c in hollow] == [(8.0,)]  # n = 7 < 10
    crosses = [c for c in ax.collections if len(c.get_offsets()) and c not in hollow
               and c.get_gid() is None and not np.allclose(c.get_facecolor()[0][:3], 1.0)]
    assert [tuple(np.asarray(c.get_offsets(), float)[:, 0]) for c in crosses] == [(0.0, 1.0, 2.0, 4.0)]
    assert {"stage:translation", "stage:transition", "stage:stabilization"} <= set(g)
    assert ax.get_xscale() == "symlog" and ax.get_ylabel() == "Python share of the lens' top-1 (Eq. 1)"
    _assert_points_inside(ax)
    _no_raw_names(fig)
    assert [t.get_text() for t in ax.get_legend().get_texts()][:4] == ["php", "95% interval", "n < 10 prompts",
                                                                       "no share (NaN): no prompt kept\nor no counted top-1 in either set"]


def test_working_language_without_layer_rows_is_one_panel():
    fig = plot.plot_working_language(make_table())
    (ax,) = fig.axes
    assert ax.get_xscale() == "linear"
    _assert_points_inside(ax)


# --------------------------------------------------------------------------- LAPE
def test_lape_counts_against_the_null_band(paper):
    fig = plot.plot_lape_counts(paper)
    ax, gap_ax = fig.axes
    g = _by_gid(ax)
    lo, mean, hi = PAPER_NULL
    for lang in ("php", "python"):
        np.testing.assert_allclose(g[f"lape:{lang}"].get_ydata(), [paper_lape(lang, s) for s in PAPER_STEPS])
        np.testing.assert_allclose(g[f"null:{lang}"].get_ydata(), mean)
        _xs, blo, bhi = _band(g[f"band:null:{lang}"])
        np.testing.assert_allclose(blo, lo)
        np.testing.assert_allclose(bhi, hi)
    # the title says where the counts lie, counted here from the generating function
    for lang in ("php", "python"):
        counts = np.array([paper_lape(lang, s) for s in PAPER_STEPS])
        below, inside = int((counts < lo).sum()), int(((counts >= lo) & (counts <= hi)).sum())
        assert f"{lang}: below the null band at {below} of {len(PAPER_STEPS)} checkpoints" in ax.get_title()
        if inside:
            assert f"inside it at {inside}" in ax.get_title().split(f"{lang}:")[1].split("\n")[0]
    gaps = _by_gid(gap_ax, "gap:")
    np.testing.assert_allclose(gaps["gap:prob_gap_mean"].get_ydata(), 0.5)
    np.testing.assert_allclose(gaps["gap:null_prob_gap_mean"].get_ydata(), 0.06)
    assert ax.get_xscale() == gap_ax.get_xscale() == "symlog"  # the same x axis as the other figures
    _assert_points_inside(ax)
    assert ax.get_ylim()[1] >= hi
    _no_raw_names(fig)


def test_lape_counts_of_an_old_table_compare_with_the_null_mean():
    table = make_table()  # null mean 3.0 only, no band rows
    ax = plot.plot_lape_counts(table).axes[0]
    for lang in LANGS:
        np.testing.assert_allclose(_by_gid(ax)[f"lape:{lang}"].get_ydata(), [lape_count(lang, s) for s in STEPS])
        assert f"band:null:{lang}" not in _by_gid(ax)
        assert f"{lang}: above the null mean at {len(STEPS)} of {len(STEPS)} checkpoints" in ax.get_title()


def test_lape_layers(paper):
    ax = plot.plot_lape_layers(make_table()).axes[0]
    heights = sorted(round(p.get_height()) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted([layer * k for k in (1, 2) for layer in range(1, N_LAYERS + 1)])


# --------------------------------------------------------------------------- the lens heatmap
def test_layer_heatmap_is_readable(paper):
    fig = plot.plot_layer_heatmap(paper, language="php")
    target_ax, python_ax, curves_ax = fig.axes[:3]
    for ax, metric in ((target_ax, "logp_target"), (python_ax, "logp_python")):
        mesh = _by_gid(ax)[f"heatmap:{metric}"]
        rows = paper[(paper.metric == metric) & paper.layer.notna()]
        expect = np.exp(rows.pivot_table(index="step", columns="layer", values="value").to_numpy())
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(expect.shape), expect)
        assert isinstance(mesh.norm, LogNorm) and mesh.norm.vmin <= expect.min()  # a log scale fitted to the data
        assert len(ax.texts) == expect.size  # every cell's value written in it
    assert target_ax.get_title() == "P(php identifier)" and target_ax.get_ylabel() == "training step"
    curves = _by_gid(curves_ax, "curve:")
    assert sorted(curves) == sorted(f"curve:{m}:{s:g}" for m in ("logp_target", "logp_python") for s in (0, 158))
    assert curves_ax.get_yscale() == "log"
    with pytest.raises(ValueError, match=r"language 'klingon'; the table has php"):
        plot.plot_layer_heatmap(paper, language="klingon")


def test_save_figure_writes_png_and_svg(paper, tmp_path):
    paths = plot.save_figure(plot.plot_working_language(paper), tmp_path / "wl")
    assert sorted(p.name for p in paths) == ["wl.png", "wl.svg"]
    png = (tmp_path / "wl.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "<svg" in (tmp_path / "wl.svg").read_text()[:2000]
    assert not plt.get_fignums()  # closed after writing
