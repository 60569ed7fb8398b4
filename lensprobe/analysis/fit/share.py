"""The Babel Tower maps: Eq.2 (share of the Python system from the loss), Eq.3 (share from token
counts), its inverse (Algorithm 1's last line) and the rebuttal's log-linear trend.

Eq.2   P(l) = (l - beta) / (alpha - beta); alpha = mean loss at the start of the continual run,
       beta = the lowest loss of the run; clipped to [0, 1] (early steps give P > 1).
       The paper averages steps 90-100 of a 50,000-step run; here the window is a fraction of the
       run (default 0.18%-0.2%, the paper's), widened to a few logged points (docs/fit.md).
Eq.3   P(eta) = eta_py / (eta_py + eta_target).
Inverse eta_target = eta_py / P - eta_py  (P = 0: no finite answer; P = 1: zero tokens).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from lensprobe.analysis.smoothing import sliding_mean

__all__ = [
    "PythonShare",
    "LogLinearFit",
    "NoFiniteTokens",
    "PAPER_RUN_STEPS",
    "PAPER_ALPHA_WINDOW",
    "alpha_window_mask",
    "loss_noise",
    "python_share_from_loss",
    "python_share_from_tokens",
    "tokens_for_share",
    "fit_log_linear",
]

PAPER_RUN_STEPS = 50_000
#: alpha's window as fractions of the run: the paper's steps 90-100 of a 50,000-step run
PAPER_ALPHA_WINDOW = (90 / PAPER_RUN_STEPS, 100 / PAPER_RUN_STEPS)


class NoFiniteTokens(ValueError):
    """Raised when a Python-system share of 0 is inverted: no finite token count reaches it."""


@dataclass(frozen=True)
class PythonShare:
    """Eq.2 applied to a loss curve. ``share`` is clipped to [0, 1]; ``clipped`` flags the
    points whose raw value fell outside (early steps, where the loss is still above alpha).

    ``losses`` is the curve Eq.2 reads (the logged loss, or its centred sliding mean of width
    ``smooth``); ``logged`` the values as logged. ``alpha_steps`` are the logged steps averaged
    for alpha (``window`` = their step range), ``run_steps`` the run length the window is relative to.
    """

    steps: np.ndarray
    losses: np.ndarray
    alpha: float
    beta: float
    raw: np.ndarray
    share: np.ndarray
    clipped: np.ndarray
    logged: np.ndarray
    alpha_steps: np.ndarray
    window: tuple[float, float]
    run_steps: float
    smooth: int = 1

    @property
    def alpha_mask(self) -> np.ndarray:
        return np.isin(self.steps, self.alpha_steps)

    def at_loss(self, loss: float | np.ndarray) -> np.ndarray | float:
        """Eq.2 (clipped) for any loss value(s), with this curve's alpha and beta."""
        value = np.clip((np.asarray(loss, dtype=float) - self.beta) / (self.alpha - self.beta), 0.0, 1.0)
        return float(value) if np.ndim(value) == 0 else value

    def at_steps(self, steps: float | np.ndarray, *, clip: bool = True) -> np.ndarray:
        """Eq.2 at any step(s): the loss curve interpolated linearly between logged steps."""
        loss = np.interp(np.asarray(steps, dtype=float), self.steps, self.losses)
        raw = (loss - self.beta) / (self.alpha - self.beta)
        return np.clip(raw, 0.0, 1.0) if clip else raw

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"step": self.steps, "loss": self.losses, "share_raw": self.raw, "share": self.share, "clipped": self.clipped}
        )


