"""``lensprobe lape``: language-specific neurons (LAPE) at every checkpoint of a run.

    lensprobe lape runs/continual-php --languages python php --tokens data/tokens --out lape.parquet
    lensprobe lape runs/r --languages python php --input python=src/py --input php=suite \\
        --tokens-per-language 200000 --out lape.csv --masks-dir lape-masks

Resumable: checkpoints already in ``--out`` (written with the same settings, recorded in
``<out>.lape.json``) are skipped; the table is rewritten atomically after every checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SUMMARY_METRICS = ("n_neurons", "n_exclusive", "null_n_neurons", "null_n_exclusive")


def _write_table(df: Any, out: Path) -> None:
    from lensprobe.files import atomic_write_table

    atomic_write_table(out, df)


def _read_table(out: Path):
    import pandas as pd

    return pd.read_parquet(out) if out.suffix.lower() == ".parquet" else pd.read_csv(out)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _parse_inputs(args: argparse.Namespace) -> Any:
    if args.tokens and args.input:
        raise ValueError("give either --tokens or --input, not both")
    if args.tokens:
        return f"tokens:{args.tokens}"
    if not args.input:
        raise ValueError("no inputs: give --tokens STORE_DIR or --input LANG=SOURCE per language")
    spec = {}
    for item in args.input:
        lang, sep, source = item.partition("=")
        if not sep or not lang or not source:
            raise ValueError(f"--input {item!r}: expected LANG=SOURCE (SOURCE: suite, a directory, a .jsonl "
                             "file or tokens:STORE_DIR)")
        spec[lang] = source
    return spec


def run(args: argparse.Namespace) -> int:
    import json

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        return _error(f"--out must end in .parquet or .csv, got {args.out}")
    path = Path(args.run).expanduser()
    if not path.exists():
        return _error(f"model or run directory {args.run} does not exist")
    try:
        source = _parse_inputs(args)
    except ValueError as exc:
        return _error(str(exc))

    from lensprobe.checkpoints import CheckpointError, CheckpointSeries
    from lensprobe.lape import InputError, lape_over_series

    try:
        series = CheckpointSeries(path)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        return _error(f"{path}: {exc}")
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)

    settings = {k: getattr(args, k) for k in (
        "languages", "tokens", "input", "split", "tokens_per_language", "seq_len", "batch_size", "groups",
        "null_permutations", "seed", "top_rate", "filter_rate", "activation_bar_ratio", "no_reference")}
    settings["run"] = str(path.resolve())
    sidecar = out.with_name(out.name + ".lape.json")
    done: list[str] = []
    previous = None
    if out.exists() and not args.overwrite:
        recorded = json.loads(sidecar.read_text()) if sidecar.exists() else None
        if recorded != settings:
            return _error(f"{out} exists and was written with other settings ({sidecar}); "
                          "use --overwrite or another --out")
        previous = _read_table(out)
        done = sorted(set(previous["checkpoint"].astype(str)))
        if done:
            print(f"resuming: {len(done)} checkpoint(s) already in {out}")

    from lensprobe.files import atomic_write_json

    atomic_write_json(sidecar, settings)
    frames = [previous] if previous is not None else []

    def on_checkpoint(ckpt: Any, result: Any, rows: Any) -> None:
        import pandas as pd

        frames.append(rows)
        _write_table(pd.concat(frames, ignore_index=True), out)
        if args.masks_dir:
            import io

            import numpy as np

            from lensprobe.files import atomic_write_bytes

            buf = io.BytesIO()
            np.savez_compressed(buf, mask=result.mask, probs=result.probs, entropy=result.entropy,
                                selected=result.selected, languages=np.array(result.languages))
            atomic_write_bytes(Path(args.masks_dir) / f"{ckpt.name}.npz", buf.getvalue())
        summary = rows[rows["layer"].isna() & rows["metric"].isin(SUMMARY_METRICS) & rows["language"].notna()]
        table = summary.pivot_table(index="language", columns="metric", values="value", sort=False)
        print(f"[{ckpt.name}] step {ckpt.step}:\n" + table.to_string(float_format=lambda v: f"{v:.1f}"))

    if done and {c.name for c in series} <= set(done):
        print(f"all {len(series)} checkpoint(s) already in {out}")
        return 0
    try:
        lape_over_series(series, source, languages=args.languages, tokens_per_language=args.tokens_per_language,
                         tokenizer=tokenizer, seq_len=args.seq_len, split=args.split, batch_size=args.batch_size,
                         n_groups=args.groups, top_rate=args.top_rate, filter_rate=args.filter_rate,
                         activation_bar_ratio=args.activation_bar_ratio, null_permutations=args.null_permutations,
                         null_seed=args.seed, reference=None if args.no_reference else "first",
                         device=args.device, skip=done, on_checkpoint=on_checkpoint)
    except (InputError, CheckpointError) as exc:
        return _error(str(exc))
    n = sum(len(f) for f in frames)
    print(f"wrote {n} rows to {out}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("lape", help="language-specific neurons (LAPE) over a checkpoint series",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory of checkpoints (or one model directory)")
    p.add_argument("--languages", nargs="+", required=True, help="languages, e.g. python php")
    p.add_argument("--tokens", help="pretrain token-store directory (manifest.json) holding every language")
    p.add_argument("--input", action="append", default=[], metavar="LANG=SOURCE",
                   help="per-language source: suite, a directory of source files, a .jsonl file or tokens:DIR")
    p.add_argument("--split", default="val", choices=["train", "val"], help="token-store split (default val)")
    p.add_argument("--tokens-per-language", type=int, default=1_000_000,
                   help="token budget per language (default 1M; see docs/lape.md)")
    p.add_argument("--seq-len", type=int, default=256, help="sequence length for packed inputs")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--groups", type=int, default=16, help="sequence groups per language for the null")
    p.add_argument("--null-permutations", type=int, default=8, help="shuffled-label permutations (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the null permutations")
    p.add_argument("--top-rate", type=float, default=0.01)
    p.add_argument("--filter-rate", type=float, default=0.95)
    p.add_argument("--activation-bar-ratio", type=float, default=0.95)
    p.add_argument("--no-reference", action="store_true",
                   help="do not compare each checkpoint's sets with the first checkpoint's")
    p.add_argument("--tokenizer", help="tokenizer directory for text inputs (default: the run's)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: where the model loads)")
    p.add_argument("--out", required=True, help="output table (.parquet or .csv)")
    p.add_argument("--masks-dir", help="also save each checkpoint's masks and probabilities as <checkpoint>.npz")
    p.add_argument("--overwrite", action="store_true", help="start over even if --out exists")
    p.set_defaults(func=run)
