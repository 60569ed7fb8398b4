"""Translation / transition / stabilization stage detection on noisy curves over training steps.

The paper's three stages for a new language, read from a performance curve (pass@1, suite
accuracy, Babel line accuracy; or a validation loss with ``higher_is_better=False``):

* **translation** — performance rises (the new language rides on the Python "system");
* **transition** — performance declines after its peak while the new system forms;
* **stabilization** — the curve is flat.

Method (docs/sweep.md, "Stages"; calibrated by ``benchmarks/stages.py``):

1. The curve's shape is chosen by BIC among continuous piecewise-linear candidates (flat, line,
   rise-flat, rise-fall, rise-fall-flat) fitted to the raw points.
2. A rise (start to peak) and a decline (peak to plateau) are linear contrasts of the fitted
   shape; each is compared with its own standard error, computed from the same fit.
3. The noise behind that standard error: the per-point standard errors given (``noise`` or
   ``interval``), the seed-to-seed spread when ``values`` holds one curve per seed, else the
   scatter of the curve around a two-breakpoint fit. Single curves are checked for correlated
   noise: when the lag-1 autocorrelation of those residuals reaches ``max_autocorr``, the noise is
   treated as persistent AR(1) noise (``persistence``), which widens the standard errors.
4. A rise or decline counts when it exceeds ``min_effect`` standard errors *and* the minimum
   absolute effect ``min_abs_effect``: a single short curve cannot tell a random walk from a
   trend, so small wanders are refused on size alone. Seeds can tell them apart, so curves given
   per seed have no minimum by default.
5. The confidence of a stage is the share of bootstrap replicas of the curve in which the
   detector finds the same stage with boundaries within one window of checkpoints: a stationary
   block bootstrap of the fit's residuals (it keeps their autocorrelation), or a bootstrap over
   seeds when several are given.

Curves without a peak or a plateau get no such stage, and the result says so in ``notes``.
Supporting curves (the working-language Python share, LAPE counts) are summarised per stage in
``evidence`` so a reader can check that the mechanism agrees with the performance story.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lensprobe.analysis.smoothing import sliding_mean

STAGE_NAMES = ("translation", "transition", "stabilization")

#: Default minimum absolute rise / decline for single curves on a 0-1 scale (accuracy, pass@1,
#: shares): a single short curve cannot tell a random walk from a trend. On 400 random walks
#: (step sd 0.02, 20 points) it takes the share with stages from 17% (no minimum) to 5% (0.05: 13%,
#: 0.15: 2%), while planted declines of 0.15-0.25 are still found (docs/sweep.md, benchmarks/README.md).
MIN_ABS_EFFECT_RATE = 0.10
_Z975 = 1.96  # normal 97.5% quantile, as the 95% intervals the detector reads are computed


@dataclass(frozen=True)
class Stage:
    """One stage as a closed step interval."""

    name: str
    start_step: float
    end_step: float


@dataclass
class StageResult:
    """Stages found in one curve, with the evidence used and a confidence per boundary."""

    language: str | None
    stages: list[Stage]
    peak_step: float | None
    plateau_step: float | None
    noise: float
    evidence: dict[str, Any] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def has_stages(self) -> bool:
        return bool(self.stages)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per stage name (absent stages have NaN bounds and the reason in ``note``)."""
        rows = []
        for name in STAGE_NAMES:
            st = self.stage(name)
            rows.append({
                "language": self.language,
                "stage": name,
                "start_step": st.start_step if st else math.nan,
                "end_step": st.end_step if st else math.nan,
                "present": st is not None,
                "confidence": self.confidence.get(name, math.nan),
                "note": "; ".join(n for n in self.notes if name in n) if st is None else "",
            })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stages"] = [asdict(s) for s in self.stages]
        return _jsonable(out)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def estimate_noise(values: Sequence[float]) -> float:
    """Robust per-point noise sigma from second differences (insensitive to slow trends).

    For white noise e, Var(e[i-1] - 2e[i] + e[i+1]) = 6 sigma^2; MAD/0.6745 estimates its sd.
    """
    y = np.asarray(values, dtype=float)
    if y.size < 3:
        return 0.0
    d2 = y[:-2] - 2 * y[1:-1] + y[2:]
    mad = np.median(np.abs(d2 - np.median(d2)))
    return float(mad / 0.6745 / math.sqrt(6.0))


