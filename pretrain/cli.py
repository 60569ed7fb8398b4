"""``lensprobe pretrain RECIPE --out DIR [--set section.key=value ...] [--mixture FILE]``.

Running the same command again on an existing output directory resumes it from its latest
resume state; a config that differs in a field that matters is refused (exit code 2).
Multi-process: ``accelerate launch [--config_file pretrain/accelerate/ddp.yaml] -m pretrain.cli RECIPE ...``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from .config import ConfigError, available_recipes, load_config


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pretrain", help="make checkpoint series: python-mono, continual, mixture, babel-* recipes",
        description="Pre-train (or continue) a model with a recipe; re-running resumes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recipes: " + ", ".join(available_recipes()) + " (or a path to a recipe YAML)\n"
               "example: lensprobe pretrain python-mono --out runs/py --set model.n_layer=2")
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="built-in recipe name or path to a recipe YAML")
    p.add_argument("--out", help="run directory (checkpoints, logs, resume state)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config field (repeatable); values are parsed as YAML")
    p.add_argument("--mixture", help="mixture file (YAML `tokens: {language: tokens}`) for the token budgets")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list", action="store_true", help="list the built-in recipes and exit")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no messages on stderr (errors are still printed)")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, path in available_recipes().items():
            print(f"{name}\t{path}")
        return 0
    if not args.recipe:
        print("lensprobe pretrain: a recipe is required (see --list)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.recipe, overrides=args.overrides, mixture=args.mixture)
    except ConfigError as exc:
        print(f"lensprobe pretrain: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    if not args.out:
        print("lensprobe pretrain: --out is required", file=sys.stderr)
        return 2
    from .train import train

    command = shlex.join(["lensprobe", "pretrain", args.recipe, "--out", args.out,
                          *[x for o in args.overrides for x in ("--set", o)],
                          *(["--mixture", args.mixture] if args.mixture else [])])
    try:
        result = train(cfg, args.out, command=command, stop_after=args.stop_after, progress=not args.quiet,
                       **({"log": None} if args.quiet else {}))
    except ConfigError as exc:
        print(f"lensprobe pretrain: {exc}", file=sys.stderr)
        return 2
    if result.status == "interrupted":
        return 143
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.cli", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
