"""Benchmark: a logit-lens probe (last position, all blocks, a handful of token sets) vs a bare forward.

Model: a randomly initialised GPT-2-small-shaped model (12 layers, d=768, 12 heads, vocab 50257),
fp32 on the CPU, eager attention, batch 16 x 128 tokens (one row left-padded by 16 tokens).

Modes (each measured in a fresh subprocess, so peak memory is not polluted by another mode):

  forward        model(input_ids, attention_mask, position_ids) -- the full causal LM, logits included
  body           the decoder body only (model.transformer(...)), no unembedding
  lens_probe     lensprobe.run_probes with a probe that reads every block output at each row's last
                 real token (keeping [B, d] per layer) and, at the end of the batch, decodes all layers in one
                 lensprobe.engine.lens.readout call (6 token sets, top-1, entropy)
  logit_lens     lensprobe.logit_lens(...) with the same sets (the convenience API)
  tl_last        TransformerLens 4.x: TransformerBridge.run_with_cache + tools.analysis.logit_lens at
                 the last position (per-row last position is not available there; padding is ignored)
  tl_full        TransformerLens run_with_cache + logit_lens over all positions (full decode)

Time is reported as process CPU time (user+sys over all threads, ``time.process_time``) and wall
time, each the minimum over repetitions; on a shared machine CPU time is the steadier of the two.
Peak memory is the growth of the process's peak resident set size (VmHWM, reset through
/proc/self/clear_refs right before the measured call) over the resident size at that moment.
tracemalloc does not see torch's allocations; RSS does (CPU tensors live in malloc'd memory).

Run:  .venv/bin/python benchmarks/logit_lens.py [--reps 3] [--threads 2] [--skip-tl-full] [--small]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("forward", "body", "lens_probe", "logit_lens", "tl_last", "tl_full")
N_SETS = 6


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _reset_peak() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    Path("/proc/self/clear_refs").write_text("5")
    return _rss_kb()


def _build(small: bool):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if small:
        config = GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=50257, n_positions=256)
    else:
        config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    return model


def _batch(batch: int, seq: int):
    import torch

    from lensprobe.engine.protocol import Batch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50257, (batch, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :16] = 0  # one left-padded row
    return Batch(ids, mask)


def _token_sets():
    import torch

    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, 50257, (2,), generator=gen).tolist() for _ in range(N_SETS)]


def _make_probe(batch, sets):
    import torch

    from lensprobe.engine.hooks import block_hook_points, point_layer
    from lensprobe.engine.lens import readout
    from lensprobe.engine.protocol import Probe

    class LastPositionSetProbe(Probe):
        name = "bench_lens"

        def batches(self, tokenizer):
            return [batch]

        def hook_points(self, adapter):
            return block_hook_points(adapter)

        def start(self, model, adapter):
            self.adapter = adapter
            self.sums = torch.zeros(adapter.n_layers, N_SETS)
            self.top1 = torch.zeros(adapter.n_layers, dtype=torch.long)
            self.states = {}

        def on_activation(self, point, output, b):
            last = b.last_index  # keep only [B, d] per layer
            self.states[point_layer(point)] = output[torch.arange(len(last)), last].clone()

        def on_batch_end(self, b, logits=None):
            stacked = torch.stack([self.states[layer] for layer in sorted(self.states)])  # [L, B, d]
            r = readout(stacked, self.adapter, token_sets=sets, top_k=1)  # one unembedding pass
            self.sums += r.set_logprobs.exp().sum(1)
            self.top1 += r.top_tokens[..., 0].sum(1)
            self.states.clear()

        def finalize(self):
            return [dict(probe=self.name, language=None, identifier=str(s), layer=layer, metric="p_set",
                         value=float(self.sums[layer - 1, s]), n=1)
                    for layer in range(1, self.adapter.n_layers + 1) for s in range(N_SETS)]

    return LastPositionSetProbe()


def child(mode: str, reps: int, threads: int, small: bool, batch_size: int, seq: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from lensprobe.engine.hooks import run_probes
    from lensprobe.engine.lens import boot_transformer_bridge, logit_lens

    model = _build(small)
    batch = _batch(batch_size, seq)
    sets = _token_sets()
    union = sorted({t for s in sets for t in s})

    if mode == "forward":
        def run():
            with torch.inference_mode():
                return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             position_ids=batch.position_ids, use_cache=False).logits
    elif mode == "body":
        def run():
            with torch.inference_mode():
                return model.transformer(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                         position_ids=batch.position_ids, use_cache=False).last_hidden_state
    elif mode == "lens_probe":
        probe = _make_probe(batch, sets)

        def run():
            return run_probes(model, [probe])
    elif mode == "logit_lens":
        def run():
            return logit_lens(model, batch.input_ids, batch.attention_mask, token_sets=sets, top_k=1)
    elif mode in ("tl_last", "tl_full"):
        from transformer_lens.tools.analysis import logit_lens as tl_logit_lens

        bridge = boot_transformer_bridge(model, copy_model=False)
        positions = -1 if mode == "tl_last" else None

        def run():
            with torch.no_grad():
                return tl_logit_lens(bridge, batch.input_ids, positions=positions, vocab=union,
                                     return_type="log_probs", top_k=None)
    else:
        raise ValueError(mode)

    rss0 = _reset_peak()
    times, cpu_times = [], []
    for rep in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        if rep == 0:
            peak = _hwm_kb() - rss0
        del out
    return {"mode": mode, "min_s": min(times), "median_s": statistics.median(times), "times": times,
            "cpu_min_s": min(cpu_times), "cpu_times": cpu_times, "peak_mb": peak / 1024, "threads": threads}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--small", action="store_true", help="4 layers, d=256 (a quick smoke run)")
    parser.add_argument("--skip-tl-full", action="store_true", help="skip the (slow) TransformerLens full decode")
    parser.add_argument("--modes", nargs="*", default=None, help=f"subset of {MODES}")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.reps, args.threads, args.small, args.batch, args.seq)))
        return 0
    modes = args.modes or [m for m in MODES if not (args.skip_tl_full and m == "tl_full")]
    results = {}
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", mode, "--reps", str(args.reps if mode != "tl_full" else 1),
               "--threads", str(args.threads), "--batch", str(args.batch), "--seq", str(args.seq)]
        if args.small:
            cmd.append("--small")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{mode}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(f"{mode:11s} wall min {r['min_s']:7.3f}s  median {r['median_s']:7.3f}s  CPU min {r['cpu_min_s']:7.3f}s"
              f"  peak +{r['peak_mb']:8.1f} MB", flush=True)
    shape = "GPT-2 small (12L, d=768)" if not args.small else "small GPT-2 (4L, d=256)"
    print(f"\n{shape}, vocab 50257, batch {args.batch}x{args.seq}, fp32, CPU, {args.threads} threads")
    for base in ("forward", "body"):
        if base not in results:
            continue
        b = results[base]
        for mode, r in results.items():
            if mode == base:
                continue
            print(f"  {mode:11s} / {base:8s}: CPU time x{r['cpu_min_s'] / b['cpu_min_s']:6.2f}, "
                  f"wall x{r['min_s'] / b['min_s']:6.2f} (min); peak memory x{r['peak_mb'] / b['peak_mb']:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
