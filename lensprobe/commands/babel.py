"""``lensprobe babel``: the synthetic Babel benchmark — splits, generated lens suites, renderings, evaluation.

    lensprobe babel splits --seed 0 --targets php,go --out splits.json
    lensprobe babel suite --splits splits.json --target php --out babel_php.yaml
    lensprobe babel show --splits splits.json --split python_only --language php --limit 2
    lensprobe babel eval CHECKPOINT_OR_RUN_DIR --splits splits.json --languages python,php --out table.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lensprobe.commands.common import UsageError, add_quiet, check_tokenizer_path

#: columns of the table ``lensprobe babel eval`` writes
EVAL_COLUMNS = ["run", "checkpoint", "step", "tokens", "split", "language", "metric", "value", "lo", "hi", "n"]


_UsageError = UsageError  # bad input: printed as ``error: ...`` with exit code 2


def _list_arg(text: str | None, field: str, allowed: tuple[str, ...]) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise _UsageError(f"{field}: empty list")
    for t in items:
        if t not in allowed:
            raise _UsageError(f"{field}: unknown value {t!r}; expected some of {', '.join(allowed)}")
    if len(set(items)) != len(items):
        raise _UsageError(f"{field}: repeated value in {text!r}")
    return items


def _load_splits(path: str):
    from lensprobe.babel.splits import BabelSplits

    p = Path(path).expanduser()
    if not p.is_file():
        raise _UsageError(f"--splits: split manifest {path} does not exist (make one with `lensprobe babel splits`)")
    try:
        return BabelSplits.load(p)
    except ValueError as exc:
        raise _UsageError(f"--splits: {exc}") from None


def _target(splits: Any, target: str | None) -> str:
    if target is None:
        return splits.targets[0]
    if target not in splits.targets:
        raise _UsageError(f"--target: {target!r} is not a target of the splits (targets: {', '.join(splits.targets)})")
    return target


def _write_table(df: Any, out: Path) -> None:
    from lensprobe.files import atomic_write_table

    atomic_write_table(out, df)


def _check_table_path(out: str, field: str = "--out") -> Path:
    p = Path(out)
    if p.suffix.lower() not in (".csv", ".parquet"):
        raise _UsageError(f"{field}: must end in .csv or .parquet, got {out}")
    return p


# ------------------------------------------------------------------------------------------ splits

def _cmd_splits(args: argparse.Namespace) -> int:
    from lensprobe.babel.splits import TARGETS, make_splits

    targets = _list_arg(args.targets, "--targets", TARGETS)
    for name in ("n_shared", "n_python_only", "n_target_only", "n_control"):
        if getattr(args, name) < 0:
            raise _UsageError(f"--{name.replace('_', '-')}: must be >= 0, got {getattr(args, name)}")
    if args.n_cases < 2:  # one case cannot tell pipelines apart (make_splits refuses it)
        raise _UsageError(f"--n-cases: must be >= 2, got {args.n_cases}")
    splits = make_splits(seed=args.seed, targets=targets, n_shared=args.n_shared, n_python_only=args.n_python_only,
                         n_target_only=args.n_target_only, n_control=args.n_control, n_cases=args.n_cases)
    path = splits.save(args.out)
    sizes = [f"shared {len(splits.shared)}", f"python_only {len(splits.python_only)}",
             *(f"target_only[{t}] {len(splits.target_only[t])}" for t in splits.targets), f"control {len(splits.control)}"]
    print(f"wrote {path}: seed {splits.seed}, targets {', '.join(splits.targets)}; " + ", ".join(sizes))
    return 0


# ------------------------------------------------------------------------------------------ suite

def _cmd_suite(args: argparse.Namespace) -> int:
    from lensprobe.babel.suite import babel_lens_items, write_babel_suite
    from lensprobe.babel.splits import SPLITS

    splits = _load_splits(args.splits)
    if args.target is not None and args.target not in ("php", "csharp", "go", "cpp"):
        raise _UsageError(f"--target: expected one of php, csharp, go, cpp, got {args.target!r}")
    target = args.target or splits.targets[0]
    names = _list_arg(args.split, "--split", SPLITS)
    if Path(args.out).suffix.lower() not in (".yaml", ".yml"):
        raise _UsageError(f"--out: must end in .yaml or .yml, got {args.out}")
    if args.min_prompts < 1:
        raise _UsageError(f"--min-prompts: must be >= 1, got {args.min_prompts}")
    try:
        items = babel_lens_items(splits, target=target, split_names=names, min_prompts=args.min_prompts)
        path = write_babel_suite(splits, args.out, target=target, split_names=names, min_prompts=args.min_prompts)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    counts = items.counts()
    print(f"wrote {path}: {target} suite, {len(counts)} identifiers, {len(items.items)} prompts")
    for ident, n in counts.items():
        print(f"  {ident}\t{n}")
    for s in items.skipped:
        print(f"  skipped {s['n']} {s['split']} concept(s) with terminal {s['terminal']}: {s['reason']}")
    return 0


# ------------------------------------------------------------------------------------------ show

def _cmd_show(args: argparse.Namespace) -> int:
    from lensprobe.babel.splits import SPLITS
    from lensprobe.babel.concepts import render
    from lensprobe.languages import LANGUAGES

    splits = _load_splits(args.splits)
    names = _list_arg(args.split, "--split", SPLITS) or list(SPLITS)
    languages = _list_arg(args.language, "--language", LANGUAGES) or ["python", splits.targets[0]]
    target = _target(splits, args.target)
    if args.limit is not None and args.limit < 1:
        raise _UsageError(f"--limit: must be >= 1, got {args.limit}")
    wanted = set(args.concept or [])
    known = {c.name for c in splits.all_concepts()}
    unknown = wanted - known
    if unknown:
        raise _UsageError(f"--concept: no concept named {sorted(unknown)} in {args.splits}")
    for split in names:
        concepts = splits.split(split, target=target if split == "target_only" else None)
        if wanted:
            concepts = [c for c in concepts if c.name in wanted]
        if args.limit is not None:
            concepts = concepts[:args.limit]
        for c in concepts:
            print(f"### {split} {c.name}: {c.describe()}  (tests: {list(c.cases)[:2]} ...)")
            for lang in languages:
                print(f"# {lang}")
                sys.stdout.write(render(c, lang).text)
            print()
    return 0


# ------------------------------------------------------------------------------------------ eval

def _summary_from_sweep(df: Any) -> Any:
    import pandas as pd

    from lensprobe.babel.rows import summary_rows

    df = summary_rows(df[df["probe"] == "babel"]).copy()  # the per-split rows, not the per-item ones
    if df.empty:
        return pd.DataFrame(columns=EVAL_COLUMNS)
    base = df["metric"].str.replace(r"_(lo|hi)$", "", regex=True)
    df["kind"] = [m[len(b) + 1:] if m != b else "value" for m, b in zip(df["metric"], base)]
    df["metric"] = base
    df = df.rename(columns={"identifier": "split"})
    keys = ["run", "checkpoint", "step", "tokens", "split", "language", "metric"]
    wide = df.pivot_table(index=keys, columns="kind", values="value", aggfunc="first", dropna=False).reset_index()
    n = df[df["kind"] == "value"][keys + ["n"]]
    out = wide.merge(n, on=keys, how="left").dropna(subset=["value"])
    return out[EVAL_COLUMNS].sort_values(["step", "checkpoint", "split", "language", "metric"]).reset_index(drop=True)


def _checkpoint_stamp(path: Path) -> dict[str, Any]:
    try:
        from lensprobe.checkpoints import CheckpointSeries

        series = CheckpointSeries(path, hash_weights=False)
        info = next(iter(series))
        return dict(run=series.run, checkpoint=info.name, step=info.step, tokens=info.tokens)
    except Exception:  # noqa: BLE001 - the stamp is informative only
        return dict(run=None, checkpoint=path.name, step=None, tokens=None)


def _cmd_eval(args: argparse.Namespace) -> int:
    from lensprobe.babel.splits import SPLITS
    from lensprobe.languages import LANGUAGES

    out = _check_table_path(args.out)
    items_out = _check_table_path(args.items, "--items") if args.items else None
    splits = _load_splits(args.splits)
    languages = _list_arg(args.languages, "--languages", LANGUAGES) or ["python", splits.targets[0]]
    names = _list_arg(args.split, "--split", SPLITS) or list(SPLITS)
    target = _target(splits, args.target)
    for field, value, low in (("--batch-size", args.batch_size, 1), ("--n-boot", args.n_boot, 1),
                              ("--max-new-tokens", args.max_new_tokens, 1)):
        if value is not None and value < low:
            raise _UsageError(f"{field}: must be >= {low}, got {value}")
    path = Path(args.model).expanduser()
    if not path.exists():
        raise _UsageError(f"checkpoint or run directory {path.absolute()} does not exist")
    tokenizer = None
    tok_path = check_tokenizer_path(args.tokenizer)
    if tok_path is not None:
        from lensprobe.checkpoints import CheckpointError, load_tokenizer_from

        try:
            tokenizer = load_tokenizer_from(tok_path)
        except CheckpointError as exc:
            raise _UsageError(f"--tokenizer: {exc}") from None
    execute = not args.no_execute
    if (path / "config.json").is_file():
        import pandas as pd

        from lensprobe.engine.adapters import load_model
        from lensprobe.babel.evaluation import evaluate_babel

        try:
            loaded = load_model(path, device=args.device or "cpu", check_lens=False)
        except Exception as exc:  # noqa: BLE001 - any load failure names the checkpoint
            raise _UsageError(f"{path}: cannot load the checkpoint: {exc}") from None
        tok = tokenizer or loaded.tokenizer
        if tok is None:
            raise _UsageError(f"{path}: the checkpoint has no tokenizer; pass --tokenizer")
        ev = evaluate_babel(loaded.model, tok, splits, languages=languages, split_names=names, target=target,
                            execute=execute, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                            n_boot=args.n_boot, seed=args.seed, progress=not args.quiet)
        summary = ev.summary()
        for k, v in reversed(list(_checkpoint_stamp(path).items())):
            summary.insert(0, k, v)
        table = summary[EVAL_COLUMNS] if not summary.empty else pd.DataFrame(columns=EVAL_COLUMNS)
        if items_out is not None:
            _write_table(ev.items, items_out)
            print(f"wrote {len(ev.items)} items to {items_out}")
        failed: list[tuple[str, str]] = []
    else:
        from lensprobe.probes.babel import BabelProbe
        from lensprobe.checkpoints import CheckpointError, CheckpointSeries
        from lensprobe.progress import say
        from lensprobe.sweep import read_sweep, run_sweep

        if items_out is not None:
            raise _UsageError("--items: per-item tables are written for a single checkpoint only")
        try:
            series = CheckpointSeries(path)
        except (CheckpointError, ValueError, FileNotFoundError) as exc:
            raise _UsageError(f"{path}: {exc}") from None
        if args.steps:
            try:
                series = series.select(steps=args.steps)
            except (KeyError, ValueError) as exc:
                raise _UsageError(f"--steps: {path}: {exc.args[0] if exc.args else exc}") from None
        sweep_dir = Path(args.sweep_dir) if args.sweep_dir else out.with_name(out.stem + "_sweep")
        kwargs = dict(languages=languages, split_names=names, target=target, execute=execute,
                      batch_size=args.batch_size, n_boot=args.n_boot, seed=args.seed)
        probe = BabelProbe(splits, max_new_tokens=args.max_new_tokens, **kwargs)
        result = run_sweep(series, [probe], out_dir=sweep_dir, tokenizer=tokenizer, device=args.device or "cpu",
                           progress=not args.quiet, log=None if args.quiet else say)
        failed = result.failed + result.broken  # broken checkpoints were not evaluated either
        try:
            table = _summary_from_sweep(read_sweep(sweep_dir))
        except FileNotFoundError:
            import pandas as pd

            table = pd.DataFrame(columns=EVAL_COLUMNS)
        print(f"sweep results in {sweep_dir} ({len(result.computed)} computed, {len(result.skipped)} reused)")
    _write_table(table, out)
    acc = table[table["metric"] == "line_acc"]
    if not acc.empty:
        print(acc.pivot_table(index=["step", "split"], columns="language", values="value", dropna=False)
              .to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(table)} rows to {out}")
    for name, reason in failed:
        print(f"error: checkpoint {name} failed: {reason}", file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------ wiring

def _guard(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except _UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("babel", help="the synthetic Babel benchmark: splits, suites and evaluation",
                              description="The synthetic Babel benchmark (docs/babel.md): concept splits, "
                                          "generated identifier suites for the lens, renderings and evaluation.")
    sub = p.add_subparsers(dest="babel_command", metavar="ACTION", required=True)

    s = sub.add_parser("splits", help="make seeded concept splits and write the manifest (JSON)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--targets", default="php", help="comma-separated target languages (php,csharp,go,cpp)")
    s.add_argument("--n-shared", type=int, default=40)
    s.add_argument("--n-python-only", type=int, default=40)
    s.add_argument("--n-target-only", type=int, default=40, help="per target language")
    s.add_argument("--n-control", type=int, default=40)
    s.add_argument("--n-cases", type=int, default=4, help="test cases per concept")
    s.add_argument("--out", required=True, help="manifest path (JSON)")
    s.set_defaults(func=_guard(_cmd_splits))

    g = sub.add_parser("suite", help="write the generated identifier suite (lens items) of one target language")
    g.add_argument("--splits", required=True, help="split manifest (from `lensprobe babel splits`)")
    g.add_argument("--target", default=None, help="php, csharp, go or cpp (default: the splits' first target)")
    g.add_argument("--split", default=None, help="comma-separated splits (default: all)")
    g.add_argument("--min-prompts", type=int, default=1,
                   help="drop identifiers with fewer concepts than this (written as the suite's min_prompts)")
    g.add_argument("--out", required=True, help="suite YAML path")
    g.set_defaults(func=_guard(_cmd_suite))

    w = sub.add_parser("show", help="print the canonical renderings of concepts")
    w.add_argument("--splits", required=True)
    w.add_argument("--split", default=None, help="comma-separated splits (default: all)")
    w.add_argument("--language", default=None, help="comma-separated languages (default: python and the first target)")
    w.add_argument("--target", default=None, help="whose target_only split to show (default: the first target)")
    w.add_argument("--concept", action="append", default=None, help="only this concept (repeatable)")
    w.add_argument("--limit", type=int, default=None, help="concepts per split")
    w.set_defaults(func=_guard(_cmd_show))

    e = sub.add_parser("eval", help="greedy body completion: line accuracy, exact match, pass@1 per split x language")
    e.add_argument("model", metavar="CHECKPOINT_OR_RUN_DIR")
    e.add_argument("--splits", required=True)
    e.add_argument("--languages", default=None, help="comma-separated (default: python and the first target)")
    e.add_argument("--split", default=None, help="comma-separated splits (default: all)")
    e.add_argument("--target", default=None, help="whose target_only split to use (default: the first target)")
    e.add_argument("--no-execute", action="store_true", help="skip sandboxed pass@1 (line accuracy and EM only)")
    e.add_argument("--out", required=True, help="summary table: .csv or .parquet")
    e.add_argument("--items", default=None, help="single checkpoint: also write per-item completions (.csv/.parquet)")
    e.add_argument("--sweep-dir", default=None, help="run dir: resumable sweep directory (default: OUT_sweep/)")
    e.add_argument("--steps", type=int, nargs="+", default=None, help="run dir: only these steps")
    e.add_argument("--tokenizer", default=None, help="tokenizer directory (default: the checkpoint's)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--max-new-tokens", type=int, default=None, help="default: 1.25 x the longest reference body")
    e.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals")
    e.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    e.add_argument("--device", default=None, help="torch device (default: cpu)")
    add_quiet(e)
    e.set_defaults(func=_guard(_cmd_eval))
