"""Algorithm 1 on generated runs, checked against direct NumPy computations and for coverage."""
from functools import partial

import numpy as np
import pandas as pd
import pytest

from lensprobe.analysis.fit import (BabelRun, NoFiniteTokens, alpha_window_mask, best_checkpoint_set, load_run, loss_noise,
                           predicted_vs_actual, python_share_from_tokens, read_mixture, recommend_mixture,
                           recommend_tokens, share_at_best)
from lensprobe.analysis.fit.recommend import default_loss_smoothing
from lensprobe.analysis.fit.synthetic import (algorithm1_coverage, babel_like_arrays, synthetic_babel_run,
                                     synthetic_continual_run, write_run_dir)


def _alpha_mask(steps, total, points=5):
    """The alpha window written out: 0.18%-0.2% of the run, else the first `points` logged steps from
    0.18% on, within the first 5%."""
    lo, hi, cap = 0.0018 * total, 0.002 * total, 0.05 * total
    inside = (steps >= lo) & (steps <= hi)
    if inside.sum() >= points:
        return inside
    later = np.sort(steps[(steps >= lo) & (steps <= cap)])[:points]
    return (steps >= lo) & (steps <= later.max())


def _rolling(x, w):
    return pd.Series(x).rolling(w, center=True, min_periods=1).mean().to_numpy()


def _manual(sweep, loss_steps, loss, total, eta_py, *, window=5, smooth=1):
    """Algorithm 1's point estimate from the tables with pandas/NumPy only."""
    per_step = sweep.groupby("step")["value"].mean().sort_index()
    steps = per_step.index.to_numpy(float)
    best = int(np.argmax(_rolling(per_step.to_numpy(), window)))
    curve = _rolling(loss, smooth)
    alpha = loss[_alpha_mask(loss_steps, total)].mean()
    beta = curve.min()
    share = float(np.clip((np.interp(steps[best], loss_steps, curve) - beta) / (alpha - beta), 0, 1))
    return steps[best], share, eta_py / share - eta_py


def test_recommend_matches_manual_algorithm1_on_the_held_out_loss():
    run, a = synthetic_babel_run(3)
    rec = recommend_tokens(run, metric="line_acc", eta_python="5M", n_boot=200, seed=0)
    step, share, tokens = _manual(run.sweep, a["val_steps"], a["val"], 600, 5e6)
    assert rec.best_step == step and rec.share == pytest.approx(share) and rec.tokens == pytest.approx(tokens)
    assert rec.loss_source.startswith("val.jsonl") and "held-out" in rec.loss_source
    assert rec.alpha_steps == (2, 16)                  # checkpoints 2, 4, 8, 16: from 0.18% to 5% of 600 steps
    assert rec.best_checkpoint == f"checkpoint-{int(step)}"
    assert rec.units == "items" and rec.n_units == 40 and rec.resampled.startswith("40 items")
    lo, hi = rec.share_interval
    assert lo < rec.share < hi and step in rec.candidates
    assert rec.tokens_interval[0] < rec.tokens < rec.tokens_interval[1]
    # the training loss, on request: smoothed over ~2% of the logged steps (13 of 600)
    rt = recommend_tokens(run, metric="line_acc", eta_python="5M", n_boot=0, loss_source="train")
    train = np.array([d["php"] for d in run.loss_log.loss_by_language])
    step_t, share_t, _ = _manual(run.sweep, run.loss_log.step.to_numpy(float), train, 600, 5e6, smooth=13)
    assert default_loss_smoothing("train", 600) == 13
    assert rt.share == pytest.approx(share_t) and "training batches" in rt.loss_source and rt.alpha_steps == (2, 6)


def test_interval_is_the_union_over_candidate_checkpoints_with_the_loss_noise():
    run, a = synthetic_babel_run(4)
    rec = recommend_tokens(run, metric="line_acc", eta_python=1, n_boot=2000, seed=1)
    c = rec.curve[rec.curve.candidate]
    z = 1.959963984540054            # two-sided 95% normal: the loss part gets half of the 10% error rate
    assert rec.share_interval[0] == pytest.approx(max(0, (c.share - z * c.share_sd).min()))
    assert rec.share_interval[1] == pytest.approx(min(1, (c.share + z * c.share_sd).max()))
    # the share's spread under the loss noise against the delta method for (l - beta) / (alpha - beta)
    k = rec.curve.index[rec.curve.best][0]
    sc = rec.loss_share
    d, n = sc.alpha - sc.beta, len(sc.alpha_steps)
    lk = rec.curve.loss[k]
    sd = rec.loss_noise * np.sqrt(1 / d**2 + ((lk - sc.alpha) / d**2) ** 2 + ((lk - sc.beta) / d**2) ** 2 / n)
    assert rec.curve.share_sd[k] == pytest.approx(sd, rel=0.1)
    assert rec.loss_noise == loss_noise(a["val_steps"], a["val"])      # the noise of the curve Eq.2 read
    # more loss noise -> a wider interval, through the loss part alone
    noisy, _ = synthetic_babel_run(4, val_noise=0.02)
    wide = recommend_tokens(noisy, metric="line_acc", eta_python=1, n_boot=500, resample="none")
    quiet = recommend_tokens(run, metric="line_acc", eta_python=1, n_boot=500, resample="none")
    width = lambda r: r.share_interval[1] - r.share_interval[0]  # noqa: E731
    assert width(wide) > 2 * width(quiet) > 0 and "nothing resampled" in wide.resampled


