"""Algorithm 1's closed loop on the synthetic Babel benchmark (a benchmark, not a test).

A continual run (Python base -> PHP with the 5% Python tracer) swept with the Babel probe; Algorithm
1 and the performance it predicts as a function of the Python share (Eq.2) with its interval;
mixture runs at Eq.3 shares spanning what can be trained (a grid, the natural corpus = all the PHP
tokens the continual run saw, and the recommendation, trained at the token cap and marked when it
asks for more), each written as a mixture file and trained with ``lensprobe pretrain babel-mixture
--mixture FILE`` from the seed's Python base (docs/fit.md, "The closed loop", says why); each
evaluated with the same probe at its last checkpoint. Writes ``OUT/predicted_vs_actual.csv``,
``OUT/loop.json``, ``OUT/figures/loop.png`` and prints the table, Spearman, the mean absolute error
and the recommended mix against the natural one.

    .venv/bin/python benchmarks/closed_loop.py --out runs/loop-quick --quick          # ~25 min on 2 free cores
    .venv/bin/python benchmarks/closed_loop.py --out runs/loop                        # ~90 min
    .venv/bin/python benchmarks/closed_loop.py --out runs/loop --seeds 3 --base BASE1 BASE2   # seeds 1, 2: their bases

Re-running the same command resumes (finished trainings and evaluations are skipped).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lensprobe.closed_loop import DEFAULT_LOOP, QUICK_LOOP, run_loop  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="the quick demo's continual run and 4 mixture runs")
    ap.add_argument("--seeds", type=int, default=1, help="seeds (split seed k = training seed k); default 1")
    ap.add_argument("--base", nargs="+", default=None,
                    help="babel-base checkpoint(s), each for the split seed its recipe names (seed 0: the shipped base)")
    ap.add_argument("--multiples", type=float, nargs="+", default=None,
                    help="grid points as multiples of the natural corpus's PHP tokens (default: quick 1/16 1/4; "
                         "default 1/16 1/4 1/2)")
    ap.add_argument("--cap", type=float, default=None,
                    help="most PHP tokens of a mixture run, as a multiple of the natural corpus (quick 4, default 3)")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    settings = QUICK_LOOP if args.quick else DEFAULT_LOOP
    try:
        if args.multiples is not None:
            settings = replace(settings, multiples=tuple(args.multiples))
        if args.cap is not None:
            settings = replace(settings, cap_multiple=args.cap)
    except ValueError as exc:
        ap.error(str(exc))
    t0 = time.perf_counter()
    summary = run_loop(args.out, settings=settings, seeds=args.seeds, base=args.base)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    table = pd.read_csv(out / "predicted_vs_actual.csv")
    runs = pd.read_csv(out / "mixture_runs.csv")
    pd.set_option("display.width", 220, "display.max_columns", 30, "display.precision", 4)
    rec = summary["recommendation"]
    print(f"\n== Algorithm 1 on the continual run: Python share {rec['share']:.4g}"
          + (f" (90% CI {rec['share_interval'][0]:.4g}-{rec['share_interval'][1]:.4g}), "
             f"{rec['tokens']:,.0f} PHP tokens" if "share_interval" in rec else f" ({rec.get('error', '')})")
          + f" for eta_python = {summary['eta_python']:,}; natural corpus {summary['natural_tokens']:,} PHP tokens")
    for p in summary["points"]:
        print(f"  {p['name']:>14}: {p['eta_target']:>12,} PHP tokens, Eq.3 share {p['share']:.4f}"
              + ("" if p["feasible"] else f"  <- {p['note']}"))
    print("\n== predicted vs actual (PHP line accuracy on python_only + shared, last checkpoint; "
          f"{summary['prediction']['confidence']:.0%} intervals)")
    print(table.drop(columns=["run"]).to_string(index=False))
    print("\n== the mixture runs' baselines and Python side (last checkpoint)")
    print(runs.drop(columns=["run"]).to_string(index=False))
    st = summary["statistics"]
    fmt = lambda v: "nan" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"\nSpearman (predicted, actual) over {st['n_points']} points: {fmt(st['spearman'])} "
          f"(p = {fmt(st['spearman_p'])}); mean absolute error {fmt(st['mae'])}; "
          f"{st['covered']} of {st['n_points']} actuals inside the predicted interval")
    print(f"recommended - natural: {fmt(st['rec_minus_nat'])} [{fmt(st['rec_minus_nat_lo'])}, "
          f"{fmt(st['rec_minus_nat_hi'])}] ({st['rec_minus_nat_method']}); the recommended point is "
          + ("feasible" if st["recommended_feasible"] else "INFEASIBLE at this scale (trained at the cap)"))
    print(f"\nwall time {wall:.0f}s; phases " + json.dumps({k: round(v) for k, v in summary["timings_s"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
