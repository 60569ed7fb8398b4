"""lensprobe.analysis.fit.loop: the closed loop's prediction, mixture points and statistics, each
checked against an independent NumPy / SciPy computation."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensprobe.analysis.fit import BabelRun, predicted_vs_actual, python_share_from_tokens, tokens_for_share
from lensprobe.analysis.fit.loop import (TABLE_COLUMNS, MixturePoint, bootstrap_mean, final_performance,
                                         loop_statistics, loop_table, plan_points, prediction_curve)
from lensprobe.analysis.fit.synthetic import synthetic_babel_run

B = 5_999_151  # the shipped base's Python tokens


def test_plan_points_counts_are_eq3_exactly():
    points = plan_points(eta_python=B, natural_tokens=619_113, recommended_share=0.8, cap_tokens=4 * 619_113,
                         multiples=(0.0625, 0.25))
    assert [p.name for p in points] == ["grid-0.0625", "grid-0.25", "natural", "recommended"]
    for p in points:
        assert p.eta_python == B and isinstance(p.eta_target, int)
        assert p.share == B / (B + p.eta_target)                     # Eq.3 of the written counts, exactly
    grid = {p.name: p.eta_target for p in points}
    assert grid["grid-0.0625"] == round(0.0625 * 619_113) and grid["grid-0.25"] == round(0.25 * 619_113)
    assert grid["natural"] == 619_113
    rec = points[-1]
    assert rec.feasible and rec.asked_share == 0.8
    assert rec.eta_target == round(B / 0.8 - B) == round(tokens_for_share(B, 0.8))   # inverse of Eq.3
    assert abs(rec.share - 0.8) < 1 / B                            # rounding moves the share by < 1 token


def test_plan_points_marks_what_cannot_be_trained():
    cap = 2_000_000
    for share in (0.005, 0.0, None):
        rec = plan_points(eta_python=B, natural_tokens=600_000, recommended_share=share, cap_tokens=cap)[-1]
        assert not rec.feasible and rec.eta_target == cap and rec.share == B / (B + cap)
        assert "INFEASIBLE" in rec.note and "nearest feasible" in rec.note
        want = math.inf if not share else B / share - B
        assert rec.asked_tokens == pytest.approx(want)
    tiny = plan_points(eta_python=B, natural_tokens=600_000, recommended_share=0.9999, cap_tokens=cap,
                       min_tokens=4096)[-1]
    assert not tiny.feasible and tiny.eta_target == 4096 and "fewer than 4,096" in tiny.note
    for kw, msg in [({"natural_tokens": 0}, "natural_tokens"), ({"recommended_share": 1.5}, "recommended_share"),
                    ({"cap_tokens": 2.5}, "cap_tokens"), ({"multiples": (0,)}, "multiples")]:
        args = dict(eta_python=B, natural_tokens=600_000, recommended_share=0.5, cap_tokens=cap) | kw
        with pytest.raises(ValueError, match=msg):
            plan_points(**args)


def test_prediction_point_estimate_is_predicted_vs_actuals():
    run, _ = synthetic_babel_run(seed=3)
    shares = np.array([0.001, 0.02, 0.1, 0.3, 0.7, 1.0])
    pc = prediction_curve(run, metric="line_acc", n_boot=200)
    mix = [{"run": f"m{i}", "eta_python": s, "eta_target": 1 - s, "value": 0.0} for i, s in enumerate(shares)]
    ref = predicted_vs_actual(run, mix, metric="line_acc").table
    pred = pc.predict(shares)
    np.testing.assert_allclose(pred["predicted"], ref["predicted"], rtol=0, atol=1e-12)
    assert (pred["predicted_lo"] <= pred["predicted"]).all() and (pred["predicted"] <= pred["predicted_hi"]).all()
    assert (pred["predicted_hi"] - pred["predicted_lo"] > 0).all()
    c = pc.curve
    assert (c["share_lo"] <= c["share"]).all() and (c["share"] <= c["share_hi"]).all()
    assert c["share"].between(0, 1).all() and pc.loss_noise > 0


def test_prediction_interval_matches_the_normal_interval_of_an_item_mean():
    """Without loss noise, smoothing or interpolation (window 1, a share exactly at a checkpoint) the
    prediction is one checkpoint's item mean: its bootstrap interval ~ mean +- z sd / sqrt(n)."""
    rng = np.random.default_rng(0)
    steps = np.array([0, 1, 2, 3, 4, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], float)
    n = 400
    values = rng.uniform(0, 1, size=(steps.size, n))
    rows = [{"run": "r", "step": s, "probe": "babel", "language": "php", "identifier": f"python_only:c{j}",
             "metric": "line_acc", "value": values[i, j], "n": 1} for i, s in enumerate(steps) for j in range(n)]
    loss = 1.0 - 0.008 * steps  # linear in the step: no loss noise (sigma 0), distinct shares, beta at the end
    val = pd.DataFrame({"step": steps, "language": "php", "loss": loss})
    run = BabelRun(sweep=pd.DataFrame(rows), val_log=val, target="php", total_steps=100)
    pc = prediction_curve(run, metric="line_acc", window=1, n_boot=4000, confidence=0.9)
    assert pc.loss_noise == pytest.approx(0, abs=1e-9)
    k = 7
    share_k = float(pc.curve["share"].iloc[k])
    got = pc.predict([share_k]).iloc[0]
    mean, sd = values[k].mean(), values[k].std(ddof=0)
    half = stats.norm.ppf(0.95) * sd / math.sqrt(n)
    assert got["predicted"] == pytest.approx(mean, abs=1e-12)
    assert got["predicted_lo"] == pytest.approx(mean - half, abs=0.15 * half)
    assert got["predicted_hi"] == pytest.approx(mean + half, abs=0.15 * half)