def alpha_window_mask(
    steps: Sequence[float] | np.ndarray,
    *,
    run_steps: float | None = None,
    fractions: tuple[float, float] = PAPER_ALPHA_WINDOW,
    init_steps: tuple[float, float] | None = None,
    min_points: int = 5,
    max_fraction: float = 0.05,
) -> np.ndarray:
    """The logged steps whose mean loss is alpha (Eq.2); a boolean mask over ``steps``.

    The window is ``fractions`` of the run (``run_steps``, default the last logged step); the
    default is the paper's steps 90-100 of 50,000. When it holds fewer than ``min_points`` logged
    steps it is widened to the right up to the ``min_points``-th logged step, never past
    ``max_fraction`` of the run. ``init_steps`` is an absolute window instead (not widened).
    Raises ``ValueError`` when the window reaches past ``max_fraction`` of the run (alpha must be
    the loss at the START of the continual run) or holds fewer than 2 logged steps.
    """
    s = np.asarray(steps, dtype=float)
    if s.ndim != 1 or s.size == 0:
        raise ValueError("alpha_window: steps must be a non-empty 1-D array")
    total = float(run_steps) if run_steps is not None else float(s.max())
    if not (math.isfinite(total) and total > 0):
        raise ValueError(f"run_steps must be positive, got {run_steps!r} (last logged step {s.max():g})")
    if not 0 < max_fraction < 1:
        raise ValueError(f"max_fraction must be in (0, 1), got {max_fraction}")
    if min_points < 2:
        raise ValueError(f"min_points must be >= 2 (alpha averages several steps), got {min_points}")
    cap = max_fraction * total
    if init_steps is not None:
        lo, hi = (float(x) for x in init_steps)
        if not lo <= hi:
            raise ValueError(f"init_steps must be (low, high) with low <= high, got {init_steps}")
        if hi > cap:
            raise ValueError(
                f"init_steps={tuple(init_steps)} ends at {hi / total:.0%} of the {total:g}-step run; alpha (Eq.2) is "
                f"the loss at the start of the continual run (the paper: steps 90-100 of {PAPER_RUN_STEPS:,}, i.e. "
                f"0.18%-0.2%), so the window must end within the first {max_fraction:.0%} (step {cap:g}); "
                "give alpha_window fractions instead"
            )
        mask = (s >= lo) & (s <= hi)
        if mask.sum() < 2:
            raise ValueError(
                f"{int(mask.sum())} logged step(s) in init_steps={tuple(init_steps)} (logged steps {s.min():g}.."
                f"{s.max():g}); alpha (Eq.2) needs the loss averaged over at least 2 early steps"
            )
        return mask
    f_lo, f_hi = fractions
    if not 0 <= f_lo <= f_hi < 1:
        raise ValueError(f"alpha_window fractions must satisfy 0 <= low <= high < 1, got {fractions}")
    if f_hi > max_fraction:
        raise ValueError(f"alpha_window={fractions} ends past {max_fraction:.0%} of the run; alpha (Eq.2) is the "
                         "loss at the start of the continual run (the paper: 0.18%-0.2%)")
    lo, hi = f_lo * total, f_hi * total
    mask = (s >= lo) & (s <= hi)
    if mask.sum() < min_points:
        later = np.sort(s[(s >= lo) & (s <= cap)])
        hi = later[min(min_points, later.size) - 1] if later.size else hi
        mask = (s >= lo) & (s <= hi)
    if mask.sum() < 2:
        raise ValueError(
            f"only {int(mask.sum())} logged step(s) in the first {max_fraction:.0%} of the {total:g}-step run "
            f"(steps {lo:g}..{cap:g}); alpha (Eq.2) needs the loss averaged over at least 2 early steps: log the "
            "target-language loss more often early in the run (e.g. log-spaced snapshots, val.jsonl) or use the "
            "training loss"
        )
    return mask


