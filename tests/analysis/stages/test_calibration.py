"""Stage detection calibrated against noise (docs/sweep.md "Stages"; benchmarks/stages.py measures the
same families on other seeds and more curves).

The curves here are drawn independently of the benchmark's generators and seeds.
"""
import math

import numpy as np
import pytest
from scipy import stats

from lensprobe.analysis.stages import detect_stages


def ar1_noise(rng, n, phi=0.8, innovation=0.03):
    e = rng.normal(0, innovation, n)
    out = np.empty(n)
    out[0] = e[0] / math.sqrt(1 - phi ** 2)          # start in the stationary distribution
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def rise_decline_flat(n):
    """0.2 -> 0.5 over the first third, -> 0.25 over the second, flat after (rise 0.3, decline 0.25)."""
    t = np.arange(n) / (n - 1)
    return np.interp(t, [0, 1 / 3, 2 / 3, 1], [0.2, 0.5, 0.25, 0.25])


FAMILIES = {
    # name: (draw(rng) -> curve, limit on the share of curves with any stage)
    "iid": (lambda rng: 0.5 + rng.normal(0, 0.05, 20), 0.05),
    "ar1": (lambda rng: 0.5 + ar1_noise(rng, 30), 0.10),
    "walk": (lambda rng: 0.5 + np.cumsum(rng.normal(0, 0.02, 20)), 0.15),
}


def share_with_stages(draw, n_curves, seed, **kwargs):
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(n_curves):
        y = draw(rng)
        found += detect_stages(np.arange(y.shape[-1]) * 25.0, y, n_boot=0, **kwargs).has_stages
    return found / n_curves


def decline_power(n_curves, seed, n=30, noise=0.05):
    rng = np.random.default_rng(seed)
    hits = sum(detect_stages(np.arange(n) * 25.0, rise_decline_flat(n) + rng.normal(0, noise, n),
                             n_boot=0).stage("transition") is not None for _ in range(n_curves))
    return hits / n_curves


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_noise_gets_few_stages(family):
    draw, limit = FAMILIES[family]
    assert share_with_stages(draw, 100, seed=9100) <= limit


def test_planted_decline_is_found():
    assert decline_power(100, seed=9200) >= 0.80  # required: >= 0.70


def test_autocorrelation_check_and_minimum_effect_are_what_keep_correlated_noise_out():
    draw = FAMILIES["ar1"][0]
    off = share_with_stages(draw, 100, seed=9300, max_autocorr=1.0, min_abs_effect=0.0)
    on = share_with_stages(draw, 100, seed=9300)
    assert off >= 0.10 and on <= off / 2, (off, on)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_noise_gets_few_stages_many_curves(family):
    draw, limit = FAMILIES[family]
    n = 400
    k = round(share_with_stages(draw, n, seed=9400) * n)
    assert stats.binomtest(k, n).proportion_ci(method="exact").high <= limit


@pytest.mark.slow
def test_planted_decline_is_found_many_curves():
    n = 400
    k = round(decline_power(n, seed=9500) * n)
    assert stats.binomtest(k, n).proportion_ci(method="exact").low >= 0.70


def test_false_stages_from_correlated_noise_get_low_confidence():
    rng = np.random.default_rng(9600)
    steps = np.arange(30) * 25.0
    false_conf = []
    for i in range(250):
        y = 0.5 + ar1_noise(rng, 30)
        if detect_stages(steps, y, n_boot=0).has_stages:
            false_conf.append(min(detect_stages(steps, y, n_boot=60, seed=i).confidence.values()))
    rng = np.random.default_rng(9601)
    true_conf = [min(detect_stages(steps, rise_decline_flat(30) + rng.normal(0, 0.05, 30), n_boot=60,
                                   seed=i).confidence.values()) for i in range(8)]
    assert len(false_conf) >= 3
    assert np.mean(false_conf) <= 0.75 and np.mean(false_conf) < np.mean(true_conf) - 0.15, (false_conf, true_conf)


def test_smooth_curve_is_not_refused_for_its_correlated_misfit():
    # no kinks: the piecewise-linear residuals are autocorrelated, but the decline is far above the noise
    t = np.arange(30.0)
    y = 0.25 + 0.3 * (t / 7) * np.exp(1 - t / 7) + np.random.default_rng(9700).normal(0, 0.005, 30)
    res = detect_stages(t * 25.0, y, n_boot=0)
    assert res.evidence["autocorrelated"] is True
    assert res.stage("transition") is not None
    assert any("autocorrelated" in n for n in res.notes)


def test_effects_are_contrasts_of_the_fit_with_their_own_standard_error():
    # a noiseless planted curve with breaks at checkpoints 10 and 20 and a stated noise: the rise and
    # its standard error equal an independent least-squares computation on the same design
    n, sigma = 31, 0.04
    t = np.arange(n, dtype=float)
    y = np.interp(t, [0, 10, 20, 30], [0.2, 0.5, 0.3, 0.3])
    res = detect_stages(t * 50.0, y, noise=sigma, n_boot=0)
    assert (res.peak_step, res.plateau_step) == (500.0, 1000.0)
    X = np.column_stack([np.ones(n), np.minimum(t - 10, 0), np.clip(t - 10, 0, None) - np.clip(t - 20, 0, None)])
    xtx_inv = np.linalg.inv(X.T @ X)
    for what, (i, j), truth in (("rise", (10, 0), 0.3), ("decline", (10, 20), 0.2)):
        c = X[i] - X[j]
        assert res.evidence[what] == pytest.approx(truth, abs=1e-9)
        assert res.evidence[f"{what}_se"] == pytest.approx(sigma * math.sqrt(c @ xtx_inv @ c), rel=1e-6)
        assert res.evidence[f"{what}_threshold"] == pytest.approx(max(3 * res.evidence[f"{what}_se"], 0.10))


