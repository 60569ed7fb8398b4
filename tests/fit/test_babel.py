"""Eq.2, Eq.3, Algorithm 1's inversion and the rebuttal's log-linear lines, against the paper."""
import math

import numpy as np
import pytest

from lensprobe.fit import (NoFiniteTokens, fit_log_linear, parse_tokens, python_share_from_loss,
                           python_share_from_tokens, sliding_mean, tokens_for_share)

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


def test_eq2_alpha_beta_and_clipping():
    steps = np.arange(10, 1001, 10)
    rng = np.random.default_rng(3)
    losses = 1.0 + 2.0 * np.exp(-steps / 150) + rng.normal(0, 0.002, steps.size)
    res = python_share_from_loss(steps, losses)
    window = (steps >= 90) & (steps <= 100)
    alpha, beta = losses[window].mean(), losses.min()
    assert res.alpha == pytest.approx(alpha) and res.beta == pytest.approx(beta)
    raw = (losses - beta) / (alpha - beta)
    np.testing.assert_allclose(res.raw, raw)
    np.testing.assert_allclose(res.share, np.clip(raw, 0, 1))
    # early steps (loss above alpha) give P > 1: clipped and flagged
    early = steps < 90
    assert np.all(raw[early] > 1) and np.all(res.share[early] == 1.0) and np.all(res.clipped[early])
    assert not res.clipped[steps > 200].any()
    assert res.share.min() == 0.0 and res.share.max() == 1.0
    df = res.to_dataframe()
    assert list(df.columns) == ["step", "loss", "share_raw", "share", "clipped"]
    assert res.at_loss(beta) == 0.0 and res.at_loss(alpha) == pytest.approx(1.0)


def test_eq2_errors_name_the_problem():
    with pytest.raises(ValueError, match="init_steps"):
        python_share_from_loss([200, 300], [2.0, 1.0])
    with pytest.raises(ValueError, match="not above"):
        python_share_from_loss([90, 100, 200], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        python_share_from_loss([90, 100], [1.0, float("nan")])


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


def test_parse_tokens_and_sliding_mean():
    assert parse_tokens("11B") == 11e9 and parse_tokens("100M") == 1e8 and parse_tokens("5e9") == 5e9
    assert parse_tokens(7) == 7.0
    with pytest.raises(ValueError, match="token count"):
        parse_tokens("eleven")
    v = np.array([0, 0, 5, 0, 0, 10.0])
    np.testing.assert_allclose(sliding_mean(v, window=3), [0, 5 / 3, 5 / 3, 5 / 3, 10 / 3, 5])