def _pseudo_residuals(s: np.ndarray, l: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """(squared pseudo-residuals / their variance factor, first neighbour's step) of every point with
    ``half`` logged neighbours on each side: the point minus the polynomial through its neighbours
    (degree 2*half - 1), evaluated at the point (Lagrange weights c; variance sigma^2 (1 + sum c^2))."""
    n = s.size
    centre = np.arange(half, n - half)
    offsets = [o for o in range(-half, half + 1) if o != 0]
    xs = np.stack([s[centre + o] for o in offsets], axis=1)            # (points, 2*half)
    x0 = s[centre][:, None]
    coef = np.ones_like(xs)
    for j in range(xs.shape[1]):
        for k in range(xs.shape[1]):
            if k != j:
                coef[:, j] *= (x0[:, 0] - xs[:, k]) / (xs[:, j] - xs[:, k])
    ys = np.stack([l[centre + o] for o in offsets], axis=1)
    resid = l[centre] - (coef * ys).sum(axis=1)
    return resid**2 / (1 + (coef**2).sum(axis=1)), s[centre - half]


def loss_noise(steps: Sequence[float] | np.ndarray, losses: Sequence[float] | np.ndarray, *,
               skip_fraction: float = 0.1) -> float:
    """Standard deviation of the point-to-point noise of a loss curve (robust pseudo-residuals).

    Each point is compared with the cubic through its two logged neighbours on each side (the line
    through one on each side when fewer than 5 points are logged), weighted for unequal spacing
    (difference-based variance estimation, after Gasser, Sroka & Jennen-Steinmetz 1986); the median
    of the squared, variance-normalised pseudo-residuals over the median of chi^2_1 estimates
    sigma^2. The steep start of a run bends between sparse logged points: pseudo-residuals reaching
    into the first ``skip_fraction`` of the steps are left out when at least 5 others remain.
    Remaining curvature inflates the estimate (conservative). Needs at least 3 distinct steps.
    """
    s = np.asarray(steps, dtype=float)
    l = np.asarray(losses, dtype=float)
    order = np.argsort(s, kind="stable")
    s, l = s[order], l[order]
    if s.size < 3 or np.unique(s).size != s.size:
        raise ValueError(f"the loss noise needs at least 3 logged points at distinct steps, got steps {s[:6].tolist()}")
    norm, first = _pseudo_residuals(s, l, 2 if s.size >= 5 else 1)
    late = first >= s[0] + skip_fraction * (s[-1] - s[0])
    use = late if late.sum() >= 5 else np.ones(norm.size, dtype=bool)
    return float(math.sqrt(np.median(norm[use]) / 0.454936423119572))


def python_share_from_loss(
    steps: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    *,
    run_steps: float | None = None,
    alpha_window: tuple[float, float] = PAPER_ALPHA_WINDOW,
    init_steps: tuple[float, float] | None = None,
    alpha_points: int = 5,
    max_alpha_fraction: float = 0.05,
    smooth: int = 1,
) -> PythonShare:
    """Eq.2 on a continual run's loss curve (the loss on the NEW language's data).

    ``alpha`` is the mean logged loss over the early window (:func:`alpha_window_mask`: fractions of the
    run, the paper's 0.18%-0.2% by default, widened to ``alpha_points`` logged steps within the first
    ``max_alpha_fraction``; or the absolute ``init_steps``). ``smooth > 1`` replaces the loss by its
    centred sliding mean over ``smooth`` logged points (for a noisy training loss) before beta and
    the shares are read; alpha always averages the logged values. ``beta`` is the lowest point of
    that curve. Raises ``ValueError`` for a late or empty window and when alpha <= beta.
    """
    s = np.asarray(steps, dtype=float)
    l = np.asarray(losses, dtype=float)
    if s.ndim != 1 or s.shape != l.shape:
        raise ValueError(f"steps and losses must be 1-D and the same length, got {s.shape} and {l.shape}")
    if s.size == 0:
        raise ValueError("empty loss curve")
    if not np.all(np.isfinite(l)):
        bad = s[~np.isfinite(l)]
        raise ValueError(f"loss is not finite at step(s) {bad[:5].tolist()}")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    order = np.argsort(s, kind="stable")
    s, l = s[order], l[order]
    total = float(run_steps) if run_steps is not None else float(s.max())
    mask = alpha_window_mask(s, run_steps=total, fractions=alpha_window, init_steps=init_steps,
                             min_points=alpha_points, max_fraction=max_alpha_fraction)
    curve = sliding_mean(l, window=smooth) if smooth > 1 else l.copy()
    alpha = float(l[mask].mean())
    beta = float(curve.min())
    if not alpha > beta:
        raise ValueError(f"alpha={alpha:g} (mean loss over steps {s[mask].min():g}-{s[mask].max():g}) is not above "
                         f"beta={beta:g} (lowest loss): the loss never falls below its start")
    raw = (curve - beta) / (alpha - beta)
    share = np.clip(raw, 0.0, 1.0)
    return PythonShare(
        steps=s, losses=curve, alpha=alpha, beta=beta, raw=raw, share=share,
        clipped=(raw < 0.0) | (raw > 1.0), logged=l, alpha_steps=s[mask],
        window=(float(s[mask].min()), float(s[mask].max())), run_steps=total, smooth=int(smooth),
    )


def _check_tokens(name: str, value: float | np.ndarray, *, allow_zero: bool) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if np.any(arr < 0) or (not allow_zero and np.any(arr == 0)):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")
    return arr


def python_share_from_tokens(eta_python: float | np.ndarray, eta_target: float | np.ndarray):
    """Eq.3: P = eta_py / (eta_py + eta_target). Any unit works as long as both use the same."""
    py = _check_tokens("eta_python", eta_python, allow_zero=False)
    tg = _check_tokens("eta_target", eta_target, allow_zero=True)
    out = py / (py + tg)
    return float(out) if out.ndim == 0 else out


def tokens_for_share(eta_python: float | np.ndarray, share: float | np.ndarray):
    """Inverse of Eq.3 (Algorithm 1): eta_target = eta_py / P - eta_py.

    ``share = 1`` gives 0 tokens; ``share = 0`` has no finite answer and raises
    :class:`NoFiniteTokens`; shares outside [0, 1] raise ``ValueError``.
    """
    py = _check_tokens("eta_python", eta_python, allow_zero=False)
    p = np.asarray(share, dtype=float)
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"share must lie in [0, 1], got {share!r}")
    if np.any(p == 0):
        raise NoFiniteTokens(
            "share = 0 has no finite token count: the Python system is fully replaced only in the limit "
            "of infinite target-language data (Algorithm 1 needs P > 0)"
        )
    out = py / p - py
    out = np.where(p == 1, 0.0, out)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class LogLinearFit:
    """y = a * log_base(x) + b, fitted by least squares. ``base`` is part of the result: the same
    points give different (a, b) in another base (a scales by ln(base))."""

    a: float
    b: float
    base: float
    r2: float
    n: int

    def predict(self, x) -> np.ndarray:
        return self.a * (np.log(np.asarray(x, dtype=float)) / math.log(self.base)) + self.b

    def __str__(self) -> str:
        name = {10.0: "log10", 2.0: "log2", math.e: "ln"}.get(float(self.base), f"log_{self.base:g}")
        return f"y = {self.a:.4f}·{name}(x) + {self.b:.4f}  (R² = {self.r2:.4f}, n = {self.n})"

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "base": self.base, "r2": self.r2, "n": self.n}


def fit_log_linear(x, y, *, base: float = 10) -> LogLinearFit:
    """Least-squares fit of y = a·log_base(x) + b (the rebuttal used base 10)."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D and the same length, got {xs.shape} and {ys.shape}")
    if xs.size < 2:
        raise ValueError("need at least two points to fit a line")
    if np.any(xs <= 0) or not np.all(np.isfinite(xs)) or not np.all(np.isfinite(ys)):
        raise ValueError("x must be positive and finite, y finite")
    if not (base > 0 and base != 1):
        raise ValueError(f"base must be positive and not 1, got {base}")
    lx = np.log(xs) / math.log(base)
    if np.ptp(lx) == 0:
        raise ValueError("all x are equal: the slope is undetermined")
    a, b = np.polyfit(lx, ys, 1)
    resid = ys - (a * lx + b)
    ss_tot = float(((ys - ys.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return LogLinearFit(a=float(a), b=float(b), base=float(base), r2=r2, n=int(xs.size))

