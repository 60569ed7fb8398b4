"""Algorithm 1 on generated runs, checked against a direct NumPy computation."""
import json

import numpy as np
import pandas as pd
import pytest

from lensprobe.fit import (BabelRun, NoFiniteTokens, load_run, predicted_vs_actual, python_share_from_tokens,
                           read_mixture, recommend_mixture, recommend_tokens)
from lensprobe.fit.synthetic import synthetic_continual_run, write_run_dir


def _manual(run: BabelRun, target: str, eta_py: float, window: int = 5):
    sw = run.sweep[(run.sweep.metric == "final_accuracy") & (run.sweep.language == target)]
    steps = np.array(sorted(sw.step.unique()), float)
    mean = np.array([sw[sw.step == s].value.mean() for s in steps])
    half = window // 2
    smooth = np.array([mean[max(0, i - half): i + half + 1].mean() for i in range(len(mean))])
    best = int(np.argmax(smooth))
    log_steps = run.loss_log.step.to_numpy(float)
    loss = np.array([d[target] for d in run.loss_log.loss_by_language])
    alpha = loss[(log_steps >= 90) & (log_steps <= 100)].mean()
    beta = loss.min()
    lb = loss[log_steps == steps[best]][0]
    share = min(max((lb - beta) / (alpha - beta), 0), 1)
    return steps[best], share, eta_py / share - eta_py


def test_recommend_matches_manual_algorithm1():
    run = synthetic_continual_run("php", seed=1, perf_noise=0.08)
    rec = recommend_tokens(run, metric="final_accuracy", eta_python="11B", n_boot=200, seed=0)
    step, share, tokens = _manual(run, "php", 11e9)
    assert rec.best_step == step and rec.share == pytest.approx(share) and rec.tokens == pytest.approx(tokens)
    assert rec.best_checkpoint == f"step-{int(step)}"
    assert rec.resampled == "problems"
    assert rec.share_interval[0] <= rec.share <= rec.share_interval[1]
    assert rec.tokens_interval[0] <= rec.tokens <= rec.tokens_interval[1]
    assert "loss_by_language['php']" in rec.loss_source
    assert rec.curve["best"].sum() == 1
    # peak of the generated curve is near step 700 (translation stage ends there)
    assert 400 <= rec.best_step <= 1100


def test_bootstrap_interval_widens_with_noise():
    quiet = recommend_tokens(synthetic_continual_run(seed=2, perf_noise=0.01), metric="final_accuracy",
                             eta_python=11, n_boot=200)
    noisy = recommend_tokens(synthetic_continual_run(seed=2, perf_noise=0.3, n_problems=6), metric="final_accuracy",
                             eta_python=11, n_boot=200)
    width = lambda r: r.share_interval[1] - r.share_interval[0]  # noqa: E731
    assert width(noisy) > width(quiet)


def test_share_zero_at_best_checkpoint_raises():
    run = synthetic_continual_run(seed=0)
    sweep = run.sweep.copy()
    last = sweep.step.max()
    sweep.loc[sweep.step == last, "value"] = 1.0  # best checkpoint at the end = lowest loss
    log = run.loss_log.copy()
    log["loss_by_language"] = [{"php": 3.0 - 1e-4 * s} for s in log.step]  # monotone: lowest loss at the end
    with pytest.raises(NoFiniteTokens, match="no finite answer"):
        recommend_tokens(BabelRun(sweep=sweep, loss_log=log), metric="final_accuracy", eta_python=11, n_boot=0,
                         window=1)


def test_run_dict_val_log_and_errors(tmp_path):
    run = synthetic_continual_run(seed=3)
    val = pd.DataFrame({"step": run.loss_log.step, "tokens": 0, "language": "php",
                        "loss": [d["php"] for d in run.loss_log.loss_by_language], "bpb": 0.0})
    rec_val = recommend_tokens({"sweep": run.sweep, "loss_log": None, "val_log": val}, metric="final_accuracy",
                               eta_python=11, n_boot=0)
    rec_train = recommend_tokens(run, metric="final_accuracy", eta_python=11, n_boot=0)
    assert rec_val.share == pytest.approx(rec_train.share) and "val.jsonl" in rec_val.loss_source
    with pytest.raises(ValueError, match="metrics present"):
        recommend_tokens(run, metric="pass@1", eta_python=11)
    with pytest.raises(ValueError, match="no loss"):
        recommend_tokens({"sweep": run.sweep}, metric="final_accuracy", eta_python=11)


def test_run_directory_and_multilanguage_mixture(tmp_path):
    runs = {}
    for i, lang in enumerate(["php", "csharp"]):
        write_run_dir(synthetic_continual_run(lang, seed=10 + i, peak_step=500 + 300 * i), tmp_path / lang)
        runs[lang] = tmp_path / lang
    # a torn last line (interrupted writer) is tolerated
    with open(tmp_path / "php" / "loss.jsonl", "a") as fh:
        fh.write('{"step": 99999, "lo')
    mix = recommend_mixture(runs, metric="final_accuracy", eta_python="11B", n_boot=50)
    for lang in runs:
        direct = recommend_tokens(load_run(runs[lang]), metric="final_accuracy", eta_python=11e9, n_boot=0)
        assert mix.tokens[lang] == round(direct.tokens)
    out = mix.write(tmp_path / "mixture.yaml")
    doc = read_mixture(out)
    assert doc["tokens"]["python"] == 11_000_000_000
    assert set(doc["tokens"]) == {"python", "php", "csharp"}
    assert "Algorithm 1" in doc["notes"] and doc["source"]


def test_predicted_vs_actual_table():
    run = synthetic_continual_run(seed=4)
    rec = recommend_tokens(run, metric="final_accuracy", eta_python=11, n_boot=0)
    mixtures = pd.DataFrame({"run": ["1B", "2B", "5B", "10B"], "eta_python": [11] * 4,
                             "eta_target": [1, 2, 5, 10], "value": [0.4, 0.45, 0.5, 0.55]})
    res = predicted_vs_actual(run, mixtures, metric="final_accuracy")
    np.testing.assert_allclose(res.table.share, python_share_from_tokens(11, np.array([1, 2, 5, 10.0])))
    # the prediction is the continual curve read at the mixture's share: independent interpolation
    c = res.curve.sort_values("share")
    g = c.groupby("share").smoothed.mean()
    np.testing.assert_allclose(res.table.predicted, np.interp(res.table.share, g.index, g.values))
    np.testing.assert_allclose(res.table.error, res.table.predicted - res.table.actual)
    # the continual curve's shares come from Eq.2 with the same alpha/beta as Algorithm 1
    assert c.share.max() <= 1 and c.share.min() >= 0
    assert rec.share in set(np.round(res.curve.share, 12)) or np.isclose(res.curve.share, rec.share).any()
    import matplotlib
    matplotlib.use("Agg")
    ax = res.plot()
    assert ax.get_xlabel().startswith("estimated share") and len(ax.collections) >= 3


def test_single_aggregate_per_checkpoint_resamples_checkpoints():
    run = synthetic_continual_run(seed=6, n_problems=1, perf_noise=0.05)
    sweep = run.sweep.assign(identifier=None)
    rec = recommend_tokens(BabelRun(sweep=sweep, loss_log=run.loss_log), metric="final_accuracy", eta_python=11,
                           n_boot=100)
    assert rec.resampled == "checkpoints"
    assert rec.share_interval[0] <= rec.share <= rec.share_interval[1]
    step, share, tokens = _manual(run, "php", 11.0)
    assert rec.best_step == step and rec.tokens == pytest.approx(tokens)
