"""``lensprobe lape``: language-specific neurons (LAPE) at every checkpoint of a run.

    lensprobe lape runs/continual-php --languages python php --tokens data/tokens --out lape.parquet
    lensprobe lape runs/r --languages python php --input python=src/py --input php=suite \\
        --tokens-per-language 200000 --out lape.csv --masks-dir lape-masks
    lensprobe lape --hub EleutherAI/pythia-70m --revisions "step*000" --languages python php \\
        --input python=src/py --input php=php.jsonl --out lape.parquet

A sweep with the LAPE probe (:func:`lensprobe.probes.lape.lape_over_series`): every checkpoint's
rows go to ``<out>.sweep/results/`` as it finishes, so a re-run skips the checkpoints already done
with the same settings and recomputes those whose settings changed; the table ``--out`` is written
from them at the end.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lensprobe.commands.common import UsageError, add_hub_arguments, add_quiet, check_tokenizer_path, open_series

SUMMARY_METRICS = ("n_neurons", "n_exclusive", "null_n_neurons", "null_n_exclusive")


def _write_table(df: Any, out: Path) -> None:
    from lensprobe.files import atomic_write_table

    atomic_write_table(out, df)


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
    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        return _error(f"--out must end in .parquet or .csv, got {out.absolute()}")
    try:
        source = _parse_inputs(args)
        tokenizer = check_tokenizer_path(args.tokenizer)
        series = open_series(args, positional=args.run)
    except (ValueError, UsageError) as exc:
        return _error(str(exc))

    from tqdm.auto import tqdm

    from lensprobe.checkpoints import CheckpointError
    from lensprobe.lape import InputError
    from lensprobe.probes.lape import lape_over_series

    sweep_dir = out.with_name(out.name + ".sweep")
    computed: list[str] = []

    def on_checkpoint(info: Any, result: Any, rows: Any) -> None:
        computed.append(info.name)
        if args.masks_dir:
            import io

            import numpy as np

            from lensprobe.files import atomic_write_bytes

            buf = io.BytesIO()
            np.savez_compressed(buf, mask=result.mask, probs=result.probs, entropy=result.entropy,
                                selected=result.selected, languages=np.array(result.languages))
            atomic_write_bytes(Path(args.masks_dir) / f"{info.name}.npz", buf.getvalue())
        summary = rows[rows["layer"].isna() & rows["metric"].isin(SUMMARY_METRICS) & rows["language"].notna()]
        table = summary.pivot_table(index="language", columns="metric", values="value", sort=False)
        tqdm.write(f"[{info.name}] step {info.step}:\n" + table.to_string(float_format=lambda v: f"{v:.1f}"),
                   file=sys.stdout)  # beside the bar on stderr, without breaking it

    try:
        df = lape_over_series(series, source, languages=args.languages, tokens_per_language=args.tokens_per_language,
                              tokenizer=tokenizer, seq_len=args.seq_len, split=args.split,
                              batch_size=args.batch_size, n_groups=args.groups, top_rate=args.top_rate,
                              filter_rate=args.filter_rate, activation_bar_ratio=args.activation_bar_ratio,
                              null_permutations=args.null_permutations, null_seed=args.seed,
                              reference=None if args.no_reference else "first", device=args.device,
                              out_dir=sweep_dir, on_checkpoint=on_checkpoint, progress=not args.quiet)
    except (InputError, CheckpointError) as exc:
        return _error(str(exc))
    if not computed:
        print(f"all {len(series)} checkpoint(s) already in {sweep_dir}")
    _write_table(df, out)
    print(f"wrote {len(df)} rows to {out}")
    from lensprobe.commands.sweep import print_problems, skipped_checkpoints

    problems = skipped_checkpoints(series)  # the good checkpoints' rows are written all the same
    print_problems(problems, "lape")
    return 1 if problems else 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("lape", help="language-specific neurons (LAPE) over a checkpoint series",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default=None, help="run directory of checkpoints (or one model directory; "
                                                          "or --hub REPO)")
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
    p.add_argument("--tokenizer", help="tokenizer directory or tokenizer.json for text inputs (default: the run's)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: where the model loads)")
    p.add_argument("--out", required=True, help="output table (.parquet or .csv)")
    p.add_argument("--masks-dir", help="also save each checkpoint's masks and probabilities as <checkpoint>.npz")
    add_quiet(p)
    add_hub_arguments(p)
    p.set_defaults(func=run)
