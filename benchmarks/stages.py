"""Calibrate stage detection on noise: false-positive rates and power of ``detect_stages`` at defaults.

    .venv/bin/python benchmarks/stages.py                      # 500 curves per family, ~3 minutes
    .venv/bin/python benchmarks/stages.py --curves 200 --conf-curves 20 --seed 7

Each family draws curves whose truth is known: pure noise (any stage found is a false positive),
monotone curves (no stage is the right answer), and planted stages (the decline should be found).
Rates come with exact (Clopper-Pearson) 95% binomial intervals; a requirement counts as met only
when the whole interval lies on the right side of its limit. The mean confidence is that of the
stages behind the outcome (the transition's for a found or a false decline, else the lowest over
the curve's stages), on the first ``--conf-curves`` curves with the outcome, ``--n-boot``
bootstrap replicas each. The tests (tests/analysis/stages) draw from other seeds.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from lensprobe.analysis.stages import StageResult, detect_stages


def ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) noise; ``sigma`` is the innovation sd (marginal sd sigma / sqrt(1 - phi^2))."""
    e = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    out[0] = e[0] / np.sqrt(1.0 - phi * phi)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def planted(n: int, *, rise: float = 0.3, decline: float = 0.25, start: float = 0.2) -> np.ndarray:
    """Rise over the first third of the checkpoints, decline over the second, flat over the last."""
    t = np.arange(n, dtype=float)
    p, q = (n - 1) / 3.0, 2.0 * (n - 1) / 3.0
    return np.where(t <= p, start + rise * t / p,
                    np.where(t <= q, start + rise - decline * (t - p) / (q - p), start + rise - decline))


def rise_plateau(n: int, *, rise: float = 0.3, start: float = 0.2) -> np.ndarray:
    t = np.arange(n, dtype=float)
    p = 0.4 * (n - 1)
    return np.where(t <= p, start + rise * t / p, start + rise)


def smooth_peak(n: int) -> np.ndarray:
    """A smooth bump (no kinks): 0.25 + 0.3 (t/8) e^(1 - t/8), peak 0.55 at t = 8, 0.32 at t = 29."""
    t = np.arange(n, dtype=float)
    return 0.25 + 0.3 * (t / 8.0) * np.exp(1.0 - t / 8.0)


def any_stage(res: StageResult) -> bool:
    return res.has_stages


def decline_found(res: StageResult) -> bool:
    return res.stage("transition") is not None


def rise_plateau_found(res: StageResult) -> bool:
    return [s.name for s in res.stages] == ["translation", "stabilization"]


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    draw: Callable[[np.random.Generator], np.ndarray]  # [n] one curve, or [seeds, n]
    outcome: Callable[[StageResult], bool]
    outcome_label: str
    limit: tuple[str, float] | None = None  # ("<=", 0.10): the rate must stay below; (">=", 0.7): above
    conf_stage: str | None = None  # whose confidence the table reports (None: the lowest over the stages)


