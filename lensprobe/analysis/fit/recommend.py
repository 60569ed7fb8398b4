"""Algorithm 1 (data-mix recommendation from one continual run) and "predicted vs actual".

Algorithm 1: average the performance metric over items per checkpoint, smooth it with a centred
sliding mean (width 5 as in the paper), take the best checkpoint, estimate the Python system's
share at that checkpoint's loss by Eq.2 and invert Eq.3 to the target-token count
eta_target = eta_py / P - eta_py.

The interval (docs/fit.md) has two parts, each at half the error rate (Bonferroni):
* which checkpoint is best: a confidence set for the argmax of the smoothed curve from a bootstrap
  over items (or seeds), by simultaneous max-t comparisons — it always holds the estimated best;
* the loss noise: each candidate's Eq.2 share is recomputed on the loss curve perturbed by its
  estimated point-to-point noise (alpha, beta and the loss at the checkpoint together), giving a
  symmetric normal interval around the candidate's share.
The share interval is the union over the candidates, so it contains the estimate by construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from lensprobe.mixture_file import write_mixture
from lensprobe.token_counts import parse_token_quantity

from lensprobe.analysis.smoothing import sliding_mean

from .share import (PAPER_ALPHA_WINDOW, NoFiniteTokens, PythonShare, loss_noise, python_share_from_loss,
                    python_share_from_tokens, tokens_for_share)
from .runs import BabelRun, LossCurve, load_run

__all__ = ["Recommendation", "MixtureRecommendation", "PredictedVsActual", "BestShare", "recommend_tokens",
           "recommend_mixture", "predicted_vs_actual", "share_at_best", "best_checkpoint_set", "as_run",
           "default_loss_smoothing"]


def as_run(run, *, target: str | None = None) -> BabelRun:
    """Accept a :class:`BabelRun`, a run directory, or a dict ``{"sweep":..., "loss_log":...}``."""
    if isinstance(run, BabelRun):
        return run.with_target(target) if target and run.target != target else run
    if isinstance(run, (str, Path)):
        return load_run(run, target=target)
    if isinstance(run, Mapping):
        kw = dict(run)
        if target is not None:
            kw["target"] = target
        allowed = {"sweep", "loss_log", "val_log", "target", "name", "source", "total_steps"}
        unknown = set(kw) - allowed
        if unknown:
            raise ValueError(f"unknown run field(s) {sorted(unknown)}; expected {sorted(allowed)}")
        return BabelRun(**kw)
    raise TypeError(f"run must be a BabelRun, a run directory or a dict, got {type(run).__name__}")


def default_loss_smoothing(kind: str, n_points: int) -> int:
    """Sliding-mean width (logged points) for Eq.2's loss: 1 for the held-out loss; for a training
    loss an odd width of about 2% of the logged points, at least 5."""
    if kind == "val":
        return 1
    return max(5, 2 * round(0.01 * n_points) + 1)


def best_checkpoint_set(values: np.ndarray, *, window: int, groups: np.ndarray | None = None, n_boot: int = 1000,
                        level: float = 0.95, higher_is_better: bool = True,
                        rng: np.random.Generator | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """(best index, smoothed mean curve, confidence set mask) for the argmax of the smoothed curve.

    ``values`` is steps x units (items, or runs). The curve is the centred sliding mean (width
    ``window``) of the per-step unit mean. Units are resampled with replacement (``groups``: runs
    first, then items within each run) ``n_boot`` times; checkpoint k stays in the set unless some j
    beats it significantly: max_j (m_j - m_k) / se_jk <= c_k, with c_k the ``level`` quantile of the
    bootstrap's max_j of the centred, studentised differences. The set holds the true argmax with
    probability about ``level`` and always holds the estimated best.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    y = np.asarray(values, dtype=float)
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"values must be a non-empty steps x units matrix, got shape {y.shape}")
    sign = 1.0 if higher_is_better else -1.0
    smooth_units = sliding_mean(y.T, window=window).T          # steps x units (linear: commutes with the mean)
    if groups is None:
        w0 = np.full(y.shape[1], 1.0 / y.shape[1])
    else:
        groups = np.asarray(groups)
        labels, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
        w0 = 1.0 / (len(labels) * counts[inv])
    m = smooth_units @ w0
    best = int(np.argmax(sign * m))
    k_steps = y.shape[0]
    in_set = np.zeros(k_steps, dtype=bool)
    in_set[best] = True
    if n_boot <= 0 or y.shape[1] < 2 or k_steps == 1:
        return best, m, in_set
    n = y.shape[1]
    if groups is None:
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n
    else:
        r = len(labels)
        wr = rng.multinomial(r, np.full(r, 1.0 / r), size=n_boot) / r          # runs
        w = np.empty((n_boot, n))
        for g in range(r):
            cols = np.flatnonzero(inv == g)
            wi = rng.multinomial(cols.size, np.full(cols.size, 1.0 / cols.size), size=n_boot) / cols.size
            w[:, cols] = wr[:, [g]] * wi
    mb = sign * (smooth_units @ w.T)                              # steps x n_boot
    ms = sign * m
    scale = 1e-12 * max(1.0, float(np.abs(ms).max()))
    chunk = max(1, int(4_000_000 // (k_steps * n_boot)))
    for start in range(0, k_steps, chunk):
        ks = np.arange(start, min(k_steps, start + chunk))
        d = mb[None, :, :] - mb[ks][:, None, :]                   # (k, j, b): j minus k, per resample
        obs = ms[None, :] - ms[ks][:, None]                       # (k, j)
        se = d.std(axis=2)
        pos = se > scale
        safe = np.where(pos, se, 1.0)
        t_boot = np.where(pos[:, :, None], (d - obs[:, :, None]) / safe[:, :, None], 0.0)
        t_obs = np.where(pos, obs / safe, np.where(obs > 0, np.inf, 0.0))
        self_ = ks[:, None] == np.arange(k_steps)[None, :]
        t_boot[self_] = -np.inf
        t_obs[self_] = -np.inf
        c = np.maximum(0.0, np.quantile(t_boot.max(axis=1), level, axis=1))
        in_set[ks] |= t_obs.max(axis=1) <= c
    return best, m, in_set


@dataclass(frozen=True)
class BestShare:
    """Algorithm 1's share at the best checkpoint with its interval (see :func:`share_at_best`)."""

    steps: np.ndarray
    value: np.ndarray
    smoothed: np.ndarray
    best: int
    candidates: np.ndarray
    share_curve: PythonShare
    loss: np.ndarray
    share_raw: np.ndarray
    share_sd: np.ndarray
    share: float
    interval: tuple[float, float]
    noise: float
    n_units: int
    n_boot: int
    confidence: float

    @property
    def share_at_steps(self) -> np.ndarray:
        return np.clip(self.share_raw, 0.0, 1.0)


def share_at_best(
    steps,
    values,
    loss_steps,
    losses,
    *,
    groups=None,
    window: int = 5,
    loss_smooth: int = 1,
    run_steps: float | None = None,
    alpha_window: tuple[float, float] = PAPER_ALPHA_WINDOW,
    init_steps: tuple[float, float] | None = None,
    alpha_points: int = 5,
    max_alpha_fraction: float = 0.05,
    higher_is_better: bool = True,
    resample: bool = True,
    noise: float | None = None,
    n_boot: int = 1000,
    confidence: float = 0.9,
    seed: int = 0,
) -> BestShare:
    """Algorithm 1 on arrays: ``values`` (checkpoints x units) at ``steps``, the target loss
    ``losses`` at ``loss_steps`` (as logged; ``loss_smooth`` > 1 smooths it).

    The share interval is the union, over the confidence set of best checkpoints (level
    1 - (1 - confidence)/2; ``resample=False``: the best checkpoint only, selection uncertainty
    ignored), of normal intervals share_k ± z·sd_k (level 1 - (1 - confidence)/2), sd_k from
    ``n_boot`` perturbations of the logged loss by its noise (``noise``; default
    :func:`~lensprobe.analysis.fit.share.loss_noise` of the logged curve). Clipped to [0, 1].
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    s = np.asarray(steps, dtype=float)
    y = np.asarray(values, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[0] != s.size:
        raise ValueError(f"values has {y.shape[0]} rows for {s.size} steps")
    if not np.all(np.isfinite(y)):
        raise ValueError("performance values must be finite (drop incomplete items first)")
    curve = python_share_from_loss(loss_steps, losses, run_steps=run_steps, alpha_window=alpha_window,
                                   init_steps=init_steps, alpha_points=alpha_points,
                                   max_alpha_fraction=max_alpha_fraction, smooth=loss_smooth)
    rng = np.random.default_rng(seed)
    err = 1.0 - confidence
    select = resample and y.shape[1] > 1
    best, smooth, cand = best_checkpoint_set(y, window=window, groups=groups, n_boot=n_boot if select else 0,
                                             level=1 - err / 2, higher_is_better=higher_is_better, rng=rng)
    loss_at = np.interp(s, curve.steps, curve.losses)
    share_raw = (loss_at - curve.beta) / (curve.alpha - curve.beta)
    sigma = float(noise) if noise is not None else (loss_noise(curve.steps, curve.logged) if curve.steps.size >= 3 else 0.0)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    sd = np.full(s.size, np.nan)
    idx = np.flatnonzero(cand)
    if n_boot > 1 and sigma > 0:
        sd[idx] = _share_sd(curve, s[idx], sigma, n_boot=n_boot, rng=rng)
    else:
        sd[idx] = 0.0
    z = NormalDist().inv_cdf(1 - (err / 2 if select else err) / 2)
    lo = float(np.clip(np.min(share_raw[idx] - z * sd[idx]), 0.0, 1.0))
    hi = float(np.clip(np.max(share_raw[idx] + z * sd[idx]), 0.0, 1.0))
    mean = y.mean(axis=1) if groups is None else np.mean(
        [y[:, np.asarray(groups) == g].mean(axis=1) for g in np.unique(groups)], axis=0)
    return BestShare(steps=s, value=mean, smoothed=smooth, best=best, candidates=cand, share_curve=curve, loss=loss_at,
                     share_raw=share_raw, share_sd=sd, share=float(np.clip(share_raw[best], 0.0, 1.0)),
                     interval=(lo, hi), noise=sigma, n_units=int(y.shape[1]), n_boot=int(n_boot),
                     confidence=confidence)


def _share_sd(curve: PythonShare, at_steps: np.ndarray, sigma: float, *, n_boot: int,
              rng: np.random.Generator) -> np.ndarray:
    """Std of the unclipped Eq.2 share at ``at_steps`` when every logged loss is perturbed by
    N(0, sigma²): alpha, beta (re-taken as the minimum) and the loss at the steps move together."""
    logged = curve.logged
    mask = curve.alpha_mask
    t = logged.size
    pos = np.clip(np.searchsorted(curve.steps, at_steps, side="right") - 1, 0, t - 1)
    nxt = np.minimum(pos + 1, t - 1)
    gap = curve.steps[nxt] - curve.steps[pos]
    frac = np.where(gap > 0, np.clip((at_steps - curve.steps[pos]) / np.where(gap > 0, gap, 1), 0, 1), 0.0)
    chunk = max(1, int(2_000_000 // max(t, 1)))
    out = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        raw = logged + sigma * rng.standard_normal((b, t))
        sm = sliding_mean(raw, window=curve.smooth) if curve.smooth > 1 else raw
        alpha = raw[:, mask].mean(axis=1)
        beta = sm.min(axis=1)
        loss = (1 - frac) * sm[:, pos] + frac * sm[:, nxt]
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append((loss - beta[:, None]) / (alpha - beta)[:, None])
    p = np.concatenate(out, axis=0)
    p = p[np.all(np.isfinite(p), axis=1)]
    return p.std(axis=0, ddof=1) if len(p) > 1 else np.zeros(at_steps.size)


@dataclass(frozen=True)
class Recommendation:
    """The result of Algorithm 1 for one target language.

    ``candidates``: the checkpoints that may be the best (the confidence set behind the interval);
    ``resampled``: what the interval resamples and perturbs, in words; ``loss_noise``: the estimated
    point-to-point noise of the loss Eq.2 reads."""

    target: str
    metric: str
    eta_python: float
    best_step: float
    best_checkpoint: str | None
    best_value: float
    loss_at_best: float
    share: float
    tokens: float
    share_interval: tuple[float, float]
    tokens_interval: tuple[float, float]
    confidence: float
    n_boot: int
    resampled: str
    loss_source: str
    alpha: float
    beta: float
    alpha_steps: tuple[float, float]
    loss_noise: float
    units: str
    n_units: int
    candidates: tuple[float, ...]
    curve: pd.DataFrame = field(repr=False)
    loss_share: PythonShare = field(repr=False)

    def to_dataframe(self) -> pd.DataFrame:
        row = {k: getattr(self, k) for k in ("target", "metric", "eta_python", "best_step", "best_checkpoint",
                                             "best_value", "loss_at_best", "share", "tokens", "confidence",
                                             "n_boot", "resampled", "loss_source", "alpha", "beta", "loss_noise",
                                             "units", "n_units")}
        row.update(share_low=self.share_interval[0], share_high=self.share_interval[1],
                   tokens_low=self.tokens_interval[0], tokens_high=self.tokens_interval[1],
                   alpha_first_step=self.alpha_steps[0], alpha_last_step=self.alpha_steps[1],
                   candidate_steps=",".join(f"{x:g}" for x in self.candidates))
        return pd.DataFrame([row])


def _tokens_or_inf(eta_python: float, share: float) -> float:
    try:
        return tokens_for_share(eta_python, share)
    except NoFiniteTokens:
        return float("inf")


def _loss_for_eq2(run: BabelRun, source: str, loss_smooth: int | None) -> tuple[LossCurve, int]:
    curve = run.target_loss(source=source)
    width = default_loss_smoothing(curve.kind, curve.steps.size) if loss_smooth is None else int(loss_smooth)
    if width < 1:
        raise ValueError(f"loss_smooth must be >= 1, got {loss_smooth}")
    return curve, width


def recommend_tokens(
    run,
    *,
    metric: str,
    eta_python: float | str,
    window: int = 5,
    target: str | None = None,
    probe: str | None = None,
    identifiers: Sequence[str] | None = None,
    alpha_window: tuple[float, float] = PAPER_ALPHA_WINDOW,
    init_steps: tuple[float, float] | None = None,
    alpha_points: int = 5,
    max_alpha_fraction: float = 0.05,
    run_steps: float | None = None,
    loss_source: str = "auto",
    loss_smooth: int | None = None,
    resample: Literal["auto", "items", "seeds", "none"] = "auto",
    higher_is_better: bool = True,
    n_boot: int = 1000,
    confidence: float = 0.9,
    seed: int = 0,
) -> Recommendation:
    """Algorithm 1 on a continual run (see :mod:`lensprobe.analysis.fit.runs` for what ``run`` holds).

    Performance: rows of ``metric`` for the target language (``identifiers``: only these splits or
    items), averaged over items per checkpoint and smoothed (width ``window``); the best checkpoint
    is its argmax. Eq.2 reads the held-out target loss when the run logs it (``loss_source="auto"``),
    else the training loss smoothed over ``loss_smooth`` logged points; alpha's window is
    ``alpha_window`` fractions of the run (``run_steps``; the paper's 90-100 of 50,000 by default)
    or the absolute ``init_steps``. Tokens in the unit of ``eta_python`` (``"11B"`` is read).

    ``resample``: ``"auto"`` resamples items of one run, runs (seeds) when there are several,
    or both; a single run without item rows raises (its split means are not units to resample) —
    ``"none"`` then gives an interval from the loss noise alone, flagged in ``resampled``.
    Raises :class:`~lensprobe.analysis.fit.share.NoFiniteTokens` when the best checkpoint sits at the run's
    lowest loss (share 0: no finite recommendation).
    """
    run = as_run(run, target=target)
    if run.target is None:
        raise ValueError(f"{run.name!r}: the target language is unknown; pass target=")
    eta_py = parse_token_quantity(eta_python)
    if eta_py <= 0:
        raise ValueError(f"eta_python must be positive, got {eta_python!r}")
    if resample not in ("auto", "items", "seeds", "none"):
        raise ValueError(f"resample must be 'auto', 'items', 'seeds' or 'none', got {resample!r}")
    units = run.performance_units(metric, probe=probe, identifiers=identifiers)
    values, groups, kind = units.values, units.groups, units.kind
    if resample == "seeds" and kind in ("items", "aggregate"):
        raise ValueError(f"{run.name!r}: resample='seeds' needs several runs in the sweep table; it has one")
    if resample == "items" and kind in ("seeds", "aggregate"):
        raise ValueError(f"{run.name!r}: resample='items' needs per-item {metric!r} rows (n == 1); the sweep has "
                         f"only aggregate rows {units.columns[:4]}")
    if resample == "seeds" and kind == "seeds/items":   # one curve per run
        values = np.stack([values[:, groups == g].mean(axis=1) for g in np.unique(groups)], axis=1)
        groups, kind = None, "seeds"
    if kind == "aggregate" and resample == "auto":
        raise ValueError(
            f"{run.name!r}: the {metric!r} rows are aggregates of one run ({', '.join(units.columns[:4])}); an interval "
            "needs units to resample: per-item rows (n == 1, e.g. Babel '<split>:<concept>'), or several runs "
            "(seeds). Pass resample='none' for an interval from the loss noise alone (the choice of the best "
            "checkpoint is then taken as known)"
        )
    do_resample = resample != "none" and kind != "aggregate"
    loss, width = _loss_for_eq2(run, loss_source, loss_smooth)
    res = share_at_best(units.steps, values, loss.steps, loss.losses, groups=groups, window=window, loss_smooth=width,
                        run_steps=run_steps if run_steps is not None else run.run_length(), alpha_window=alpha_window,
                        init_steps=init_steps, alpha_points=alpha_points, max_alpha_fraction=max_alpha_fraction,
                        higher_is_better=higher_is_better, resample=do_resample, n_boot=n_boot,
                        confidence=confidence, seed=seed)
    steps, idx = res.steps, res.best
    s_lo, s_hi = res.interval
    t_lo, t_hi = _tokens_or_inf(eta_py, s_hi), _tokens_or_inf(eta_py, s_lo)
    try:
        tokens = tokens_for_share(eta_py, res.share)
    except NoFiniteTokens as exc:
        at_end = idx == len(steps) - 1
        raise NoFiniteTokens(
            f"{run.name!r}: the best {metric!r} checkpoint (step {steps[idx]:g}) is at the run's lowest "
            f"{run.target} loss ({loss.source}), so Eq.2 gives share 0 and Algorithm 1 has no finite answer ({exc})"
            + ("; performance is still highest at the last checkpoint: the run is too short to show the decline "
               "Algorithm 1 locates" if at_end else "")
            + f"; {confidence:.0%} interval on the share [{s_lo:.3g}, {s_hi:.3g}]"
            + (f", i.e. at least {t_lo:.3g} {run.target} tokens for {eta_py:.3g} Python tokens" if math.isfinite(t_lo)
               else "")
        ) from None
    noun = {"items": "items", "seeds": "runs (seeds)", "seeds/items": "runs (seeds), then items within each run",
            "aggregate": "nothing"}[kind if do_resample else "aggregate"]
    resampled = (f"{res.n_units} {kind} ({noun} resampled {n_boot}x for the best checkpoint)" if do_resample else
                 f"nothing resampled ({kind} curve): the best checkpoint is taken as known")
    resampled += (f"; loss noise sigma={res.noise:.3g} per logged point ({loss.kind}, smoothed over {width}) "
                  f"perturbed {n_boot}x")
    if units.dropped:
        resampled += f"; {units.dropped} unit(s) dropped for missing steps"

    checkpoint = None
    if "checkpoint" in run.sweep.columns:
        hit = run.sweep.loc[run.sweep["step"] == steps[idx], "checkpoint"].dropna()
        checkpoint = str(hit.iloc[0]) if len(hit) else None
    curve = pd.DataFrame({"step": steps, "value": res.value, "smoothed": res.smoothed, "loss": res.loss,
                          "share": res.share_at_steps, "share_sd": res.share_sd, "candidate": res.candidates,
                          "best": np.arange(len(steps)) == idx})
    sc = res.share_curve
    return Recommendation(
        target=run.target, metric=metric, eta_python=eta_py, best_step=float(steps[idx]), best_checkpoint=checkpoint,
        best_value=float(res.smoothed[idx]), loss_at_best=float(res.loss[idx]), share=res.share, tokens=float(tokens),
        share_interval=(s_lo, s_hi), tokens_interval=(float(t_lo), float(t_hi)),
        confidence=confidence, n_boot=n_boot, resampled=resampled, loss_source=loss.source,
        alpha=sc.alpha, beta=sc.beta, alpha_steps=sc.window, loss_noise=res.noise, units=kind, n_units=res.n_units,
        candidates=tuple(float(x) for x in steps[res.candidates]), curve=curve, loss_share=sc,
    )


@dataclass(frozen=True)
class MixtureRecommendation:
    """Python fixed at ``eta_python``; one Algorithm 1 recommendation per language."""

    eta_python: float
    recommendations: dict[str, Recommendation]

    @property
    def tokens(self) -> dict[str, int]:
        out = {"python": int(round(self.eta_python))}
        out.update({lang: int(round(r.tokens)) for lang, r in self.recommendations.items()})
        return out

    def to_dataframe(self) -> pd.DataFrame:
        return pd.concat([r.to_dataframe() for r in self.recommendations.values()], ignore_index=True)

    def write(self, path, *, source: str | None = None, notes: str | None = None) -> Path:
        """Write the mixture file read by ``lensprobe pretrain mixture``."""
        lines = [
            f"{lang}: best {r.metric} at step {r.best_step:g} (smoothed {r.best_value:.4g}), "
            f"Eq.2 share {r.share:.4f} from {r.loss_source}, {r.confidence:.0%} interval on tokens "
            f"[{r.tokens_interval[0]:.4g}, {r.tokens_interval[1]:.4g}] over {r.resampled}"
            for lang, r in self.recommendations.items()
        ]
        text = "Algorithm 1 (Babel Tower): eta_target = eta_py / P - eta_py with P from Eq.2 at the best checkpoint.\n"
        text += "\n".join(lines)
        if notes:
            text += "\n" + notes
        return write_mixture(path, self.tokens, source=source or "lensprobe.analysis.fit.recommend_mixture", notes=text)


def recommend_mixture(runs: Mapping[str, object], *, metric: str, eta_python: float | str, **kwargs) -> MixtureRecommendation:
    """Algorithm 1 for several languages (one continual run each), Python fixed at ``eta_python``."""
    if not runs:
        raise ValueError("no runs given")
    eta_py = parse_token_quantity(eta_python)
    recs = {}
    for lang, run in runs.items():
        if lang == "python":
            raise ValueError("python is the anchor language (eta_python); give runs for the new languages only")
        recs[lang] = recommend_tokens(run, metric=metric, eta_python=eta_py, target=lang, **kwargs)
    return MixtureRecommendation(eta_python=eta_py, recommendations=recs)


@dataclass(frozen=True)
class PredictedVsActual:
    """Performance against the Python-system share: the continual run's curve (share by Eq.2
    from the loss) and the mixture runs (share by Eq.3 from the token counts)."""

    curve: pd.DataFrame
    table: pd.DataFrame
    metric: str

    def to_dataframe(self) -> pd.DataFrame:
        return self.table.copy()

    def plot(self, ax=None):
        from lensprobe.present.fit_figures import plot_predicted_vs_actual

        return plot_predicted_vs_actual(self, ax=ax)


def predicted_vs_actual(continual, mixtures: pd.DataFrame | list[dict], *, metric: str, target: str | None = None,
                        window: int = 5, alpha_window: tuple[float, float] = PAPER_ALPHA_WINDOW,
                        init_steps: tuple[float, float] | None = None, alpha_points: int = 5,
                        max_alpha_fraction: float = 0.05, run_steps: float | None = None, loss_source: str = "auto",
                        loss_smooth: int | None = None, probe: str | None = None,
                        identifiers: Sequence[str] | None = None) -> PredictedVsActual:
    """Compare mixture runs with the prediction read off one continual run.

    ``mixtures``: rows with ``run, eta_python, eta_target, value`` (the final ``metric`` of each
    mixture run; token counts in any one unit). The prediction for a mixture is the continual
    run's (smoothed) performance at the mixture's Eq.3 share, interpolated along the Eq.2 share
    (the same loss curve, alpha window and smoothing as :func:`recommend_tokens`).
    """
    run = as_run(continual, target=target)
    mix = pd.DataFrame(mixtures)
    missing = {"run", "eta_python", "eta_target", "value"} - set(mix.columns)
    if missing:
        raise ValueError(f"mixtures lack column(s) {sorted(missing)}")
    units = run.performance_units(metric, probe=probe, identifiers=identifiers)
    steps = units.steps
    value = units.mean
    loss, width = _loss_for_eq2(run, loss_source, loss_smooth)
    sc = python_share_from_loss(loss.steps, loss.losses, run_steps=run_steps if run_steps is not None else run.run_length(),
                                alpha_window=alpha_window, init_steps=init_steps, alpha_points=alpha_points,
                                max_alpha_fraction=max_alpha_fraction, smooth=width)
    share = sc.at_steps(steps)
    curve = pd.DataFrame({"step": steps, "share": share, "value": value}).sort_values("share", kind="stable")
    curve["smoothed"] = sliding_mean(curve["value"].to_numpy(), window=window)
    by_share = curve.groupby("share", as_index=False)["smoothed"].mean()
    mix = mix.copy()
    mix["share"] = python_share_from_tokens(mix["eta_python"].map(parse_token_quantity).to_numpy(float),
                                            mix["eta_target"].map(parse_token_quantity).to_numpy(float))
    mix["predicted"] = np.interp(mix["share"], by_share["share"], by_share["smoothed"])
    mix["error"] = mix["predicted"] - mix["value"]
    mix = mix.rename(columns={"value": "actual"})
    return PredictedVsActual(curve=curve.sort_values("step").reset_index(drop=True), table=mix.reset_index(drop=True),
                             metric=metric)