def test_generated_truth():
    # the generator's truth: the population mean over items (Gauss-Hermite) against a Monte Carlo
    # mean over 200,000 items, and Eq.2 with the noise-free loss at the best checkpoint
    mask = partial(alpha_window_mask, run_steps=600)
    a = babel_like_arrays(np.random.default_rng(0), alpha_mask=mask, n_items=200_000, lines=6)
    t = a["truth_val"]
    np.testing.assert_allclose(t.curve["mean"], a["values"].mean(axis=1), atol=0.003)
    assert t.best_step == t.curve.step[np.argmax(_rolling(t.curve["mean"].to_numpy(), 5))]
    loss = t.curve.set_index("step")["loss"]
    alpha = loss[[2, 4, 8, 16]].mean()
    assert t.alpha == pytest.approx(alpha) and t.beta == pytest.approx(loss.min())
    assert t.share == pytest.approx((loss[t.best_step] - loss.min()) / (alpha - loss.min()))


def test_interval_covers_the_true_share():
    # 300 demo-shaped runs: 40 items (line accuracy over 6 lines, item difficulty sd 1.2 on the logit
    # scale), per-step training-loss noise 0.016, held-out loss noise 0.004 at 20 checkpoints
    res = algorithm1_coverage(300)
    assert res.true_best_step == 200 and 0.05 < res.truth < 0.2
    assert res.estimate_inside == 1.0
    assert res.coverage >= 0.85, str(res)
    assert res.median_width < 0.12


@pytest.mark.slow
@pytest.mark.parametrize("source,kwargs", [("val", {}), ("train", {}), ("val", {"val_noise": 0.01, "n_items": 20}),
                                           ("val", {"peak_step": 300, "perf_height": 0.2})])
def test_interval_covers_the_true_share_large(source, kwargs):
    res = algorithm1_coverage(1000, source=source, seed=10_000, **kwargs)
    assert res.estimate_inside == 1.0 and res.coverage >= 0.85, str(res)


def test_best_checkpoint_set():
    rng = np.random.default_rng(0)
    steps = 12
    clear = np.zeros((steps, 30)) + rng.normal(0, 0.01, (steps, 30))
    clear[6] += 1.0
    best, m, cand = best_checkpoint_set(clear, window=1, n_boot=500, rng=rng)
    assert best == 6 and cand.tolist() == [k == 6 for k in range(steps)]
    flat = rng.normal(0, 0.3, (steps, 30))
    best, m, cand = best_checkpoint_set(flat, window=1, n_boot=500, rng=rng)
    assert cand[best] and cand.sum() >= 8                 # pure noise: almost any checkpoint may be best
    np.testing.assert_allclose(m, flat.mean(axis=1))
    # lower is better for losses
    best, _, cand = best_checkpoint_set(-clear, window=1, n_boot=200, rng=rng, higher_is_better=False)
    assert best == 6 and cand.sum() == 1


def _with_aggregates(run):
    """Add the per-split summary rows a Babel sweep carries beside its items (identifier = split, n > 1)."""
    sw = run.sweep.copy()
    sw["split"] = sw.identifier.str.split(":").str[0]
    agg = sw.groupby(["run", "checkpoint", "step", "tokens", "probe", "language", "metric", "split"],
                     as_index=False).agg(value=("value", "mean"), n=("value", "size"))
    agg["identifier"], agg["layer"] = agg.pop("split"), np.nan
    return agg, sw.drop(columns="split")


