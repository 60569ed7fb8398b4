"""``lensprobe probes``: list, validate and render identifier suites.

    lensprobe probes list
    lensprobe probes validate FILE_OR_DIR_OR_NAME [...] [--tokenizer DIR] [--strict]
    lensprobe probes render NAME|FILE [--seed N] [--limit N] [--identifier ID] [--format text|jsonl]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lensprobe.commands.common import UsageError, check_tokenizer_path


def _targets(items: list[str]) -> list[str]:
    """Suite files, names and directories -> suite files and names: a directory stands for every
    ``*.yaml`` / ``*.yml`` file in it (not recursive)."""
    out: list[str] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
            if not files:
                raise UsageError(f"{path.absolute()}: the directory holds no suite files (*.yaml, *.yml)")
            out.extend(str(p) for p in files)
        else:
            out.append(item)
    return out


def _validate(args: argparse.Namespace) -> int:
    from lensprobe.checkpoints import CheckpointError, load_tokenizer_from
    from lensprobe.suites import validate_suite

    try:
        path = check_tokenizer_path(args.tokenizer)
        tokenizer = load_tokenizer_from(path) if path is not None else None
        targets = _targets(args.files)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        print(f"error: --tokenizer: {exc}", file=sys.stderr)
        return 2
    from lensprobe.suites import resolve_suite_path

    for target in targets:
        try:
            resolve_suite_path(target, search_path=args.suites_dir)
        except (KeyError, FileNotFoundError) as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 2
    failed = False
    for target in targets:
        report = validate_suite(target, tokenizer=tokenizer, search_path=args.suites_dir)
        bad = not report.ok or (args.strict and bool(report.warnings))
        print(report.format(), file=sys.stderr if bad else sys.stdout)
        failed = failed or bad
    return 1 if failed else 0


def _render(args: argparse.Namespace) -> int:
    from lensprobe.suites import SuiteError, load_suite

    try:
        suite = load_suite(args.suite, search_path=args.suites_dir)
        items = suite.render(seed=args.seed, limit=args.limit, identifiers=args.identifier or None)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    for it in items:
        if args.format == "jsonl":
            out.write(json.dumps(it.to_dict()) + "\n")
        else:
            out.write(f"### {it.language} {it.identifier} #{it.index} (template {it.template_id}); "
                      f"expects {list(it.target_forms)} (python {list(it.reference_forms)})\n")
            out.write(it.prompt + "\u2038\n\n")
    return 0


def _list(args: argparse.Namespace) -> int:
    from lensprobe.suites import list_suites, resolve_suite_path

    for name in list_suites(search_path=args.suites_dir):
        print(f"{name}\t{resolve_suite_path(name, search_path=args.suites_dir)}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("probes", help="validate and render identifier suites",
                              description="Identifier suites: list, validate (schema, slots, prompt counts, "
                                          "token-set collisions) and render prompts.")
    sub = p.add_subparsers(dest="probes_command", metavar="ACTION", required=True)

    def common(sp):
        sp.add_argument("--suites-dir", action="append", default=None, metavar="DIR",
                        help="extra directory of suite YAML files (repeatable; also $LENSPROBE_SUITES_PATH)")

    v = sub.add_parser("validate", help="check suite files; exit 1 on errors")
    v.add_argument("files", nargs="+", metavar="FILE", help="suite YAML file(s), directories of them, or suite names")
    v.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory or tokenizer.json: also check token sets")
    v.add_argument("--strict", action="store_true", help="treat warnings (e.g. token-set collisions) as errors")
    common(v)
    v.set_defaults(func=_validate)

    r = sub.add_parser("render", help="print a suite's prompts (the cursor is shown as \u2038)")
    r.add_argument("suite", metavar="NAME|FILE")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--limit", type=int, default=None, help="prompts per identifier")
    r.add_argument("--identifier", action="append", default=None, help="only this identifier (repeatable)")
    r.add_argument("--format", choices=("text", "jsonl"), default="text")
    common(r)
    r.set_defaults(func=_render)

    ls = sub.add_parser("list", help="list available suites and their files")
    common(ls)
    ls.set_defaults(func=_list)
