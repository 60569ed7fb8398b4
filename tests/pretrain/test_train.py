"""The training loop against independent computations: a bare PyTorch loop, manual validation,
a fresh AdamW step, the mixture's own token accounting, and uninterrupted runs (for resume after
SIGKILL / stop). Data: the embedded corpus, a small trained tokenizer and the real token store."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from pretrain.config import ConfigError
from pretrain.models import build_model
from pretrain.snapshots import LRSchedule, list_checkpoints, list_resume_states, read_log
from pretrain.train import prepare_data, train

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 34      # the tiny config (conftest.py): 279 windows of 33 tokens = 34 steps of 8 rows
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_for(prepared_dir):
    return lambda cfg: prepare_data(cfg, prepared_dir)


def strip_timing(rows):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


def fresh_adamw(model, lr):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_for, make_cfg):
    out = tmp_path_factory.mktemp("full") / "run"
    cfg = make_cfg()
    result = train(cfg, out, data=data_for(cfg))
    return cfg, out, result


def test_loop_equals_bare_pytorch_loop(full_run, data_for):
    """Same model init, batches, AdamW groups, clipping and lr formula -> the same losses and weights."""
    cfg, out, result = full_run
    data = data_for(cfg)
    tok = data.tokenizer
    model = build_model(cfg.model, vocab_size=len(tok), context=cfg.data.context, seed=cfg.seed,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    opt = fresh_adamw(model, 3e-3)
    lr = lambda s: 3e-3 * (s + 1) / 4 if s < 4 else 3e-4 + 0.5 * 2.7e-3 * (1 + math.cos(math.pi * (s - 4) / (STEPS - 4)))
    losses = []
    for step in range(STEPS):
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
    assert result.total_steps == STEPS and [r["step"] for r in log] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([r["loss"] for r in log], losses, rtol=1e-5)
    np.testing.assert_allclose([r["lr"] for r in log], [lr(s) for s in range(STEPS)], rtol=1e-12)
    assert log[-1]["loss"] < log[0]["loss"] - 1.0          # it learns
    final = weights(out / f"checkpoint-{STEPS}")
    for name, p in model.state_dict().items():
        if name in final:
            torch.testing.assert_close(final[name], p, rtol=1e-4, atol=1e-5)


def test_snapshots_are_complete_hf_dirs_with_metadata(full_run, data_for):
    cfg, out, result = full_run
    data = data_for(cfg)
    ctx = cfg.data.context
    w = ctx + 1                                     # tokens per row (one mixture window)
    ckpts = list_checkpoints(out)
    assert sorted(ckpts) == [0, 1, 2, 4, 10, 20, 30, STEPS]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]      # no temporaries left
    for step, path in ckpts.items():
        assert {"config.json", "model.safetensors", "tokenizer.json", "checkpoint.json"} <= {p.name for p in path.iterdir()}
        info = json.loads((path / "checkpoint.json").read_text())
        assert info["step"] == step and info["tokens"] == step * 8 * w
        # the loop's own count of rows per language equals the mixture's prefix counts
        assert info["tokens_by_language"] == {k: v for k, v in data.schedule.tokens_seen(step, 8).items() if v} \
            or step == 0
        assert info["tokenizer_hash"] == data.tokenizer_hash and info["run"] == "run"
        assert info["lr"] == (0.0 if step == 0 else pytest.approx(LRSchedule(3e-3, STEPS, 4, "cosine", 0.1)(step - 1)))
    # the sampled rows follow the budgets: every language within one batch of its budget
    final = json.loads((ckpts[STEPS] / "checkpoint.json").read_text())
    for lang, budget in cfg.data.tokens.items():
        assert 0 <= budget - final["tokens_by_language"][lang] <= 8 * w
    assert final["tokens_by_language"]["python"] == pytest.approx(2 * final["tokens_by_language"]["php"], abs=2 * w)
    log = read_log(out / "loss.jsonl")
    assert log[-1]["tokens"] == final["tokens"] == sum(final["tokens_by_language"].values())
    # the checkpoint's weights reload with transformers and give the logged validation loss and bpb
    model = AutoModelForCausalLM.from_pretrained(ckpts[STEPS])
    manifest = json.loads((data.store.path / "manifest.json").read_text())
    val_rows = [r for r in read_log(out / "val.jsonl") if r["step"] == STEPS]
    assert {r["language"] for r in val_rows} == {"python", "php"}
    for row in val_rows:
        v = torch.as_tensor(data.store.tokens(row["language"], "val").astype("int64"))
        n = (len(v) - 1) // ctx
        seqs = torch.stack([v[i * ctx:(i + 1) * ctx + 1] for i in range(n)])
        with torch.no_grad():
            logits = model(input_ids=seqs[:, :-1]).logits
        want = F.cross_entropy(logits.reshape(-1, logits.size(-1)), seqs[:, 1:].reshape(-1)).item()
        split = manifest["languages"][row["language"]]["validation"]
        assert row["loss"] == pytest.approx(want, rel=1e-5)
        assert row["bpb"] == pytest.approx(row["loss"] * split["tokens"] / split["bytes"] / math.log(2), rel=1e-12)
        assert row["tokens"] == STEPS * 8 * w


def test_stop_and_resume_equals_uninterrupted(full_run, tmp_path, data_for):
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    r1 = train(cfg, out, data=data_for(cfg), stop_after=13)
    assert r1.status == "stopped" and r1.step == 13
    assert sorted(list_resume_states(out)) == [10, 13]                       # the last two are kept
    r2 = train(cfg, out, data=data_for(cfg))
    assert r2.status == "completed" and r2.step == STEPS
    assert strip_timing(read_log(out / "loss.jsonl")) == strip_timing(read_log(ref / "loss.jsonl"))
    assert read_log(out / "val.jsonl") == read_log(ref / "val.jsonl")
    a, b = weights(out / f"checkpoint-{STEPS}"), weights(ref / f"checkpoint-{STEPS}")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((out / "command.txt").read_text().splitlines()) == 2
    # running a finished run again is a no-op
    assert train(cfg, out, data=data_for(cfg)).step == STEPS
    assert len(read_log(out / "loss.jsonl")) == STEPS


def test_sigkill_after_snapshot_then_rerun_equals_uninterrupted(full_run, tmp_path, seed_run_dir):
    """The CLI run is killed (SIGKILL) after checkpoint-20; the same command resumes it."""
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    seed_run_dir(out)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(cfg.to_yaml())
    cmd = [sys.executable, "-m", "lensprobe.cli", "pretrain", str(recipe), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial_seen = []
    deadline = time.time() + 150
    try:
        while time.time() < deadline and proc.poll() is None:
            for p in list(out.glob("checkpoint-*")):     # a visible checkpoint is always complete
                try:
                    names = {q.name for q in p.iterdir()}
                except FileNotFoundError:
                    continue
                if not {"checkpoint.json", "model.safetensors", "config.json", "tokenizer.json"} <= names:
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
    assert 22 <= killed_at < STEPS
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming" in done.stderr
    assert strip_timing(read_log(out / "loss.jsonl")) == strip_timing(read_log(ref / "loss.jsonl"))
    assert read_log(out / "val.jsonl") == read_log(ref / "val.jsonl")
    assert sorted(list_checkpoints(out)) == sorted(list_checkpoints(ref))
    a, b = weights(out / f"checkpoint-{STEPS}"), weights(ref / f"checkpoint-{STEPS}")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert (out / "command.txt").read_text().count("pretrain") == 2


def test_gradient_accumulation_matches_one_big_batch(full_run, tmp_path, data_for, make_cfg):
    cfg, ref, _ = full_run
    acc = make_cfg(optim={"batch_size": 8, "grad_accum": 4, "warmup": 4, "lr": 3e-3, "steps": 6},
                   snapshots={"schedule": "list"})
    r = train(acc, tmp_path / "acc", data=data_for(acc))
    assert r.step == 6
    got = [row["loss"] for row in read_log(tmp_path / "acc" / "loss.jsonl")]
    # same global batches; the lr differs (6 vs 34 total steps) only after warmup: compare warmup steps
    want = [row["loss"] for row in read_log(ref / "loss.jsonl")][:5]
    np.testing.assert_allclose(got[:5], want, rtol=1e-5)


def test_continual_restarts_steps_continues_tokens_with_fresh_optimizer(full_run, tmp_path, data_for, make_cfg):
    cfg, ref, _ = full_run
    source = ref / "checkpoint-30"
    cont = make_cfg(model={"init_from": str(source)}, data={"languages": ["php", "python"],
                    "tokens": {"php": 1584, "python": 528}, "context": cfg.data.context, "validation_tokens": 2048},
                    seed=1)
    out = tmp_path / "cont"
    data = data_for(cont)
    r = train(cont, out, data=data)
    log = read_log(out / "loss.jsonl")
    assert log[0]["step"] == 1 and r.total_steps == 8 == len(log)
    w = cfg.data.context + 1                        # tokens per row
    base_tokens = 30 * 8 * w
    assert [row["tokens"] for row in log] == [base_tokens + s * 8 * w for s in range(1, 9)]
    first = json.loads((out / "checkpoint-0" / "checkpoint.json").read_text())
    src_info = json.loads((source / "checkpoint.json").read_text())
    assert first["tokens"] == base_tokens and first["tokens_by_language"] == src_info["tokens_by_language"]
    last = json.loads((out / "checkpoint-8" / "checkpoint.json").read_text())
    assert last["tokens_by_language"]["php"] - src_info["tokens_by_language"]["php"] == 1584
    w0, ws = weights(out / "checkpoint-0"), weights(source)
    assert all(torch.equal(w0[k], ws[k]) for k in ws)
    # step 1 equals a FRESH AdamW step (warmup lr 3e-3/4) from the source weights
    model = AutoModelForCausalLM.from_pretrained(source)
    opt = fresh_adamw(model, 3e-3 / 4)
    x, _ = data.schedule.batch(0, batch_size=8)
    logits = model(input_ids=x[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    assert log[0]["loss"] == pytest.approx(loss.item(), rel=1e-5)
    w1 = weights(out / "checkpoint-1")
    for name, p in model.state_dict().items():
        if name in w1:
            torch.testing.assert_close(w1[name], p, rtol=1e-4, atol=1e-6)


def test_changed_config_is_refused_on_resume(full_run, tmp_path, data_for, make_cfg):
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    train(cfg, out, data=data_for(cfg), stop_after=3)
    changed = make_cfg(optim={"batch_size": 8, "warmup": 4, "lr": 1e-3})
    with pytest.raises(ConfigError, match=r"^optim\.lr: differs from the run recorded"):
        train(changed, out, data=data_for(changed))
    harmless = make_cfg(threads=1, resume={"every": 7})
    assert train(harmless, out, data=data_for(harmless), stop_after=4).step == 4


def test_budget_over_repetition_cap_fails_before_training(tmp_path, prepared_dir, make_cfg):
    """A finite corpus (a directory of files) cannot supply more than max_epochs x its tokens."""
    from pretrain.tokens import TokenStore

    code = tmp_path / "code"
    code.mkdir()
    for i in range(6):
        (code / f"m{i}.py").write_text(f"def f{i}(xs):\n    return sum(x * {i} for x in xs)\n")
        (code / f"m{i}.php").write_text(f"<?php\nfunction f{i}($xs) {{ return array_sum($xs) * {i}; }}\n")
    cfg = make_cfg(data={"corpus": {"kind": "files", "path": str(code)}, "languages": ["python", "php"],
                         "tokens": {"python": 100_000, "php": 100}, "context": 8, "validation_tokens": 0,
                         "max_epochs": 2.0},
                   tokenizer={"path": str(prepared_dir / "tokenizer")})
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        train(cfg, out)
    available = len(TokenStore(out / "tokens").tokens("python"))
    assert 0 < available < 1000
    assert str(err.value) == (f"data.tokens.python: budget 100,000 tokens is over the repetition cap "
                              f"(data.max_epochs=2 x {available:,} available python tokens)")
    assert not list(out.glob("checkpoint-*")) and not (out / "loss.jsonl").exists()
    assert not (out / "config.yaml").exists()        # nothing recorded: a corrected config may use `out`
    fixed = make_cfg(data={**cfg.data.__dict__, "tokens": {"python": 2 * available, "php": 100}},
                     tokenizer={"path": str(prepared_dir / "tokenizer")}, optim__steps=2)
    assert train(fixed, out).step == 2
    with pytest.raises(ConfigError, match=r"^optim\.steps: the token budgets hold \d+ steps of 8 rows x 9 tokens, "
                                          r"fewer than 10000"):
        train(make_cfg(data=fixed.data.__dict__, tokenizer={"path": str(prepared_dir / "tokenizer")},
                       optim__steps=10000), tmp_path / "other")
    # a missing corpus directory fails at config time, naming the field
    with pytest.raises(ConfigError, match=r"^data\.corpus\.path: no such file or directory"):
        make_cfg(data={"corpus": {"kind": "files", "path": str(tmp_path / "gone")}, "languages": ["python"],
                       "tokens": {"python": 100}})


def test_cpu_bf16_uses_autocast(tmp_path, data_for, make_cfg):
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


def test_snapshots_load_as_a_checkpoint_series_with_lens_check(full_run, data_for):
    checkpoints = pytest.importorskip("lensprobe.checkpoints")
    cfg, out, _ = full_run
    steps = [0, 1, 2, 4, 10, 20, 30, STEPS]
    w = cfg.data.context + 1                        # tokens per row
    series = checkpoints.CheckpointSeries(out)
    infos = list(series)
    assert [i.step for i in infos] == steps
    assert all(i.status == "ok" for i in infos)
    assert [i.tokens for i in infos] == [s * 8 * w for s in steps]
    # one tokenizer identity: what the series computes from the files is what training recorded
    assert {i.tokenizer_hash for i in infos} == {i.meta["tokenizer_hash"] for i in infos} == {data_for(cfg).tokenizer_hash}
    log = {r["step"]: r for r in read_log(out / "loss.jsonl")}
    assert infos[-1].train_loss == pytest.approx(log[STEPS]["loss"])
    val = {(r["step"], r["language"]): r["loss"] for r in read_log(out / "val.jsonl")}
    assert infos[-1].val_loss["php"] == pytest.approx(val[(STEPS, "php")])
    x = data_for(cfg).schedule.batch(0, batch_size=2)[0][:, :-1]
    seen = []
    for info, model in series.iter_models(check_lens="every"):    # the load-time lens check runs each time
        if info.step in (0, STEPS):
            ref = AutoModelForCausalLM.from_pretrained(info.path)
            with torch.no_grad():
                torch.testing.assert_close(model(input_ids=x).logits, ref(input_ids=x).logits, rtol=1e-4, atol=1e-5)
        seen.append(info.step)
    assert seen == steps


def test_sigterm_saves_resume_state_and_stops(full_run, tmp_path, data_for):
    """SIGTERM during step 7: the step completes, resume state-7 is written, the re-run matches."""
    cfg, ref, _ = full_run
    data = data_for(cfg)
    real = data.schedule

    class Terminating:
        def __getattr__(self, name):
            return getattr(real, name)

        def batch(self, step, **kw):
            if step == 6:
                os.kill(os.getpid(), signal.SIGTERM)
            return real.batch(step, **kw)

    data.schedule = Terminating()
    out = tmp_path / "run"
    r = train(cfg, out, data=data)
    assert (r.status, r.step) == ("interrupted", 7)
    assert sorted(list_resume_states(out)) == [5, 7]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL            # handler restored
    r2 = train(cfg, out, data=data_for(cfg))
    assert r2.step == STEPS
    assert strip_timing(read_log(out / "loss.jsonl")) == strip_timing(read_log(ref / "loss.jsonl"))


# ---------------------------------------------------------------------------------- temporaries after kills
# Kills leave hidden temporaries (a tokenizer, a token store, a checkpoint or a resume state being written);
# the run that resumes removes them -- its own run directory's only, and only once it holds the run's lock,
# so a live run's temporaries are never touched (docs/pretrain.md, "Temporaries after a kill"). The moments
# are chosen: the training pauses inside the atomic write of a named directory, after its contents are
# complete and before the rename, and is SIGKILLed there.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# pause inside the atomic write of the directory named argv[1] (contents complete, not yet renamed)
PAUSE = textwrap.dedent("""
    import contextlib, sys, time
    from pathlib import Path
    import lensprobe.files as files
    import pretrain.snapshots as snapshots
    import pretrain.train as train
    which, original = sys.argv[1], files.atomic_directory

    @contextlib.contextmanager
    def pausing(path, **kw):
        with original(path, **kw) as tmp:
            yield tmp
            if Path(path).name == which:
                print("PAUSED", tmp, flush=True)
                time.sleep(600)

    train.atomic_directory = snapshots.atomic_directory = pausing
    from pretrain.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _paused_inside(name: str, recipe: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", PAUSE, name, str(recipe), "--out", str(out), "--quiet"],
                            env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    line = ""
    while time.time() < deadline and not line.startswith("PAUSED"):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"the run ended before pausing in {name}: {proc.stderr.read()[-3000:]}")
    tmp = Path(line.split(" ", 1)[1].strip())
    assert tmp.is_dir() and tmp.name.startswith(f".{name}.") and tmp.name.endswith(".tmp"), tmp
    return proc, tmp