def test_split_means_are_never_resampled():
    run, _ = synthetic_babel_run(5)
    agg, items = _with_aggregates(run)
    both = BabelRun(sweep=pd.concat([items, agg], ignore_index=True), loss_log=run.loss_log, val_log=run.val_log,
                    target="php", total_steps=600)
    rec = recommend_tokens(both, metric="line_acc", eta_python=1, n_boot=100)
    only = recommend_tokens(run, metric="line_acc", eta_python=1, n_boot=100)
    assert rec.n_units == 40 and rec.units == "items" and rec.share_interval == only.share_interval
    # one run with only the two split means: nothing honest to resample -> refuse, or flag on request
    means = BabelRun(sweep=agg, loss_log=run.loss_log, val_log=run.val_log, target="php", total_steps=600)
    with pytest.raises(ValueError, match="aggregates of one run.*per-item rows.*several runs"):
        recommend_tokens(means, metric="line_acc", eta_python=1)
    flagged = recommend_tokens(means, metric="line_acc", eta_python=1, resample="none", n_boot=100)
    assert flagged.units == "aggregate" and flagged.resampled.startswith("nothing resampled")
    assert flagged.share == pytest.approx(only.share) and len(flagged.candidates) == 1
    # several runs of split means: the runs (seeds) are the units
    runs = []
    for seed in range(3):
        r, _ = synthetic_babel_run(20 + seed)
        a, _ = _with_aggregates(r)
        runs.append(a.assign(run=f"seed{seed}"))
    seeds = BabelRun(sweep=pd.concat(runs, ignore_index=True), loss_log=run.loss_log, val_log=run.val_log,
                     target="php", total_steps=600)
    rs = recommend_tokens(seeds, metric="line_acc", eta_python=1, n_boot=200)
    assert rs.units == "seeds" and rs.n_units == 3 and "runs (seeds)" in rs.resampled
    per_step = pd.concat(runs).groupby("step").value.mean()
    assert rs.best_step == per_step.index[np.argmax(_rolling(per_step.to_numpy(), 5))]
    with pytest.raises(ValueError, match="resample='items' needs per-item"):
        recommend_tokens(seeds, metric="line_acc", eta_python=1, resample="items")


def test_identifiers_select_the_splits_of_the_performance_curve():
    run, _ = synthetic_babel_run(6)
    agg, items = _with_aggregates(run)
    shared = items[items.identifier.str.startswith("shared:")]
    extra = shared.assign(identifier=shared.identifier.str.replace("shared:", "control:"), value=0.0)
    sweep = pd.concat([items, agg, extra], ignore_index=True)
    units = BabelRun(sweep=sweep, target="php").performance_units("line_acc", identifiers=["python_only", "shared"])
    assert units.kind == "items" and units.values.shape[1] == 40
    assert all(c.split(":")[0] in ("python_only", "shared") for c in units.columns)
    np.testing.assert_allclose(units.mean, items.groupby("step").value.mean().to_numpy())
    with pytest.raises(ValueError, match="no 'line_acc' rows .* identifiers"):
        BabelRun(sweep=sweep, target="php").performance_units("line_acc", identifiers=["target_only"])


def test_share_zero_at_best_checkpoint_raises():
    run, _ = synthetic_babel_run(0)
    sweep = run.sweep.copy()
    sweep.loc[sweep.step == sweep.step.max(), "value"] = 1.0       # best checkpoint at the end = lowest loss
    # the loss flattens over the last checkpoints: their noise decides which is lowest
    flat = 3.0 - 1e-3 * np.minimum(run.val_log.step.to_numpy(), 500)
    flat += np.random.default_rng(0).normal(0, 0.003, flat.size)
    flat[-1] = flat.min() - 1e-3                                   # ... and the last one is
    val = run.val_log.assign(loss=flat)
    with pytest.raises(NoFiniteTokens, match=r"no finite answer.*too short to show the decline.*interval on the "
                                             r"share \[0, 0\.0\d+\], i\.e\. at least \d"):
        recommend_tokens(BabelRun(sweep=sweep, loss_log=run.loss_log, val_log=val, total_steps=600), metric="line_acc",
                         eta_python=11, n_boot=200, window=1)


def test_run_sources_and_errors(tmp_path):
    run = synthetic_continual_run(seed=3)
    val = pd.DataFrame({"step": run.loss_log.step, "tokens": 0, "language": "php",
                        "loss": [d["php"] for d in run.loss_log.loss_by_language], "bpb": 0.0})
    rec_val = recommend_tokens({"sweep": run.sweep, "loss_log": None, "val_log": val}, metric="final_accuracy",
                               eta_python=11, n_boot=0, loss_smooth=13)
    rec_train = recommend_tokens(run, metric="final_accuracy", eta_python=11, n_boot=0, loss_smooth=13)
    assert rec_val.share == pytest.approx(rec_train.share) and "val.jsonl" in rec_val.loss_source
    # with both logs, auto reads the held-out loss
    both = recommend_tokens({"sweep": run.sweep, "loss_log": run.loss_log, "val_log": val}, metric="final_accuracy",
                            eta_python=11, n_boot=0)
    assert both.loss_source.startswith("val.jsonl")
    with pytest.raises(ValueError, match="metrics present"):
        recommend_tokens(run, metric="pass@1", eta_python=11)
    with pytest.raises(ValueError, match="no loss"):
        recommend_tokens({"sweep": run.sweep}, metric="final_accuracy", eta_python=11)
    with pytest.raises(ValueError, match="ends at 100% of the 3000-step run"):
        recommend_tokens(run, metric="final_accuracy", eta_python=11, init_steps=(10, 3000))


