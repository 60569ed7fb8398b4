"""Per-checkpoint overhead of the sweep against the probes' own compute.

On a run of N tiny checkpoints (default 24, ``lensprobe.testing.build_tiny_run``; a BPE tokenizer
trained on the embedded corpus) it times, side by side in one process:

* ``probes``  — the baseline: ``run_probes`` on every checkpoint with the models already in memory
  (the compute the probes themselves need);
* ``swap``    — ``CheckpointSeries.iter_models`` alone (one resident model, weights swapped in);
* ``sweep``   — ``run_sweep`` end to end into a fresh directory (swap + probes + rows + parquet),
  with and without prefetching the next checkpoint in a background thread;
* ``resume``  — the same ``run_sweep`` again: every checkpoint is found done and skipped.

and prints the overhead per checkpoint, (sweep - probes) / N, and the ratio sweep / probes.

    .venv/bin/python benchmarks/sweep.py [--checkpoints 24] [--size tiny|small] [--limit 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/pretrain.py would shadow the `pretrain` package when this script's folder is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

SIZES = {"tiny": {}, "small": dict(n_layer=6, n_embd=128, n_head=4, n_positions=256)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=24)
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--limit", type=int, default=8, help="prompts per identifier of the PHP suite")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="best of R for each measurement")
    args = ap.parse_args()
    if args.checkpoints < 2:
        raise SystemExit("--checkpoints must be >= 2")
    torch.set_num_threads(args.threads)

    import transformers

    transformers.utils.logging.disable_progress_bar()
    from pretrain.corpora import open_corpus
    from pretrain.tokenizer import train_tokenizer

    from lensprobe.checkpoints import CheckpointSeries
    from lensprobe.engine.hooks import run_probes
    from lensprobe.probes.working_language import WorkingLanguageProbe
    from lensprobe.sweep import run_sweep
    from lensprobe.testing import build_tiny_run

    root = Path(tempfile.mkdtemp(prefix="lensprobe-bench-sweep-"))
    try:
        tok = train_tokenizer(open_corpus("embedded"), languages=["python", "php"], vocab_size=600,
                              sample_bytes_per_language=60_000, out_dir=root / "tok")
        steps = list(range(0, 10 * args.checkpoints, 10))
        run = build_tiny_run(root / "run", steps, tokenizer=tok, vocab_size=len(tok), **SIZES[args.size])
        n = len(steps)

        def probes():
            return [WorkingLanguageProbe("php", limit=args.limit)]

        series = CheckpointSeries(run)
        models = [_copy(m) for _, m in series.iter_models(prefetch=False)]
        n_params = sum(p.numel() for p in models[0].parameters())

        def baseline():
            ps = probes()  # one probe list for the series, as the sweep does
            for m in models:
                run_probes(m, ps, tokenizer=tok)

        def swap():
            for _ in CheckpointSeries(run).iter_models():
                pass

        out = root / "sweep"

        def sweep():
            shutil.rmtree(out, ignore_errors=True)
            run_sweep(CheckpointSeries(run), probes(), out_dir=out, tokenizer=tok, progress=False, log=None)

        def sweep_serial():
            shutil.rmtree(out, ignore_errors=True)
            run_sweep(CheckpointSeries(run), probes(), out_dir=out, tokenizer=tok, progress=False, log=None,
                      prefetch=False)

        def resume():
            run_sweep(CheckpointSeries(run), probes(), out_dir=out, tokenizer=tok, progress=False, log=None)

        baseline()  # warm-up (token sets, kernels)
        # interleaved repeats (best of R each): slow drifts of a shared machine hit every measurement alike
        fns = {"probes": baseline, "swap": swap, "serial": sweep_serial, "sweep": sweep, "resume": resume}
        best = {k: float("inf") for k in fns}
        for _ in range(args.repeats):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        t_probe, t_swap, t_serial, t_sweep, t_resume = (best[k] for k in fns)
        print(f"{n} checkpoints, {args.size} gpt2 ({n_params:,} parameters), working_language on PHP "
              f"({5 * args.limit} prompts), {args.threads} thread(s), best of {args.repeats}")
        print(f"{'':<20}{'total s':>10}{'per ckpt ms':>14}")
        for name, t in (("probes", t_probe), ("swap", t_swap), ("sweep, no prefetch", t_serial),
                        ("sweep", t_sweep), ("resume", t_resume)):
            print(f"{name:<20}{t:>10.3f}{1000 * t / n:>14.1f}")
        overhead = (t_sweep - t_probe) / n
        print(f"sweep overhead per checkpoint: {1000 * overhead:.1f} ms "
              f"({100 * overhead / (t_probe / n):.0f}% of the probes' own compute)")
        print(f"without prefetch: {1000 * (t_serial - t_probe) / n:.1f} ms per checkpoint")
        print(f"ratio sweep / probes: {t_sweep / t_probe:.2f}x (no prefetch: {t_serial / t_probe:.2f}x); "
              f"resume (all skipped) / sweep: {t_resume / t_sweep:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    """A detached copy (iter_models reuses one resident model)."""
    import copy

    return copy.deepcopy(model)


if __name__ == "__main__":
    main()
