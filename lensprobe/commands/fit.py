"""``lensprobe fit``: Babel maps, scaling/mixing laws and data-mix recommendations.

    lensprobe fit recommend SWEEP --loss-log RUN/loss.jsonl --metric pass@1 --eta-python 11B --out mixture.yaml
    lensprobe fit recommend --run php=runs/php --run csharp=runs/csharp --metric final_accuracy --eta-python 11B --out m.yaml
    lensprobe fit share --eta-python 11B --target-tokens 23B      # Eq.3
    lensprobe fit share --eta-python 11B --share 0.6875            # inverse (Algorithm 1)
    lensprobe fit law TABLE --law chinchilla --x N,D --y loss --bootstrap 100 --validate BIG.csv
    lensprobe fit allocate TABLE --law mixing_exp --languages python,php,go --y loss --total 10B \
        --availability php=4B,go=6B,python=20B --max-epochs 4 --anchor python=1B --out mixture.yaml
    lensprobe fit regmix ../shared/data/fitting/regmix
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "run"]


def _kv(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"expected LANG=VALUE pairs separated by commas, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="Babel maps, scaling/mixing laws and data-mix recommendations",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="fit_command", metavar="SUBCOMMAND")

    r = sub.add_parser("recommend", help="Algorithm 1: target tokens from a continual run (writes a mixture file)")
    r.add_argument("sweep", nargs="?", help="sweep table (parquet file/dir, csv, jsonl) or a run directory")
    r.add_argument("--loss-log", help="loss.jsonl of the continual run (default: <run>/loss.jsonl)")
    r.add_argument("--run", action="append", default=[], metavar="LANG=RUN_DIR",
                   help="one continual run per language (repeatable): <run>/results, <run>/loss.jsonl, <run>/val.jsonl")
    r.add_argument("--metric", required=True, help="performance metric in the sweep table, e.g. pass@1")
    r.add_argument("--eta-python", required=True, help="Python tokens, e.g. 11B")
    r.add_argument("--target", help="the new language (default: the sweep's single non-Python language)")
    r.add_argument("--probe", help="probe name when several probes report the metric")
    r.add_argument("--window", type=int, default=5, help="sliding-mean width (default 5, as the paper)")
    r.add_argument("--alpha-window", type=float, nargs=2, default=(0.0018, 0.002), metavar=("LO", "HI"),
                   help="alpha (Eq.2) averages the loss over these fractions of the run, widened to a few logged "
                        "steps (default 0.0018 0.002: the paper's steps 90-100 of 50,000)")
    r.add_argument("--init-steps", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="an absolute alpha window in steps instead (must end within the first 5%% of the run)")
    r.add_argument("--loss-source", choices=("auto", "train", "val", "total"), default="auto",
                   help="auto: the held-out val.jsonl loss, else the smoothed training loss of the target")
    r.add_argument("--loss-smooth", type=int, default=None,
                   help="sliding-mean width for the loss in logged points (default: 1 for val, ~2%% of points for train)")
    r.add_argument("--identifiers", help="comma-separated splits/items entering the performance curve "
                                         "(e.g. python_only,shared keeps Babel items 'python_only:*', 'shared:*')")
    r.add_argument("--resample", choices=("auto", "items", "seeds", "none"), default="auto",
                   help="units of the bootstrap; 'none' takes the best checkpoint as known (loss noise only)")
    r.add_argument("--confidence", type=float, default=0.9)
    r.add_argument("--n-boot", type=int, default=1000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", help="write the mixture file here")
    r.add_argument("--json", action="store_true", help="print the result as JSON")

    s = sub.add_parser("share", help="Eq.3 (tokens -> share) or its inverse (share -> tokens)")
    s.add_argument("--eta-python", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--target-tokens", help="target-language tokens, e.g. 23B")
    g.add_argument("--share", type=float, help="Python-system share in (0, 1]")

    law = sub.add_parser("law", help="fit a scaling / mixing law with many starts and bootstrap intervals")
    law.add_argument("table", help="csv / parquet / jsonl with the input and target columns")
    law.add_argument("--law", required=True, help="chinchilla, mixing_exp, mixing_linear, multilingual, log_linear")
    law.add_argument("--x", required=True, help="input columns, comma separated (e.g. N,D)")
    law.add_argument("--y", default="loss", help="target column (default loss)")
    law.add_argument("--n-starts", type=int, default=64)
    law.add_argument("--seed", type=int, default=0)
    law.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for intervals")
    law.add_argument("--validate", help="held-out table (e.g. larger runs): mean relative error, Spearman")
    law.add_argument("--out", help="write the fit (parameters, intervals, diagnostics) as JSON")

    a = sub.add_parser("allocate", help="fit a mixing law on runs, then choose tokens per language under constraints")
    a.add_argument("table", help="runs: one column per language share plus the target column")
    a.add_argument("--law", default="mixing_exp")
    a.add_argument("--languages", required=True, help="comma separated; the share columns of the table")
    a.add_argument("--y", default="loss")
    a.add_argument("--total", required=True, help="token budget, e.g. 10B")
    a.add_argument("--availability", help="LANG=TOKENS,... tokens available per language")
    a.add_argument("--max-epochs", type=float, help="epoch cap (with --availability)")
    a.add_argument("--min-share", help="LANG=SHARE,... minimum shares")
    a.add_argument("--anchor", help="LANG=TOKENS,... fixed token counts (e.g. python=11B)")
    a.add_argument("--no-support-guard", action="store_true", help="allow shares outside the sampled range (not advised)")
    a.add_argument("--maximize", action="store_true", help="the target is a score (higher is better)")
    a.add_argument("--n-starts", type=int, default=16)
    a.add_argument("--bootstrap", type=int, default=50)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", help="write the mixture file here")

    m = sub.add_parser("regmix", help="linear vs gradient boosting vs exponential law on the public RegMix sweep")
    m.add_argument("data_dir", help="folder with the regmix_*.csv files")
    m.add_argument("--target", default=None, help="loss column (default: Pile-CC validation loss)")
    m.add_argument("--train-scale", default="1m")
    m.add_argument("--test-scale", default="1B")
    m.add_argument("--n-starts", type=int, default=64)
    p.set_defaults(func=run, _fit_parser=p)


def run(args) -> int:
    try:
        cmd = getattr(args, "fit_command", None)
        if cmd is None:
            args._fit_parser.print_help()
            return 0
        return {"recommend": _recommend, "share": _share, "law": _law, "allocate": _allocate, "regmix": _regmix}[cmd](args)
    except (ValueError, FileNotFoundError, TypeError, KeyError) as exc:
        print(f"lensprobe fit: error: {exc}", file=sys.stderr)
        return 2


def _recommend(args) -> int:
    from lensprobe import fit
    from lensprobe.analysis.fit.runs import load_run

    common = dict(metric=args.metric, eta_python=args.eta_python, window=args.window, probe=args.probe,
                  alpha_window=tuple(args.alpha_window),
                  init_steps=tuple(args.init_steps) if args.init_steps is not None else None,
                  loss_source=args.loss_source, loss_smooth=args.loss_smooth, resample=args.resample,
                  identifiers=[x.strip() for x in args.identifiers.split(",") if x.strip()] if args.identifiers else None,
                  confidence=args.confidence, n_boot=args.n_boot, seed=args.seed)
    if args.run:
        if args.sweep:
            raise ValueError("give either a SWEEP table or --run LANG=RUN_DIR options, not both")
        runs = {}
        for item in args.run:
            lang, _, path = item.partition("=")
            if not path:
                raise ValueError(f"--run expects LANG=RUN_DIR, got {item!r}")
            runs[lang] = load_run(path, target=lang)
        result = fit.recommend_mixture(runs, **common)
    else:
        if not args.sweep:
            raise ValueError("give a SWEEP table (or run directory), or --run LANG=RUN_DIR")
        path = Path(args.sweep)
        if path.is_dir() and (path / "loss.jsonl").exists() and args.loss_log is None:
            run_obj = load_run(path, target=args.target)
        else:
            if args.loss_log is None:
                raise ValueError(f"{path}: no loss log; pass --loss-log RUN/loss.jsonl")
            run_obj = load_run(Path(args.loss_log).parent, target=args.target, sweep=path, loss_log=args.loss_log)
        rec = fit.recommend_tokens(run_obj, **common)
        result = fit.MixtureRecommendation(eta_python=rec.eta_python, recommendations={rec.target: rec})
    table = result.to_dataframe()
    if args.json:
        print(json.dumps({"tokens": result.tokens, "recommendations": table.to_dict(orient="records")}, default=str, indent=2))
    else:
        cols = ["target", "best_step", "best_value", "loss_at_best", "share", "share_low", "share_high", "tokens",
                "tokens_low", "tokens_high"]
        print(table[cols].to_string(index=False))
        for r in result.recommendations.values():
            print(f"{r.target}: {r.confidence:.0%} interval over {r.resampled}; loss {r.loss_source}; "
                  f"candidate best steps {', '.join(f'{x:g}' for x in r.candidates)}")
        print("tokens:", result.tokens)
    if args.out:
        result.write(args.out, source="lensprobe fit recommend")
        print(f"wrote {args.out}")
    return 0


def _share(args) -> int:
    from lensprobe import fit
    from lensprobe.token_counts import parse_token_quantity

    py = parse_token_quantity(args.eta_python)
    if args.target_tokens is not None:
        print(f"P = {fit.python_share_from_tokens(py, parse_token_quantity(args.target_tokens)):.4f}")
    else:
        print(f"eta_target = {fit.tokens_for_share(py, args.share):.6g}")
    return 0


def _law(args) -> int:
    from lensprobe import fit
    from lensprobe.files import atomic_write_json
    from lensprobe.analysis.fit.runs import read_table

    df = read_table(args.table)
    result = fit.fit_law(args.law, df, x=[c.strip() for c in args.x.split(",")], y=args.y, n_starts=args.n_starts,
                         seed=args.seed)
    if args.bootstrap:
        result.bootstrap(args.bootstrap, seed=args.seed)
    print(result)
    out = {"law": result.law.name, "formula": result.law.formula, "x": list(result.x), "y": result.y,
           "params": result.params, "objective": result.objective, "diagnostics": result.diagnostics}
    if result.boot is not None:
        out["intervals"] = result.boot.intervals
        out["confidence"] = result.boot.confidence
    if args.validate:
        v = result.validate(read_table(args.validate))
        print(f"held-out: mean relative error {v.mean_relative_error:.4f}, Spearman {v.spearman:.4f} (n={v.n})")
        out["validation"] = {"mean_relative_error": v.mean_relative_error, "spearman": v.spearman, "n": v.n}
    if args.out:
        atomic_write_json(args.out, out)
    return 0


def _allocate(args) -> int:
    from lensprobe import fit
    from lensprobe.token_counts import parse_token_quantity
    from lensprobe.analysis.fit.runs import read_table

    langs = [c.strip() for c in args.languages.split(",") if c.strip()]
    df = read_table(args.table)
    law = fit.fit_law(args.law, df, x=langs, y=args.y, n_starts=args.n_starts, seed=args.seed)
    if args.bootstrap:
        law.bootstrap(args.bootstrap, seed=args.seed)
    avail = {k: parse_token_quantity(v) for k, v in _kv(args.availability).items()} if args.availability else None
    result = fit.allocate(
        law, languages=langs, total_tokens=parse_token_quantity(args.total), availability=avail,
        max_epochs=args.max_epochs, min_share={k: float(v) for k, v in _kv(args.min_share).items()} if args.min_share else 0.0,
        anchor={k: parse_token_quantity(v) for k, v in _kv(args.anchor).items()} if args.anchor else None,
        support=None if args.no_support_guard else "auto", maximize=args.maximize, n_starts=args.n_starts, seed=args.seed)
    print(result.comparison.to_string(index=False))
    print("tokens:", result.tokens)
    if args.out:
        result.write(args.out, source=f"lensprobe fit allocate {args.table}")
        print(f"wrote {args.out}")
    return 0


def _regmix(args) -> int:
    from lensprobe import fit

    res = fit.regmix_comparison(args.data_dir, target=args.target or fit.REGMIX_TARGET, train_scale=args.train_scale,
                                test_scale=args.test_scale, n_starts=args.n_starts)
    print(f"target {res.target}: fit on {res.train} runs, ranked {res.test} runs")
    print(res.table.to_string(index=False))
    return 0
