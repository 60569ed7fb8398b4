"""Eq.2, Eq.3, Algorithm 1's inversion and the rebuttal's log-linear lines, against the paper."""
import math

import numpy as np
import pandas as pd
import pytest

from lensprobe.analysis.fit import (NoFiniteTokens, fit_log_linear, loss_noise, python_share_from_loss,
                           python_share_from_tokens, tokens_for_share)
from lensprobe.token_counts import parse_token_quantity

CORPUS_B = {"php": 23, "go": 11, "csharp": 16, "cpp": 28}  # Table 1, billions of tokens
ETA_PY = 11


@pytest.mark.parametrize("lang,expected", [("php", 0.3235), ("csharp", 0.4074), ("go", 0.5), ("cpp", 0.2821)])
def test_eq3_table1_token_counts(lang, expected):
    assert round(python_share_from_tokens(ETA_PY, CORPUS_B[lang]), 4) == expected


def test_eq3_vectorized_and_unit_free():
    shares = python_share_from_tokens(np.full(4, 11e9), np.array([23e9, 16e9, 11e9, 28e9]))
    np.testing.assert_allclose(shares, [11 / 34, 11 / 27, 0.5, 11 / 39])


@pytest.mark.parametrize("tokens,share", [(5, 0.6875), (10, 0.5238)])
def test_algorithm1_round_trip_optimized_corpus(tokens, share):
    p = python_share_from_tokens(ETA_PY, tokens)
    assert round(p, 4) == share
    assert tokens_for_share(ETA_PY, p) == pytest.approx(tokens, rel=1e-12)
    # the published 4-digit shares invert to the published token counts
    assert round(tokens_for_share(ETA_PY, share)) == tokens
    # PHP 5B is exact even from the rounded share (0.6875 = 11/16)
    if tokens == 5:
        assert tokens_for_share(ETA_PY, 0.6875) == 5.0


def test_share_edges():
    assert tokens_for_share(11, 1.0) == 0.0
    with pytest.raises(NoFiniteTokens, match="no finite"):
        tokens_for_share(11, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tokens_for_share(11, 1.2)
    with pytest.raises(ValueError, match="eta_python"):
        python_share_from_tokens(0, 5)
    assert issubclass(NoFiniteTokens, ValueError)


def test_eq2_paper_window_on_a_paper_length_run():
    # a 50,000-step run logged every step: alpha is the mean over steps 90-100, exactly the paper's
    steps = np.arange(1, 50_001)
    rng = np.random.default_rng(3)
    losses = 1.0 + 2.0 * np.exp(-steps / 8000) + rng.normal(0, 0.002, steps.size)
    res = python_share_from_loss(steps, losses)
    window = (steps >= 90) & (steps <= 100)
    alpha, beta = losses[window].mean(), losses.min()
    assert res.alpha == pytest.approx(alpha, rel=1e-12) and res.beta == pytest.approx(beta, rel=1e-12)
    assert res.window == (90, 100) and res.alpha_steps.tolist() == list(range(90, 101))
    raw = (losses - beta) / (alpha - beta)
    np.testing.assert_allclose(res.raw, raw)
    np.testing.assert_allclose(res.share, np.clip(raw, 0, 1))
    # early steps (loss above alpha) give P > 1: clipped and flagged
    early = steps < 80
    assert np.all(raw[early] > 1) and np.all(res.share[early] == 1.0) and np.all(res.clipped[early])
    assert not res.clipped[steps > 200].any()
    df = res.to_dataframe()
    assert list(df.columns) == ["step", "loss", "share_raw", "share", "clipped"]
    assert res.at_loss(beta) == 0.0 and res.at_loss(alpha) == pytest.approx(1.0)
    # the same window, given as absolute steps, is accepted on a paper-length run
    assert python_share_from_loss(steps, losses, init_steps=(90, 100)).alpha == pytest.approx(alpha, rel=1e-12)


def _demo_like(total=158, noise=0.0, seed=0):
    steps = np.arange(1, total + 1, dtype=float)
    clean = 0.45 + 0.55 * np.exp(-steps / 15) + 0.2 * np.exp(-steps / 200)
    return steps, clean + np.random.default_rng(seed).normal(0, noise, steps.size)


def test_eq2_window_is_relative_to_the_run():
    # the quick demo's 158 steps: the paper's fraction (0.18%-0.2%) holds no logged step, so the window
    # is widened to the first 5 logged steps (3% of the run); steps 90-100 would sit at 57%-63%
    steps, losses = _demo_like()
    res = python_share_from_loss(steps, losses)
    assert res.alpha_steps.tolist() == [1, 2, 3, 4, 5] and res.run_steps == 158
    assert res.alpha == pytest.approx(losses[:5].mean(), rel=1e-12)
    checkpoints = np.array([1, 2, 4, 8, 30, 60, 90, 120, 150, 158.0])
    shares = res.at_steps(checkpoints)
    assert int((shares >= 1).sum()) == 2          # steps 1, 2 (above their own mean); with steps 90-100: 7 of 10
    old_alpha = losses[(steps >= 90) & (steps <= 100)].mean()
    assert int((np.interp(checkpoints, steps, losses) >= old_alpha).sum()) == 7
    # the window scales with the run: a 5,000-step run averages steps 9-10
    steps5k = np.arange(1, 5001)
    assert python_share_from_loss(steps5k, 1 + np.exp(-steps5k / 500), alpha_points=2).alpha_steps.tolist() == [9, 10]
    # run_steps (run.json) sets the scale when the log stops early
    assert python_share_from_loss(steps, losses, run_steps=1580).alpha_steps.tolist() == [3, 4, 5, 6, 7]


def test_eq2_refuses_a_late_window():
    steps, losses = _demo_like()
    with pytest.raises(ValueError, match=r"init_steps=\(90, 100\) ends at 63% of the 158-step run.*start of the"):
        python_share_from_loss(steps, losses, init_steps=(90, 100))
    with pytest.raises(ValueError, match="ends past 5% of the run"):
        python_share_from_loss(steps, losses, alpha_window=(0.1, 0.2))
    # checkpoints only (val.jsonl of the quick demo): steps 1, 2, 4 lie in the first 5% (7.9 steps)
    val_steps = np.array([0, 1, 2, 4, 8, 30, 60, 90, 120, 150, 158.0])
    res = python_share_from_loss(val_steps, np.interp(val_steps, steps, losses))
    assert res.alpha_steps.tolist() == [1, 2, 4]
    # a log with a single early point cannot average alpha
    with pytest.raises(ValueError, match="at least 2 early steps"):
        python_share_from_loss([0, 1, 30, 60, 158], [1.2, 1.1, 0.6, 0.5, 0.45])


def test_eq2_smoothed_loss_beta_is_the_minimum_of_the_sliding_mean():
    steps, losses = _demo_like(noise=0.016, seed=1)
    res = python_share_from_loss(steps, losses, smooth=9)
    smooth = pd.Series(losses).rolling(9, center=True, min_periods=1).mean().to_numpy()
    assert res.beta == pytest.approx(smooth.min()) and res.beta > losses.min() + 0.01
    assert res.alpha == pytest.approx(losses[:5].mean())       # alpha averages the logged values
    np.testing.assert_allclose(res.losses, smooth)
    np.testing.assert_allclose(res.logged, losses)


def test_loss_noise_matches_the_generated_noise():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 3001, dtype=float)
    clean = 1 + 2 * np.exp(-steps / 300)
    assert loss_noise(steps, clean + rng.normal(0, 0.016, steps.size)) == pytest.approx(0.016, rel=0.08)
    # unequal spacing (snapshot schedule): pseudo-residuals are weighted by their spacing
    ck = np.array([1, 2, 4, 8, 16, 32] + list(range(50, 3001, 50)), float)
    est = [loss_noise(ck, 1 + 2 * np.exp(-ck / 3000) + rng.normal(0, 0.005, ck.size)) for _ in range(200)]
    assert np.median(est) == pytest.approx(0.005, rel=0.15)
    assert loss_noise(ck, 1 + 2 * np.exp(-ck / 3000)) < 5e-4          # curvature alone: <10% of that noise
    with pytest.raises(ValueError, match="at least 3"):
        loss_noise([1, 2], [1.0, 0.9])


