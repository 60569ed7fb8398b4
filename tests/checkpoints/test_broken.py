"""Broken checkpoints are reported with path and reason, and skipped."""
from __future__ import annotations

import json
import struct

import pytest
import torch

from lensprobe.checkpoints import CheckpointSeries, CheckpointWarning
from lensprobe.testing import tiny_model


def _break_run(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2, 3, 4, 5, 6, 7], tokenizer=tokenizer)
    # 2: corrupt header
    f = run / "checkpoint-2" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:8] + b"{garbage" + data[16:])
    # 3: truncated (an interrupted copy)
    f = run / "checkpoint-3" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    # 4: missing weights
    (run / "checkpoint-4" / "model.safetensors").unlink()
    # 5: unreadable config
    (run / "checkpoint-5" / "config.json").write_text("{not json")
    # 6: header length pointing beyond the end of the file
    f = run / "checkpoint-6" / "model.safetensors"
    f.write_bytes(struct.pack("<Q", 10**9) + f.read_bytes()[8:])
    return run


def test_broken_checkpoints_are_reported_and_skipped(tmp_path, tools, tokenizer):
    run = _break_run(tmp_path, tools, tokenizer)
    with pytest.warns(CheckpointWarning, match="5 broken checkpoint"):
        series = CheckpointSeries(run)
    assert [c.name for c in series] == ["checkpoint-1", "checkpoint-7"]
    reasons = {c.name: c.reason for c in series.broken}
    assert set(reasons) == {f"checkpoint-{i}" for i in (2, 3, 4, 5, 6)}
    assert str(run / "checkpoint-2" / "model.safetensors") in reasons["checkpoint-2"]
    assert "corrupt safetensors header" in reasons["checkpoint-2"]
    assert "truncated" in reasons["checkpoint-3"]
    assert "missing weights" in reasons["checkpoint-4"] and str(run / "checkpoint-4") in reasons["checkpoint-4"]
    assert "unreadable config" in reasons["checkpoint-5"] and "config.json" in reasons["checkpoint-5"]
    assert "header length" in reasons["checkpoint-6"]
    df = series.to_dataframe()
    assert list(df["status"]) == ["ok", "ok"] + ["broken"] * 5
    assert df.loc[df["name"] == "checkpoint-4", "reason"].item() == reasons["checkpoint-4"]
    # iteration walks over the good ones only
    steps = [c.step for c, _ in series.iter_models(check_lens=False)]
    assert steps == [1, 7]


def test_missing_shard_and_pickle_only(tmp_path, tools):
    run = tmp_path / "run"
    model = tiny_model("llama", seed=0, vocab_size=101)
    tools.save_checkpoint(run / "checkpoint-1", model)
    sharded = tools.save_checkpoint(run / "checkpoint-2", model, max_shard_size="20KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    lost = sorted(set(index["weight_map"].values()))[1]
    (sharded / lost).unlink()
    pick = run / "checkpoint-3"
    pick.mkdir()
    (pick / "config.json").write_text((run / "checkpoint-1" / "config.json").read_text())
    torch.save(model.state_dict(), pick / "pytorch_model.bin")
    with pytest.warns(CheckpointWarning):
        series = CheckpointSeries(run)
    reasons = {c.name: c.reason for c in series.broken}
    assert lost in reasons["checkpoint-2"] and "missing" in reasons["checkpoint-2"]
    assert "only pickle weights (pytorch_model.bin)" in reasons["checkpoint-3"]
    assert series.steps == [1]


def test_file_corrupted_after_discovery_is_skipped_during_iteration(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2, 3])
    series = CheckpointSeries(run, hash_weights=False)
    f = run / "checkpoint-2" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.warns(CheckpointWarning, match="skipping broken checkpoint.*checkpoint-2"):
        seen = [c.name for c, _ in series.iter_models(check_lens=False)]
    assert seen == ["checkpoint-1", "checkpoint-3"]
    assert [c.name for c in series.broken] == ["checkpoint-2"]
    assert len(series) == 2
