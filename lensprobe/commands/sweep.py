"""``lensprobe sweep``: run probes over every checkpoint of a run into one resumable parquet table.

    lensprobe sweep runs/continual-php --out sweeps/php \\
        --probe working_language:suite=php,prompts=generated+all \\
        --probe lape:languages=python+php,inputs=suite,tokens_per_language=20000 \\
        --probe babel:splits=runs/babel/splits.json,languages=python+php,execute=false \\
        --probe functional:problems=humaneval-php.jsonl,family=multipl-e,max_new_tokens=128

Results go to ``OUT/results/<run>__<checkpoint>__<probe>-<settings hash>.parquet`` (one atomic file per
checkpoint and probe configuration). Re-running the same command skips what is done; a sweep with other probes
adds to the directory; changing a probe's settings recomputes (and replaces) its rows. Two sweeps into one
directory at once share the work (one lock per checkpoint and probe). Sharding:
``accelerate launch --num_processes N -m lensprobe.cli sweep ...`` (each rank takes every N-th
checkpoint, read from RANK / WORLD_SIZE). Each probe's keys are listed below and by
``lensprobe sweep --list-probes``.

Without --tokenizer, a checkpoint whose tokenizer differs from the one most checkpoints share is skipped;
with it, the given tokenizer is used for every checkpoint.

Exit codes: 0 every checkpoint done; 1 a checkpoint failed (a probe raised, or the model produced NaN/inf
activations: re-run to retry) or was skipped (unreadable, truncated or missing weights, NaN/inf weights,
another tokenizer), each named in the final summary, the others' rows written all the same; 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lensprobe.commands.common import UsageError, add_hub_arguments, add_quiet, open_series


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _rank_device(device: str) -> str:
    """``cuda`` under a multi-process launcher becomes ``cuda:<LOCAL_RANK>`` (one GPU per rank)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", 1))
    if device in ("cuda", "xpu", "npu") and world > 1 and "LOCAL_RANK" in os.environ:
        return f"{device}:{int(os.environ['LOCAL_RANK'])}"
    return device


def _open_series(args: argparse.Namespace, path: Path) -> Any:
    """The run directory's series, or the hub series of ``--hub`` / ``--revisions`` (commands/common.py)."""
    if args.hub or args.revisions:
        try:
            return open_series(args, positional=args.run)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    from lensprobe.checkpoints import CheckpointSeries

    return CheckpointSeries(path)


