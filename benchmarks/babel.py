"""The synthetic Babel benchmark end to end (a benchmark, not a test).

Runs the default recipes for each seed k: ``babel-base`` on split seed k (or ``--base CKPT ...``,
each checkpoint used for the split seed its recipe names; the quick variant uses the shipped base
for split seed 0), then ``babel-continual`` with training seed k on split seed k (sizes of the
recipes unless ``--demo-sizes``), so the spread over seeds covers the choice of concepts too. It
sweeps every checkpoint and prints per seed and averaged over seeds (with the 95% Student-t
half-width of the mean):

* PHP line accuracy on python_only, shared, target_only and control concepts over steps, and the
  body prior of python_only and control (completions scored against the other bodies of their
  split, docs/babel.md);
* Python's own line accuracy on the python_only concepts (forgetting vs disconnect);
* the lens Python share (Eq.1) pooled over the python_only and shared items: on the prompts the
  model generates (the paper's rule) with the number kept, on all prompts, and the mass variant;
* the wall time and whether a decline (a transition stage) appeared.

    .venv/bin/python benchmarks/babel.py --out runs/babel-bench --seeds 3
    .venv/bin/python benchmarks/babel.py --out runs/babel-quick --quick      # shipped base, short runs
    .venv/bin/python benchmarks/babel.py --out runs/down-0.001 --seeds 3 --python-share 0.001 --base B0 B1 B2
    .venv/bin/python benchmarks/babel.py --down runs/down-0.001 runs/down-0.01 runs/babel-bench   # the down table
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lensprobe.babel.down import down_row  # noqa: E402
from lensprobe.babel.rows import summary_rows  # noqa: E402
from lensprobe.demo import DEFAULT, QUICK, DemoSettings, run_demo  # noqa: E402
from lensprobe.sweep import read_sweep  # noqa: E402

RECIPE_SIZES = DemoSettings(train_base=True, base_python_tokens=6_000_000, base_php_tokens=120_000,
                            continual_php_tokens=4_700_000, continual_python_tokens=250_000, snapshot_every=100,
                            snapshot_log_max=64)


def with_python_share(settings: DemoSettings, share: float) -> DemoSettings:
    """``settings`` with the continual run's Python tokens set so that Python is ``share`` of its
    tokens: python = round(php * share / (1 - share)), the PHP tokens unchanged."""
    if not 0 < share < 1:
        raise ValueError(f"--python-share must lie strictly between 0 and 1, got {share}")
    python = round(settings.continual_php_tokens * share / (1 - share))
    if python < 1:
        raise ValueError(f"--python-share {share}: {python} Python tokens for {settings.continual_php_tokens:,} PHP "
                         "tokens; give a larger share")
    return replace(settings, continual_python_tokens=python)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step): the benchmark's curves side by side."""
    babel = summary_rows(table[table.probe == "babel"])  # per-split rows (not the per-item ones)
    b = babel[babel.metric == "line_acc"]
    php = b[b.language == "php"].pivot_table(index=["run", "step"], columns="identifier", values="value")
    php.columns = [f"php_{c}" for c in php.columns]
    prior = babel[(babel.metric == "line_acc_prior") & (babel.language == "php")
                  & babel.identifier.isin(["python_only", "control"])]
    prior = prior.pivot_table(index=["run", "step"], columns="identifier", values="value")
    prior.columns = [f"php_{c}_prior" for c in prior.columns]
    py = b[(b.language == "python") & (b.identifier == "python_only")].groupby(["run", "step"])["value"].mean()
    out = php.join(prior).join(py.rename("python_python_only"))
    # transfer above each baseline, per run (so the half-width over seeds is that of the difference)
    if {"php_python_only", "php_control"} <= set(out.columns):
        out["php_po_minus_control"] = out["php_python_only"] - out["php_control"]
    if {"php_python_only", "php_python_only_prior"} <= set(out.columns):
        out["php_po_minus_prior"] = out["php_python_only"] - out["php_python_only_prior"]
    # the lens Python share on the generated suite, pooled per split (rows `<split>:*`): Eq.1 counts
    # (top-1 in either set) over the prompts the model generates (the paper's rule; n_lens_* = prompts
    # kept, NaN share when none), over all prompts, and the probability-mass variant (docs/suites.md)
    wl = table[(table.probe == "working_language") & table.layer.isna()
               & table.identifier.isin(["python_only:*", "shared:*"])].copy()
    wl["split"] = wl["identifier"].str.removesuffix(":*")
    for metric, label, field in (("eq1_python_share", "lens_py", "value"), ("eq1_python_share", "n_lens", "n"),
                                 ("eq1_python_share_all_prompts", "lens_py_all", "value"),
                                 ("eq1_mass_python_share", "lens_mass_py", "value")):
        sel = wl[wl.metric == metric].astype({field: float})
        lens = sel.pivot_table(index=["run", "step"], columns="split", values=field, dropna=False)
        lens.columns = [f"{label}_{c}" for c in lens.columns]
        out = out.join(lens)
    return out.reset_index()


def python_share_of(out: Path) -> float:
    """Python's share of the continual runs' token budgets in a benchmark output (run.json of each run)."""
    shares = set()
    for meta in sorted((out / "runs").glob("php-seed*/run.json")):
        budgets = json.loads(meta.read_text())["budgets"]
        shares.add(round(budgets.get("python", 0) / sum(budgets.values()), 6))
    if len(shares) != 1:
        raise ValueError(f"{out}: continual runs with Python shares {sorted(shares)} (expected one)")
    return shares.pop()