def test_eq2_errors_name_the_problem():
    with pytest.raises(ValueError, match="not above"):
        python_share_from_loss([1, 2, 3, 100], [1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        python_share_from_loss([1, 2, 100], [1.0, float("nan"), 0.5])


@pytest.mark.parametrize("a,b", [(-0.3758, 1.6166), (-0.3328, 1.4973)])
def test_rebuttal_log_linear_lines_base10(a, b):
    x = np.array([1000, 2000, 5000, 10000, 20000, 30000, 40000, 50000], float)
    y = a * np.log10(x) + b
    fit = fit_log_linear(x, y, base=10)
    assert (round(fit.a, 4), round(fit.b, 4)) == (a, b)
    assert fit.r2 == pytest.approx(1.0) and fit.base == 10
    assert "log10" in str(fit)
    # base e gives different coefficients: a_e = a / ln 10, same intercept
    fe = fit_log_linear(x, y, base=math.e)
    assert fe.a == pytest.approx(a / math.log(10)) and fe.a != pytest.approx(a, abs=1e-3)
    assert fe.b == pytest.approx(b)
    np.testing.assert_allclose(fe.predict(x), fit.predict(x))


def test_log_linear_with_noise_matches_numpy():
    rng = np.random.default_rng(0)
    x = np.geomspace(100, 1e5, 40)
    y = -0.3758 * np.log10(x) + 1.6166 + rng.normal(0, 0.01, x.size)
    fit = fit_log_linear(x, y)
    a, b = np.polyfit(np.log10(x), y, 1)
    assert fit.a == pytest.approx(a) and fit.b == pytest.approx(b)
    assert abs(fit.a + 0.3758) < 0.02
    with pytest.raises(ValueError, match="positive"):
        fit_log_linear([0, 1], [1, 2])


def test_token_quantities():
    assert parse_token_quantity("11B") == 11e9 and parse_token_quantity("100M") == 1e8
    assert parse_token_quantity("5e9") == 5e9 and parse_token_quantity(7) == 7.0
    with pytest.raises(ValueError, match="token count"):
        parse_token_quantity("eleven")