FAMILIES = [
    Family("iid", "iid noise, sigma 0.05, n 20", lambda r: 0.4 + r.normal(0, 0.05, 20),
           any_stage, "any stage", ("<=", 0.05)),
    Family("ar1", "AR(1) noise, phi 0.8, innovation sd 0.03 (marginal 0.05), n 30",
           lambda r: 0.4 + ar1(r, 30, 0.8, 0.03), any_stage, "any stage", ("<=", 0.10)),
    Family("walk", "random walk, step sd 0.02, n 20", lambda r: 0.4 + np.cumsum(r.normal(0, 0.02, 20)),
           any_stage, "any stage", ("<=", 0.15)),
    Family("monotone", "linear rise 0.2 -> 0.5, iid sigma 0.05, n 30",
           lambda r: np.linspace(0.2, 0.5, 30) + r.normal(0, 0.05, 30), any_stage, "any stage"),
    Family("planted", "rise 0.3 / decline 0.25 / flat, iid sigma 0.05, n 30",
           lambda r: planted(30) + r.normal(0, 0.05, 30), decline_found, "decline found", (">=", 0.70),
           "transition"),
    Family("planted_small", "rise 0.3 / decline 0.15 / flat, iid sigma 0.05, n 30",
           lambda r: planted(30, decline=0.15) + r.normal(0, 0.05, 30), decline_found, "decline found",
           conf_stage="transition"),
    Family("planted_n12", "rise 0.3 / decline 0.25 / flat, iid sigma 0.05, n 12 (quick-demo size)",
           lambda r: planted(12) + r.normal(0, 0.05, 12), decline_found, "decline found", conf_stage="transition"),
    Family("planted_ar1", "rise 0.3 / decline 0.25 / flat + AR(1) noise (phi 0.8, innovation sd 0.03), n 30",
           lambda r: planted(30) + ar1(r, 30, 0.8, 0.03), decline_found, "decline found", conf_stage="transition"),
    Family("smooth_peak", "smooth bump 0.25 -> 0.55 -> 0.32 (no kinks), iid sigma 0.01, n 30",
           lambda r: smooth_peak(30) + r.normal(0, 0.01, 30), decline_found, "decline found",
           conf_stage="transition"),
    Family("rise_plateau", "rise 0.3 then flat, iid sigma 0.05, n 30",
           lambda r: rise_plateau(30) + r.normal(0, 0.05, 30), rise_plateau_found,
           "translation + stabilization only"),
    Family("rise_plateau_dip", "rise 0.3 then flat, iid sigma 0.05, n 30",
           lambda r: rise_plateau(30) + r.normal(0, 0.05, 30), decline_found, "false decline",
           conf_stage="transition"),
    Family("walk_3seeds", "3 seeds of independent random walks (step sd 0.02), n 20",
           lambda r: 0.4 + np.cumsum(r.normal(0, 0.02, (3, 20)), axis=1), any_stage, "any stage"),
    Family("planted_walk_3seeds", "3 seeds: planted (rise 0.3 / decline 0.25) + iid sigma 0.05 "
           "+ a random walk (step sd 0.02) each, n 30",
           lambda r: planted(30) + r.normal(0, 0.05, (3, 30)) + np.cumsum(r.normal(0, 0.02, (3, 30)), axis=1),
           decline_found, "decline found", conf_stage="transition"),
    Family("planted_walk_5seeds", "as above, 5 seeds",
           lambda r: planted(30) + r.normal(0, 0.05, (5, 30)) + np.cumsum(r.normal(0, 0.02, (5, 30)), axis=1),
           decline_found, "decline found", conf_stage="transition"),
]


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def run_family(fam: Family, rng: np.random.Generator, *, curves: int, conf_curves: int,
               n_boot: int) -> dict[str, object]:
    hits = 0
    confidences: list[float] = []
    for i in range(curves):
        y = fam.draw(rng)
        steps = 100.0 * np.arange(y.shape[-1])
        res = detect_stages(steps, y, n_boot=0)
        hit = fam.outcome(res)
        hits += hit
        if hit and res.has_stages and len(confidences) < conf_curves and n_boot:
            conf = detect_stages(steps, y, n_boot=n_boot, seed=i).confidence
            confidences.append(conf[fam.conf_stage] if fam.conf_stage else min(conf.values()))
    lo, hi = clopper_pearson(hits, curves)
    verdict = ""
    if fam.limit is not None:
        op, limit = fam.limit
        if op == "<=":
            verdict = "met" if hi <= limit else ("not met" if lo > limit else "unsure")
        else:
            verdict = "met" if lo >= limit else ("not met" if hi < limit else "unsure")
        verdict = f"{op} {limit:.2f}: {verdict}"
    return dict(family=fam.name, description=fam.description, outcome=fam.outcome_label, curves=curves,
                rate=hits / curves, lo=lo, hi=hi, requirement=verdict,
                confidence=float(np.mean(confidences)) if confidences else float("nan"),
                conf_n=len(confidences))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curves", type=int, default=500, help="curves per family (default 500)")
    ap.add_argument("--conf-curves", type=int, default=40,
                    help="curves with a stage per family whose confidence is bootstrapped (default 40)")
    ap.add_argument("--n-boot", type=int, default=100, help="bootstrap replicas per confidence (default 100)")
    ap.add_argument("--seed", type=int, default=20240613, help="base seed (the tests use others)")
    ap.add_argument("--family", nargs="+", help="only these families")
    args = ap.parse_args(argv)
    if args.curves < 1:
        ap.error("--curves must be >= 1")
    fams = [f for f in FAMILIES if not args.family or f.name in args.family]
    if args.family and len(fams) != len(set(args.family)):
        ap.error(f"unknown family; known: {', '.join(f.name for f in FAMILIES)}")
    seqs = np.random.SeedSequence(args.seed).spawn(len(FAMILIES))
    t0 = time.perf_counter()
    print(f"detect_stages defaults; {args.curves} curves per family; confidence: {args.n_boot} replicas on up to "
          f"{args.conf_curves} curves with a stage; seed {args.seed}\n")
    print("| family | curves | outcome | rate | 95% CI | requirement | mean confidence of those stages (curves) |")
    print("|---|---|---|---|---|---|---|")
    for fam, seq in zip(FAMILIES, seqs):
        if fam not in fams:
            continue
        row = run_family(fam, np.random.default_rng(seq), curves=args.curves, conf_curves=args.conf_curves,
                         n_boot=args.n_boot)
        conf = "-" if row["conf_n"] == 0 else f"{row['confidence']:.2f} ({row['conf_n']})"
        print(f"| `{row['family']}`: {row['description']} | {row['curves']} | {row['outcome']} | {row['rate']:.3f} | "
              f"{row['lo']:.3f}-{row['hi']:.3f} | {row['requirement'] or '-'} | {conf} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
