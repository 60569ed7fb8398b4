"""Choose tokens per language under a budget, from a fitted law (or several, or any callable).

Constraints, all enforced on the returned mixture:

* ``total_tokens``: the shares sum to one and the tokens to the budget;
* ``availability`` × ``max_epochs``: at most that many tokens of a language;
* ``min_share``: at least that share;
* ``anchor``: languages with a fixed token count (e.g. Python in the Babel setup);
* the sampled-support guard: every share stays inside [min, max] of the shares that the fitted
  runs actually sampled (``support="auto"`` reads them from the fits' training tables), widened by
  ``support_margin``. A law fitted on runs that never went past 0.35 says nothing reliable about
  0.9, however good the fit; ``Allocation.unguarded`` shows what the optimizer would do without it.

The optimizer is SLSQP from several feasible starts; every start and the answer are projected
exactly onto {box} ∩ {sum = 1}.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from lensprobe.mixture_file import write_mixture

from .fitting import LawFit

__all__ = ["allocate", "Allocation", "InfeasibleAllocation", "project_to_box_simplex"]


class InfeasibleAllocation(ValueError):
    """The constraints admit no mixture."""


def project_to_box_simplex(q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``q`` onto {lo <= p <= hi, sum p = 1} (bisection on the shift)."""
    q, lo, hi = (np.asarray(v, float) for v in (q, lo, hi))
    if lo.sum() > 1 + 1e-12 or hi.sum() < 1 - 1e-12:
        raise InfeasibleAllocation(f"bounds admit no mixture: sum(lower)={lo.sum():.6g}, sum(upper)={hi.sum():.6g}")
    a, b = float(np.min(lo - q)) - 1.0, float(np.max(hi - q)) + 1.0
    for _ in range(200):
        m = (a + b) / 2
        if np.clip(q + m, lo, hi).sum() > 1:
            b = m
        else:
            a = m
    p = np.clip(q + (a + b) / 2, lo, hi)
    # distribute the last rounding error onto coordinates with room
    err = 1.0 - p.sum()
    room = (hi - p) if err > 0 else (p - lo)
    if room.sum() > 0:
        p = p + err * room / room.sum()
    return np.clip(p, lo, hi)


@dataclass(frozen=True)
class Allocation:
    languages: tuple[str, ...]
    total_tokens: float
    shares: dict[str, float]
    tokens: dict[str, int]
    predicted: float
    interval: tuple[float, float] | None
    bounds: pd.DataFrame
    comparison: pd.DataFrame
    unguarded: dict[str, float] | None = None
    per_target: pd.DataFrame | None = field(default=None, repr=False)
    maximize: bool = False

    def to_dataframe(self) -> pd.DataFrame:
        return self.comparison.copy()

    def write(self, path, *, source: str = "lensprobe.analysis.fit.allocate", notes: str | None = None):
        row = self.comparison.set_index("mix")
        text = (f"{'maximized' if self.maximize else 'minimized'} predicted objective {self.predicted:.6g}"
                + (f" (interval {self.interval[0]:.6g}..{self.interval[1]:.6g})" if self.interval else "")
                + "; uniform mix " + f"{row.loc['uniform', 'predicted']:.6g}"
                + ("; natural mix " + f"{row.loc['natural', 'predicted']:.6g}" if "natural" in row.index else ""))
        if notes:
            text += "\n" + notes
        return write_mixture(path, self.tokens, source=source, notes=text)


def _as_objective(model, languages, columns, fixed_inputs, weights):
    """-> (f(P) -> (n,), samples(P) -> (B, n) or None, fits dict or None)."""
    if callable(model) and not isinstance(model, LawFit):
        def f(P):
            return np.asarray(model(pd.DataFrame(P, columns=list(languages))), float).reshape(len(P))
        return f, None, None
    fits = {"objective": model} if isinstance(model, LawFit) else dict(model)
    if not fits or not all(isinstance(v, LawFit) for v in fits.values()):
        raise TypeError("model must be a LawFit, a dict of LawFit, or a callable on a shares DataFrame")
    w = {k: 1.0 for k in fits} if weights is None else dict(weights)
    if set(w) != set(fits):
        raise ValueError(f"weights must name exactly the fitted targets {sorted(fits)}")
    wsum = sum(w.values())
    fixed = dict(fixed_inputs or {})

    def frame(P):
        df = pd.DataFrame(P, columns=[columns[l] for l in languages])
        for k, v in fixed.items():
            df[k] = v
        return df

    for name, fit in fits.items():
        missing = [c for c in fit.x if c not in set(columns.values()) | set(fixed)]
        if missing:
            raise ValueError(f"fit {name!r} needs input(s) {missing}: name them in languages/columns or fixed_inputs")

    def f(P):
        df = frame(P)
        return sum(w[k] * fit.predict(df) for k, fit in fits.items()) / wsum

    boots = all(fit._boot_theta is not None and len(fit._boot_theta) for fit in fits.values())

    def samples(P):
        df = frame(P)
        n = min(len(fit._boot_theta) for fit in fits.values())
        return sum(w[k] * fit.predict_samples(df)[:n] for k, fit in fits.items()) / wsum

    return f, (samples if boots else None), fits


