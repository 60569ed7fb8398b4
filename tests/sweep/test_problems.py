"""What a sweep could not do is named, and makes the exit status 1, while the good checkpoints' rows are
written: broken (truncated, missing or NaN weights), another tokenizer, probes meeting non-finite
activations (docs/sweep.md, "When a sweep fails")."""
from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
from safetensors.torch import load_file, save_file

from lensprobe.checkpoints import CheckpointSeries
from lensprobe.cli import main
from lensprobe.engine.hooks import block_hook_points
from lensprobe.engine.protocol import Probe
from lensprobe.sweep import NonFiniteActivationsError, probe_model, read_sweep, run_sweep
from lensprobe.testing import build_tiny_run, tiny_tokenizer
from lensprobe.testing.probes import LastTokenNorm, ParamSum

QUIET = dict(progress=False, log=None)
WL = "working_language:suite=php,limit=2,exclude_last=1"


def _set_weight(ckpt, name, value):
    f = ckpt / "model.safetensors"
    state = load_file(str(f))
    state[name].fill_(value)
    save_file(state, str(f), metadata={"format": "pt"})


@pytest.fixture
def broken_run(tmp_path, bpe):
    """Five checkpoints: 0 and 8 good; 2 truncated, 4 config.json without weights, 6 with a NaN weight."""
    run = build_tiny_run(tmp_path / "run", [0, 2, 4, 6, 8], tokenizer=bpe, vocab_size=len(bpe))
    f = run / "checkpoint-2" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-500])
    (run / "checkpoint-4" / "model.safetensors").unlink()
    _set_weight(run / "checkpoint-6", "transformer.h.0.attn.c_attn.weight", float("nan"))
    return run


def _problems(err: str) -> dict[str, str]:
    lines = err[err.index("not processed (exit status 1):"):].splitlines()[1:]
    return dict(line.strip().split(": ", 1) for line in lines if line.startswith("  "))


def test_sweep_names_every_skipped_checkpoint_and_exits_1(broken_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(broken_run), "--out", str(out), "--probe", WL, "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "2 computed, 0 already done, 0 failed, 3 skipped" in captured.out
    problems = _problems(captured.err)
    assert sorted(problems) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert "truncated" in problems["checkpoint-2"] and "missing weights" in problems["checkpoint-4"]
    assert "non-finite weights: tensor 'transformer.h.0.attn.c_attn.weight'" in problems["checkpoint-6"]
    assert sorted(read_sweep(out)["step"].unique()) == [0, 8]  # the good ones are written
    # every checkpoint broken: still 1, not "0 computed ... 0 failed" and 0
    for step in (0, 8):
        shutil.rmtree(broken_run / f"checkpoint-{step}")
    assert main(["sweep", str(broken_run), "--out", str(tmp_path / "none"), "--probe", WL, "--no-progress"]) == 1
    assert sorted(_problems(capsys.readouterr().err)) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]


def test_lens_and_lape_name_the_skipped_checkpoints_and_exit_1(broken_run, tmp_path, docs_jsonl, capsys):
    out = tmp_path / "wl.parquet"
    assert main(["lens", str(broken_run), "--suite", "php", "--limit", "2", "--exclude-last", "1", "--out",
                 str(out), "--quiet"]) == 1
    assert sorted(_problems(capsys.readouterr().err)) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert sorted(pd.read_parquet(out)["step"].unique()) == [0, 8]
    out = tmp_path / "lape.parquet"
    assert main(["lape", str(broken_run), "--languages", "python", "php", "--input", f"python={docs_jsonl}",
                 "--input", f"php={docs_jsonl}", "--tokens-per-language", "256", "--seq-len", "32",
                 "--null-permutations", "1", "--out", str(out), "--quiet"]) == 1
    assert sorted(_problems(capsys.readouterr().err)) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert sorted(pd.read_parquet(out)["step"].unique()) == [0, 8]


def test_a_checkpoint_truncated_after_discovery_is_skipped_and_named(tmp_path):
    run = build_tiny_run(tmp_path / "run", [0, 1, 2])
    series = CheckpointSeries(run, hash_weights=False)
    f = run / "checkpoint-1" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-300])
    res = run_sweep(series, [ParamSum()], out_dir=tmp_path / "out", **QUIET)
    assert not res.ok and [n for n, _ in res.broken] == ["checkpoint-1"] and "truncated" in res.broken[0][1]
    assert res.computed == ["checkpoint-0", "checkpoint-2"]
    mem = run_sweep(CheckpointSeries(run, hash_weights=False), [ParamSum()], **QUIET)  # read lazily: same
    assert [n for n, _ in mem.broken] == ["checkpoint-1"] and sorted(mem.table["step"].unique()) == [0, 2]


def test_one_checkpoint_with_another_tokenizer_is_skipped_or_swept_with_the_given_one(tmp_path):
    run = build_tiny_run(tmp_path / "run", [0, 1, 2, 3])
    tok = tiny_tokenizer()
    from transformers import PreTrainedTokenizerFast

    other = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, bos_token="<t1>", eos_token="<t3>",
                                    pad_token="<t0>", unk_token="<t0>")
    other.save_pretrained(run / "checkpoint-0")  # the FIRST checkpoint differs: the shared tokenizer still wins
    res = run_sweep(run, [LastTokenNorm()], out_dir=tmp_path / "out", **QUIET)
    assert [n for n, _ in res.broken] == ["checkpoint-0"] and "tokenizer mismatch" in res.broken[0][1]
    assert res.computed == ["checkpoint-1", "checkpoint-2", "checkpoint-3"] and not res.ok
    given = run_sweep(run, [LastTokenNorm()], out_dir=tmp_path / "given", tokenizer=tok, **QUIET)
    assert given.ok and len(given.computed) == 4          # the given tokenizer for every checkpoint


