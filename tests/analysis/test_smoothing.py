"""The one sliding mean (lensprobe.analysis.smoothing): pandas' centred rolling mean is the reference,
the edges average the points available, and stage detection and Algorithm 1 both read it."""
import numpy as np
import pandas as pd
import pytest

from lensprobe.analysis.fit import best_checkpoint_set, python_share_from_loss
from lensprobe.analysis.smoothing import sliding_mean
from lensprobe.analysis.stages import detect_stages


def test_matches_pandas_centred_rolling_mean_any_width_and_row_wise():
    v = np.array([0, 0, 5, 0, 0, 10.0])
    np.testing.assert_allclose(sliding_mean(v, window=3), [0, 5 / 3, 5 / 3, 5 / 3, 10 / 3, 5])
    x = np.random.default_rng(0).normal(size=(3, 11))
    for w in (1, 2, 4, 5, 9, 20):
        ref = np.stack([pd.Series(r).rolling(w, center=True, min_periods=1).mean().to_numpy() for r in x])
        np.testing.assert_allclose(sliding_mean(x, window=w), ref)


def test_edges_average_the_points_available():
    y = np.array([1.0, 2.0, 6.0, 4.0, 5.0, 9.0])
    s = sliding_mean(y, window=5)
    assert s[0] == pytest.approx(np.mean(y[0:3]))     # not y[0]: the window does not shrink to one point
    assert s[1] == pytest.approx(np.mean(y[0:4]))
    assert s[2] == pytest.approx(np.mean(y[0:5]))
    assert s[-1] == pytest.approx(np.mean(y[-3:]))
    even = sliding_mean(y, window=4)                  # an even width reaches one point further back
    assert even[2] == pytest.approx(np.mean(y[0:4])) and even[-1] == pytest.approx(np.mean(y[-3:]))
    # the end point of white noise has variance 1/3 with width 5 (three points), not 1
    noise = np.random.default_rng(1).normal(size=(4000, 30))
    assert sliding_mean(noise, window=5)[:, -1].var() == pytest.approx(1 / 3, rel=0.1)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_window_is_validated(bad):
    with pytest.raises(ValueError, match="window"):
        sliding_mean([1.0, 2.0], window=bad)


def test_stage_detection_and_algorithm_1_read_the_same_curve():
    rng = np.random.default_rng(3)
    steps = np.arange(30) * 10.0
    y = 0.4 + rng.normal(0, 0.02, steps.size)        # flat: no stage, levels from the smoothed curve
    res = detect_stages(steps, y, window=5, n_boot=0)
    assert not res.has_stages
    assert res.evidence["final_level"] == pytest.approx(sliding_mean(y, window=5)[-5:].mean())
    assert res.evidence["peak_value"] == pytest.approx(sliding_mean(y, window=5).max())
    # Algorithm 1: the smoothed per-step mean of the units, and its argmax
    units = y[:, None] + rng.normal(0, 0.05, (steps.size, 8))
    best, curve, _ = best_checkpoint_set(units, window=5, n_boot=0)
    np.testing.assert_allclose(curve, sliding_mean(units.mean(axis=1), window=5))
    assert best == int(np.argmax(curve))
    # Eq.2: beta is the minimum of the smoothed loss
    loss = 3.0 * np.exp(-steps / 80) + 1.0 + rng.normal(0, 0.03, steps.size)
    share = python_share_from_loss(steps, loss, smooth=7, init_steps=(0.0, 10.0))
    assert share.beta == pytest.approx(sliding_mean(loss, window=7).min())
