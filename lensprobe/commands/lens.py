"""``lensprobe lens``: the working-language probe (Eq.1) on a model or every checkpoint of a run.

    lensprobe lens MODEL_OR_RUN_DIR --suite php --out table.parquet
    lensprobe lens runs/continual-php --suite php --out wl.csv --exclude-last 1 --prompts generated all
    lensprobe lens runs/continual-php --suite php --suite go --out wl.parquet      # several suites, one pass
    lensprobe lens --hub EleutherAI/pythia-70m --revisions step1000,step143000 --suite php --out wl.parquet

Shares count only prompts on which the model generates the target identifier (the paper's rule);
``--prompts all`` gives the unfiltered shares instead (metrics ``*_all_prompts``), ``--prompts
generated all`` both (see docs/suites.md).

``--lens tuned`` reads the prompts through a tuned lens fitted per checkpoint on the run's
validation tokens (``--lens-tokens`` for another token store), warm-started along the series and
cached in ``--lens-dir`` (default ``<out>.tuned_lens/`` beside the table); ``--lens logit tuned``
writes both side by side (metrics of the tuned lens end in ``_tuned_lens``). See docs/tuned-lens.md.

    lensprobe lens runs/continual-php --suite php --out wl.parquet --lens logit tuned
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lensprobe.commands.common import UsageError, add_hub_arguments, add_quiet, check_tokenizer_path, open_series


def _write_table(df: Any, out: Path) -> None:
    from lensprobe.files import atomic_write_table

    atomic_write_table(out, df)


def _print_summary(df: Any, prompts: list[str], lenses: tuple[str, ...] = ("logit",)) -> None:
    """Per step (and suite language, when several): final accuracy and the suite-level Eq.1 Python
    share of each prompt set, each share beside the number of prompts it rests on."""
    import pandas as pd

    from lensprobe.probes.working_language import metric_name

    suite_rows = df[df["identifier"].isna() & df["layer"].isna()]
    several = suite_rows["language"].nunique() > 1
    index = ["language", "step"] if several else "step"
    columns = {}
    for metric in ["final_accuracy"] + [metric_name("eq1_python_share", p, lens) for lens in lenses for p in prompts]:
        sel = suite_rows[suite_rows["metric"] == metric].set_index(index)
        columns[metric] = sel["value"]
        if metric != "final_accuracy":
            columns[f"n ({metric})"] = sel["n"]
    if any(not c.empty for c in columns.values()):
        print(pd.DataFrame(columns).to_string())


def _steps_text(labels: list[str]) -> str:
    return ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")


def nan_share_warnings(df: Any, prompts: list[str]) -> list[str]:
    """One warning per suite and prompt set whose suite-level Eq.1 share is NaN at some checkpoint,
    saying why (the probe's two cases, docs/suites.md): no prompt kept (``n`` = 0: the model
    generates the target identifier on none of the prompts) or no counted top-1 token
    (``eq1_counted`` = 0: no intermediate top-1 token falls in either identifier set)."""
    from lensprobe.probes.working_language import metric_name

    out = []
    suite_rows = df[df["identifier"].isna() & df["layer"].isna()]
    for language, rows in suite_rows.groupby("language", sort=False):
        n_ckpt = rows["checkpoint"].nunique()
        for p in prompts:
            share = rows[rows["metric"] == metric_name("eq1_python_share", p)]
            counted = rows[rows["metric"] == metric_name("eq1_counted", p)].set_index("checkpoint")["value"]
            nan = share[share["value"].isna()]
            if nan.empty:
                continue
            label = {c: (f"step {int(st)}" if st == st and st is not None else str(c))
                     for c, st in zip(share["checkpoint"], share["step"])}
            none_kept = [label[c] for c, n in zip(nan["checkpoint"], nan["n"]) if n == 0]
            uncounted = [label[c] for c, n in zip(nan["checkpoint"], nan["n"])
                         if n > 0 and counted.get(c, 0) == 0]
            reasons = []
            if none_kept:
                reasons.append(f"no prompt kept at {_steps_text(none_kept)} (n=0: the model's final layer ranks a "
                               "target-identifier token first on none of the prompts)" if p == "generated" else
                               f"no prompt at {_steps_text(none_kept)} (n=0)")
            if uncounted:
                reasons.append(f"no counted top-1 token at {_steps_text(uncounted)} ("
                               f"{metric_name('eq1_counted', p)}=0: at the layers Eq.1 reads, no top-1 token of the "
                               "prompts is in the target or the Python set)")
            where = "" if p == "generated" else " (all prompts)"
            out.append(f"warning: {language}{where}: the Eq.1 shares are NaN at {len(nan)} of {n_ckpt} "
                       f"checkpoint(s): {'; '.join(reasons)}. Read final_accuracy and the probability-mass share "
                       "beside them; see docs/suites.md, 'Which prompts count'")
    return out


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        print(f"error: --out must end in .parquet or .csv, got {out.absolute()}", file=sys.stderr)
        return 2
    from lensprobe.suites import SuiteError, load_suite

    suites = []
    try:
        for name in dict.fromkeys(args.suite):
            suites.append(load_suite(name, search_path=args.suites_dir))
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    try:
        tokenizer = check_tokenizer_path(args.tokenizer)
        series = open_series(args, positional=args.model)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = series.run_dir.absolute() if series.run_dir is not None else series.run
    from lensprobe.checkpoints import CheckpointError
    from lensprobe.probes.working_language import working_language

    lenses = tuple(dict.fromkeys(args.lens))
    lens_options: dict[str, Any] = {}
    if "tuned" in lenses:
        lens_options = {"lens_dir": str(Path(args.lens_dir) if args.lens_dir else out.with_name(out.name + ".tuned_lens")),
                        "lens_steps": args.lens_steps}
        if args.lens_tokens:
            lens_options["lens_tokens"] = args.lens_tokens
    elif args.lens_dir or args.lens_tokens or args.lens_steps != 150:
        print("error: --lens-dir/--lens-tokens/--lens-steps are for --lens tuned", file=sys.stderr)
        return 2
    if args.every or args.steps:
        try:
            series = series.select(steps=args.steps, every=args.every)
        except (KeyError, ValueError) as exc:
            print(f"error: {path}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 2
    try:
        if args.identifier and len(suites) == 1:
            suites[0].render(limit=1, identifiers=args.identifier)  # unknown ids fail before any model loads
        df = working_language(series, suites if len(suites) > 1 else suites[0], tokenizer=tokenizer, seed=args.seed,
                              limit=args.limit, identifiers=args.identifier,
                              exclude_last=args.exclude_last, prompts=args.prompts,
                              batch_size=args.batch_size, add_bos=args.bos, device=args.device,
                              progress=not args.quiet, lens=lenses, lens_options=lens_options)
    except (KeyError, ValueError, CheckpointError) as exc:
        print(f"error: {path}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    _write_table(df, out)
    _print_summary(df, args.prompts, lenses)
    for line in nan_share_warnings(df, args.prompts):
        print(line, file=sys.stderr)
    print(f"wrote {len(df)} rows to {out}")
    from lensprobe.commands.sweep import print_problems, skipped_checkpoints

    problems = skipped_checkpoints(series)  # the good checkpoints' rows are written all the same
    print_problems(problems, "lens")
    return 1 if problems else 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("lens", help="run the working-language probe on a model or checkpoint series",
                              description="Logit-lens working-language probe (Babel Tower Eq.1) over an identifier "
                                          "suite, for one checkpoint directory or every checkpoint of a run.")
    p.add_argument("model", metavar="MODEL_OR_RUN_DIR", nargs="?", default=None,
                   help="an HF checkpoint directory or a run directory (or --hub REPO)")
    p.add_argument("--suite", required=True, action="append",
                   help="suite name (php, csharp, go, cpp, ...) or YAML path; repeat for several suites (one pass "
                        "over the checkpoints, one suite per language)")
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
    p.add_argument("--lens", nargs="+", choices=("logit", "tuned"), default=["logit"],
                   help="logit (default: the paper's Eq.1 lens), tuned (translators fitted per checkpoint on held-out "
                        "tokens; metrics end in _tuned_lens) or both side by side (docs/tuned-lens.md)")
    p.add_argument("--lens-tokens", default=None, metavar="TOKEN_STORE",
                   help="held-out tokens of the tuned lens: a pretrain token store directory, its val split "
                        "(default: the run's own RUN/tokens)")
    p.add_argument("--lens-dir", default=None, metavar="DIR",
                   help="cache of the fitted translators (default: OUT.tuned_lens beside the table); re-runs reuse it")
    p.add_argument("--lens-steps", type=int, default=150, help="optimiser steps per checkpoint's tuned-lens fit")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--bos", action="store_true", help="prepend the tokenizer's BOS token to every prompt")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory or tokenizer.json (default: the run's)")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--steps", type=int, nargs="+", default=None, help="only these steps")
    p.add_argument("--every", type=int, default=None, help="only steps that are multiples of N")
    p.add_argument("--suites-dir", action="append", default=None, metavar="DIR",
                   help="extra directory of suite YAML files (repeatable)")
    add_quiet(p)
    add_hub_arguments(p)
    p.set_defaults(func=run)
