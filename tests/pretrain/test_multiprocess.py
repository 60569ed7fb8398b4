"""Two CPU processes (DDP over gloo, launched by `accelerate launch`) follow the single-process run."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pretrain.snapshots import read_log
from pretrain.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path, make_cfg, seed_run_dir):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert accelerate, "accelerate CLI not found"
    cfg = make_cfg(optim={"batch_size": 8, "warmup": 4, "lr": 3e-3, "steps": 12})
    single = tmp_path / "single"
    seed_run_dir(single)
    train(cfg, single)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(cfg.to_yaml())
    out = tmp_path / "ddp"
    seed_run_dir(out)
    # `--cpu` would select accelerate's simple launcher (one process without mpirun); the torchrun
    # launcher (--multi_gpu) starts two processes and the loop, seeing no GPU, runs them on gloo.
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "pretrain.cli", str(recipe), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    a, b = read_log(single / "loss.jsonl"), read_log(out / "loss.jsonl")
    assert [r["step"] for r in b] == list(range(1, 13))
    np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], rtol=1e-5)
    np.testing.assert_allclose([r["grad_norm"] for r in b], [r["grad_norm"] for r in a], rtol=1e-4)
    assert [r["tokens"] for r in b] == [r["tokens"] for r in a]
    for row_a, row_b in zip(a, b):
        assert row_b["loss_by_language"] == pytest.approx(row_a["loss_by_language"], rel=1e-5)
    wa = load_file(str(single / "checkpoint-12" / "model.safetensors"))
    wb = load_file(str(out / "checkpoint-12" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
    va, vb = read_log(single / "val.jsonl"), read_log(out / "val.jsonl")
    assert [(r["step"], r["language"], r["tokens"]) for r in vb] == [(r["step"], r["language"], r["tokens"]) for r in va]
    np.testing.assert_allclose([r["loss"] for r in vb], [r["loss"] for r in va], rtol=1e-5)
    assert sorted(p.name for p in (out / "resume" / "state-12").iterdir()) == [
        "optimizer.bin", "pytorch_model.bin", "random_states_0.pkl", "random_states_1.pkl", "trainer.json"]
