"""``lensprobe stages``: translation / transition / stabilization per language from a sweep table.

    lensprobe stages sweeps/php --metric line_acc --probe babel --identifier python_only \\
        --support python_share=working_language:eq1_python_share --support lape=lape:n_neurons
    lensprobe stages sweeps/php --metric val_loss --probe log --lower-is-better

Prints one table (language x stage: start/end step, bootstrap confidence, notes) and writes
``OUT/stages.json`` (or ``--json PATH``): ``{language: StageResult.to_dict()}``, the file the
report and ``lensprobe plot`` read. When the table holds ``<metric>_lo`` / ``<metric>_hi`` rows
(bootstrap intervals, e.g. the Babel probe's), their half-width is the per-point noise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _parse_support(items: list[str]) -> dict[str, tuple[str | None, str]]:
    out: dict[str, tuple[str | None, str]] = {}
    for item in items:
        name, eq, target = item.partition("=")
        if not eq or not name or not target:
            raise ValueError(f"--support {item!r}: expected NAME=PROBE:METRIC (or NAME=METRIC)")
        probe, colon, metric = target.partition(":")
        out[name] = (probe or None, metric) if colon else (None, probe)
        if not out[name][1]:
            raise ValueError(f"--support {item!r}: empty metric")
    return out


def format_stages(results: dict[str, Any]) -> str:
    """A plain-text table of :func:`lensprobe.analysis.stages.stages_table` plus each language's notes."""
    from lensprobe.analysis.stages import stages_table

    df = stages_table(results)
    if df.empty:
        return "(no languages)"
    show = df[["language", "stage", "present", "start_step", "end_step", "confidence"]]
    lines = [show.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")]
    for lang, res in results.items():
        for note in res.notes:
            lines.append(f"  {lang}: {note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from lensprobe.files import atomic_write_json
    from lensprobe.analysis.stages import detect_stages_from_table
    from lensprobe.sweep import read_sweep

    try:
        support = _parse_support(args.support)
    except ValueError as exc:
        return _error(str(exc))
    out_dir = Path(args.out)
    try:
        table = read_sweep(out_dir)
    except FileNotFoundError as exc:
        return _error(str(exc))
    scope = table if args.probe is None else table[table["probe"] == args.probe]
    if args.identifier is not None:
        scope = scope[scope["identifier"] == args.identifier]
    metrics = set(scope["metric"].dropna().astype(str))
    if args.metric not in metrics:
        where = "".join([f" of probe {args.probe!r}" if args.probe else "",
                         f" for identifier {args.identifier!r}" if args.identifier else ""])
        return _error(f"{out_dir}: no rows with metric {args.metric!r}{where}; metrics there: "
                      f"{', '.join(sorted(metrics)[:40]) or '(none)'}")
    bounds = None
    if not args.no_interval and {f"{args.metric}_lo", f"{args.metric}_hi"} <= metrics:
        bounds = (f"{args.metric}_lo", f"{args.metric}_hi")
    try:
        results = detect_stages_from_table(
            table, metric=args.metric, probe=args.probe, identifier=args.identifier, languages=args.language,
            higher_is_better=not args.lower_is_better, support_metrics=support or None, interval_bounds=bounds,
            window=args.window, min_effect=args.min_effect, min_abs_effect=args.min_abs_effect,
            max_autocorr=args.max_autocorr, n_boot=args.n_boot, seed=args.seed)
    except ValueError as exc:
        return _error(f"{out_dir}: {exc}")
    for res in results.values():
        res.evidence.update(metric=args.metric, probe=args.probe, identifier=args.identifier,
                            interval="bootstrap rows " + "/".join(bounds) if bounds else "estimated from the curve")
    print(format_stages(results))
    path = Path(args.json) if args.json else out_dir / "stages.json"
    atomic_write_json(path, {lang: res.to_dict() for lang, res in results.items()})
    print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("stages", help="detect translation / transition / stabilization stages",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="sweep output directory (with results/)")
    p.add_argument("--metric", required=True, help="performance metric, e.g. line_acc, pass@1, final_accuracy")
    p.add_argument("--probe", help="only rows of this probe (babel, working_language, lape, log)")
    p.add_argument("--identifier", help="only rows of this identifier (a Babel split, a suite identifier)")
    p.add_argument("--language", nargs="+", help="languages (default: every language with the metric)")
    p.add_argument("--support", action="append", default=[], metavar="NAME=PROBE:METRIC",
                   help="supporting curve summarised per stage, e.g. python_share=working_language:eq1_python_share")
    p.add_argument("--lower-is-better", "--higher-is-lower", dest="lower_is_better", action="store_true",
                   help="the metric is a loss (lower is better)")
    p.add_argument("--window", type=int, default=5, help="smoothing window (default 5, as the paper)")
    p.add_argument("--min-effect", type=float, default=3.0,
                   help="a rise/decline counts above this many standard errors (default 3)")
    p.add_argument("--min-abs-effect", type=float, default=None,
                   help="a rise/decline must also be at least this large in the metric's units "
                        "(default 0.10 for a metric on a 0-1 scale, else 0)")
    p.add_argument("--max-autocorr", type=float, default=0.2,
                   help="residual lag-1 autocorrelation from which the noise counts as persistent (default 0.2)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicas for confidences (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-interval", action="store_true", help="ignore <metric>_lo/_hi rows; estimate the noise")
    p.add_argument("--json", help="where to write the results (default OUT/stages.json)")
    p.set_defaults(func=run)
