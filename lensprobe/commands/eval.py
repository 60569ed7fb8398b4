"""``lensprobe eval``: run HumanEval / MBXP completions (or canonical solutions) in the sandbox.

Examples::

    lensprobe eval ../shared/data/eval/humaneval-x/humaneval_cpp.jsonl.gz --family humaneval-x
    lensprobe eval mbphp_release_v1.2.jsonl --family mxeval --samples mbphp_samples.jsonl --out res.csv
    lensprobe eval humaneval-php.jsonl --family multipl-e --checkpoint runs/x/step100 --samples-out s.jsonl
    lensprobe eval humaneval-php.jsonl --family multipl-e --run-dir runs/x --out passk.csv
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

NAME = "eval"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(NAME, help="functional-correctness evaluation (HumanEval / MBXP) in a sandbox",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problems", help="problem file (.jsonl or .jsonl.gz)")
    p.add_argument("--family", choices=["humaneval-x", "multipl-e", "mxeval"], default=None,
                   help="dataset family (inferred from the records when omitted)")
    p.add_argument("--language", default=None, help="override the language read from the file")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--samples", default=None, help="JSONL of {task_id, completion}; default: canonical solutions")
    src.add_argument("--checkpoint", default=None, help="generate completions from this HF checkpoint directory")
    src.add_argument("--run-dir", default=None, help="generate and score every checkpoint of a run directory")
    p.add_argument("--workers", type=int, default=2, help="parallel sandboxes (default 2)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per program run (default 10)")
    p.add_argument("--compile-timeout", type=float, default=60.0, help="seconds per compile step (default 60)")
    p.add_argument("--k", default="1", help="comma-separated k of pass@k (default 1)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N problems of the file (completions of the others in --samples are ignored)")
    p.add_argument("--include-unpassable", action="store_true", help="do not skip known-unpassable problems")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "unshare", "plain"], default="auto",
                   help="require a sandbox level (default: the strongest available)")
    p.add_argument("--out", default=None, help="write results (.csv, .jsonl or .parquet): per completion, or "
                                               "pass@k rows with --run-dir")
    g = p.add_argument_group("generation (with --checkpoint / --run-dir)")
    g.add_argument("--n", type=int, default=1, help="samples per problem (default 1)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--max-new-tokens", type=int, default=256)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--samples-out", default=None, help="write generated completions to this JSONL")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars and no messages on stderr (errors and the sandbox report still print)")
    p.set_defaults(func=run)


def _write_table(df: Any, path: str) -> None:
    from lensprobe.files import atomic_write_table

    atomic_write_table(path, df)


def run(args: argparse.Namespace) -> int:
    from lensprobe.evaluate import evaluate_samples, load_problems
    from lensprobe.evaluate.datasets import DatasetError
    from lensprobe.evaluate.sandbox import sandbox_report

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        ks = [int(x) for x in str(args.k).split(",") if x.strip()]
        if not ks or min(ks) < 1:
            raise ValueError(f"--k {args.k!r}: give positive integers, e.g. 1,10")
        if args.workers < 1 or args.timeout <= 0:
            raise ValueError("--workers must be >= 1 and --timeout > 0")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        problems = load_problems(args.problems, family=args.family, language=args.language)
        # --limit picks the first N problems; the rest stay known, so a sample file of the whole
        # benchmark is limited too (its other completions are skipped, not an error)
        limited = problems[: args.limit] if args.limit is not None else problems
        task_ids = [p.task_id for p in limited] if args.limit is not None else None
        report = sandbox_report(args.sandbox)
        print(str(report), file=sys.stderr)
        common = dict(workers=args.workers, timeout=args.timeout, sandbox=args.sandbox,
                      exclude_unpassable=not args.include_unpassable)
        gen = dict(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                   batch_size=args.batch_size, seed=args.seed)
        if args.run_dir:
            from lensprobe.checkpoints import CheckpointSeries
            from lensprobe.commands.sweep import print_problems, skipped_checkpoints
            from lensprobe.probes.functional import evaluate_checkpoints

            series = CheckpointSeries(args.run_dir)
            table = evaluate_checkpoints(series, {limited[0].language: limited}, ks=ks, progress=not args.quiet,
                                         **gen, **common)
            print(table.to_string(index=False))
            if args.out:
                _write_table(table, args.out)
            problems = skipped_checkpoints(series)  # the good checkpoints' rows are written all the same
            print_problems(problems, "eval")
            return 1 if problems else 0
        samples = args.samples
        if args.checkpoint:
            from lensprobe.engine.adapters import load_model
            from lensprobe.evaluate.generation import generate_completions

            loaded = load_model(args.checkpoint)
            if loaded.tokenizer is None:
                raise ValueError(f"checkpoint {args.checkpoint}: no tokenizer files")
            samples = generate_completions(loaded.model, loaded.tokenizer, limited, **gen)
            if args.samples_out:
                from lensprobe.files import atomic_write_text

                atomic_write_text(args.samples_out, "".join(json.dumps(s) + "\n" for s in samples))
        res = evaluate_samples(problems, samples, task_ids=task_ids, compile_timeout=args.compile_timeout,
                               progress=not args.quiet, **common)
        summary = res.summary(ks=ks)
        print(json.dumps(summary, indent=1))
        if args.out:
            _write_table(res.to_dataframe(), args.out)
        return 0
    except (DatasetError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"lensprobe eval: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"lensprobe eval: error: {exc}", file=sys.stderr)
        return 2
