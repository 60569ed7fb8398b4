"""``lensprobe lens``: the working-language probe (Eq.1) on a model or every checkpoint of a run.

    lensprobe lens MODEL_OR_RUN_DIR --suite php --out table.parquet
    lensprobe lens runs/continual-php --suite php --out wl.csv --exclude-last 1 --prompts generated all

Shares count only prompts on which the model generates the target identifier (the paper's rule);
``--prompts all`` gives the unfiltered shares instead (metrics ``*_all_prompts``), ``--prompts
generated all`` both (see docs/suites.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _write_table(df: Any, out: Path) -> None:
    from lensprobe.files import atomic_write_table

    atomic_write_table(out, df)


def _print_summary(df: Any, prompts: list[str]) -> None:
    """Per step: final accuracy and the suite-level Eq.1 Python share of each prompt set, each
    share beside the number of prompts it rests on."""
    import pandas as pd

    from lensprobe.probes.working_language import metric_name

    suite_rows = df[df["identifier"].isna() & df["layer"].isna()]
    columns = {}
    for metric in ["final_accuracy"] + [metric_name("eq1_python_share", p) for p in prompts]:
        sel = suite_rows[suite_rows["metric"] == metric].set_index("step")
        columns[metric] = sel["value"]
        if metric != "final_accuracy":
            columns[f"n ({metric})"] = sel["n"]
    if any(not c.empty for c in columns.values()):
        print(pd.DataFrame(columns).to_string())


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        print(f"error: --out must end in .parquet or .csv, got {args.out}", file=sys.stderr)
        return 2
    from lensprobe.suites import SuiteError, load_suite

    try:
        suite = load_suite(args.suite, search_path=args.suites_dir)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    path = Path(args.model).expanduser()
    if not path.exists():
        print(f"error: model or run directory {args.model} does not exist", file=sys.stderr)
        return 2
    from lensprobe.checkpoints import CheckpointError, CheckpointSeries
    from lensprobe.probes.working_language import working_language

    try:
        series = CheckpointSeries(path)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if args.every or args.steps:
        try:
            series = series.select(steps=args.steps, every=args.every)
        except (KeyError, ValueError) as exc:
            print(f"error: {path}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 2
    try:
        if args.identifier:
            suite.render(limit=1, identifiers=args.identifier)  # unknown ids fail before any model loads
        df = working_language(series, suite, tokenizer=args.tokenizer, seed=args.seed, limit=args.limit,
                              identifiers=args.identifier,
                              exclude_last=args.exclude_last, prompts=args.prompts,
                              batch_size=args.batch_size, add_bos=args.bos, device=args.device)
    except (KeyError, ValueError, CheckpointError) as exc:
        print(f"error: {path}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    _write_table(df, out)
    _print_summary(df, args.prompts)
    print(f"wrote {len(df)} rows to {out}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("lens", help="run the working-language probe on a model or checkpoint series",
                              description="Logit-lens working-language probe (Babel Tower Eq.1) over an identifier "
                                          "suite, for one checkpoint directory or every checkpoint of a run.")
    p.add_argument("model", metavar="MODEL_OR_RUN_DIR", help="an HF checkpoint directory or a run directory")
    p.add_argument("--suite", required=True, help="suite name (php, csharp, go, cpp, ...) or YAML path")
    p.add_argument("--out", required=True, help="output table: .parquet or .csv")
    p.add_argument("--seed", type=int, default=0, help="suite rendering seed")
    p.add_argument("--limit", type=int, default=None, help="prompts per identifier (default: the suite's n_prompts)")
    p.add_argument("--identifier", action="append", default=None, help="only this identifier (repeatable)")
    p.add_argument("--exclude-last", type=int, default=None,
                   help="final layers left out of Eq.1 (default: min(5, max(1, (L-1)//2)))")
    p.add_argument("--prompts", nargs="+", choices=("generated", "all"), default=["generated"],
                   help="prompts the shares rest on: generated (default, the paper's rule: only prompts whose "
                        "final layer predicts the target identifier), all (unfiltered; metrics *_all_prompts), "
                        "or both")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--bos", action="store_true", help="prepend the tokenizer's BOS token to every prompt")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory or tokenizer.json (default: the run's)")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--steps", type=int, nargs="+", default=None, help="only these steps")
    p.add_argument("--every", type=int, default=None, help="only steps that are multiples of N")
    p.add_argument("--suites-dir", action="append", default=None, metavar="DIR",
                   help="extra directory of suite YAML files (repeatable)")
    p.set_defaults(func=run)
