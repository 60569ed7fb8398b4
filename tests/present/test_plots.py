"""Figures of a synthetic sweep table: the drawn data equal the table's numbers."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from lensprobe.analysis.stages import detect_stages
from lensprobe.present import figures as plot
from lensprobe.testing.tables import (LANGS, N_LAYERS, SPLITS, STEPS, lape_count, line_acc, logp, make_table,
                                      python_share)


@pytest.fixture(scope="module")
def table():
    return make_table()


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_performance_lines_bands_and_stage_shading(table):
    curve = np.array([line_acc("php", "python_only", s) for s in STEPS])
    stages = detect_stages(STEPS, curve, n_boot=0, language="php")
    fig = plot.plot_performance(table, metric="line_acc", probe="babel", language="php", stages=stages)
    ax = fig.axes[0]
    lines = _lines(ax)
    assert set(lines) == {f"{lang}: {split}" for lang in LANGS for split in SPLITS}
    for lang in LANGS:
        for split in SPLITS:
            ln = lines[f"{lang}: {split}"]
            np.testing.assert_allclose(ln.get_xdata().astype(float), STEPS)
            np.testing.assert_allclose(ln.get_ydata().astype(float), [line_acc(lang, split, s) for s in STEPS])
            assert ln.get_linestyle() == ("-" if lang == "php" else "--")
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # one bootstrap band per line
    top = max(bands[0].get_paths()[0].vertices[:, 1])
    assert top == pytest.approx(max(line_acc("php", "python_only", s) for s in STEPS) + 0.04)
    spans = [p for p in ax.patches if p.get_label() in ("translation", "transition", "stabilization")]
    assert [p.get_label() for p in spans] == [s.name for s in stages.stages]
    x0, x1 = spans[0].get_x(), spans[0].get_x() + spans[0].get_width()
    assert (x0, x1) == (stages.stages[0].start_step, stages.stages[0].end_step)
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "line_acc"


def test_shading_accepts_the_stages_json_form(table):
    curve = np.array([line_acc("php", "python_only", s) for s in STEPS])
    as_dict = detect_stages(STEPS, curve, n_boot=0).to_dict()
    fig = plot.plot_performance(table, language="php", stages=as_dict)
    labels = [p.get_label() for p in fig.axes[0].patches]
    assert labels[:3] == ["translation", "transition", "stabilization"]


def test_working_language_uses_the_suite_level_rows(table):
    ax = plot.plot_working_language(table).axes[0]
    (ln,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == len(STEPS)]
    np.testing.assert_allclose(ln.get_ydata(), [python_share(s) for s in STEPS])
    assert ax.get_ylabel() == "eq1_python_share"
    ax = plot.plot_working_language(table, by_identifier=True).axes[0]
    ys = sorted(tuple(np.round(ln.get_ydata(), 6)) for ln in ax.get_lines() if len(ln.get_xdata()) == len(STEPS))
    assert ys == sorted([tuple(np.round([python_share(s) + d for s in STEPS], 6)) for d in (-0.05, 0.05)])


def test_layer_heatmap_values(table):
    fig = plot.plot_layer_heatmap(table, language="php")
    target_ax = fig.axes[0]
    mesh = target_ax.collections[0]
    grid = np.asarray(mesh.get_array()).reshape(len(STEPS), N_LAYERS)
    expect = np.exp([[logp("target", layer, s) for layer in range(1, N_LAYERS + 1)] for s in STEPS])
    np.testing.assert_allclose(grid, expect)
    assert target_ax.get_xlabel() == "layer" and target_ax.get_ylabel() == "step"


def test_lape_figures(table):
    ax = plot.plot_lape_counts(table).axes[0]
    # seaborn labels legend proxies; the data lines share their colour (solid: real, dashed: null)
    colour = {ln.get_label(): ln.get_color() for ln in ax.get_lines() if ln.get_label() in LANGS}
    data = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == len(STEPS)]
    for lang in LANGS:
        solid = [ln for ln in data if ln.get_color() == colour[lang] and ln.get_linestyle() == "-"]
        dashed = [ln for ln in data if ln.get_color() == colour[lang] and ln.get_linestyle() == "--"]
        assert len(solid) == 1 and len(dashed) == 1
        np.testing.assert_allclose(solid[0].get_ydata(), [lape_count(lang, s) for s in STEPS])
        np.testing.assert_allclose(dashed[0].get_ydata(), 3.0)
    assert any(ln.get_label() == "shuffled-label null" for ln in ax.get_lines())
    ax = plot.plot_lape_layers(table).axes[0]
    heights = sorted(round(p.get_height()) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted([layer * k for k in (1, 2) for layer in range(1, N_LAYERS + 1)])


def test_missing_rows_name_what_is_missing(table):
    with pytest.raises(ValueError, match="plot_performance: no rows with .*'pass@1'"):
        plot.plot_performance(table, metric="pass@1")


def test_save_figure_writes_png_and_svg(table, tmp_path):
    paths = plot.save_figure(plot.plot_working_language(table), tmp_path / "wl")
    assert sorted(p.name for p in paths) == ["wl.png", "wl.svg"]
    png = (tmp_path / "wl.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "<svg" in (tmp_path / "wl.svg").read_text()[:2000]
