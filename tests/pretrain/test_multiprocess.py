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
from test_train import data_for, make_cfg


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert accelerate, "accelerate CLI not found"
    cfg = make_cfg(optim={"batch_size": 8, "warmup": 4, "lr": 3e-3, "steps": 12})
    single = tmp_path / "single"
    train(cfg, single, data=data_for(cfg))
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(cfg.to_yaml())
    out = tmp_path / "ddp"
    # `--cpu` would select accelerate's simple launcher (one process without mpirun); the torchrun
    # launcher (--multi_gpu) starts two processes and the loop, seeing no GPU, runs them on gloo.
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           str(Path(__file__).with_name("run_standin.py")), str(cfg_path), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    a, b = read_log(single / "loss.jsonl"), read_log(out / "loss.jsonl")
    assert [r["step"] for r in b] == list(range(1, 13))
    np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], rtol=1e-5)
    np.testing.assert_allclose([r["grad_norm"] for r in b], [r["grad_norm"] for r in a], rtol=1e-4)
    assert [r["tokens"] for r in b] == [r["tokens"] for r in a]
    for name in ("python", "php"):
        assert [r["loss_by_language"].get(name) for r in b] == pytest.approx(
            [r["loss_by_language"].get(name) for r in a], rel=1e-5)
    wa, wb = load_file(str(single / "checkpoint-12" / "model.safetensors")), load_file(str(out / "checkpoint-12" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in (out / "resume" / "state-12").iterdir()) == [
        "optimizer.bin", "pytorch_model.bin", "random_states_0.pkl", "random_states_1.pkl", "trainer.json"]
