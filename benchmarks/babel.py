"""The synthetic Babel benchmark end to end (a benchmark, not a test).

Runs the default recipes (``babel-base`` once, or ``--base CKPT``; then ``babel-continual`` for
each seed; sizes of ARCHITECTURE section 11 unless ``--demo-sizes``), sweeps every checkpoint, and
prints per seed and averaged over seeds (with the 95% Student-t half-width of the mean):

* PHP line accuracy on python_only, shared, target_only and control concepts over steps;
* Python's own line accuracy on the python_only concepts (forgetting vs disconnect);
* the lens Python share (Eq.1) on python_only and shared items;
* the wall time and whether a decline (a transition stage) appeared.

    .venv/bin/python benchmarks/babel.py --out runs/babel-bench --seeds 3
    .venv/bin/python benchmarks/babel.py --out runs/babel-quick --quick      # shipped base, short runs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lensprobe.demo import DEFAULT, QUICK, DemoSettings, run_demo  # noqa: E402
from lensprobe.sweep import read_sweep  # noqa: E402

RECIPE_SIZES = DemoSettings(train_base=True, base_python_tokens=6_000_000, base_php_tokens=120_000,
                            continual_php_tokens=4_700_000, continual_python_tokens=250_000, snapshot_every=100,
                            snapshot_log_max=64)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step): the benchmark's curves side by side."""
    b = table[(table.probe == "babel") & (table.metric == "line_acc")]
    php = b[b.language == "php"].pivot_table(index=["run", "step"], columns="identifier", values="value")
    php.columns = [f"php_{c}" for c in php.columns]
    py = b[(b.language == "python") & (b.identifier == "python_only")].groupby(["run", "step"])["value"].mean()
    out = php.join(py.rename("python_python_only"))
    # the lens Python share on the generated suite: Eq.1 counts (top-1 in either set) and the
    # probability-mass variant (the one to read on a 4-layer model, where top-1 is rarely in either set)
    wl = table[(table.probe == "working_language") & table.layer.isna()].copy()
    wl["split"] = wl["identifier"].fillna("").str.split(":").str[0]
    wl = wl[wl.split.isin(["python_only", "shared"])]
    for metric, label in (("eq1_python_share", "lens_py"), ("eq1_mass_python_share", "lens_mass_py")):
        lens = wl[wl.metric == metric].pivot_table(index=["run", "step"], columns="split", values="value")
        lens.columns = [f"{label}_{c}" for c in lens.columns]
        out = out.join(lens)
    return out.reset_index()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="the demo's --quick sizes (shipped base)")
    ap.add_argument("--demo-sizes", action="store_true", help="the default demo's sizes instead of the recipes'")
    ap.add_argument("--base", default=None, help="reuse a babel-base checkpoint")
    args = ap.parse_args()
    settings = QUICK if args.quick else (DEFAULT if args.demo_sizes else RECIPE_SIZES)
    t0 = time.perf_counter()
    summary = run_demo(args.out, quick=args.quick, seeds=args.seeds, settings=settings, base=args.base)
    wall = time.perf_counter() - t0
    table = read_sweep(args.out)
    c = curves(table)
    pd.set_option("display.width", 200, "display.max_columns", 20, "display.precision", 3)
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
    print(f"mid-run (step {mid:g}): php python_only {mean.loc[mid, 'php_python_only']:.3f} vs control "
          f"{mean.loc[mid, 'php_control']:.3f}")
    print(f"decline (transition stage) detected: {declined}; notes: {stages['notes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
