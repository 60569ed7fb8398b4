"""Slow sweep checks (``-m slow``): sharding through ``accelerate launch``, and the Babel probe from a spec."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lensprobe.cli import main
from lensprobe.sweep import read_sweep


@pytest.mark.slow
def test_accelerate_launch_shards_the_checkpoints(tiny_run, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "acc"
    proc = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lensprobe.cli", "sweep",
                           str(tiny_run), "--out", str(out), "--probe", "working_language:suite=php,limit=2",
                           "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on rank 0/2" in proc.stdout and "on rank 1/2" in proc.stdout
    assert sorted(read_sweep(out)["step"].unique()) == [0, 5, 10]


@pytest.mark.slow
def test_babel_probe_from_a_spec_matches_evaluate_babel(tmp_path, bpe):
    from transformers import AutoModelForCausalLM

    from lensprobe.babel.evaluation import evaluate_babel
    from lensprobe.testing import build_tiny_run
    from lensprobe.babel.corpus import make_splits

    run = build_tiny_run(tmp_path / "run", [0, 3], tokenizer=bpe, vocab_size=len(bpe), n_positions=1024)
    splits = make_splits(n_shared=1, n_python_only=1, n_target_only=1, n_control=1)
    path = splits.save(tmp_path / "splits.json")
    assert main(["sweep", str(run), "--out", str(tmp_path / "out"), "--probe",
                 f"babel:splits={path},execute=false,n_boot=50", "--no-progress"]) == 0
    df = read_sweep(tmp_path / "out")
    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint-3").eval()
    ref = evaluate_babel(model, bpe, splits, execute=False, n_boot=50).summary()
    got = df[(df["step"] == 3) & (df["probe"] == "babel")]
    for r in ref.itertuples():
        row = got[(got["language"] == r.language) & (got["identifier"] == r.split) & (got["metric"] == r.metric)]
        assert row["value"].item() == pytest.approx(r.value)
        lo = got[(got["language"] == r.language) & (got["identifier"] == r.split) & (got["metric"] == f"{r.metric}_lo")]
        assert lo["value"].item() == pytest.approx(r.lo)