def test_run_directory_and_multilanguage_mixture(tmp_path):
    runs = {}
    for i, lang in enumerate(["php", "csharp"]):
        write_run_dir(synthetic_continual_run(lang, seed=10 + i, peak_step=500 + 300 * i), tmp_path / lang)
        runs[lang] = tmp_path / lang
    (tmp_path / "php" / "run.json").write_text('{"total_steps": 6000}')
    # a torn last line (interrupted writer) is tolerated
    with open(tmp_path / "php" / "loss.jsonl", "a") as fh:
        fh.write('{"step": 99999, "lo')
    assert load_run(runs["php"]).total_steps == 6000 and load_run(runs["csharp"]).total_steps is None
    # run.json's length places alpha's window: 10.8-12 steps of 6000, widened to 5 logged points
    assert recommend_tokens(load_run(runs["php"]), metric="final_accuracy", eta_python=1,
                            n_boot=0).alpha_steps == (20, 60)
    mix = recommend_mixture(runs, metric="final_accuracy", eta_python="11B", n_boot=50)
    for lang in runs:
        direct = recommend_tokens(load_run(runs[lang]), metric="final_accuracy", eta_python=11e9, n_boot=0)
        assert mix.tokens[lang] == round(direct.tokens)
    out = mix.write(tmp_path / "mixture.yaml")
    doc = read_mixture(out)
    assert doc["tokens"]["python"] == 11_000_000_000
    assert set(doc["tokens"]) == {"python", "php", "csharp"}
    assert "Algorithm 1" in doc["notes"] and "items" in doc["notes"] and doc["source"]
    (tmp_path / "php" / "run.json").write_text('{"total_steps": -1}')
    with pytest.raises(ValueError, match="run.json: total_steps must be a positive number"):
        load_run(runs["php"])


def test_predicted_vs_actual_table():
    run, a = synthetic_babel_run(7)
    mixtures = pd.DataFrame({"run": ["1M", "2M", "5M", "10M"], "eta_python": [5] * 4,
                             "eta_target": [1, 2, 5, 10], "value": [0.4, 0.45, 0.5, 0.55]})
    res = predicted_vs_actual(run, mixtures, metric="line_acc")
    np.testing.assert_allclose(res.table.share, python_share_from_tokens(5, np.array([1, 2, 5, 10.0])))
    # independent: Eq.2 on the held-out loss at each checkpoint, the per-step mean over items,
    # ordered by share, smoothed along that order, read at each mixture's share
    vs, vl = a["val_steps"], a["val"]
    alpha, beta = vl[_alpha_mask(vs, 600)].mean(), vl.min()
    per_step = run.sweep.groupby("step").value.mean()
    share = np.clip((np.interp(per_step.index, vs, vl) - beta) / (alpha - beta), 0, 1)
    order = np.argsort(share, kind="stable")
    smooth = _rolling(per_step.to_numpy()[order], 5)
    g = pd.Series(smooth).groupby(share[order]).mean()
    np.testing.assert_allclose(res.table.predicted, np.interp(res.table.share, g.index, g.values))
    np.testing.assert_allclose(res.table.error, res.table.predicted - res.table.actual)
    import matplotlib
    matplotlib.use("Agg")
    ax = res.plot()
    assert ax.get_xlabel().startswith("estimated share") and len(ax.collections) >= 3


def test_several_runs_with_items_resample_runs_then_items():
    parts, means = [], []
    for seed in range(3):
        r, _ = synthetic_babel_run(30 + seed)
        sw = r.sweep.assign(run=f"seed{seed}")
        if seed == 2:                                   # runs may carry different numbers of items
            sw = sw[~sw.identifier.str.endswith(("_038", "_039"))]
        parts.append(sw)
        means.append(sw.groupby("step").value.mean())
    run = BabelRun(sweep=pd.concat(parts, ignore_index=True), loss_log=r.loss_log, val_log=r.val_log, target="php",
                   total_steps=600)
    rec = recommend_tokens(run, metric="line_acc", eta_python=1, n_boot=300)
    assert rec.units == "seeds/items" and rec.n_units == 118 and "runs (seeds), then items" in rec.resampled
    mean = pd.concat(means, axis=1).mean(axis=1)           # runs weighted equally, then items
    np.testing.assert_allclose(rec.curve.value, mean.to_numpy())
    assert rec.best_step == mean.index[np.argmax(_rolling(mean.to_numpy(), 5))]
    seeds = recommend_tokens(run, metric="line_acc", eta_python=1, n_boot=300, resample="seeds")
    assert seeds.units == "seeds" and seeds.n_units == 3 and seeds.share == rec.share