def down_table(outs: list[Path]) -> pd.DataFrame:
    """The "down" table (docs/babel.md): one row per benchmark output (one Python share each)."""
    rows = []
    for out in outs:
        stages = json.loads((out / "stages.json").read_text())["php"]
        rows.append(down_row(read_sweep(out), stages=stages, python_share=python_share_of(out)).to_dict())
    return pd.DataFrame(rows).sort_values("python_share").reset_index(drop=True)


def print_down(table: pd.DataFrame) -> None:
    f = lambda v, hw=None: ("nan" if pd.isna(v) else f"{v:.2f}") + ("" if hw is None or pd.isna(hw) else f" ± {hw:.2f}")  # noqa: E731
    for r in table.itertuples():
        print(f"\n== Python share {r.python_share:.4%} ({r.n_seeds} seeds, {r.last_step:g} steps)")
        print(f"  PHP python_only: smoothed peak {f(r.php_po_peak)} at step {r.php_po_peak_step:g}, last {f(r.php_po_last, r.php_po_last_hw)}"
              f" | control {f(r.control_last)}, body prior {f(r.prior_last)}"
              f" | minus control {f(r.po_minus_control_last, r.po_minus_control_last_hw)}, minus prior "
              f"{f(r.po_minus_prior_last, r.po_minus_prior_last_hw)}")
        print(f"  Python python_only: {f(r.python_po_first)} at step 0, min {f(r.python_po_min)} at step "
              f"{r.python_po_min_step:g}, last {f(r.python_po_last, r.python_po_last_hw)}")
        print(f"  lens Python share (python_only, generated prompts): first {f(r.lens_py_first)} (n {r.n_lens_first:g}), "
              f"last {f(r.lens_py_last)} (n {r.n_lens_last:g})")
        print(f"  stages (confidence): {r.stages}")
        print(f"  PHP smoothed peak -> end {f(r.php_drop, r.php_drop_hw)}; Python over the same steps {f(r.python_change, r.python_change_hw)}"
              f" => {r.verdict}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--down", nargs="+", metavar="DIR", default=None,
                    help="print the 'down' table of finished outputs of this benchmark (one per Python share; "
                         "trains nothing) and write it to --out if given (CSV)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="the demo's --quick sizes (shipped base)")
    ap.add_argument("--demo-sizes", action="store_true", help="the default demo's sizes instead of the recipes'")
    ap.add_argument("--base", nargs="+", default=None,
                    help="reuse babel-base checkpoint(s), each for the split seed its recipe names (others are trained)")
    ap.add_argument("--python-share", type=float, default=None, metavar="S",
                    help="Python's share of the continual run's tokens (0 < S < 1; the paper's ~0.001); "
                         "default: the sizes' own (recipe: 250,000 of 4,950,000 = 5.05%%)")
    args = ap.parse_args()
    if args.down:
        table = down_table([Path(d) for d in args.down])
        print_down(table)
        if args.out:
            table.to_csv(args.out, index=False)
        return 0
    if not args.out:
        ap.error("--out is required (unless --down)")
    settings = QUICK if args.quick else (DEFAULT if args.demo_sizes else RECIPE_SIZES)
    if args.python_share is not None:
        try:
            settings = with_python_share(settings, args.python_share)
        except ValueError as exc:
            ap.error(str(exc))
    t0 = time.perf_counter()
    summary = run_demo(args.out, quick=args.quick, seeds=args.seeds, settings=settings, base=args.base)
    wall = time.perf_counter() - t0
    table = read_sweep(args.out)
    c = curves(table)
    pd.set_option("display.width", 220, "display.max_columns", 24, "display.precision", 3)
    for run, g in c.groupby("run"):
        print(f"\n== {run}")
        print(g.drop(columns="run").to_string(index=False))
    mean = c.drop(columns="run").groupby("step").mean()
    print("\n== mean over seeds")
    print(mean.to_string())
    n_runs = c["run"].nunique()
    if n_runs > 1:  # Student-t half-width of the mean over seeds (3 seeds: t = 4.30, not 1.96)
        from scipy import stats

        half = c.drop(columns="run").groupby("step").std(ddof=1) * stats.t.ppf(0.975, n_runs - 1) / n_runs ** 0.5
        print(f"\n== 95% half-width of the mean over {n_runs} seeds (Student t)")
        print(half.to_string())
    stages = json.loads((Path(args.out) / "stages.json").read_text())["php"]
    declined = any(s["name"] == "transition" for s in stages["stages"])
    mid = min(mean.index, key=lambda st: abs(st - mean.index.max() / 2))  # the checkpoint nearest half the run
    print(f"\nwall time {wall:.0f}s (timings {summary['timings_s']})")
    last = mean.index.max()
    for label, st in (("mid-run", mid), ("last", last)):
        prior = mean.loc[st, "php_python_only_prior"] if "php_python_only_prior" in mean.columns else float("nan")
        print(f"{label} (step {st:g}): php python_only {mean.loc[st, 'php_python_only']:.3f} vs control "
              f"{mean.loc[st, 'php_control']:.3f} vs body prior {prior:.3f}")
    print(f"decline (transition stage) detected: {declined}; notes: {stages['notes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
