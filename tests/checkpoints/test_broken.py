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


def _poison(ckpt, name, value, index=(0, 0)):
    from safetensors.torch import load_file, save_file

    f = ckpt / "model.safetensors"
    state = load_file(str(f))
    state[name][index] = value
    save_file(state, str(f), metadata={"format": "pt"})
    return name


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_mark_the_checkpoint_broken_naming_the_tensor(tmp_path, tools, value):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2, 3])
    name = _poison(run / "checkpoint-2", "transformer.h.1.mlp.c_fc.weight", value)
    with pytest.warns(CheckpointWarning, match="non-finite weights"):
        series = CheckpointSeries(run)
    assert [c.name for c in series] == ["checkpoint-1", "checkpoint-3"]
    (bad,) = series.broken
    assert bad.name == "checkpoint-2" and f"tensor {name!r} has 1 NaN/inf value(s) (of 4096)" in bad.reason
    assert str(run / "checkpoint-2") in bad.reason
    assert series.to_dataframe().set_index("name").loc["checkpoint-2", "status"] == "broken"
    # not hashed up front: found when the checkpoint is read, before it reaches the model
    lazy = CheckpointSeries(run, hash_weights=False)
    with pytest.warns(CheckpointWarning, match=f"non-finite weights: tensor {name!r}"):
        seen = [c.name for c, _ in lazy.iter_models(check_lens=False)]
    assert seen == ["checkpoint-1", "checkpoint-3"] and [c.name for c in lazy.broken] == ["checkpoint-2"]


def test_the_finiteness_check_counts_every_float_dtype_and_keeps_the_hash(tmp_path):
    from safetensors.torch import save_file

    from lensprobe.checkpoints.hashing import scan_weights, weight_hash

    tensors = {"f32": torch.randn(3, 5), "bf16": torch.randn(4, 4).bfloat16(), "f16": torch.randn(7).half(),
               "f64": torch.randn(2, 2).double(), "ids": torch.arange(6)}
    save_file(tensors, str(tmp_path / "ok.safetensors"))
    clean = scan_weights([tmp_path / "ok.safetensors"])
    assert clean.nonfinite == {} and clean.hash == weight_hash([tmp_path / "ok.safetensors"])
    tensors["f32"][1, 2] = float("nan")
    tensors["bf16"][0, :3] = float("-inf")
    tensors["f16"][6] = float("inf")
    tensors["f64"][1, 1] = float("nan")
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    bad = scan_weights([tmp_path / "bad.safetensors"])
    want = {k: int((~torch.isfinite(v.float())).sum()) for k, v in tensors.items() if v.is_floating_point()}
    assert bad.nonfinite == want == {"f32": 1, "bf16": 3, "f16": 1, "f64": 1}
