"""LAPE activation counting vs a bare forward pass on the same batches; memory vs token count.

    .venv/bin/python benchmarks/lape.py [--tokens 32768] [--reps 3] [--threads 2]

Model: the CPU-sized GPT-2 of docs/pretrain.md (4 layers, d=128, 512 neurons per layer,
vocab 2048) and a Llama-style model of the same size (gated MLP). Batches 16 x 256 tokens, two
languages. Times, interleaved and repeated (min over repetitions):

* bare:    the backbone forward alone (no hooks, no LM head), under inference_mode;
* counter: the same batches with ActivationCounter hooks (the direct API), interleaved batch by
           batch with the bare pass so both see the same machine load;
* engine:  run_probes([LapeProbe]) end to end (batching, validation, hooks, selection; no null)
           against a whole bare loop;
* null:    LapeProbe.finalize() with 8 shuffled-label permutations and split-half (no forward).

Ratios are given in process CPU time (robust to other processes on a shared machine) and in wall
time; the minimum over repetitions is reported.

Memory: each token count runs in a fresh subprocess and reports its peak RSS growth during the
run and the size of the counter's state (groups x layers x neurons x 8 bytes).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BATCH, SEQ = 16, 256


def build(arch: str):
    from lensprobe.testing import tiny_model

    if arch == "gpt2":
        return tiny_model("gpt2", vocab_size=2048, n_layer=4, n_embd=128, n_head=4, n_positions=256)
    return tiny_model("llama", vocab_size=2048, num_hidden_layers=4, hidden_size=128, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=512, max_position_embeddings=256)


def make_inputs(tokens_per_language: int, path: Path | None = None):
    from lensprobe.lape import LapeInputs

    rng = np.random.default_rng(0)
    streams = {}
    for i, lang in enumerate(["python", "php"]):
        ids = rng.integers(3 + 500 * i, 1500 + 500 * i, tokens_per_language).astype(np.uint16)
        if path is not None:  # memory-mapped, like a pretrain token store
            f = path / f"{lang}.bin"
            ids.tofile(f)
            ids = np.memmap(f, dtype=np.uint16, mode="r")
        streams[lang] = ids
    return LapeInputs.from_token_arrays(streams, seq_len=SEQ)


class Clock:
    """Wall and process-CPU time of a block (CPU time is less disturbed by other processes)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def bare_forward(net, b):
    with torch.inference_mode():
        net(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids, use_cache=False)


def time_bare(model, batches):
    from lensprobe.lape.counting import backbone

    net = backbone(model)
    with Clock() as c:
        for b in batches:
            bare_forward(net, b)
    return c


def interleaved_counter(model, batches, n_groups):
    """Per batch, alternately bare then counted (or counted then bare): both see the same load."""
    from lensprobe.engine.adapters import get_adapter
    from lensprobe.lape import ActivationCounter
    from lensprobe.lape.counting import backbone

    net = backbone(model)
    modules = get_adapter(model).neuron_modules
    counter = ActivationCounter(n_layers=len(modules), n_groups=n_groups)
    bare = {"wall": 0.0, "cpu": 0.0}
    counted = {"wall": 0.0, "cpu": 0.0}

    def run_counted(b):
        with counter.hooked(modules), torch.inference_mode(), Clock() as c:
            counter.forward(model, b.input_ids, b.attention_mask, [m["group"] for m in b.meta])
        counted["wall"] += c.wall
        counted["cpu"] += c.cpu

    def run_bare(b):
        with Clock() as c:
            bare_forward(net, b)
        bare["wall"] += c.wall
        bare["cpu"] += c.cpu

    for i, b in enumerate(batches):
        for f in ((run_bare, run_counted) if i % 2 == 0 else (run_counted, run_bare)):
            f(b)
    return bare, counted


def time_engine(model, inputs):
    from lensprobe.probes.lape import LapeProbe

    probe = LapeProbe(inputs, batch_size=BATCH, null_permutations=0, split_half=False)
    with Clock() as c:
        probe.run(model)
    probe.null_permutations, probe.split_half = 8, True
    with Clock() as n:
        probe.finalize()
    return c, n


def speed(args) -> None:
    torch.set_num_threads(args.threads)
    inputs = make_inputs(args.tokens)
    batches = list(inputs.batches(batch_size=BATCH, n_groups=16))
    print(f"{len(batches)} batches of {BATCH}x{SEQ} = {2 * args.tokens} tokens, {args.threads} threads; "
          "ratios: CPU time (wall time)")
    print(f"{'arch':6s} {'bare CPU s':>10s} {'counter/bare':>16s} {'engine/bare':>16s} {'null+split s':>12s}")
    for arch in ("gpt2", "llama"):
        model = build(arch)
        time_bare(model, batches[:2])  # warm-up
        best = None
        for _ in range(args.reps):
            bare, counted = interleaved_counter(model, batches, 32)
            whole_bare = time_bare(model, batches)
            engine, null = time_engine(model, inputs)
            r = (counted["cpu"] / bare["cpu"], counted["wall"] / bare["wall"],
                 engine.cpu / whole_bare.cpu, engine.wall / whole_bare.wall, bare["cpu"], null.cpu)
            best = r if best is None else tuple(min(a, b) for a, b in zip(best, r))
        cc, cw, ec, ew, bc, nc = best
        print(f"{arch:6s} {bc:10.2f} {cc:7.3f} ({cw:5.3f}) {ec:7.3f} ({ew:5.3f}) {nc:12.3f}")


def memory_child(tokens: int, threads: int) -> None:
    from lensprobe.probes.lape import LapeProbe

    torch.set_num_threads(threads)
    model = build("gpt2")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(tokens, Path(tmp))
        time_bare(model, list(inputs.batches(batch_size=BATCH))[:1])  # allocator warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        probe = LapeProbe(inputs, batch_size=BATCH, null_permutations=8)
        probe.run(model)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    state = probe.counter.over_zero.numel() * probe.counter.over_zero.element_size()
    print(json.dumps({"tokens": 2 * tokens, "peak_rss_growth_mb": (after - before) / 1024,
                      "peak_rss_mb": after / 1024, "counter_state_kb": state / 1024}))


def memory(args) -> None:
    print(f"{'tokens':>8s} {'peak RSS MB':>12s} {'growth MB':>10s} {'counter KB':>11s}")
    for tokens in (args.tokens // 4, args.tokens * 2):
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(tokens), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"{r['tokens']:8d} {r['peak_rss_mb']:12.1f} {r['peak_rss_growth_mb']:10.1f} {r['counter_state_kb']:11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32768, help="tokens per language for the speed run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.threads)
        return
    speed(args)
    memory(args)


if __name__ == "__main__":
    main()
