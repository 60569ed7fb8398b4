"""The working-language figure shows the n behind each point: the number under every point, hollow markers
below a threshold, an x where no prompt was kept (NaN), n summed over the seeds averaged into a point."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensprobe.present import figures as plot

STEPS = [0, 30, 60, 90, 120]
N = {0: 12, 30: 3, 60: 0, 90: 1, 120: 5}     # prompts kept per seed at each step


def _table():
    rows = []
    for run, shift in (("seed0", 0.0), ("seed1", 0.1)):
        for step in STEPS:
            value = np.nan if N[step] == 0 else 0.8 - step / 300 + shift
            rows.append(dict(run=run, step=step, probe="working_language", language="php", identifier=None,
                             layer=None, metric="eq1_python_share", value=value, n=N[step]))
    df = pd.DataFrame(rows)
    df["n"] = df["n"].astype("Int64")
    df["layer"] = df["layer"].astype("Int64")
    return df


def _offsets(ax, hollow: bool):
    out = []
    for coll in ax.collections:
        face = coll.get_facecolor()
        is_hollow = len(face) > 0 and np.allclose(face[0][:3], 1.0)
        if len(coll.get_offsets()) and is_hollow == hollow:
            out.extend(map(tuple, np.asarray(coll.get_offsets(), float)))
    return sorted(out)


def test_points_on_few_prompts_are_hollow_and_labelled():
    fig = plot.plot_working_language(_table())
    (ax,) = fig.axes  # no per-layer rows: one panel
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "php"]
    mean = {s: 0.8 - s / 300 + 0.05 for s in STEPS}
    np.testing.assert_allclose(line.get_ydata().astype(float), [np.nan if N[s] == 0 else mean[s] for s in STEPS])
    # n summed over both seeds: 24, 6, 0 (NaN), 2, 10 -> hollow below 10 at steps 30 and 90
    hollow = _offsets(ax, hollow=True)
    assert hollow == [(30.0, pytest.approx(mean[30])), (90.0, pytest.approx(mean[90]))]
    # the prompts behind every point, written under it (0 where none was kept)
    assert [(t.get_position()[0], t.get_text()) for t in sorted(ax.texts, key=lambda t: t.get_position()[0])] == \
        [(0, "24"), (30, "6"), (60, "0"), (90, "2"), (120, "10")]
    crosses = [c for c in ax.collections if len(c.get_offsets()) and c.get_paths() and c.get_gid() is None
               and not np.allclose(c.get_facecolor()[0][:3], 1.0)]
    assert [tuple(np.asarray(c.get_offsets(), float)[:, 0]) for c in crosses] == [(60.0,)]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["php", "95% interval", "n < 10 prompts", "no share (NaN): no prompt kept\nor no counted top-1 in either set"]


def test_threshold_is_an_option():
    ax = plot.plot_working_language(_table(), few=3).axes[0]
    assert _offsets(ax, hollow=True) == [(90.0, pytest.approx(0.8 - 90 / 300 + 0.05))]
    ax = plot.plot_working_language(_table(), few=0).axes[0]
    assert _offsets(ax, hollow=True) == []
    assert "n < 0 prompts" not in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="few"):
        plot.plot_working_language(_table(), few=-1)


def test_a_share_without_a_counted_cell_shows_its_kept_prompts():
    """Prompts kept but no layer's top-1 in either set: the share is NaN (an x), its n still shows the prompts."""
    table = _table()
    table.loc[(table.step == 60), "n"] = 4  # both seeds keep 4 prompts at step 60, yet the share stays NaN
    ax = plot.plot_working_language(table).axes[0]
    labels = {t.get_position()[0]: t.get_text() for t in ax.texts}
    assert labels[60] == "8"
    from lensprobe.present.curves import share_curve

    row = share_curve(table).set_index("step").loc[60]
    assert np.isnan(row["value"]) and row["n"] == 0 and row["kept"] == 8
