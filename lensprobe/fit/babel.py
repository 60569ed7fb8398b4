"""The Babel Tower maps: Eq.2 (share of the Python system from the loss), Eq.3 (share from token
counts), its inverse (Algorithm 1's last line) and the rebuttal's log-linear trend.

Eq.2   P(l) = (l - beta) / (alpha - beta), alpha = mean loss over steps ``init_steps`` of the
       continual run, beta = the lowest loss of the run; clipped to [0, 1] (early steps give P > 1).
Eq.3   P(eta) = eta_py / (eta_py + eta_target).
Inverse eta_target = eta_py / P - eta_py  (P = 0: no finite answer; P = 1: zero tokens).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "PythonShare",
    "LogLinearFit",
    "NoFiniteTokens",
    "python_share_from_loss",
    "python_share_from_tokens",
    "tokens_for_share",
    "fit_log_linear",
    "parse_tokens",
    "sliding_mean",
]


class NoFiniteTokens(ValueError):
    """Raised when a Python-system share of 0 is inverted: no finite token count reaches it."""


@dataclass(frozen=True)
class PythonShare:
    """Eq.2 applied to a loss curve. ``share`` is clipped to [0, 1]; ``clipped`` flags the
    points whose raw value fell outside (early steps, where the loss is still above alpha)."""

    steps: np.ndarray
    losses: np.ndarray
    alpha: float
    beta: float
    raw: np.ndarray
    share: np.ndarray
    clipped: np.ndarray
    init_steps: tuple[int, int] = (90, 100)

    def at_loss(self, loss: float | np.ndarray) -> np.ndarray | float:
        """Eq.2 (clipped) for any loss value(s), with this curve's alpha and beta."""
        value = np.clip((np.asarray(loss, dtype=float) - self.beta) / (self.alpha - self.beta), 0.0, 1.0)
        return float(value) if np.ndim(value) == 0 else value

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"step": self.steps, "loss": self.losses, "share_raw": self.raw, "share": self.share, "clipped": self.clipped}
        )


def python_share_from_loss(
    steps: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    *,
    init_steps: tuple[int, int] = (90, 100),
) -> PythonShare:
    """Eq.2 on a continual run's loss curve (the loss on the NEW-language data).

    ``alpha`` is the mean loss over steps ``init_steps[0] <= step <= init_steps[1]`` and ``beta``
    the lowest loss of the run. Raises ``ValueError`` when no step falls in ``init_steps`` or when
    alpha <= beta (a curve that never improves has no Python-to-target transition to measure).
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
    lo, hi = init_steps
    if lo > hi:
        raise ValueError(f"init_steps must be (low, high) with low <= high, got {init_steps}")
    order = np.argsort(s, kind="stable")
    s, l = s[order], l[order]
    window = (s >= lo) & (s <= hi)
    if not window.any():
        raise ValueError(
            f"no logged step in init_steps={init_steps} (logged steps {s.min():g}..{s.max():g}); "
            "alpha (Eq.2) needs the loss early in the continual run"
        )
    alpha = float(l[window].mean())
    beta = float(l.min())
    if not alpha > beta:
        raise ValueError(f"alpha={alpha:g} (mean loss over steps {lo}-{hi}) is not above beta={beta:g} (lowest loss)")
    raw = (l - beta) / (alpha - beta)
    share = np.clip(raw, 0.0, 1.0)
    return PythonShare(
        steps=s, losses=l, alpha=alpha, beta=beta, raw=raw, share=share,
        clipped=(raw < 0.0) | (raw > 1.0), init_steps=(int(lo), int(hi)),
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


_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_tokens(text: str | float | int) -> float:
    """'11B' -> 11e9, '100M' -> 1e8, '5e9' -> 5e9, 123 -> 123."""
    if isinstance(text, (int, float, np.integer, np.floating)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", str(text))
        if not m:
            raise ValueError(f"cannot read a token count from {text!r} (use e.g. 11B, 100M, 5e9)")
        value = float(m.group(1)) * _SUFFIX[m.group(2).upper()]
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"token count must be a non-negative number, got {text!r}")
    return value


def sliding_mean(values, *, window: int = 5) -> np.ndarray:
    """Centred sliding mean of width ``window`` (edges average the points available)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return pd.Series(np.asarray(values, dtype=float)).rolling(window, center=True, min_periods=1).mean().to_numpy()