def test_minimum_absolute_effect_refuses_small_but_clear_stages_and_can_be_overridden():
    t = np.arange(30.0)
    y = np.interp(t, [0, 10, 20, 29], [0.40, 0.46, 0.41, 0.41]) + np.random.default_rng(9800).normal(0, 0.002, 30)
    default = detect_stages(t, y, n_boot=0)
    assert default.stages == [] and default.evidence["min_abs_effect"] == 0.10
    assert any("minimum absolute effect" in n for n in default.notes)
    lowered = detect_stages(t, y, n_boot=0, min_abs_effect=0.02)
    assert [s.name for s in lowered.stages] == ["translation", "transition", "stabilization"]
    # not a 0-1 scale (a loss): no default minimum, and the notes say so
    loss = detect_stages(t, 3.0 - 10 * y, higher_is_better=False, n_boot=0)
    assert loss.evidence["min_abs_effect"] == 0.0 and any("not on a 0-1 scale" in n for n in loss.notes)
    assert [s.name for s in loss.stages] == ["translation", "transition", "stabilization"]


def test_seeds_tell_a_random_walk_from_a_trend():
    rng = np.random.default_rng(9900)
    steps = np.arange(20) * 25.0
    walks = sum(detect_stages(steps, 0.5 + np.cumsum(rng.normal(0, 0.02, (3, 20)), axis=1), n_boot=0).has_stages
                for _ in range(60))
    assert walks <= 3
    # the planted curve with a random walk on top of each of 5 seeds is still found
    found = 0
    for _ in range(30):
        Y = rise_decline_flat(30) + rng.normal(0, 0.05, (5, 30)) + np.cumsum(rng.normal(0, 0.02, (5, 30)), axis=1)
        found += detect_stages(np.arange(30) * 25.0, Y, n_boot=0).stage("transition") is not None
    assert found >= 24


def test_seed_standard_error_is_student_t_over_the_per_seed_contrasts():
    rng = np.random.default_rng(9950)
    n, k = 31, 4
    t = np.arange(n, dtype=float)
    Y = np.interp(t, [0, 10, 20, 30], [0.2, 0.5, 0.3, 0.3]) + rng.normal(0, 0.01, (k, n))
    res = detect_stages(t * 10.0, Y, n_boot=0)
    assert (res.peak_step, res.plateau_step) == (100.0, 200.0)
    X = np.column_stack([np.ones(n), np.minimum(t - 10, 0), np.clip(t - 10, 0, None) - np.clip(t - 20, 0, None)])
    coef = np.linalg.lstsq(X, Y.T, rcond=None)[0]                       # [3, k]: one fit per seed
    rises = (X[10] - X[0]) @ coef
    assert res.evidence["rise"] == pytest.approx(rises.mean())
    t975 = stats.t.ppf(0.975, k - 1)
    assert res.evidence["rise_se"] == pytest.approx(rises.std(ddof=1) / math.sqrt(k) * t975 / 1.96)
    assert res.evidence["n_seeds"] == k and res.evidence["min_abs_effect"] == 0.0
    boot = detect_stages(t * 10.0, Y, n_boot=30)
    assert boot.evidence["bootstrap"]["method"] == "seeds" and min(boot.confidence.values()) >= 0.9
    with pytest.raises(ValueError, match="not both"):
        detect_stages(t, Y, interval=np.full(n, 0.02))
    with pytest.raises(ValueError, match="not both"):
        detect_stages(t, Y, noise=0.02)


def test_bootstrap_is_stationary_block_and_reproducible():
    rng = np.random.default_rng(9990)
    y = rise_decline_flat(30) + rng.normal(0, 0.05, 30)
    a = detect_stages(np.arange(30.0), y, n_boot=40, seed=3)
    b = detect_stages(np.arange(30.0), y, n_boot=40, seed=3)
    assert a.confidence == b.confidence and a.confidence
    info = a.evidence["bootstrap"]
    assert info["method"].startswith("stationary block bootstrap") and 2.0 <= info["mean_block_length"] <= 7.5


@pytest.mark.parametrize("kwargs, needle", [
    (dict(min_abs_effect=-0.1), "min_abs_effect"), (dict(persistence=1.0), "persistence"),
    (dict(max_autocorr=-1.0), "max_autocorr"), (dict(noise=0.0), "noise"), (dict(min_effect=0), "min_effect"),
])
def test_bad_options(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        detect_stages(np.arange(10.0), np.arange(10.0) / 10, **kwargs)


def test_cli_passes_the_minimum_absolute_effect(tmp_path, capsys):
    import json

    import pandas as pd

    from lensprobe.cli import main

    t = np.arange(30.0)
    y = np.interp(t, [0, 10, 20, 29], [0.40, 0.46, 0.41, 0.41]) + np.random.default_rng(9800).normal(0, 0.002, 30)
    table = pd.DataFrame(dict(step=t * 10, checkpoint=[f"checkpoint-{int(s * 10)}" for s in t], probe="babel",
                              language="php", identifier="python_only", layer=None, metric="line_acc", value=y, n=40))
    (tmp_path / "results").mkdir()
    for name, g in table.groupby("checkpoint"):
        g.to_parquet(tmp_path / "results" / f"{name}.parquet", index=False)
    argv = ["stages", str(tmp_path), "--metric", "line_acc", "--n-boot", "0"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "stages.json").read_text())["php"]["stages"] == []
    assert main(argv + ["--min-abs-effect", "0.02"]) == 0
    got = json.loads((tmp_path / "stages.json").read_text())["php"]
    assert [s["name"] for s in got["stages"]] == ["translation", "transition", "stabilization"]
    assert got["evidence"]["min_abs_effect"] == 0.02
    capsys.readouterr()