def _support_from_fits(fits, languages, columns):
    lo, hi = {}, {}
    for lang in languages:
        col = columns[lang]
        vals = [fit.data[col].to_numpy(float) for fit in fits.values() if col in fit.data.columns]
        if not vals:
            raise ValueError(f"support='auto': no fit was trained on column {col!r} ({lang})")
        v = np.concatenate(vals)
        lo[lang], hi[lang] = float(v.min()), float(v.max())
    return lo, hi


def allocate(
    model: LawFit | Mapping[str, LawFit] | Callable[[pd.DataFrame], np.ndarray],
    *,
    languages: Sequence[str],
    total_tokens: float,
    availability: Mapping[str, float] | None = None,
    max_epochs: float | Mapping[str, float] | None = None,
    min_share: float | Mapping[str, float] = 0.0,
    anchor: Mapping[str, float] | None = None,
    support: str | pd.DataFrame | Mapping[str, tuple[float, float]] | None = "auto",
    support_margin: float = 0.0,
    columns: Mapping[str, str] | None = None,
    fixed_inputs: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    maximize: bool = False,
    n_starts: int = 16,
    seed: int = 0,
    confidence: float = 0.9,
) -> Allocation:
    """Tokens per language minimizing the predicted loss (or maximizing a score, ``maximize=True``).

    ``model``: a :class:`LawFit` whose inputs are the language shares (``columns`` maps a language
    to its input column; extra inputs such as N or D come from ``fixed_inputs``), a dict of fits
    (objective = their ``weights``-weighted mean, e.g. one loss law per language), or a callable
    taking a DataFrame of shares and returning one value per row. Intervals come from the fits'
    bootstrap samples (call ``fit.bootstrap(n)`` first).
    """
    langs = tuple(languages)
    if len(langs) < 1 or len(set(langs)) != len(langs):
        raise ValueError(f"languages must be distinct and non-empty, got {list(languages)}")
    if not (np.isfinite(total_tokens) and total_tokens > 0):
        raise ValueError(f"total_tokens must be positive, got {total_tokens!r}")
    T = float(total_tokens)
    cols = {l: l for l in langs} | dict(columns or {})
    f, samples, fits = _as_objective(model, langs, cols, fixed_inputs, weights)
    k = len(langs)

    def per_lang(value, name, default):
        if value is None:
            return np.full(k, default, float)
        if isinstance(value, Mapping):
            unknown = set(value) - set(langs)
            if unknown:
                raise ValueError(f"{name} names unknown language(s) {sorted(unknown)}")
            return np.array([float(value.get(l, default)) for l in langs])
        return np.full(k, float(value))

    mins = per_lang(min_share, "min_share", 0.0)
    if np.any((mins < 0) | (mins > 1)):
        raise ValueError("min_share must lie in [0, 1]")
    lo = mins.copy()
    hi = np.ones(k)
    reasons_lo = ["min_share" if m > 0 else "" for m in mins]
    reasons_hi = [""] * k
    if availability is not None:
        avail = per_lang(availability, "availability", np.inf)
        epochs = per_lang(max_epochs, "max_epochs", np.inf) if max_epochs is not None else np.ones(k)
        if np.any(avail < 0) or np.any(epochs <= 0):
            raise ValueError("availability must be >= 0 and max_epochs > 0")
        cap = avail * epochs / T
        for i in range(k):
            if cap[i] < hi[i]:
                hi[i], reasons_hi[i] = cap[i], "availability×epochs"
    elif max_epochs is not None:
        raise ValueError("max_epochs needs availability (tokens available per language)")
    base_lo, base_hi = lo.copy(), hi.copy()
    guard_lo, guard_hi = np.zeros(k), np.ones(k)
    if support is not None:
        if isinstance(support, str):
            if support != "auto":
                raise ValueError(f"support must be 'auto', None, a DataFrame or a dict, got {support!r}")
            if fits is None:
                raise ValueError("support='auto' needs fitted laws; give support= explicitly (or None) with a callable")
            s_lo, s_hi = _support_from_fits(fits, langs, cols)
        elif isinstance(support, pd.DataFrame):
            missing = [cols[l] for l in langs if cols[l] not in support.columns]
            if missing:
                raise ValueError(f"support table lacks column(s) {missing}")
            s_lo = {l: float(support[cols[l]].min()) for l in langs}
            s_hi = {l: float(support[cols[l]].max()) for l in langs}
        else:
            s_lo = {l: float(support[l][0]) if l in support else 0.0 for l in langs}
            s_hi = {l: float(support[l][1]) if l in support else 1.0 for l in langs}
        for i, l in enumerate(langs):
            slo, shi = max(s_lo[l] - support_margin, 0.0), min(s_hi[l] + support_margin, 1.0)
            guard_lo[i], guard_hi[i] = slo, shi
            if slo > lo[i]:
                lo[i], reasons_lo[i] = slo, "sampled support"
            if shi < hi[i]:
                hi[i], reasons_hi[i] = shi, "sampled support"
    for l, tok in dict(anchor or {}).items():
        if l not in langs:
            raise ValueError(f"anchor language {l!r} is not among languages {list(langs)}")
        i = langs.index(l)
        p = float(tok) / T
        if not (lo[i] - 1e-12 <= p <= hi[i] + 1e-12):
            raise InfeasibleAllocation(
                f"anchor {l}={tok:g} tokens is share {p:.4g}, outside its allowed range [{lo[i]:.4g}, {hi[i]:.4g}] "
                f"({reasons_lo[i] or reasons_hi[i] or 'bounds'}); change the anchor, the budget or the support guard")
        lo[i] = hi[i] = base_lo[i] = base_hi[i] = p
        reasons_lo[i] = reasons_hi[i] = "anchor"
    if np.any(lo > hi + 1e-12) or lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9:
        detail = ", ".join(f"{l}: [{a:.4g}, {b:.4g}]" for l, a, b in zip(langs, lo, hi))
        raise InfeasibleAllocation(f"no mixture satisfies the constraints ({detail}; shares must sum to 1)")

    sign = -1.0 if maximize else 1.0

    def solve(lo_, hi_):
        rng = np.random.default_rng(seed)
        starts = [project_to_box_simplex(np.full(k, 1 / k), lo_, hi_)]
        starts += [project_to_box_simplex(rng.dirichlet(np.ones(k)), lo_, hi_) for _ in range(max(n_starts - 1, 0))]
        obj = lambda p: sign * float(f(p[None, :])[0])  # noqa: E731
        best_p, best_v = None, np.inf
        for p0 in starts:
            res = optimize.minimize(obj, p0, method="SLSQP", bounds=list(zip(lo_, hi_)),
                                    constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0}],
                                    options={"maxiter": 500, "ftol": 1e-12})
            p = project_to_box_simplex(res.x, lo_, hi_)
            v = obj(p)
            if np.isfinite(v) and v < best_v:
                best_p, best_v = p, v
        if best_p is None:
            raise RuntimeError("the allocation objective is not finite at any start")
        return best_p

    p = solve(lo, hi)
    unguarded = None
    if support is not None and (np.any(base_lo != lo) or np.any(base_hi != hi)):
        unguarded = dict(zip(langs, map(float, solve(base_lo, base_hi))))

    tokens = _round_tokens(p, T, hi, langs, anchor or {})
    q = [(1 - confidence) / 2, 1 - (1 - confidence) / 2]

    def evaluate(P):
        v = f(P)
        if samples is None:
            return v, np.full(len(P), np.nan), np.full(len(P), np.nan)
        s = samples(P)
        a, b = np.nanquantile(s, q, axis=0)
        return v, a, b

    mixes = {"optimized": p, "uniform": np.full(k, 1 / k)}
    if availability is not None:
        avail = per_lang(availability, "availability", np.nan)
        if np.all(np.isfinite(avail)) and avail.sum() > 0:
            mixes["natural"] = avail / avail.sum()
    if unguarded is not None:
        mixes["unguarded"] = np.array([unguarded[l] for l in langs])
    P = np.stack(list(mixes.values()))
    val, low, high = evaluate(P)
    comp = pd.DataFrame(P, columns=[f"share_{l}" for l in langs])
    comp.insert(0, "mix", list(mixes))
    comp["predicted"], comp["low"], comp["high"] = val, low, high
    comp["feasible"] = [bool(np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)) for x in P]
    comp["in_support"] = [bool(np.all(x >= guard_lo - 1e-9) and np.all(x <= guard_hi + 1e-9)) for x in P]
    bounds = pd.DataFrame({"language": langs, "lower": lo, "upper": hi, "lower_reason": reasons_lo,
                           "upper_reason": reasons_hi, "share": p})
    per_target = None
    if fits is not None and len(fits) > 1:
        df = pd.DataFrame(P, columns=[cols[l] for l in langs])
        for kk, v in dict(fixed_inputs or {}).items():
            df[kk] = v
        per_target = pd.DataFrame({name: fit.predict(df) for name, fit in fits.items()}, index=list(mixes))
    interval = None if samples is None else (float(low[0]), float(high[0]))
    return Allocation(languages=langs, total_tokens=T, shares=dict(zip(langs, map(float, p))), tokens=tokens,
                      predicted=float(val[0]), interval=interval, bounds=bounds, comparison=comp,
                      unguarded=unguarded, per_target=per_target, maximize=maximize)


def _round_tokens(p, T, hi, langs, anchor) -> dict[str, int]:
    exact = p * T
    out = np.floor(exact).astype(np.int64)
    fixed = np.array([l in anchor for l in langs])
    for i, l in enumerate(langs):
        if fixed[i]:
            out[i] = int(round(float(anchor[l])))
    remainder = int(round(T)) - int(out.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while remainder > 0:
        given = 0
        for i in order:
            if remainder <= 0:
                break
            if not fixed[i] and out[i] + 1 <= hi[i] * T + 1e-6:
                out[i] += 1
                remainder -= 1
                given += 1
        if given == 0:
            break
    return {l: int(v) for l, v in zip(langs, out)}
