"""Weight hashes (layout-independent content hash) and duplicate detection."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from lensprobe.checkpoints import CheckpointSeries, CheckpointWarning, read_safetensors_header, weight_hash
from lensprobe.checkpoints.hashing import state_dict_hash
from lensprobe.testing import tiny_model


def _reference_hash(files):
    """The documented formula, computed independently through safetensors' own reader."""
    entries = []
    for f in files:
        header, _ = read_safetensors_header(f)
        with safe_open(str(f), "pt") as fh:
            for name in fh.keys():
                t = fh.get_tensor(name)
                digest = hashlib.blake2b(t.reshape(-1).view(torch.uint8).numpy().tobytes(),
                                         digest_size=16).hexdigest()
                entries.append((name, header[name]["dtype"], list(t.shape), digest))
    top = hashlib.blake2b(digest_size=16)
    for e in sorted(entries):
        top.update(json.dumps(list(e)).encode() + b"\n")
    return top.hexdigest()


def test_hash_matches_formula_and_ignores_sharding_and_metadata(tmp_path, tools):
    model = tiny_model("llama", seed=3, vocab_size=101)
    one = tools.save_checkpoint(tmp_path / "one", model)
    sharded = tools.save_checkpoint(tmp_path / "sharded", model, max_shard_size="20KB")
    shards = sorted(sharded.glob("*.safetensors"))
    assert len(shards) > 1 and (sharded / "model.safetensors.index.json").exists()
    h = weight_hash([one / "model.safetensors"])
    assert h == _reference_hash([one / "model.safetensors"])
    assert weight_hash(shards) == h == _reference_hash(shards)
    # raw file bytes differ between the two layouts, the content hash does not
    assert hashlib.sha256((one / "model.safetensors").read_bytes()).hexdigest() != \
        hashlib.sha256(shards[0].read_bytes()).hexdigest()
    # the same hash from the tensors already in memory (used while iterating)
    from safetensors.torch import load_file
    state = {}
    for f in shards:
        state.update(load_file(str(f)))
    assert state_dict_hash(state, "x") == h
    # other metadata in the header: same hash
    from safetensors.torch import save_file
    save_file(load_file(str(one / "model.safetensors")), str(tmp_path / "meta.safetensors"),
              metadata={"format": "pt", "note": "re-saved"})
    assert weight_hash([tmp_path / "meta.safetensors"]) == h


def test_hash_changes_with_one_weight_and_with_dtype(tmp_path):
    from safetensors.torch import load_file, save_file

    state = {k: v.clone() for k, v in tiny_model("gpt2", seed=1, vocab_size=101).state_dict().items()
             if k != "lm_head.weight"}
    save_file(state, str(tmp_path / "a.safetensors"))
    state["transformer.h.1.mlp.c_fc.bias"][3] += 1e-6
    save_file(state, str(tmp_path / "b.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(str(tmp_path / "a.safetensors")).items()},
              str(tmp_path / "c.safetensors"))
    hashes = {weight_hash([tmp_path / f"{n}.safetensors"]) for n in "abc"}
    assert len(hashes) == 3


def test_duplicate_weights_under_another_name_are_flagged(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [10, 20, 30], tokenizer=tokenizer)
    tools.copy_checkpoint(run / "checkpoint-20", run / "checkpoint-40")
    # a re-sharded copy is still the same weights
    sharded = tiny_model("gpt2", seed=10, vocab_size=101)
    tools.save_checkpoint(run / "checkpoint-50", sharded, tokenizer=tokenizer, max_shard_size="20KB")
    with pytest.warns(CheckpointWarning, match="identical weights") as rec:
        series = CheckpointSeries(run)
    msg = " ".join(str(w.message) for w in rec)
    assert "checkpoint-20 = checkpoint-40" in msg and "checkpoint-10 = checkpoint-50" in msg
    groups = series.duplicates()
    assert [[c.name for c in g] for g in groups] == [["checkpoint-10", "checkpoint-50"],
                                                      ["checkpoint-20", "checkpoint-40"]]
    df = series.to_dataframe().set_index("name")
    assert df.loc["checkpoint-40", "status"] == "duplicate"
    assert df.loc["checkpoint-40", "duplicate_of"] == "checkpoint-20"
    assert df.loc["checkpoint-50", "duplicate_of"] == "checkpoint-10"
    assert df.loc["checkpoint-30", "status"] == "ok" and df["weight_hash"].notna().all()
    assert df.loc["checkpoint-20", "weight_hash"] == df.loc["checkpoint-40", "weight_hash"]
    assert df.loc["checkpoint-10", "weight_hash"] != df.loc["checkpoint-20", "weight_hash"]


def test_lazy_hashing(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2])
    tools.copy_checkpoint(run / "checkpoint-2", run / "checkpoint-3")
    series = CheckpointSeries(run, hash_weights=False)
    assert all(c.weight_hash is None for c in series)
    with pytest.warns(CheckpointWarning, match="checkpoint-2 = checkpoint-3"):
        groups = series.duplicates()
    assert [[c.name for c in g] for g in groups] == [["checkpoint-2", "checkpoint-3"]]
    assert series[0].weight_hash == weight_hash([run / "checkpoint-1" / "model.safetensors"])
