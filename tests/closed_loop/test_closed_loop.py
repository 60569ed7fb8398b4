"""The closed loop end to end on a tiny configuration: a 10-step base, a 42-step continual run,
three mixture runs trained through mixture files and `lensprobe pretrain babel-mixture`; the
mixture files' counts are checked against Eq.3 exactly and a rerun retrains nothing."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from lensprobe.analysis.fit import read_mixture, tokens_for_share
from lensprobe.analysis.fit.loop import TABLE_COLUMNS
from lensprobe.closed_loop import LoopSettings, run_loop
from lensprobe.demo import DemoSettings

TINY = LoopSettings(
    continual=DemoSettings(train_base=True, base_python_tokens=40_960, base_php_tokens=2_048,
                           continual_php_tokens=163_840, continual_python_tokens=8_192, snapshot_every=10,
                           snapshot_log_max=8, items_per_split=6, lape_tokens=1_024, execute=False, n_boot=50),
    multiples=(0.25,), cap_multiple=1.0, n_boot=200)


def _tokens(checkpoint):
    return json.loads((checkpoint / "checkpoint.json").read_text())["tokens_by_language"]


def _last(run_dir):
    return max(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop")
    summary = run_loop(out, settings=TINY, log=lambda msg: None)
    return out, summary


def test_mixture_files_hold_eq3_counts_exactly(loop):
    out, summary = loop
    base = out / "continual" / "runs" / "base" / "checkpoint-10"
    eta_py = _tokens(base)["python"]
    continual = out / "continual" / "runs" / "php-seed0"
    natural = _tokens(_last(continual))["php"] - _tokens(base)["php"]
    assert summary["eta_python"] == eta_py and summary["natural_tokens"] == natural > 0
    files = {p.stem: read_mixture(p) for p in (out / "mixtures").glob("*.yaml")}
    assert set(files) == {"grid-0.25-seed0", "natural-seed0", "recommended-seed0"}
    for name, doc in files.items():
        eq3 = doc["eq3"]
        php = doc["tokens"]["php"]
        assert eq3["eta_python"] == eta_py and eq3["eta_target"] == php
        assert eq3["share"] == eta_py / (eta_py + php)                       # Eq.3, exactly
        # the continual run's tracer ratio, at least one training window (context 256 + 1)
        assert doc["tokens"]["python"] == max(round(8_192 / 163_840 * php), 257)
        assert doc["base"] == str(base) and doc["seed"] == 0
    assert files["natural-seed0"]["tokens"]["php"] == natural
    assert files["grid-0.25-seed0"]["tokens"]["php"] == round(0.25 * natural)
    rec, point = summary["recommendation"], files["recommended-seed0"]["point"]
    share = rec["share"]
    want = math.inf if share == 0 else tokens_for_share(eta_py, share)
    php = files["recommended-seed0"]["tokens"]["php"]
    if 16 * 256 <= want <= natural:           # cap_multiple = 1: the natural corpus is the cap
        assert point["feasible"] and php == round(want)
    else:
        assert not point["feasible"] and php == (natural if want > natural else 16 * 256)
        assert "INFEASIBLE" in point["note"]


def test_every_mixture_run_trained_and_was_evaluated(loop):
    out, _ = loop
    table = pd.read_csv(out / "predicted_vs_actual.csv")
    assert list(table.columns) == TABLE_COLUMNS and len(table) == 3
    base_php = _tokens(out / "continual" / "runs" / "base" / "checkpoint-10")["php"]
    for row in table.itertuples():
        run_dir = out / "mixtures" / "runs" / row.run
        seen = _tokens(_last(run_dir))["php"] - base_php
        assert seen == row.tokens_seen and abs(seen - row.tokens) <= 16 * 256  # within one batch of the budget
        command = (run_dir / "command.txt").read_text()
        assert command.startswith("lensprobe pretrain babel-mixture ")
        assert f"--mixture {out / 'mixtures' / row.run}.yaml" in command   # trained from its mixture file
    num = table[["share", "predicted", "predicted_lo", "predicted_hi", "actual", "actual_lo", "actual_hi"]]
    assert np.isfinite(num.to_numpy(float)).all()
    assert (table.actual_lo <= table.actual).all() and (table.actual <= table.actual_hi).all()
    assert (table.predicted_lo <= table.predicted).all() and (table.predicted <= table.predicted_hi).all()
    assert (out / "figures" / "loop.png").stat().st_size > 10_000
    assert len(pd.read_csv(out / "prediction_curve.csv")) == 10   # 0,1,2,4,8,10,20,30,40,42


def test_a_rerun_resumes_without_training(loop):
    out, _ = loop
    stamps = {p: p.stat().st_mtime_ns for p in (out / "mixtures" / "runs").glob("*/checkpoint-*/model.safetensors")}
    before = pd.read_csv(out / "predicted_vs_actual.csv")
    messages = []
    run_loop(out, settings=TINY, log=messages.append)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "predicted_vs_actual.csv"), before)
    assert sum("0 to run" in m for m in messages) >= 3   # each mixture sweep: nothing left to compute


def test_the_report_shows_the_loop(loop, capsys):
    """``lensprobe report OUT/continual --loop OUT``: the section, its figure, Spearman/MAE recomputed from the CSV."""
    import base64
    import html as htmllib
    import re

    from scipy import stats

    from lensprobe.cli import main

    out, _ = loop
    report = out / "report.html"
    assert main(["report", str(out / "continual"), "--loop", str(out), "--out", str(report)]) == 0
    html = report.read_text()
    sec = htmllib.unescape(re.search(r"<section id='closed-loop'>(.*?)</section>", html, flags=re.S).group(1))
    uri = re.search(r"<figure id='figure-loop'><img alt='closed loop' src='data:image/png;base64,([A-Za-z0-9+/=]+)'",
                    html).group(1)
    assert base64.b64decode(uri) == (out / "figures" / "loop.png").read_bytes()
    per = pd.read_csv(out / "predicted_vs_actual.csv").groupby("point").agg(
        predicted=("predicted", "first"), lo=("predicted_lo", "first"), hi=("predicted_hi", "first"),
        actual=("actual", "mean"))
    mae = np.mean(np.abs(per["predicted"] - per["actual"]))
    assert re.search(rf"<td class='num'>{mae:.3f}</td>", sec)
    rho = stats.spearmanr(per["predicted"], per["actual"])[0]
    if np.isfinite(rho):
        assert f"<td class='num'>{rho:.2f} over 3 points" in sec
    else:
        assert "<td class='num'>— (fewer than 3 points or a constant side)</td>" in sec
    outside = per[(per["actual"] < per["lo"]) | (per["actual"] > per["hi"])]
    assert sec.count("The prediction is wrong at") == len(outside)
    for name in outside.index:
        assert f"The prediction is wrong at {name} (" in sec
