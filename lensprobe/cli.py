"""``lensprobe`` command line: one sub-command per module, registered lazily.

Each entry of :data:`COMMANDS` names a module that defines ``register(subparsers)``; the
module's parser sets ``func`` (a callable taking the parsed args and returning an exit code).
Modules are imported only when their command runs, so ``lensprobe --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: command name -> (module defining ``register(subparsers)``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "probes": ("lensprobe.commands.probes", "validate and render identifier suites"),
    "lens": ("lensprobe.commands.lens", "run the working-language probe on a model or checkpoint series"),
    "lape": ("lensprobe.commands.lape", "language-specific neurons (LAPE) over a checkpoint series"),
    "eval": ("lensprobe.commands.eval", "functional-correctness evaluation (HumanEval / MBXP) in a sandbox"),
    "pretrain": ("pretrain.cli", "make checkpoint series: python-mono, continual, mixture, babel-* recipes"),
    "fit": ("lensprobe.commands.fit", "Babel maps, scaling/mixing laws and data-mix recommendations"),
    "babel": ("lensprobe.commands.babel", "the synthetic Babel benchmark: splits, suites and evaluation"),
    "sweep": ("lensprobe.commands.sweep", "run probes over every checkpoint into a resumable parquet table"),
    "stages": ("lensprobe.commands.stages", "detect translation / transition / stabilization stages"),
    "plot": ("lensprobe.commands.plot", "write the paper's figures from a sweep table"),
    "report": ("lensprobe.commands.report", "write a self-contained HTML report for a run directory"),
    "demo": ("lensprobe.commands.demo", "the end-to-end demo on the embedded synthetic corpus"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lensprobe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name == only:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name and module.startswith(exc.name):
                    sub.add_parser(name, help=help_text)
                    continue
                raise
            mod.register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.version:
        from lensprobe import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"command {args.command!r} is not available in this build")
    return int(func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
