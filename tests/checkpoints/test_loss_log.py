"""Joining pretrain's loss.jsonl / val.jsonl onto the checkpoints."""
from __future__ import annotations

import json
import math
import random

import pytest

from lensprobe.checkpoints import CheckpointSeries, CheckpointWarning, load_loss_log


def _write_logs(run, *, steps=30):
    rng = random.Random(0)
    lines, val = [], []
    for s in range(1, steps + 1):
        lines.append({"step": s, "loss": 5 - s / 10 + rng.random(), "lr": 1e-3, "grad_norm": rng.random(),
                      "tokens": s * 1000, "tokens_per_s": 1e4,
                      "loss_by_language": {"python": 4 + rng.random(), "php": 6 + rng.random()}})
    # a resumed run re-logs steps 21..23 after restarting from checkpoint-20: the later lines win
    for s in (21, 22, 23):
        lines.append({"step": s, "loss": 1.0 + s / 100, "lr": 1e-3, "grad_norm": 0.1, "tokens": s * 1000,
                      "tokens_per_s": 1e4, "loss_by_language": {"python": 0.5, "php": 0.7}})
    for s in (10, 20, 30):
        for lang in ("python", "php"):
            val.append({"step": s, "tokens": s * 1000, "language": lang, "loss": rng.random() + 2,
                        "bpb": rng.random()})
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"step": 31, "loss": 0.'  # truncated last line
    (run / "loss.jsonl").write_text(text)
    (run / "val.jsonl").write_text("\n".join(json.dumps(x) for x in val) + "\n")
    return lines, val


def test_loss_join_equals_the_log_contents(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [10, 20, 30], meta=False)
    lines, val = _write_logs(run)
    with pytest.warns(CheckpointWarning, match=r"loss.jsonl:34: skipping unreadable line \(truncated"):
        series = CheckpointSeries(run, loss_window=5, hash_weights=False)
    last = {}
    for x in lines:  # independent: last occurrence of every step
        last[x["step"]] = x
    for ckpt in series:
        s = ckpt.step
        assert ckpt.train_loss == last[s]["loss"]
        window = [last[t]["loss"] for t in range(s - 4, s + 1)]
        assert ckpt.train_loss_smoothed == pytest.approx(sum(window) / len(window), rel=1e-12)
        assert ckpt.train_loss_by_language == last[s]["loss_by_language"]
        want_val = {v["language"]: v["loss"] for v in val if v["step"] == s}
        assert ckpt.val_loss == want_val
        assert ckpt.val_bpb == {v["language"]: v["bpb"] for v in val if v["step"] == s}
        assert ckpt.tokens == s * 1000 and ckpt.tokens_source == "loss_log"  # no metadata: from the log
    # step 20 smoothed window spans the resumed part only up to 20
    df = series.to_dataframe().set_index("step")
    assert df.loc[30, "train_loss"] == last[30]["loss"]
    assert df.loc[20, "val_loss_php"] == next(v["loss"] for v in val if v["step"] == 20 and v["language"] == "php")
    assert df.loc[10, "train_loss_python"] == last[10]["loss_by_language"]["python"]
    for col in ("name", "path", "step", "tokens", "weight_hash", "duplicate_of", "status", "train_loss",
                "train_loss_smoothed", "val_loss_python", "val_bpb_python"):
        assert col in df.reset_index().columns
    log = series.loss_log()
    assert list(log["step"]) == list(range(1, 31))
    assert log.set_index("step").loc[22, "loss"] == last[22]["loss"] == 1.22
    assert log.set_index("step").loc[5, "loss_php"] == last[5]["loss_by_language"]["php"]
    v = series.val_log()
    assert len(v) == 6 and set(v["language"]) == {"python", "php"}


def test_checkpoint_without_log_entry_gets_nan(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [10, 50], meta=False)
    _write_logs(run)
    with pytest.warns(CheckpointWarning):
        series = CheckpointSeries(run, hash_weights=False)
    c50 = series.by_step(50)
    assert math.isnan(c50.train_loss) and math.isnan(c50.train_loss_smoothed)
    assert c50.val_loss == {} and c50.tokens is None


def test_no_logs_and_bad_lines(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [1], meta=False)
    series = CheckpointSeries(run, hash_weights=False)
    assert series.loss_log().empty and math.isnan(series[0].train_loss)
    (run / "loss.jsonl").write_text('{"step": 1, "loss": 2.0}\n[1, 2]\n{"loss": 3}\n{"step": 2, "loss": 1.5}\n')
    with pytest.warns(CheckpointWarning) as rec:
        df = load_loss_log(run / "loss.jsonl")
    msgs = [str(w.message) for w in rec]
    assert any("loss.jsonl:2: skipping line without a 'step'" in m for m in msgs)
    assert any("loss.jsonl:3: skipping line without a 'step'" in m for m in msgs)
    assert list(df["loss"]) == [2.0, 1.5]


def test_other_loss_fields_are_not_languages_and_bad_steps_are_named(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [2], meta=False)
    (run / "loss.jsonl").write_text(
        '{"step": 2, "loss": 1.0, "loss_scale": 65536, "loss_by_language": {"go": 0.5}}\n')
    series = CheckpointSeries(run, hash_weights=False)
    assert series[0].train_loss_by_language == {"go": 0.5}
    assert series.loss_log().loc[0, "loss_scale"] == 65536
    (run / "loss.jsonl").write_text('{"step": "two", "loss": 1.0}\n')
    from lensprobe.checkpoints import CheckpointError
    with pytest.raises(CheckpointError, match=r"loss.jsonl: 'step' must be an integer, got 'two'"):
        load_loss_log(run / "loss.jsonl")
