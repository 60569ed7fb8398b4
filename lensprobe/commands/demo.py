"""``lensprobe demo --out DIR [--quick] [--seeds N]``: the end-to-end loop (see :mod:`lensprobe.demo`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="the end-to-end demo on the embedded synthetic corpus",
        description="Train a tiny Python model on the synthetic Babel corpus (or start from the shipped one with "
                    "--quick), continue it on PHP with 5%% Python, sweep the probes over every checkpoint, detect "
                    "the stages, recommend a PHP token budget and write a report. Re-running resumes.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help="start from the shipped base and train less (~2 min; the default ~13 min)")
    p.add_argument("--seeds", type=int, default=1, help="continual runs with seeds 0..N-1 (default 1)")
    p.add_argument("--base", default=None, help="use this babel-base checkpoint instead of training/shipping one")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars and no phase messages on stderr (errors are still printed)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from lensprobe.demo import run_demo

    if args.seeds < 1:
        print("lensprobe demo: --seeds must be >= 1", file=sys.stderr)
        return 2
    try:
        summary = run_demo(args.out, quick=args.quick, seeds=args.seeds, base=args.base,
                           progress=not args.quiet, **({"log": None} if args.quiet else {}))
    except (FileNotFoundError, ValueError) as exc:  # a missing or mismatched base, bad settings
        print(f"lensprobe demo: {exc}", file=sys.stderr)
        return 2
    report = Path(args.out) / "report" / "index.html"
    print(f"lensprobe demo: done in {summary['timings_s']['total']:.0f}s; report {report.absolute()}")
    return 0