def _columns(shape: str, x: np.ndarray, b1: np.ndarray, b2: np.ndarray | None = None) -> np.ndarray:
    """Design matrices [P, n, k] of a continuous piecewise-linear shape for P breakpoint choices.

    ``b1`` / ``b2`` are breakpoint positions on the ``x`` scale, shape [P, 1]. The intercept is the
    fitted value at the first breakpoint.
    """
    n = x.size
    ones = np.broadcast_to(np.ones(n), (b1.shape[0], n))
    before = np.minimum(x[None, :] - b1, 0.0)
    if shape == "rise_flat":
        cols = [ones, before]
    elif shape == "rise_fall":
        cols = [ones, before, np.maximum(x[None, :] - b1, 0.0)]
    elif shape == "rise_fall_flat":
        assert b2 is not None
        cols = [ones, before, np.clip(x[None, :] - b1, 0.0, None) - np.clip(x[None, :] - b2, 0.0, None)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.stack(cols, axis=-1)


def _design(shape: str, x: np.ndarray, breaks: tuple[int, ...]) -> np.ndarray:
    """Design matrix [n, k] of one fitted shape."""
    if shape == "flat":
        return np.ones((x.size, 1))
    if shape == "line":
        return np.stack([np.ones(x.size), x], axis=-1)
    b = [np.array([[x[i]]]) for i in breaks]
    return _columns(shape, x, *b)[0]


def _fit_pieces(x: np.ndarray, y: np.ndarray, *, min_seg: int) -> dict[str, dict[str, Any]]:
    """Least-squares fits of the candidate shapes (continuous piecewise-linear), vectorised.

    flat: c.  line: c + s x.  rise_flat: slope then flat (break b).  rise_fall: two slopes
    (break b).  rise_fall_flat: slope, slope, flat (breaks b1 < b2).
    Breakpoints are at observed steps; every piece spans >= ``min_seg`` points (>= 2 for slopes).
    """
    n = x.size
    fits: dict[str, dict[str, Any]] = {}

    def solve(designs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # designs [P, n, k] -> coefficients [P, k], sse [P]
        xtx = np.einsum("pnk,pnl->pkl", designs, designs) + 1e-12 * np.eye(designs.shape[-1])
        xty = np.einsum("pnk,n->pk", designs, y)
        coef = np.linalg.solve(xtx, xty[..., None])[..., 0]
        resid = np.einsum("pnk,pk->pn", designs, coef) - y
        return coef, np.sum(resid ** 2, axis=1)

    c = y.mean()
    fits["flat"] = dict(k=1, sse=float(np.sum((y - c) ** 2)), breaks=(), slopes=(0.0,))
    coef, sse = solve(_design("line", x, ())[None])
    fits["line"] = dict(k=2, sse=float(sse[0]), breaks=(), slopes=(float(coef[0, 1]),))
    cand = np.arange(2, n - 1)
    if cand.size:
        bs = cand[(n - cand) >= min_seg]  # the flat part needs >= min_seg points
        if bs.size:
            coef, sse = solve(_columns("rise_flat", x, x[bs, None]))
            i = int(np.argmin(sse))
            fits["rise_flat"] = dict(k=4, sse=float(sse[i]), breaks=(int(bs[i]),), slopes=(float(coef[i, 1]), 0.0))
        coef, sse = solve(_columns("rise_fall", x, x[cand, None]))
        i = int(np.argmin(sse))
        fits["rise_fall"] = dict(k=5, sse=float(sse[i]), breaks=(int(cand[i]),),
                                 slopes=(float(coef[i, 1]), float(coef[i, 2])))
        b1, b2 = np.meshgrid(cand, cand, indexing="ij")
        ok = (b2 - b1 >= 2) & ((n - b2) >= min_seg)
        b1, b2 = b1[ok], b2[ok]
        if b1.size:
            coef, sse = solve(_columns("rise_fall_flat", x, x[b1, None], x[b2, None]))
            i = int(np.argmin(sse))
            fits["rise_fall_flat"] = dict(k=7, sse=float(sse[i]), breaks=(int(b1[i]), int(b2[i])),
                                          slopes=(float(coef[i, 1]), float(coef[i, 2]), 0.0))
    for f in fits.values():
        f["bic"] = n * math.log(max(f["sse"], 1e-300) / n) + f["k"] * math.log(n)
    return fits


def _lag1_autocorr(r: np.ndarray) -> float:
    ss = float(np.sum(r ** 2))
    return float(np.sum(r[1:] * r[:-1]) / ss) if ss > 0 and r.size > 2 else 0.0


def _residual_stats(x: np.ndarray, y: np.ndarray, fits: dict[str, dict[str, Any]]) -> tuple[float, float]:
    """(sd, lag-1 autocorrelation) of the residuals of the most flexible fit (two breakpoints).

    The most flexible fit absorbs the most signal, so what is left is the closest a single curve
    gets to its noise. The sd divides by n - coefficients - breakpoints.
    """
    shape = next(s for s in ("rise_fall_flat", "rise_fall", "line", "flat") if s in fits)
    X = _design(shape, x, fits[shape]["breaks"])
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    dof = max(1, y.size - X.shape[1] - len(fits[shape]["breaks"]))
    sd = math.sqrt(float(np.sum(resid ** 2)) / dof)
    exact = sd <= 1e-9 * max(1.0, float(np.max(np.abs(y))))  # rounding residue: no correlation to read
    return sd, 0.0 if exact else _lag1_autocorr(resid)


def _ar1_d2_factor(phi: float) -> float:
    """sd(second difference) / (sqrt(6) * marginal sd) under AR(1) noise with coefficient ``phi``.

    Var(e[i-1] - 2e[i] + e[i+1]) = sigma^2 (6 - 8 phi + 2 phi^2); 1 for white noise.
    """
    return math.sqrt((6.0 - 8.0 * phi + 2.0 * phi * phi) / 6.0)


def _contrast(X: np.ndarray, Y: np.ndarray, i: int, j: int, *, sd: np.ndarray | None, phi: float,
              t_scale: float) -> tuple[float, float]:
    """(effect, standard error) of fitted(i) - fitted(j) for the design ``X`` and curves ``Y`` [k, n].

    One curve (k = 1): the error covariance is sd_a sd_b phi^|a-b| (AR(1) over checkpoints).
    Several curves (seeds): the spread of the per-seed contrasts, sd / sqrt(k), times ``t_scale``
    (the Student-t / normal ratio that turns it into a normal-equivalent standard error).
    """
    w = (X[i] - X[j]) @ np.linalg.pinv(X)  # contrast weights on the points
    per_curve = Y @ w
    effect = float(per_curve.mean())
    if Y.shape[0] > 1:
        return effect, float(per_curve.std(ddof=1) / math.sqrt(Y.shape[0]) * t_scale)
    assert sd is not None
    idx = np.arange(w.size)
    cov = np.outer(sd, sd) * phi ** np.abs(idx[:, None] - idx[None, :])
    return effect, math.sqrt(max(float(w @ cov @ w), 0.0))


def _analyse(x: np.ndarray, Y: np.ndarray, *, noise: float | None, point_se: np.ndarray | None, window: int,
             min_effect: float, min_abs_effect: float, max_autocorr: float, persistence: float,
             plateau_tol: float | None) -> dict[str, Any]:
    """Shape, effects, standard errors and decisions for curves ``Y`` [k, n] (higher is better)."""
    k, n = Y.shape
    y = Y.mean(axis=0)
    ys = sliding_mean(y, window=window)
    min_seg = max(3, window, math.ceil(n / 6))
    fits = _fit_pieces(x, y, min_seg=min_seg)
    shape = min(fits, key=lambda s: fits[s]["bic"])
    f = fits[shape]
    peak = plateau = None
    if shape == "rise_flat" and f["slopes"][0] > 0:
        plateau = f["breaks"][0]
    elif shape == "rise_fall" and f["slopes"][0] > 0 and f["slopes"][1] < 0:
        peak = f["breaks"][0]
    elif shape == "rise_fall_flat" and f["slopes"][0] > 0 and f["slopes"][1] < 0:
        peak, plateau = f["breaks"]
    elif shape == "rise_fall_flat" and f["slopes"][0] > 0:  # rise, slower rise, flat
        plateau = f["breaks"][1]

    # the noise behind the standard errors
    resid_sd, rho = _residual_stats(x, y, fits)
    correlated = k == 1 and rho >= max_autocorr
    phi = persistence if correlated else (max(rho, 0.0) if k == 1 else 0.0)
    t_scale = float(stats.t.ppf(0.975, k - 1) / _Z975) if k > 1 else 1.0
    if k > 1:
        sd = None
        source = f"seeds ({k})"
        sigma = float(np.median(Y.std(axis=0, ddof=1)) / math.sqrt(k) * t_scale)
    elif noise is not None:
        sd, source = np.full(n, float(noise)), "given"
    elif point_se is not None:
        # the stated per-point errors, but never below the curve's own scatter around its shape
        sd, source = np.maximum(point_se, resid_sd), "interval (at least the residual scatter)"
    else:
        sd, source = np.full(n, resid_sd), "residuals of a two-breakpoint fit"
    if correlated and noise is None:
        # persistent noise hides in the fit; its local roughness still shows it (second differences)
        assert sd is not None
        sd = np.maximum(sd, estimate_noise(y) / _ar1_d2_factor(phi))
    if sd is not None:
        sigma = float(np.median(sd))

    X = _design(shape, x, f["breaks"])
    rise = decline = 0.0
    rise_se = decline_se = math.nan
    top = peak if peak is not None else plateau
    if top is None and f["slopes"][0] > 0:
        # no peak and no plateau, but the fit starts rising (a line, or a fast then a slower rise):
        # test the rise from the first to the last checkpoint
        top = n - 1
    if top is not None:
        rise, rise_se = _contrast(X, Y, top, 0, sd=sd, phi=phi, t_scale=t_scale)
    if peak is not None:
        end = plateau if plateau is not None else n - 1
        decline, decline_se = _contrast(X, Y, peak, end, sd=sd, phi=phi, t_scale=t_scale)
    rise_threshold = max(min_effect * rise_se, min_abs_effect, 1e-12) if top is not None else math.nan
    decline_threshold = max(min_effect * decline_se, min_abs_effect, 1e-12) if peak is not None else math.nan
    rise_ok = top is not None and rise > rise_threshold
    decline_ok = peak is not None and rise_ok and decline > decline_threshold
    if peak is not None and not decline_ok:
        # a decline too small to trust: treat the peak as the start of a plateau when one is flat
        plateau, peak = (plateau if plateau is not None else peak), None
    tol = plateau_tol if plateau_tol is not None else max(
        decline_threshold if math.isfinite(decline_threshold) else 0.0, 0.1 * float(ys.max() - ys.min()))
    plateau_ok = plateau is not None and rise_ok
    if plateau_ok and plateau_tol is not None:
        plateau_ok = _is_flat(x[plateau:], ys[plateau:], tol)
    final_level = float(ys[plateau:].mean()) if plateau_ok else float(ys[max(0, n - window):].mean())
    return dict(shape=shape, breaks=f["breaks"], ys=ys, peak=peak if peak is not None else int(np.argmax(ys)),
                plateau=plateau if plateau is not None else n - 1, rise=rise, decline=decline,
                rise_se=rise_se, decline_se=decline_se, rise_threshold=rise_threshold,
                decline_threshold=decline_threshold, final_level=final_level, tol=tol, rise_ok=rise_ok,
                decline_ok=decline_ok, plateau_ok=plateau_ok, sigma=sigma, sd=sd, noise_source=source,
                residual_sd=resid_sd, residual_autocorr=rho, correlated=correlated, phi=phi, n_seeds=k)


def _is_flat(x: np.ndarray, y: np.ndarray, tol: float) -> bool:
    if np.max(np.abs(y - y.mean())) > tol:
        return False
    span = float(x[-1] - x[0])
    if span <= 0:
        return True
    slope = np.polyfit(x, y, 1)[0]
    return abs(slope * span) <= tol


def _stages_from_segment(seg: dict[str, Any], steps: np.ndarray) -> tuple[list[Stage], list[str], int | None]:
    notes: list[str] = []
    stages: list[Stage] = []
    n = steps.size
    peak, plateau = seg["peak"], seg["plateau"]
    if not seg["rise_ok"]:
        notes.append("no translation stage: the curve shows no significant rise to a peak")
        if seg["decline_ok"]:
            notes.append("no transition stage: the curve only declines from its first checkpoint; a translation "
                         "stage before the first checkpoint cannot be told apart from plain decline")
        else:
            notes.append("no transition stage: no peak to decline from")
        notes.append("no stabilization stage: no rise precedes a plateau (flat or monotone curve)")
        return stages, notes, None
    if seg["decline_ok"]:
        stages.append(Stage("translation", float(steps[0]), float(steps[peak])))
        plateau_after = plateau if seg["plateau_ok"] else None
        if plateau_after is not None and plateau_after > peak:
            stages.append(Stage("transition", float(steps[peak]), float(steps[plateau_after])))
            stages.append(Stage("stabilization", float(steps[plateau_after]), float(steps[-1])))
            return stages, notes, plateau_after
        stages.append(Stage("transition", float(steps[peak]), float(steps[-1])))
        notes.append("no stabilization stage: the curve is still declining at the last checkpoint (no plateau)")
        return stages, notes, None
    # rise without a significant decline
    notes.append("no transition stage: no significant decline after the rise")
    if seg["plateau_ok"] and plateau > 0:
        stages.append(Stage("translation", float(steps[0]), float(steps[plateau])))
        stages.append(Stage("stabilization", float(steps[plateau]), float(steps[-1])))
        return stages, notes, plateau
    notes.append("no stabilization stage: the curve still rises at the last checkpoint (no peak, no plateau); "
                 "the translation stage may continue past the run")
    return [Stage("translation", float(steps[0]), float(steps[-1]))], notes, None


def detect_stages(steps: Sequence[float], values: Sequence[float] | Sequence[Sequence[float]], *, window: int = 5,
                  higher_is_better: bool = True, min_effect: float = 3.0, min_abs_effect: float | None = None,
                  max_autocorr: float = 0.2, persistence: float = 0.8, noise: float | None = None,
                  interval: Sequence[float] | None = None, plateau_tol: float | None = None,
                  n_boot: int = 200, seed: int = 0, language: str | None = None,
                  support: Mapping[str, Sequence[float]] | None = None) -> StageResult:
    """Detect the three stages in one performance curve (method: module docstring, docs/sweep.md).

    Args:
        steps, values: the curve (any order; sorted by step internally). ``values`` may be 2-D,
            one row per seed: the curve is then their mean and the noise their spread. Steps with
            a NaN (in any seed) are dropped.
        window: smoothing window (paper: 5) for the reported levels; also the shortest plateau
            and the boundary tolerance of the confidence.
        higher_is_better: False for losses (the curve is negated internally).
        min_effect: a rise/decline counts when it exceeds this many (normal-equivalent) standard
            errors of the same contrast of the fitted shape.
        min_abs_effect: ... and at least this much in the metric's units. Default: 0.10 for a
            single curve on a 0-1 scale (every value in [0, 1]), else 0 (and a note says so);
            0 for curves given per seed.
        max_autocorr: lag-1 autocorrelation of the residuals (of a two-breakpoint fit) from which
            a single curve's noise is treated as persistent AR(1) noise.
        persistence: the AR(1) coefficient assumed then.
        noise: per-point noise sigma; overrides the estimates of its size (not of its correlation).
        interval: optional per-point 95% half-widths (a bootstrap over items, or seeds with a
            Student-t quantile): half-width / 1.96 is the per-point standard error, never taken
            below the curve's own scatter around its shape.
        plateau_tol: if given, a plateau must stay within this band of its mean (and not drift).
        n_boot: bootstrap replicas for the confidences (0 disables).
        support: named supporting curves on the same steps (working-language Python share, LAPE
            counts): summarised per stage in ``evidence``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not min_effect > 0:
        raise ValueError(f"min_effect must be > 0, got {min_effect}")
    if min_abs_effect is not None and not min_abs_effect >= 0:
        raise ValueError(f"min_abs_effect must be >= 0, got {min_abs_effect}")
    if not -1.0 < max_autocorr <= 1.0:
        raise ValueError(f"max_autocorr must be in (-1, 1], got {max_autocorr}")
    if not 0.0 <= persistence < 1.0:
        raise ValueError(f"persistence must be in [0, 1), got {persistence}")
    if noise is not None and not noise > 0:
        raise ValueError(f"noise must be > 0, got {noise}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    x = np.asarray(steps, dtype=float)
    Y = np.asarray(values, dtype=float)
    if Y.ndim == 1:
        Y = Y[None, :]
    if x.ndim != 1 or Y.ndim != 2 or Y.shape[1] != x.size:
        raise ValueError(f"steps and values must be of equal length (steps 1-D; values 1-D, or 2-D with one row "
                         f"per seed), got {x.shape} and {np.shape(values)}")
    if Y.shape[0] > 1 and (interval is not None or noise is not None):
        raise ValueError("give per-seed curves (2-D values) or an interval / a noise level, not both")
    keep = np.isfinite(x) & np.isfinite(Y).all(axis=0)
    order = np.argsort(x[keep], kind="stable")
    x, Y = x[keep][order], Y[:, keep][:, order]
    point_se = None
    if interval is not None:
        iv = np.asarray(interval, dtype=float)
        if iv.shape != keep.shape:
            raise ValueError("interval must have the same length as values")
        iv = iv[keep][order]
        if np.isfinite(iv).any():
            point_se = np.where(np.isfinite(iv), iv, np.nanmedian(iv)) / _Z975
    sign = 1.0 if higher_is_better else -1.0
    notes: list[str] = []
    if x.size < 3:
        return StageResult(language, [], None, None, math.nan,
                           notes=[f"too few points ({x.size}) to detect stages"])
    if min_abs_effect is None:
        rate = bool(np.all((Y >= 0) & (Y <= 1)))
        min_abs_effect = MIN_ABS_EFFECT_RATE if rate and Y.shape[0] == 1 else 0.0
        if Y.shape[0] == 1 and not rate:
            notes.append("no minimum absolute effect: the values are not on a 0-1 scale (pass min_abs_effect in "
                         "the metric's units; a single curve cannot tell a short random walk from a trend)")
    span = float(x[-1] - x[0]) or 1.0
    xs = (x - x[0]) / span  # fits on a unit scale (better conditioned; effects do not depend on it)
    settings = dict(noise=noise, point_se=point_se, window=window, min_effect=min_effect,
                    min_abs_effect=float(min_abs_effect), max_autocorr=max_autocorr, persistence=persistence,
                    plateau_tol=plateau_tol)
    seg = _analyse(xs, sign * Y, **settings)
    stages, seg_notes, plateau_idx = _stages_from_segment(seg, x)
    notes.extend(seg_notes)
    if seg["correlated"]:
        notes.append(f"the residuals around the fitted shape are autocorrelated (lag-1 {seg['residual_autocorr']:.2f}"
                     f" >= {max_autocorr:g}): the noise was treated as persistent (AR(1), coefficient "
                     f"{persistence:g}), which widens the standard errors; a single curve cannot separate slow "
                     "noise from stages, seeds can")
    for what in ("rise", "decline"):
        eff, se, thr = seg[what], seg[f"{what}_se"], seg[f"{what}_threshold"]
        if math.isfinite(thr) and min_effect * se < eff <= min_abs_effect:
            notes.append(f"the {what} ({eff:.3g}) exceeds {min_effect:g} standard errors but not the minimum absolute "
                         f"effect ({min_abs_effect:g})")

    ys = seg["ys"]
    evidence: dict[str, Any] = {
        "window": window, "min_effect": min_effect, "min_abs_effect": float(min_abs_effect),
        "max_autocorr": max_autocorr, "persistence": persistence,
        "noise_sigma": seg["sigma"], "noise_source": seg["noise_source"], "n_seeds": seg["n_seeds"],
        "residual_sd": seg["residual_sd"], "residual_autocorr": seg["residual_autocorr"],
        "autocorrelated": seg["correlated"], "ar1_coefficient": seg["phi"],
        "rise": seg["rise"], "rise_se": seg["rise_se"], "rise_threshold": seg["rise_threshold"],
        "decline": seg["decline"], "decline_se": seg["decline_se"], "decline_threshold": seg["decline_threshold"],
        "peak_value": float(sign * ys[seg["peak"]]), "final_level": float(sign * seg["final_level"]),
        "plateau_tolerance": seg["tol"], "n_points": int(x.size), "higher_is_better": higher_is_better,
        "shape": seg["shape"],
    }
    if support:
        evidence["support"] = _summarise_support(x, keep, order, stages, support)

    confidence: dict[str, float] = {}
    if n_boot and stages:
        confidence, evidence["bootstrap"] = _bootstrap_confidence(xs, sign * Y, seg, stages, x=x, n_boot=n_boot,
                                                                  seed=seed, settings=settings)
    peak_step = float(x[seg["peak"]]) if seg["rise_ok"] else None
    plateau_step = float(x[plateau_idx]) if plateau_idx is not None else None
    return StageResult(language, stages, peak_step, plateau_step, float(seg["sigma"]), evidence, confidence, notes)


def _summarise_support(x: np.ndarray, keep: np.ndarray, order: np.ndarray, stages: list[Stage],
                       support: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, curve in support.items():
        c = np.asarray(curve, dtype=float)
        if c.shape != keep.shape:
            raise ValueError(f"support curve {name!r} must have one value per step")
        c = c[keep][order]
        per_stage = {}
        for st in stages:
            m = (x >= st.start_step) & (x <= st.end_step) & np.isfinite(c)
            per_stage[st.name] = float(c[m].mean()) if m.any() else None
        finite = np.isfinite(c)
        trend = None
        if finite.sum() >= 3 and np.ptp(c[finite]) > 0:
            from scipy.stats import spearmanr

            trend = float(spearmanr(x[finite], c[finite]).statistic)
        out[name] = {"mean_per_stage": per_stage, "spearman_vs_step": trend,
                     "first": float(c[finite][0]) if finite.any() else None,
                     "last": float(c[finite][-1]) if finite.any() else None}
    return out


def _bootstrap_confidence(xs: np.ndarray, Y: np.ndarray, seg: dict[str, Any], stages: list[Stage], *,
                          x: np.ndarray, n_boot: int, seed: int,
                          settings: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Share of bootstrap replicas that find each stage with both boundaries near the original.

    "Near" = within ``window // 2 + 1`` checkpoints (the resolution of the detector). One curve:
    the fitted shape plus a stationary bootstrap (Politis & Romano) of its residuals, scaled up
    for the fitted parameters and to at least the noise the detector assumed; mean block length
    (1 + phi) / (1 - phi) for the AR(1) coefficient the detector used (2 to n / 4 checkpoints).
    Several seeds: the seeds are resampled with replacement (replicas with fewer than two
    distinct seeds are skipped).
    """
    from arch.bootstrap import StationaryBootstrap

    rng = np.random.default_rng(seed)
    k, n = Y.shape
    if k > 1:
        def replicas() -> Any:
            for _ in range(n_boot):
                rows = rng.integers(0, k, size=k)
                if np.unique(rows).size >= 2:
                    yield Y[rows]
        info: dict[str, Any] = {"method": "seeds", "replicas": n_boot}
    else:
        X = _design(seg["shape"], xs, seg["breaks"])
        fitted = X @ np.linalg.lstsq(X, Y[0], rcond=None)[0]
        resid = Y[0] - fitted
        resid = (resid - resid.mean()) * math.sqrt(n / max(1, n - X.shape[1] - len(seg["breaks"])))
        rsd = float(np.sqrt(np.mean(resid ** 2)))
        if rsd > 0:  # as large as the noise the detector assumed (an interval, persistent noise)
            resid = resid * np.maximum(1.0, seg["sd"] / rsd)
        phi = seg["phi"]
        block = float(min(max(2.0, (1 + phi) / (1 - phi)), max(2.0, n / 4)))
        boot = StationaryBootstrap(block, resid, seed=rng)

        def replicas() -> Any:
            for (rb,), _ in boot.bootstrap(n_boot):
                yield (fitted + rb)[None, :]
        info = {"method": "stationary block bootstrap of the fit's residuals", "mean_block_length": block,
                "replicas": n_boot}
    idx_of = {float(s): i for i, s in enumerate(x)}
    tol_idx = max(1, settings["window"] // 2 + 1)
    hits = {s.name: 0 for s in stages}
    used = 0
    for Yb in replicas():
        used += 1
        sb, _, _ = _stages_from_segment(_analyse(xs, Yb, **settings), x)
        for st in stages:
            other = next((o for o in sb if o.name == st.name), None)
            if other is not None and abs(idx_of[other.start_step] - idx_of[st.start_step]) <= tol_idx \
                    and abs(idx_of[other.end_step] - idx_of[st.end_step]) <= tol_idx:
                hits[st.name] += 1
    info["replicas_used"] = used
    return {name: h / used if used else math.nan for name, h in hits.items()}, info


def detect_stages_from_table(table: pd.DataFrame, *, metric: str, probe: str | None = None,
                             languages: Sequence[str] | None = None, higher_is_better: bool = True,
                             support_metrics: Mapping[str, tuple[str | None, str]] | None = None,
                             interval_metric: str | None = None, identifier: str | None = None,
                             interval_bounds: tuple[str, str] | None = None,
                             **kwargs: Any) -> dict[str, StageResult]:
    """Run :func:`detect_stages` per language on a sweep table (long format).

    The performance curve is the mean of ``metric`` rows (optionally of one ``probe`` and one
    ``identifier``, e.g. a Babel split) per step, over identifiers/items and layers.
    ``support_metrics`` maps a display name to (probe, metric) for supporting curves, e.g.
    ``{"python_share": ("working_language", "eq1_python_share")}`` (not filtered by ``identifier``).
    ``interval_metric`` names rows holding per-step 95% half-widths of the performance metric;
    ``interval_bounds`` names rows of lower / upper 95% bounds instead (e.g.
    ``("line_acc_lo", "line_acc_hi")``, half-width = (hi - lo) / 2).
    """
    needed = {"step", "language", "metric", "value"}
    missing = needed - set(table.columns)
    if missing:
        raise ValueError(f"sweep table is missing columns {sorted(missing)}")

    if identifier is not None and "identifier" not in table.columns:
        raise ValueError("identifier given but the sweep table has no 'identifier' column")
    if interval_metric is not None and interval_bounds is not None:
        raise ValueError("give interval_metric or interval_bounds, not both")

    def curve(df: pd.DataFrame, probe_name: str | None, metric_name: str, ident: str | None = None) -> pd.Series:
        sel = df[df["metric"] == metric_name]
        if probe_name is not None and "probe" in sel.columns:
            sel = sel[sel["probe"] == probe_name]
        if ident is not None:
            sel = sel[sel["identifier"] == ident]
        return sel.groupby("step")["value"].mean()

    base = table if probe is None or "probe" not in table.columns else table
    langs = list(languages) if languages is not None else sorted(
        set(base.loc[base["metric"] == metric, "language"].dropna().astype(str)))
    if not langs:
        raise ValueError(f"no rows with metric {metric!r} in the sweep table")
    results: dict[str, StageResult] = {}
    for lang in langs:
        df = table[table["language"] == lang]
        perf = curve(df, probe, metric, identifier)
        if perf.empty:
            raise ValueError(f"no rows with metric {metric!r} for language {lang!r}"
                             + (f" and identifier {identifier!r}" if identifier is not None else ""))
        steps = perf.index.to_numpy(dtype=float)
        support = {}
        for name, (p, m) in (support_metrics or {}).items():
            s = curve(df, p, m).reindex(perf.index)
            if s.notna().any():
                support[name] = s.to_numpy(dtype=float)
        interval = None
        if interval_metric is not None:
            iv = curve(df, probe, interval_metric, identifier).reindex(perf.index)
            interval = iv.to_numpy(dtype=float) if iv.notna().any() else None
        elif interval_bounds is not None:
            lo = curve(df, probe, interval_bounds[0], identifier).reindex(perf.index)
            hi = curve(df, probe, interval_bounds[1], identifier).reindex(perf.index)
            iv = (hi - lo) / 2.0
            interval = iv.to_numpy(dtype=float) if iv.notna().any() else None
        results[lang] = detect_stages(steps, perf.to_numpy(dtype=float), higher_is_better=higher_is_better,
                                      language=lang, support=support or None, interval=interval, **kwargs)
    return results


def stages_table(results: Mapping[str, StageResult]) -> pd.DataFrame:
    """Concatenate per-language stage tables."""
    frames = [r.to_dataframe() for r in results.values()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