def run(args: argparse.Namespace) -> int:
    from lensprobe.probes.registry import ProbeSpecError, make_probe, probe_help, registered_probes

    if args.list_probes:
        for name in registered_probes():
            print(probe_help(name))
        return 0
    if not (args.run or args.hub) or not args.out:
        return _error("lensprobe sweep needs RUN_DIR (or --hub REPO) and --out (see --help)")
    if not args.probe:
        return _error("give at least one --probe SPEC, e.g. --probe working_language:suite=php "
                      "(lensprobe sweep --list-probes shows every probe's keys)")
    path = Path(args.run or args.hub).expanduser()
    if not args.hub and not path.exists():
        return _error(f"run directory {args.run} does not exist")
    import torch

    from lensprobe.checkpoints import CheckpointError, CheckpointSeries
    from lensprobe.sweep import run_sweep

    try:
        series = _open_series(args, path)
        if args.steps or args.every:
            series = series.select(steps=args.steps, every=args.every)
    except (CheckpointError, ValueError, KeyError, FileNotFoundError) as exc:
        return _error(f"{path}: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}")
    if args.tokenizer is None:  # the shared tokenizer, not that of a first checkpoint that differs
        series.exclude_foreign_tokenizers()
    try:
        tokenizer = series.tokenizer(args.tokenizer, required=False)
    except CheckpointError as exc:
        return _error(f"--tokenizer {args.tokenizer}: {exc}" if args.tokenizer else str(exc))
    if tokenizer is None:  # probes on token ids (LAPE on a token store) need none; others say so when built
        print(f"note: {path}: no tokenizer files; probes that tokenize text will fail", file=sys.stderr)
    try:
        probes = [make_probe(spec, tokenizer=tokenizer) for spec in args.probe]
    except ProbeSpecError as exc:
        return _error(str(exc))
    if args.device == "auto":
        return _error("--device auto (an accelerate device map across GPUs) is not supported by the sweep yet: "
                      "the engine needs one input device; use --device cuda (or cuda:N) per process")
    device = _rank_device(args.device)
    dtype = getattr(torch, args.dtype, None)
    if not isinstance(dtype, torch.dtype):
        return _error(f"--dtype {args.dtype!r} is not a torch dtype (float32, bfloat16, float16)")
    try:
        # the given tokenizer for every checkpoint; none given: the series' (others' are skipped)
        result = run_sweep(series, probes, out_dir=args.out, tokenizer=tokenizer if args.tokenizer else None,
                           device=device, dtype=dtype,
                           progress=not (args.no_progress or args.quiet), prefetch=not args.no_prefetch,
                           fail_fast=args.fail_fast, log=None if args.quiet else print)
    except CheckpointError as exc:
        return _error(str(exc))
    print(f"sweep: {len(result.computed)} computed, {len(result.skipped)} already done, "
          f"{len(result.failed)} failed, {len(result.broken)} skipped in {result.seconds:.1f}s "
          f"-> {Path(args.out) / 'results'}")
    print_problems(result.problems(), "sweep")
    return 0 if result.ok else 1


def skipped_checkpoints(series: Any) -> list[tuple[str, str]]:
    """The checkpoints of ``series`` that were not processed (broken, or another tokenizer), with why."""
    return [(c.name, f"skipped: {c.reason or 'broken'}") for c in series.broken]


def print_problems(problems: list[tuple[str, str]], command: str) -> None:
    """The final summary of what was not processed (stderr): one line per checkpoint, with why."""
    if not problems:
        return
    print(f"{command}: {len(problems)} checkpoint(s) not processed (exit status 1):", file=sys.stderr)
    for name, reason in problems:
        print(f"  {name}: {reason}", file=sys.stderr)


#: the epilog of ``--help``, replaced by every probe's keys when the help is printed
_PROBE_KEYS = "<probe keys>"


class _HelpWithProbes(argparse.RawDescriptionHelpFormatter):
    """Lists every probe's keys in ``--help`` (read from the probes only when the help is printed)."""

    def add_text(self, text: str | None) -> None:
        if text == _PROBE_KEYS:
            from lensprobe.probes.registry import probe_help, registered_probes

            text = "probes and their keys (* required):\n\n" + "\n\n".join(probe_help(n) for n in registered_probes())
        super().add_text(text)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sweep", help="run probes over every checkpoint into a resumable parquet table",
                              description=__doc__, epilog=_PROBE_KEYS, formatter_class=_HelpWithProbes)
    p.add_argument("run", nargs="?", help="run directory of checkpoints (or one model directory; or --hub REPO)")
    p.add_argument("--out", help="output directory (results/ holds one parquet file per checkpoint)")
    p.add_argument("--probe", action="append", default=[], metavar="SPEC",
                   help="NAME:key=value,... (repeat for several probes; lists join with '+')")
    p.add_argument("--list-probes", action="store_true", help="list the probes and their keys, then exit")
    p.add_argument("--steps", type=int, nargs="+", help="only these steps")
    p.add_argument("--every", type=int, help="only steps that are multiples of N")
    p.add_argument("--tokenizer", help="tokenizer directory or tokenizer.json (default: the run's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    p.add_argument("--dtype", default="float32", help="model dtype (float32, bfloat16, float16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-prefetch", action="store_true",
                   help="do not read the next checkpoint in the background (saves one state dict of memory)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing checkpoint")
    add_quiet(p)
    add_hub_arguments(p)
    p.set_defaults(func=run)