def test_bootstrap_mean_weights_runs_equally():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.2, 0.05, 30), rng.normal(0.6, 0.05, 10)
    v = np.concatenate([a, b])
    groups = np.array(["a"] * 30 + ["b"] * 10)
    mean, lo, hi = bootstrap_mean(v, groups=groups, n_boot=2000)
    assert mean == pytest.approx((a.mean() + b.mean()) / 2)
    assert lo <= mean <= hi
    # two runs resampled: a replicate draws (a, a), (a, b) or (b, b) -> the interval reaches both run means
    assert lo < a.mean() + 0.05 and hi > b.mean() - 0.05
    m1, lo1, hi1 = bootstrap_mean(a, n_boot=4000)
    half = stats.norm.ppf(0.95) * a.std() / math.sqrt(a.size)
    assert (lo1, hi1) == pytest.approx((m1 - half, m1 + half), abs=0.2 * half)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean(np.array([0.1, np.nan]))


def _table(actual_by_seed, predicted):
    points = [MixturePoint(name=n, kind=("grid" if n.startswith("grid") else n), eta_python=100, eta_target=t,
                           share=python_share_from_tokens(100, t), feasible=(n != "recommended"))
              for n, t in [("grid-a", 10), ("grid-b", 30), ("natural", 100), ("recommended", 300)]]

    class Pred:  # a PredictionCurve stand-in with a known prediction per share
        def predict(self, shares):
            p = np.array([predicted[n] for n in ("grid-a", "grid-b", "natural", "recommended")])
            return pd.DataFrame({"share": shares, "predicted": p, "predicted_lo": p - 0.05, "predicted_hi": p + 0.05})

    actual = pd.DataFrame([{"point": n, "seed": k, "run": f"{n}-seed{k}", "value": v, "lo": v - 0.02, "hi": v + 0.02,
                            "n_items": 40, "tokens_seen": 0}
                           for k, row in enumerate(actual_by_seed) for n, v in row.items()])
    return loop_table(points, Pred(), actual)


def test_loop_statistics_against_scipy_and_numpy():
    predicted = {"grid-a": 0.10, "grid-b": 0.20, "natural": 0.30, "recommended": 0.25}
    seeds = [{"grid-a": 0.31, "grid-b": 0.42, "natural": 0.50, "recommended": 0.55},
             {"grid-a": 0.29, "grid-b": 0.40, "natural": 0.47, "recommended": 0.49},
             {"grid-a": 0.33, "grid-b": 0.39, "natural": 0.52, "recommended": 0.58}]
    table = _table(seeds, predicted)
    assert list(table.columns) == TABLE_COLUMNS and len(table) == 12
    np.testing.assert_allclose(table["error"], table["predicted"] - table["actual"])
    st = loop_statistics(table, confidence=0.9)
    names = list(predicted)
    mean_actual = np.array([np.mean([s[n] for s in seeds]) for n in names])
    pred = np.array([predicted[n] for n in names])
    assert st.spearman == pytest.approx(stats.spearmanr(pred, mean_actual)[0])
    assert st.mae == pytest.approx(np.abs(pred - mean_actual).mean())
    d = np.array([s["recommended"] - s["natural"] for s in seeds])
    half = stats.t.ppf(0.95, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (st.rec_minus_nat, st.rec_minus_nat_lo, st.rec_minus_nat_hi) == pytest.approx(
        (d.mean(), d.mean() - half, d.mean() + half))
    assert st.n_points == 4 and st.n_seeds == 3 and st.covered == 0 and not st.recommended_feasible
    assert "3 seeds" in st.rec_minus_nat_method
    one = loop_statistics(_table(seeds[:1], predicted), item_differences=np.array([0.1, 0.0, 0.05, 0.08]))
    assert one.rec_minus_nat == pytest.approx(0.05) and "4 items" in one.rec_minus_nat_method
    assert one.rec_minus_nat_lo <= 0.05 <= one.rec_minus_nat_hi


def test_final_performance_reads_the_last_step_items():
    rows = [{"run": "m", "step": st, "probe": "babel", "language": lang, "identifier": f"{split}:c{j}",
             "metric": "line_acc", "value": (j % 4) / 4 + (0.5 if st == 20 else 0) * (lang == "php"), "n": 1}
            for st in (0, 20) for lang in ("php", "python") for split in ("python_only", "shared", "control")
            for j in range(8)]
    rows.append({"run": "m", "step": 20, "probe": "babel", "language": "php", "identifier": "python_only",
                 "metric": "line_acc", "value": 99.0, "n": 8})  # a split summary: ignored
    got = final_performance(pd.DataFrame(rows), metric="line_acc", language="php",
                            identifiers=("python_only", "shared"), n_boot=500)
    assert got["step"] == 20 and got["n_items"] == 16
    assert got["value"] == pytest.approx(np.mean([(j % 4) / 4 + 0.5 for j in range(8)]))
    assert got["lo"] <= got["value"] <= got["hi"]
    with pytest.raises(ValueError, match="no per-item"):
        final_performance(pd.DataFrame(rows), metric="pass@1", language="php", identifiers=("shared",))
