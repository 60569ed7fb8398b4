"""Training-loop throughput: ``pretrain.train`` against a bare PyTorch loop, and model FLOP utilisation.

Both loops train the same model on the same batches (random tokens; data loading is not what is
measured) with AdamW, gradient clipping and the same precision. The loop's per-step time is taken
from two runs of different length, ``(T(long) - T(short)) / (long - short)``, which cancels its
start-up and the fixed snapshot/validation cost; the bare loop is timed after a warm-up.
MFU = 6 N tokens/s over the peak: a measured fp32/bf16 matmul rate on this device (``--peak``
overrides with a nominal figure in TFLOP/s).

    .venv/bin/python benchmarks/pretrain.py                       # CPU reference: tiny GPT-2, 2 threads
    python benchmarks/pretrain.py --size 124M --context 1024 --batch 16 --precision bf16 --peak 989   # H100
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.config import from_dict  # noqa: E402
from pretrain.models import build_model, flops_per_token, n_params  # noqa: E402
from pretrain.train import PreparedData, row_losses, train  # noqa: E402


class RandomStore:
    def __init__(self, vocab: int, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.arr = rng.integers(0, vocab, size=n).astype(np.int64)
        self.languages = ["python"]
        self.manifest = {"bytes_per_token": {"python": 3.0}}
        self.tokenizer_hash = "random"

    def tokens(self, lang, split="train"):
        return self.arr if split == "train" else self.arr[:4096]


class RandomSchedule:
    def __init__(self, store, context, seed=0):
        self.store, self.context, self.seed = store, context, seed

    def total_steps(self, batch_size, world_size=1):
        return 10**9

    def batch(self, step, *, batch_size, rank=0, world_size=1):
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.store.arr) - self.context - 1, size=batch_size)
        rows = np.stack([self.store.arr[s:s + self.context + 1] for s in starts])
        return torch.from_numpy(rows), ["python"] * batch_size


def tokenizer(vocab: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="t1", eos_token="t2", pad_token="t0")


def config(args, steps: int):
    return from_dict({
        "data": {"languages": ["python"], "tokens": {"python": 10**9}, "context": args.context, "max_epochs": 10**6},
        "model": {"arch": args.arch, "size": args.size, "tie": True},
        "optim": {"batch_size": args.batch, "steps": steps, "warmup": 10},
        "snapshots": {"schedule": "list", "val_max_tokens": args.context},
        "resume": {"every": 10**9}, "precision": args.precision, "threads": args.threads, "seed": 0,
    })


def data(args) -> PreparedData:
    store = RandomStore(args.vocab, 2_000_000)
    return PreparedData(tokenizer=tokenizer(args.vocab), store=store,
                        schedule=RandomSchedule(store, args.context), tokenizer_hash="random")


def time_loop(args, steps: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    try:
        t0 = time.perf_counter()
        train(config(args, steps), out / "run", data=data(args), log=lambda m: None)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bare_loop(args, steps: int, warmup: int, device: str) -> float:
    cfg = config(args, steps)
    model = build_model(cfg.model, vocab_size=args.vocab, context=args.context, seed=0).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95))
    sched = data(args).schedule
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device != "cpu")
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            if dev_type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, _ = sched.batch(step, batch_size=args.batch)
        x = x.to(device)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss = row_losses(model, x).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _ = loss.item()          # the loop logs the loss every step: same host sync
    if dev_type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def matmul_peak(device: str, bf16: bool, n: int = 1024, reps: int = 20) -> float:
    """Measured matmul FLOP/s (the practical peak for this precision and thread count)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="gpt2")
    p.add_argument("--size", default="tiny")
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30, help="extra steps of the long run over the short one")
    p.add_argument("--short", type=int, default=10)
    p.add_argument("--peak", type=float, default=None, help="nominal peak TFLOP/s (default: measured matmul)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokens_per_step = args.batch * args.context

    loop_s, bare_s = [], []
    for _ in range(args.repeats):               # interleave to share the machine's noise
        bare_s.append(bare_loop(args, args.steps, warmup=3, device=device))
        t_short = time_loop(args, args.short)
        t_long = time_loop(args, args.short + args.steps)
        loop_s.append((t_long - t_short) / args.steps)
    loop, bare = min(loop_s), min(bare_s)
    model = build_model(config(args, 1).model, vocab_size=args.vocab, context=args.context)
    fpt = flops_per_token(model)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device != "cpu")
    peak = args.peak * 1e12 if args.peak else matmul_peak(device, bf16)
    figures = {
        "device": device, "threads": args.threads, "size": args.size, "params": n_params(model),
        "context": args.context, "batch": args.batch, "precision": "bf16" if bf16 else "fp32",
        "loop_tokens_per_s": tokens_per_step / loop, "bare_tokens_per_s": tokens_per_step / bare,
        "overhead": loop / bare - 1.0, "flops_per_token_6N": fpt, "peak_flops": peak,
        "peak_source": "nominal" if args.peak else "measured matmul",
        "mfu_loop": fpt * tokens_per_step / loop / peak, "mfu_bare": fpt * tokens_per_step / bare / peak,
    }
    print(f"{args.size} {args.arch} ({figures['params']:,} params), batch {args.batch}x{args.context}, "
          f"{figures['precision']}, {device} x {args.threads} threads")
    print(f"  pretrain.train : {figures['loop_tokens_per_s']:10.0f} tokens/s")
    print(f"  bare PyTorch   : {figures['bare_tokens_per_s']:10.0f} tokens/s")
    print(f"  ratio loop/bare time: {loop / bare:.3f}  (overhead {figures['overhead']:+.1%}; target <= +10%)")
    print(f"  MFU (6N, peak {peak / 1e9:.1f} GFLOP/s {figures['peak_source']}): loop {figures['mfu_loop']:.1%}, "
          f"bare {figures['mfu_bare']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
