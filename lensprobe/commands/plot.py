"""``lensprobe plot``: the paper's figures from a sweep table, as PNG and SVG.

    lensprobe plot sweeps/php                                   # every figure the table supports
    lensprobe plot sweeps/php --figures performance,working_language --metric line_acc --probe babel

Figures (file names under ``--out-dir``, default ``OUT/figures``):

* ``performance`` -> ``performance.{png,svg}``: the paper's Figure 2 layout: ``--metric`` of
  ``--probe`` per split over training for ``--language`` (default: the first non-Python language)
  with its interval, Python dashed beside it, the control split and the body prior as baselines,
  stages shaded from ``OUT/stages.json`` when present;
* ``working_language`` -> ``working_language.*``: Figure 3, the lens' working language per layer and
  the Eq.1 Python share over training with Wilson intervals and the prompts kept;
* ``lape`` -> ``lape_counts.*`` (neurons per language against the shuffled-label null band) and
  ``lape_layers.*`` (per layer at the last checkpoint);
* ``heatmap`` -> ``heatmap_<language>.*``: checkpoint x layer lens probability of both token sets.

``--x step|tokens`` chooses the x axis of every figure (log where the checkpoints are log-spaced).
With ``--figures auto`` (the default) figures whose rows are missing are skipped; a figure named
explicitly but without rows, or a ``--language`` the table has no rows for, is an error (exit code 2).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FIGURES = ("performance", "working_language", "lape", "heatmap")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _has(table: Any, probe: str | None, metric: str, *, layered: bool | None = None) -> bool:
    sel = table[table["metric"] == metric]
    if probe is not None:
        sel = sel[sel["probe"] == probe]
    if layered is True:
        sel = sel[sel["layer"].notna()]
    elif layered is False:
        sel = sel[sel["layer"].isna()]
    return not sel.empty


def available_figures(table: Any, *, metric: str = "line_acc", probe: str | None = "babel") -> list[str]:
    """The figures ``table`` has rows for."""
    have = []
    if _has(table, probe, metric):
        have.append("performance")
    if _has(table, "working_language", "eq1_python_share"):
        have.append("working_language")
    if _has(table, "lape", "n_neurons", layered=False) and _has(table, "lape", "n_neurons", layered=True):
        have.append("lape")
    if _has(table, "working_language", "logp_target", layered=True):
        have.append("heatmap")
    return have


def figure_languages(table: Any, figures: list[str], *, metric: str = "line_acc", probe: str | None = "babel") -> list[str]:
    """The languages ``--language`` can name for ``figures``: those with performance, working-language or
    heatmap rows."""
    conds = []
    if "performance" in figures:
        conds.append((table["metric"] == metric) & ((table["probe"] == probe) if probe else True))
    if "working_language" in figures:
        conds.append((table["probe"] == "working_language") & (table["metric"] == "eq1_python_share"))
    if "heatmap" in figures:
        conds.append((table["probe"] == "working_language") & (table["metric"] == "logp_target"))
    langs: set[str] = set()
    for cond in conds:
        langs |= set(map(str, table.loc[cond, "language"].dropna().unique()))
    return sorted(langs)


def make_figures(table: Any, figures: list[str], out_dir: str | Path, *, metric: str = "line_acc",
                 probe: str | None = "babel", language: str | None = None,
                 stages: dict[str, Any] | None = None, x: str = "step") -> list[Path]:
    """Draw ``figures`` from ``table`` into ``out_dir`` (PNG + SVG); returns the written files.
    ``language`` restricts the performance, working-language and heatmap figures to that language."""
    from lensprobe.present import figures as plot

    out_dir = Path(out_dir)
    written: list[Path] = []
    stages = stages or {}
    for fig_name in figures:
        if fig_name == "performance":
            langs = sorted(map(str, table.loc[(table["metric"] == metric) & (
                table["probe"] == probe if probe else True), "language"].dropna().unique()))
            lang = language or next((x for x in langs if x != "python"), langs[0] if langs else None)
            fig = plot.plot_performance(table, metric=metric, probe=probe, language=lang, stages=stages.get(lang), x=x)
            written += plot.save_figure(fig, out_dir / "performance")
        elif fig_name == "working_language":
            wl_langs = set(map(str, table.loc[(table["probe"] == "working_language")
                                              & (table["metric"] == "eq1_python_share"), "language"].dropna()))
            if language is not None:
                wl_langs &= {language}
            fig = plot.plot_working_language(table, stages={k: v for k, v in stages.items() if k in wl_langs} or None,
                                             languages=sorted(wl_langs) if language is not None else None, x=x)
            written += plot.save_figure(fig, out_dir / "working_language")
        elif fig_name == "lape":
            written += plot.save_figure(plot.plot_lape_counts(table, x=x), out_dir / "lape_counts")
            written += plot.save_figure(plot.plot_lape_layers(table), out_dir / "lape_layers")
        elif fig_name == "heatmap":
            wl = table[(table["probe"] == "working_language") & (table["metric"] == "logp_target")
                       & table["layer"].notna()]
            for lang in sorted(map(str, wl["language"].dropna().unique())):
                if language is not None and lang != language:
                    continue
                fig = plot.plot_layer_heatmap(table, language=lang)
                written += plot.save_figure(fig, out_dir / f"heatmap_{lang}")
        else:
            raise ValueError(f"unknown figure {fig_name!r}; known: {', '.join(FIGURES)}")
    return written


def run(args: argparse.Namespace) -> int:
    from lensprobe.sweep import read_sweep

    out = Path(args.out)
    try:
        table = read_sweep(out)
    except FileNotFoundError as exc:
        return _error(str(exc))
    probe = None if args.probe in (None, "", "any") else args.probe
    have = available_figures(table, metric=args.metric, probe=probe)
    if args.figures == "auto":
        figures = have
        if not figures:
            return _error(f"{out}: the sweep table has rows for none of the figures {', '.join(FIGURES)}")
    else:
        figures = [f.strip() for f in args.figures.split(",") if f.strip()]
        unknown = [f for f in figures if f not in FIGURES]
        if unknown:
            return _error(f"--figures: unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}, auto")
        missing = [f for f in figures if f not in have]
        if missing:
            return _error(f"{out}: no rows for figure(s) {', '.join(missing)} (performance needs metric "
                          f"{args.metric!r} of probe {probe!r}; working_language and heatmap need the "
                          "working_language probe; lape the lape probe)")
    if args.language is not None:
        langs = figure_languages(table, figures, metric=args.metric, probe=probe)
        if args.language not in langs:
            return _error(f"--language {args.language}: the table has no rows for it in figure(s) {', '.join(figures)}; "
                          f"languages: {', '.join(langs) or 'none'}")
    stages = None
    stages_path = Path(args.stages) if args.stages else out / "stages.json"
    if stages_path.exists():
        try:
            stages = json.loads(stages_path.read_text())
        except json.JSONDecodeError as exc:
            return _error(f"{stages_path}: not JSON ({exc})")
    elif args.stages:
        return _error(f"--stages {args.stages}: no such file")
    out_dir = Path(args.out_dir) if args.out_dir else out / "figures"
    try:
        written = make_figures(table, figures, out_dir, metric=args.metric, probe=probe, language=args.language,
                               stages=stages, x=args.x)
    except ValueError as exc:
        return _error(str(exc))
    for path in written:
        print(path)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plot", help="write the paper's figures from a sweep table",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="sweep output directory (with results/)")
    p.add_argument("--figures", default="auto", help=f"comma-separated: {', '.join(FIGURES)} (default auto)")
    p.add_argument("--out-dir", help="where to write the figures (default OUT/figures)")
    p.add_argument("--metric", default="line_acc", help="performance metric (default line_acc)")
    p.add_argument("--probe", default="babel", help="probe of the performance metric (default babel; 'any')")
    p.add_argument("--language", help="target language of the performance, working-language and heatmap figures "
                                      "(default: the performance figure's first non-Python language, every language "
                                      "in the others)")
    p.add_argument("--x", choices=("step", "tokens"), default="step", help="x axis of every figure (default step)")
    p.add_argument("--stages", help="stages JSON to shade (default OUT/stages.json when present)")
    p.set_defaults(func=run)
