"""``lensprobe report``: one self-contained HTML file for a sweep / run directory.

    lensprobe sweep runs/php --out sweeps/php --probe ...
    lensprobe stages sweeps/php --metric line_acc --probe babel
    lensprobe plot sweeps/php
    lensprobe report sweeps/php                   # -> sweeps/php/report/index.html
    lensprobe report runs/loop/continual --loop runs/loop   # + the closed loop (benchmarks/closed_loop.py)

A summary first (transfer against the control split and the body prior, the working language's
drift with its interval and prompts, LAPE against its null, the stages and what their confidence
means, the data-mix recommendation with its interval), then ``figures/*.png`` (inlined as data
URIs), then the tables; commands, settings, software versions and the raw table overview at the
end, collapsed. The file references nothing outside itself: mail it, attach it, open it offline.
A directory without sweep results (``results/``) is an error (exit code 2), and so is a ``--loop``
directory without ``predicted_vs_actual.csv``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from lensprobe.present.report import write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"error: run directory {run_dir} does not exist", file=sys.stderr)
        return 2
    try:
        sections = []
        if args.loop:  # the closed loop's section (docs/fit.md, "The closed loop")
            from lensprobe.present.loop_report import loop_section

            sections.append(loop_section(args.loop))
        path = write_report(run_dir, out=args.out, title=args.title, sections=sections)
    except (ValueError, OSError) as exc:  # e.g. no sweep results: a one-line error, no empty report
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="write a self-contained HTML report for a run directory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="directory with results/, figures/, stages.json, ... (a sweep's --out)")
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report/index.html)")
    p.add_argument("--title", help="report title (default: the directory name)")
    p.add_argument("--loop", metavar="LOOP_DIR",
                   help="add the closed loop of LOOP_DIR (benchmarks/closed_loop.py --out LOOP_DIR): its figure, "
                        "predicted against measured, Spearman, MAE, recommended against natural")
    p.set_defaults(func=run)
