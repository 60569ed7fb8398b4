"""A small registry of functional forms for scaling and data-mixing laws.

Each law is built for the input columns it is fitted on (``make_law(name, x, **options)``) and
works on an internal parameter vector ``theta`` (log-parameterized where a parameter must be
positive, which keeps the optimizer in the valid region); ``natural(theta)`` gives the reported
parameters.

=================  ==============================================================================
``chinchilla``     L(N, D) = E + A/N^alpha + B/D^beta                     (Hoffmann et al. 2022)
``mixing_exp``     L(r) = c + k·exp(sum_j t_j r_j)                        (Ye et al.; RegMix)
``mixing_linear``  L(r) = c + sum_j t_j r_j                               (linear baseline)
``multilingual``   L(N, D, p) = E_p + A/N^alpha_p + B/D_p^beta_p, with alpha_p = sum p_i alpha_i,
                   beta_p = sum p_i beta_i, E_p = sum p_i E_i and effective data
                   D_p = D·(1 + gamma·sum_{i!=j} p_i p_j tau_ij)  ("Scaling Laws for Code: Every
                   Programming Language Matters"; tau is given, e.g. from the synergy matrix)
``log_linear``     y = a·log_base(x) + b
=================  ==============================================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["Law", "make_law", "list_laws", "register_law"]


@dataclass(frozen=True)
class Law:
    """A law for fixed input columns ``x``. ``predict(theta, X)`` with X of shape (n, len(x))."""

    name: str
    formula: str
    x: tuple[str, ...]
    theta_names: tuple[str, ...]
    param_names: tuple[str, ...]
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
    to_natural: Callable[[np.ndarray], np.ndarray]
    from_natural: Callable[[np.ndarray], np.ndarray]
    init_box: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    bounds: tuple[tuple[float, float], ...]
    jacobian: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    positive: bool = True  # predictions are positive (log-space residuals are possible)
    options: dict = field(default_factory=dict)

    def natural(self, theta) -> dict[str, float]:
        return dict(zip(self.param_names, map(float, self.to_natural(np.asarray(theta, float)))))

    def theta_from(self, params: dict[str, float]) -> np.ndarray:
        missing = [p for p in self.param_names if p not in params]
        if missing:
            raise ValueError(f"{self.name}: initial values lack parameter(s) {missing}")
        with np.errstate(divide="ignore", invalid="ignore"):
            theta = self.from_natural(np.array([float(params[p]) for p in self.param_names]))
        bad = [n for n, t in zip(self.param_names, theta) if not np.isfinite(t)]
        if bad:
            raise ValueError(f"{self.name}: initial value(s) out of the law's domain for {bad} (must be positive)")
        return theta


_REGISTRY: dict[str, Callable[..., Law]] = {}
INF = math.inf


def register_law(name: str):
    """Decorator: register a law factory ``f(x: tuple[str, ...], **options) -> Law``."""
    def deco(factory):
        _REGISTRY[name] = factory
        return factory
    return deco


def make_law(name: str, x: Sequence[str] | None = None, **options) -> Law:
    if name not in _REGISTRY:
        raise ValueError(f"unknown law {name!r}; known laws: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](tuple(x) if x is not None else None, **options)


def list_laws() -> list[str]:
    """Names of the registered laws."""
    return sorted(_REGISTRY)


def _need(name, x, n=None, default=None):
    if x is None:
        if default is None:
            raise ValueError(f"law {name!r} needs x= (its input columns)")
        x = default
    if n is not None and len(x) != n:
        raise ValueError(f"law {name!r} takes {n} input column(s), got {list(x)}")
    return tuple(x)


@register_law("chinchilla")
def _chinchilla(x, **_):
    x = _need("chinchilla", x, 2, ("N", "D"))

    def parts(th, X):
        lnN, lnD = np.log(X[:, 0]), np.log(X[:, 1])
        e, a, al, b, be = th
        return np.exp(e), np.exp(a - al * lnN), np.exp(b - be * lnD), lnN, lnD

    def predict(th, X):
        E, t1, t2, _, _ = parts(th, X)
        return E + t1 + t2

    def jac(th, X):
        E, t1, t2, lnN, lnD = parts(th, X)
        return np.column_stack([np.full_like(t1, E), t1, -t1 * lnN, t2, -t2 * lnD])

    def init_box(X, y):  # the grid of Hoffmann et al. / Besiroglu et al., widened
        return np.array([-1.0, 0.0, 0.0, 0.0, 0.0]), np.array([1.5, 25.0, 2.0, 25.0, 2.0])

    return Law(
        name="chinchilla", formula="L = E + A/N^alpha + B/D^beta", x=x,
        theta_names=("log_E", "log_A", "alpha", "log_B", "beta"), param_names=("E", "A", "alpha", "B", "beta"),
        predict=predict, jacobian=jac,
        to_natural=lambda th: np.array([np.exp(th[0]), np.exp(th[1]), th[2], np.exp(th[3]), th[4]]),
        from_natural=lambda p: np.array([np.log(p[0]), np.log(p[1]), p[2], np.log(p[3]), p[4]]),
        init_box=init_box, bounds=((-10, 10), (-20, 60), (0.0, 4.0), (-20, 60), (0.0, 4.0)),
    )


@register_law("mixing_exp")
def _mixing_exp(x, *, sign: int = 1, **_):
    """``sign=-1`` gives c - k·exp(...) (a score that saturates upward, e.g. accuracy)."""
    x = _need("mixing_exp", x)
    if sign not in (1, -1):
        raise ValueError(f"mixing_exp: sign must be 1 or -1, got {sign!r}")
    m = len(x)

    def predict(th, X):
        return th[0] + sign * np.exp(th[1] + X @ th[2:])

    def jac(th, X):
        e = sign * np.exp(th[1] + X @ th[2:])
        return np.column_stack([np.ones_like(e), e, e[:, None] * X])

    def init_box(X, y):
        ymin, ymax = float(np.min(y)), float(np.max(y))
        span = max(ymax - ymin, 1e-6)
        if sign > 0:
            c_lo, c_hi = 0.0, max(ymin, 1e-6)
        else:
            c_lo, c_hi = ymax, ymax + span
        lo = np.concatenate([[c_lo, math.log(span) - 3], np.full(m, -4.0)])
        hi = np.concatenate([[c_hi, math.log(max(abs(ymax), span)) + 1], np.full(m, 4.0)])
        return lo, hi

    return Law(
        name="mixing_exp", formula="L = c + k·exp(sum_j t_j r_j)" if sign > 0 else "S = c - k·exp(sum_j t_j r_j)", x=x,
        theta_names=("c", "log_k") + tuple(f"t_{c}" for c in x), param_names=("c", "k") + tuple(f"t_{c}" for c in x),
        predict=predict, jacobian=jac,
        to_natural=lambda th: np.concatenate([[th[0], np.exp(th[1])], th[2:]]),
        from_natural=lambda p: np.concatenate([[p[0], np.log(p[1])], p[2:]]),
        init_box=init_box, bounds=((0.0 if sign > 0 else -INF, INF), (-30, 30)) + ((-50.0, 50.0),) * m,
        positive=sign > 0, options={"sign": sign},
    )


@register_law("mixing_linear")
def _mixing_linear(x, **_):
    x = _need("mixing_linear", x)
    m = len(x)

    def init_box(X, y):
        s = float(np.ptp(y)) or 1.0
        return (np.concatenate([[float(np.min(y))], np.full(m, -3 * s)]),
                np.concatenate([[float(np.max(y))], np.full(m, 3 * s)]))

    return Law(
        name="mixing_linear", formula="L = c + sum_j t_j r_j", x=x,
        theta_names=("c",) + tuple(f"t_{c}" for c in x), param_names=("c",) + tuple(f"t_{c}" for c in x),
        predict=lambda th, X: th[0] + X @ th[1:],
        jacobian=lambda th, X: np.column_stack([np.ones(len(X)), X]),
        to_natural=lambda th: np.asarray(th, float), from_natural=lambda p: np.asarray(p, float),
        init_box=init_box, bounds=((-INF, INF),) * (m + 1), positive=False,
    )


@register_law("multilingual")
def _multilingual(x, *, tau=None, **_):
    if x is None or len(x) < 4:
        raise ValueError("law 'multilingual' needs x=('N', 'D', <proportion of language 1>, <language 2>, ...)")
    x = tuple(x)
    langs = x[2:]
    k = len(langs)
    T = np.ones((k, k)) if tau is None else np.asarray(tau, dtype=float)
    if T.shape != (k, k) or not np.all(np.isfinite(T)):
        raise ValueError(f"tau must be a finite {k}x{k} matrix for languages {list(langs)}")
    T = T.copy()
    np.fill_diagonal(T, 0.0)

    def parts(th, X):
        a, b, g = th[0], th[1], th[2]
        al, be, le = th[3:3 + k], th[3 + k:3 + 2 * k], th[3 + 2 * k:]
        N, D, P = X[:, 0], X[:, 1], X[:, 2:]
        syn = np.einsum("ni,ij,nj->n", P, T, P)
        factor = 1.0 + g * syn
        lnDx = np.log(D) + np.log(np.maximum(factor, 1e-9))
        lnN = np.log(N)
        beta = P @ be
        t1 = np.exp(a - (P @ al) * lnN)
        t2 = np.exp(b - beta * lnDx)
        return P, P @ np.exp(le), t1, t2, lnN, lnDx, beta, syn, factor, le

    def predict(th, X):
        _, E, t1, t2, *_ = parts(th, X)
        return E + t1 + t2

    def jac(th, X):
        P, _, t1, t2, lnN, lnDx, beta, syn, factor, le = parts(th, X)
        dg = np.where(factor > 1e-9, -t2 * beta * syn / np.maximum(factor, 1e-9), 0.0)
        return np.column_stack([t1, t2, dg, -(t1 * lnN)[:, None] * P, -(t2 * lnDx)[:, None] * P, P * np.exp(le)])

    def init_box(X, y):
        lo = np.concatenate([[0.0, 0.0, 0.0], np.zeros(k), np.zeros(k), np.full(k, -1.0)])
        hi = np.concatenate([[25.0, 25.0, 2.0], np.full(k, 2.0), np.full(k, 2.0), np.full(k, 1.5)])
        return lo, hi

    names = ("A", "B", "gamma") + tuple(f"alpha_{l}" for l in langs) + tuple(f"beta_{l}" for l in langs) + \
        tuple(f"E_{l}" for l in langs)
    return Law(
        name="multilingual", formula="L = E_p + A/N^alpha_p + B/D_p^beta_p, D_p = D(1 + gamma sum_{i!=j} p_i p_j tau_ij)",
        x=x, theta_names=("log_A", "log_B", "gamma") + names[3:3 + 2 * k] + tuple(f"log_E_{l}" for l in langs),
        param_names=names, predict=predict, jacobian=jac,
        to_natural=lambda th: np.concatenate([np.exp(th[:2]), th[2:3 + 2 * k], np.exp(th[3 + 2 * k:])]),
        from_natural=lambda p: np.concatenate([np.log(p[:2]), p[2:3 + 2 * k], np.log(p[3 + 2 * k:])]),
        init_box=init_box,
        bounds=((-20, 60), (-20, 60), (-0.99, 50.0)) + ((0.0, 4.0),) * (2 * k) + ((-10.0, 10.0),) * k,
        options={"tau": T.tolist()},
    )


@register_law("log_linear")
def _log_linear(x, *, base: float = 10.0, **_):
    x = _need("log_linear", x, 1, ("x",))
    lb = math.log(base)

    def init_box(X, y):
        s = float(np.ptp(y)) or 1.0
        return np.array([-3 * s, float(np.min(y)) - s]), np.array([3 * s, float(np.max(y)) + s])

    return Law(
        name="log_linear", formula=f"y = a·log_{base:g}(x) + b", x=x, theta_names=("a", "b"), param_names=("a", "b"),
        predict=lambda th, X: th[0] * np.log(X[:, 0]) / lb + th[1],
        jacobian=lambda th, X: np.column_stack([np.log(X[:, 0]) / lb, np.ones(len(X))]),
        to_natural=lambda th: np.asarray(th, float), from_natural=lambda p: np.asarray(p, float),
        init_box=init_box, bounds=((-INF, INF),) * 2, positive=False, options={"base": base},
    )
