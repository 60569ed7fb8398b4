"""The edge rule of the one sliding mean (lensprobe.analysis.smoothing), against the alternative.

    .venv/bin/python benchmarks/smoothing.py                 # 2,000 curves per measurement, ~10 s
    .venv/bin/python benchmarks/smoothing.py --curves 5000 --seed 1

lensprobe's rule averages the points available at the edges (pandas' centred rolling mean with
``min_periods=1``); the alternative shrinks the window symmetrically, so the first and last points
stay raw. Both are measured where the analyses read the smoothed curve at its end:

1. Eq.2's beta, the minimum of the smoothed loss: a loss ``1 + 2 exp(-t/60)`` over 600 logged steps
   (at its floor, 1.0, for the last ~300), noise sd 0.05, width 13. Error of beta: mean and sd with
   95 % intervals (t for the mean, chi-square for the sd).
2. Algorithm 1's argmax: 20 checkpoints rising to a plateau over the last 7 (``min(k/13, 1) / 2``),
   noise sd 0.02 and 0.05, width 5: how often the argmax is one of the last two checkpoints
   (2/7 would be fair among the plateau's seven), with exact 95 % intervals.
3. The price, a lag: the last point of a width-5 mean on a straight rise of 0.01 per checkpoint.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from lensprobe.analysis.smoothing import sliding_mean


def symmetric_shrink(values: np.ndarray, window: int) -> np.ndarray:
    """The alternative rule: a centred mean whose window shrinks symmetrically at the edges."""
    y = np.asarray(values, dtype=float)
    half, n = window // 2, y.shape[-1]
    out = np.empty_like(y)
    for i in range(n):
        h = min(half, i, n - 1 - i)
        out[..., i] = y[..., i - h:i + h + 1].mean(axis=-1)
    return out


RULES = {"available points (lensprobe)": lambda y, w: sliding_mean(y, window=w), "symmetric shrink": symmetric_shrink}


def mean_sd_ci(x: np.ndarray) -> str:
    n = x.size
    m, s = x.mean(), x.std(ddof=1)
    half = stats.t.ppf(0.975, n - 1) * s / np.sqrt(n)
    lo, hi = s * np.sqrt((n - 1) / stats.chi2.ppf([0.975, 0.025], n - 1))
    return f"mean {m:+.4f} ({m - half:+.4f} to {m + half:+.4f}), sd {s:.4f} ({lo:.4f} to {hi:.4f})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    t = np.arange(600)
    noisy = 1.0 + 2.0 * np.exp(-t / 60) + rng.normal(0, 0.05, (args.curves, t.size))
    print(f"1. beta - floor (600 steps, noise sd 0.05, width 13, {args.curves} curves)")
    for name, rule in RULES.items():
        print(f"   {name:30s} {mean_sd_ci(rule(noisy, 13).min(axis=1) - 1.0)}")

    k = np.arange(20)
    perf = np.minimum(k / 13, 1.0) * 0.5
    print(f"2. argmax among the last two of 20 checkpoints (plateau of 7; fair 2/7 = {2 / 7:.1%}; width 5)")
    for sigma in (0.02, 0.05):
        curves = perf + rng.normal(0, sigma, (args.curves, k.size))
        for name, rule in RULES.items():
            hits = int((np.argmax(rule(curves, 5), axis=1) >= 18).sum())
            ci = stats.binomtest(hits, args.curves).proportion_ci(method="exact")
            print(f"   sigma {sigma}: {name:30s} {hits / args.curves:.1%} ({ci.low:.1%} to {ci.high:.1%})")

    line = np.arange(20) * 0.01
    print("3. last point minus the line (rise 0.01 per checkpoint, width 5, no noise)")
    for name, rule in RULES.items():
        print(f"   {name:30s} {rule(line, 5)[-1] - line[-1]:+.4f}")


if __name__ == "__main__":
    main()
