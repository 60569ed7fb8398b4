"""The training loop against independent computations: a bare PyTorch loop, manual validation,
a fresh AdamW step, and uninterrupted runs (for resume after SIGKILL / stop)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import standins
from pretrain.config import ConfigError, budgets, from_dict
from pretrain.models import build_model
from pretrain.snapshots import LRSchedule, list_checkpoints, list_resume_states, read_log
from pretrain.train import train

CTX = 32
BUDGETS = {"python": 6144, "php": 3072}          # 9216 tokens = 36 steps of 8 x 32


def make_cfg(**over):
    data = {
        "data": {"languages": ["python", "php"], "tokens": dict(BUDGETS), "context": CTX},
        "model": {"n_layer": 2, "n_embd": 32, "n_head": 4},
        "optim": {"batch_size": 8, "warmup": 4, "lr": 3e-3},
        "snapshots": {"every": 10, "log_max": 4},
        "resume": {"every": 5},
        "precision": "fp32", "threads": 1, "seed": 0,
    }
    for dotted, value in over.items():
        section, _, key = dotted.partition("__")
        if key:
            data.setdefault(section, {})[key] = value
        else:
            data[section] = value
    return from_dict(data)


def data_for(cfg):
    return standins.prepared(budgets(cfg), context=cfg.data.context, seed=cfg.seed)


def strip_timing(rows):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    cfg = make_cfg()
    result = train(cfg, out, data=data_for(cfg))
    return cfg, out, result


def test_loop_equals_bare_pytorch_loop(full_run):
    """Same model init, batches, AdamW groups, clipping and lr formula -> the same losses and weights."""
    cfg, out, result = full_run
    data = data_for(cfg)
    model = build_model(cfg.model, vocab_size=len(data.tokenizer), context=CTX, seed=cfg.seed,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95))
    lr = lambda s: 3e-3 * (s + 1) / 4 if s < 4 else 3e-4 + 0.5 * 2.7e-3 * (1 + math.cos(math.pi * (s - 4) / (36 - 4)))
    losses = []
    for step in range(36):
        x, _ = data.schedule.batch(step, batch_size=8)
        logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = lr(step)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    log = read_log(out / "loss.jsonl")
    assert result.total_steps == 36 and [r["step"] for r in log] == list(range(1, 37))
    np.testing.assert_allclose([r["loss"] for r in log], losses, rtol=1e-5)
    np.testing.assert_allclose([r["lr"] for r in log], [lr(s) for s in range(36)], rtol=1e-12)
    assert log[-1]["loss"] < log[0]["loss"] - 0.5          # it learns the stand-in streams
    final = weights(out / "checkpoint-36")
    for name, p in model.state_dict().items():
        if name in final:
            torch.testing.assert_close(final[name], p, rtol=1e-4, atol=1e-5)


def test_snapshots_are_complete_hf_dirs_with_metadata(full_run):
    cfg, out, result = full_run
    ckpts = list_checkpoints(out)
    assert sorted(ckpts) == [0, 1, 2, 4, 10, 20, 30, 36]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]      # no temporaries left
    for step, path in ckpts.items():
        assert {"config.json", "model.safetensors", "tokenizer.json", "checkpoint.json"} <= {p.name for p in path.iterdir()}
        info = json.loads((path / "checkpoint.json").read_text())
        assert info["step"] == step and info["tokens"] == step * 8 * CTX
        assert sum(info["tokens_by_language"].values()) == info["tokens"]
        assert info["tokenizer_hash"] == "standin" and info["run"] == "run"
        assert info["lr"] == (0.0 if step == 0 else pytest.approx(LRSchedule(3e-3, 36, 4, "cosine", 0.1)(step - 1)))
    # the sampled rows follow the budgets: every language's tokens within one batch of its budget
    final = json.loads((ckpts[36] / "checkpoint.json").read_text())
    for lang, budget in BUDGETS.items():
        assert abs(final["tokens_by_language"][lang] - budget) <= 8 * CTX
    log = read_log(out / "loss.jsonl")
    seen = {lang: 0 for lang in BUDGETS}
    for row in log:   # loss_by_language keys are the languages in that step's batch
        assert set(row["loss_by_language"]) <= set(BUDGETS)
    assert log[-1]["tokens"] == final["tokens"]
    # the checkpoint's weights reload with transformers and give the logged validation loss
    model = AutoModelForCausalLM.from_pretrained(ckpts[36])
    data = data_for(cfg)
    val_rows = [r for r in read_log(out / "val.jsonl") if r["step"] == 36]
    assert {r["language"] for r in val_rows} == {"python", "php"}
    for row in val_rows:
        v = torch.as_tensor(data.store.tokens(row["language"], "val").astype("int64"))
        n = (len(v) - 1) // CTX
        seqs = torch.stack([v[i * CTX:(i + 1) * CTX + 1] for i in range(n)])
        with torch.no_grad():
            logits = model(input_ids=seqs[:, :-1]).logits
        want = F.cross_entropy(logits.reshape(-1, logits.size(-1)), seqs[:, 1:].reshape(-1)).item()
        assert row["loss"] == pytest.approx(want, rel=1e-5)
        assert row["bpb"] == pytest.approx(want / 3.5 / math.log(2), rel=1e-5)
        assert row["tokens"] == 36 * 8 * CTX


def test_stop_and_resume_equals_uninterrupted(full_run, tmp_path):
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    r1 = train(cfg, out, data=data_for(cfg), stop_after=13)
    assert r1.status == "stopped" and r1.step == 13
    assert sorted(list_resume_states(out)) == [10, 13]                       # the last two are kept
    r2 = train(cfg, out, data=data_for(cfg))
    assert r2.status == "completed" and r2.step == 36
    assert strip_timing(read_log(out / "loss.jsonl")) == strip_timing(read_log(ref / "loss.jsonl"))
    assert read_log(out / "val.jsonl") == read_log(ref / "val.jsonl")
    a, b = weights(out / "checkpoint-36"), weights(ref / "checkpoint-36")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((out / "command.txt").read_text().splitlines()) == 2
    # running a finished run again is a no-op
    assert train(cfg, out, data=data_for(cfg)).step == 36
    assert len(read_log(out / "loss.jsonl")) == 36


def test_sigkill_after_snapshot_then_rerun_equals_uninterrupted(full_run, tmp_path):
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(cfg.to_yaml())
    cmd = [sys.executable, str(Path(__file__).with_name("run_standin.py")), str(cfg_path), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial_seen = []
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            for p in list(out.glob("checkpoint-*")):     # a visible checkpoint is always complete
                try:
                    names = {q.name for q in p.iterdir()}
                except FileNotFoundError:
                    continue
                if not {"checkpoint.json", "model.safetensors", "config.json"} <= names:
                    partial_seen.append((p.name, names))
            if (out / "checkpoint-20").is_dir() and len(read_log(out / "loss.jsonl")) >= 22:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not partial_seen
    killed_at = len(read_log(out / "loss.jsonl"))
    assert 22 <= killed_at < 36
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert strip_timing(read_log(out / "loss.jsonl")) == strip_timing(read_log(ref / "loss.jsonl"))
    assert read_log(out / "val.jsonl") == read_log(ref / "val.jsonl")
    assert sorted(list_checkpoints(out)) == sorted(list_checkpoints(ref))
    a, b = weights(out / "checkpoint-36"), weights(ref / "checkpoint-36")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_gradient_accumulation_matches_one_big_batch(full_run, tmp_path):
    cfg, ref, _ = full_run
    acc = make_cfg(optim={"batch_size": 8, "grad_accum": 4, "warmup": 4, "lr": 3e-3}, optim__steps=12)
    r = train(acc, tmp_path / "acc", data=data_for(acc))
    assert r.step == 12
    got = [row["loss"] for row in read_log(tmp_path / "acc" / "loss.jsonl")]
    # same global batches; lr differs (12 vs 36 total steps) only after warmup, so compare the warmup steps
    want = [row["loss"] for row in read_log(ref / "loss.jsonl")][:5]
    np.testing.assert_allclose(got[:5], want, rtol=1e-5)


def test_continual_restarts_steps_continues_tokens_with_fresh_optimizer(full_run, tmp_path):
    cfg, ref, _ = full_run
    source = ref / "checkpoint-30"
    cont = make_cfg(model={"init_from": str(source)}, data={"languages": ["php", "python"],
                    "tokens": {"php": 1536, "python": 512}, "context": CTX}, seed=1)
    out = tmp_path / "cont"
    data = data_for(cont)
    r = train(cont, out, data=data)
    log = read_log(out / "loss.jsonl")
    assert log[0]["step"] == 1 and r.total_steps == 8
    base_tokens = 30 * 8 * CTX
    assert [row["tokens"] for row in log] == [base_tokens + s * 8 * CTX for s in range(1, 9)]
    first = json.loads((out / "checkpoint-0" / "checkpoint.json").read_text())
    src_info = json.loads((source / "checkpoint.json").read_text())
    assert first["tokens"] == base_tokens and first["tokens_by_language"] == src_info["tokens_by_language"]
    w0, ws = weights(out / "checkpoint-0"), weights(source)
    assert all(torch.equal(w0[k], ws[k]) for k in ws)
    # step 1 equals a FRESH AdamW step (lr warmup 3e-3/4) from the source weights
    model = AutoModelForCausalLM.from_pretrained(source)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=3e-3 / 4, betas=(0.9, 0.95))
    x, _ = data.schedule.batch(0, batch_size=8)
    loss = F.cross_entropy(model(input_ids=x[:, :-1]).logits.reshape(-1, 64), x[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    assert log[0]["loss"] == pytest.approx(loss.item(), rel=1e-5)
    w1 = weights(out / "checkpoint-1")
    for name, p in model.state_dict().items():
        if name in w1:
            torch.testing.assert_close(w1[name], p, rtol=1e-4, atol=1e-6)


def test_changed_config_is_refused_on_resume(full_run, tmp_path):
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    train(cfg, out, data=data_for(cfg), stop_after=3)
    changed = make_cfg(optim={"batch_size": 8, "warmup": 4, "lr": 1e-3})
    with pytest.raises(ConfigError, match=r"^optim\.lr: differs from the run recorded"):
        train(changed, out, data=data_for(changed))
    harmless = make_cfg(threads=1, resume={"every": 7})
    assert train(harmless, out, data=data_for(harmless), stop_after=4).step == 4


def test_budget_over_repetition_cap_fails_before_training(tmp_path):
    cfg = make_cfg(data={"languages": ["python"], "tokens": {"python": 100_000}, "context": CTX, "max_epochs": 2.0})
    small = standins.prepared({"python": 10_000}, context=CTX)          # 10k tokens x 2 epochs < 100k
    with pytest.raises(ConfigError, match=r"^data\.tokens\.python: budget 100,000 tokens is over the repetition cap"):
        train(cfg, tmp_path / "run", data=small)
    assert not list((tmp_path / "run").glob("checkpoint-*")) and not (tmp_path / "run" / "loss.jsonl").exists()


def test_cpu_bf16_uses_autocast(tmp_path):
    cfg = make_cfg(precision="bf16", optim__steps=3)
    out = tmp_path / "bf16"
    train(cfg, out, data=data_for(cfg))
    assert json.loads((out / "run.json").read_text())["precision"] == "bf16"
    ref = make_cfg(optim__steps=3)
    train(ref, tmp_path / "fp32", data=data_for(ref))
    a = [r["loss"] for r in read_log(out / "loss.jsonl")]
    b = [r["loss"] for r in read_log(tmp_path / "fp32" / "loss.jsonl")]
    assert a != b and np.allclose(a, b, rtol=2e-2)         # bf16 matmuls: close, not equal
    assert all(t.dtype == torch.float32 for t in weights(out / "checkpoint-3").values())   # fp32 master weights


def test_snapshots_load_as_a_checkpoint_series_with_lens_check(full_run):
    checkpoints = pytest.importorskip("lensprobe.checkpoints")
    cfg, out, _ = full_run
    series = checkpoints.CheckpointSeries(out)
    infos = list(series)
    assert [i.step for i in infos] == [0, 1, 2, 4, 10, 20, 30, 36]
    assert all(i.status == "ok" for i in infos)
    assert [i.tokens for i in infos] == [s * 8 * CTX for s in (0, 1, 2, 4, 10, 20, 30, 36)]
    log = {r["step"]: r for r in read_log(out / "loss.jsonl")}
    assert infos[-1].train_loss == pytest.approx(log[36]["loss"])
    val = {(r["step"], r["language"]): r["loss"] for r in read_log(out / "val.jsonl")}
    assert infos[-1].val_loss["php"] == pytest.approx(val[(36, "php")])
    x = data_for(cfg).schedule.batch(0, batch_size=2)[0][:, :-1]
    seen = []
    for info, model in series.iter_models(check_lens="every"):    # the load-time lens check runs each time
        if info.step in (0, 36):
            ref = AutoModelForCausalLM.from_pretrained(info.path)
            with torch.no_grad():
                torch.testing.assert_close(model(input_ids=x).logits, ref(input_ids=x).logits, rtol=1e-4, atol=1e-5)
        seen.append(info.step)
    assert seen == [0, 1, 2, 4, 10, 20, 30, 36]