def _hidden(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


def test_a_resumed_run_removes_what_kills_left_and_nothing_of_a_live_run(full_run, tmp_path):
    cfg, ref, _ = full_run
    out = tmp_path / "run"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(cfg.to_yaml())
    cli = [sys.executable, "-m", "lensprobe.cli", "pretrain", str(recipe), "--out", str(out)]
    left: list[Path] = []
    # the tokenizer and the token store are made by the first runs; checkpoint-20 and state-25 by later ones
    for name in ("tokenizer", "tokens", "checkpoint-20", "state-25"):
        proc, tmp = _paused_inside(name, recipe, out)
        try:
            # taking the run directory, this run removed what the earlier kills left
            assert [p for p in left if p.exists()] == []
            if name == "checkpoint-20":
                # a second training of the live run refuses to start, naming it, and removes nothing of it
                second = subprocess.run(cli, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
                assert second.returncode == 2, second.stderr[-2000:]
                assert "another training is writing this run directory" in second.stderr
                assert f"pid {proc.pid}" in second.stderr and tmp.is_dir()
            if name in ("checkpoint-20", "state-25"):
                assert (tmp / ("model.safetensors" if name.startswith("checkpoint") else "trainer.json")).exists()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert tmp.is_dir()  # what a kill leaves: a hidden folder, complete contents, never renamed
        left.append(tmp)
    assert len([p for p in left if p.exists()]) == 1  # only the last kill's is left before the final run
    done = subprocess.run(cli, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "removed 1 temporary" in done.stderr and "resume/.state-25." in done.stderr
    assert _hidden(out) == []  # no temporary, no lock file, anywhere in the run directory
    # and the run is the uninterrupted one
    a, b = load_file(str(out / "checkpoint-34" / "model.safetensors")), load_file(str(ref / "checkpoint-34" /
                                                                                      "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(read_log(out / "loss.jsonl")) == strip(read_log(ref / "loss.jsonl"))