def test_sweep_cli_tokenizer_mismatch_exit_codes(tiny_run, tmp_path, capsys, bpe):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    other = tiny_tokenizer(vocab_size=len(bpe))
    other.save_pretrained(run / "checkpoint-5")
    argv = ["sweep", str(run), "--out", str(tmp_path / "a"), "--probe", WL, "--no-progress"]
    assert main(argv) == 1
    problems = _problems(capsys.readouterr().err)
    assert list(problems) == ["checkpoint-5"] and "tokenizer mismatch" in problems["checkpoint-5"]
    assert sorted(read_sweep(tmp_path / "a")["step"].unique()) == [0, 10]
    tok_dir = run / "checkpoint-0"
    assert main(["sweep", str(run), "--out", str(tmp_path / "b"), "--probe", WL, "--tokenizer", str(tok_dir),
                 "--no-progress"]) == 0
    assert sorted(read_sweep(tmp_path / "b")["step"].unique()) == [0, 5, 10]


class NanShare(Probe):
    """A probe whose only row is NaN with n=0: "nothing counted", a legitimate value (docs/suites.md)."""

    name = "nan_share"

    def batches(self, tokenizer):
        return LastTokenNorm().batches(tokenizer)

    def hook_points(self, adapter):
        return block_hook_points(adapter, [1])

    def on_activation(self, point, output, batch):
        pass

    def finalize(self):
        return [dict(probe=self.name, language=None, identifier=None, layer=None, metric="share", value=math.nan,
                     n=0)]


def test_non_finite_activations_fail_the_probes_that_ran_the_model_legitimate_nan_rows_stay(tmp_path):
    run = build_tiny_run(tmp_path / "run", [0, 1, 2])
    # finite weights (3e38 < float32's max) whose products overflow: the first MLP's output is inf
    _set_weight(run / "checkpoint-1", "transformer.h.0.mlp.c_fc.weight", 3e38)
    assert CheckpointSeries(run).broken == []
    out = tmp_path / "out"
    res = run_sweep(run, [LastTokenNorm(), ParamSum(), NanShare()], out_dir=out, **QUIET)
    assert [n for n, _ in res.failed] == ["checkpoint-1"] and not res.ok
    reason = res.failed[0][1]
    assert "probe(s) last_norm, nan_share: the model produced non-finite activations (first in block 1)" in reason
    df = read_sweep(out)
    at1 = df[df["step"] == 1]
    assert set(at1["probe"]) == {"param_sum", "log"}         # the model probe never ran the model: kept
    assert math.isfinite(at1.loc[at1["probe"] == "param_sum", "value"].item())
    nan_rows = df[(df["probe"] == "nan_share")]
    assert nan_rows["step"].tolist() == [0, 2] and nan_rows["value"].isna().all()  # legitimate NaN: written
    with pytest.raises(NonFiniteActivationsError, match=r"^checkpoint checkpoint-1 \(.*\): probe\(s\) last_norm: .*block 1"):
        run_sweep(run, [LastTokenNorm()], fail_fast=True, **QUIET)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint-1")
    with pytest.raises(NonFiniteActivationsError, match="last_norm"):
        probe_model(model, [LastTokenNorm()])


def test_sweep_cli_names_a_probe_that_met_non_finite_activations(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _set_weight(run / "checkpoint-5", "transformer.h.0.mlp.c_fc.weight", 3e38)
    out = tmp_path / "out"
    assert main(["sweep", str(run), "--out", str(out), "--probe", WL, "--no-progress"]) == 1
    problems = _problems(capsys.readouterr().err)
    assert list(problems) == ["checkpoint-5"]
    assert problems["checkpoint-5"].startswith("failed: probe(s) working_language: the model produced non-finite")
    df = read_sweep(out)
    assert sorted(df.loc[df["probe"] == "working_language", "step"].unique()) == [0, 10]
    assert sorted(df.loc[df["probe"] == "log", "step"].unique()) == [0, 5, 10]  # its losses are still the run's


def test_padding_positions_are_not_watched(tmp_path):
    """NaN at a padding position (that no real token attends to: the last block's output) is not a failure;
    only real tokens count. (A NaN at padding before the last block reaches real tokens through attention,
    0 x NaN, and is caught there.)"""
    import torch

    from lensprobe.sweep import _FiniteWatch
    from transformers import AutoModelForCausalLM

    run = build_tiny_run(tmp_path / "run", [0])
    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint-0").eval()
    block = model.transformer.h[-1]
    last = f"block {len(model.transformer.h)}"

    def nan_at_padding(_m, _a, output):
        out = output[0] if isinstance(output, tuple) else output
        out[0, 0] = float("nan")  # row 0 is left-padded: position 0 is padding
        return output

    handle = block.register_forward_hook(nan_at_padding)
    ids = torch.tensor([[0, 5, 6], [7, 8, 9]])
    watch = _FiniteWatch(model)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]))
    assert watch.first is None
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert watch.first == last
    watch.close()
    handle.remove()
