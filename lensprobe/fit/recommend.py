"""Algorithm 1 (data-mix recommendation from one continual run) and "predicted vs actual".

Algorithm 1: average the performance metric over problems per checkpoint, smooth it with a
centred sliding mean (width 5 as in the paper), take the best checkpoint, estimate the Python
system's share at that checkpoint's loss by Eq.2 and invert Eq.3 to the target-token count
eta_target = eta_py / P - eta_py. A bootstrap over problems (or, with a single aggregate value
per checkpoint, over checkpoints) gives an interval for the share and the token count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .babel import (NoFiniteTokens, PythonShare, parse_tokens, python_share_from_loss,
                    python_share_from_tokens, sliding_mean, tokens_for_share)
from .mixture_file import write_mixture
from .runs import BabelRun, load_run

__all__ = ["Recommendation", "MixtureRecommendation", "PredictedVsActual", "recommend_tokens",
           "recommend_mixture", "predicted_vs_actual", "as_run"]


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
        unknown = set(kw) - {"sweep", "loss_log", "val_log", "target", "name", "source"}
        if unknown:
            raise ValueError(f"unknown run field(s) {sorted(unknown)}; expected sweep, loss_log, val_log, target, name")
        return BabelRun(**kw)
    raise TypeError(f"run must be a BabelRun, a run directory or a dict, got {type(run).__name__}")


@dataclass(frozen=True)
class Recommendation:
    """The result of Algorithm 1 for one target language."""

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
    curve: pd.DataFrame = field(repr=False)
    loss_share: PythonShare = field(repr=False)

    def to_dataframe(self) -> pd.DataFrame:
        row = {k: getattr(self, k) for k in ("target", "metric", "eta_python", "best_step", "best_checkpoint",
                                             "best_value", "loss_at_best", "share", "tokens", "confidence",
                                             "n_boot", "resampled", "loss_source")}
        row.update(share_low=self.share_interval[0], share_high=self.share_interval[1],
                   tokens_low=self.tokens_interval[0], tokens_high=self.tokens_interval[1])
        return pd.DataFrame([row])


def _tokens_or_inf(eta_python: float, share: float) -> float:
    try:
        return tokens_for_share(eta_python, share)
    except NoFiniteTokens:
        return float("inf")


def _best(steps: np.ndarray, mat: np.ndarray, window: int, higher_is_better: bool) -> tuple[int, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(mat, axis=1) if mat.ndim == 2 else mat
    smooth = sliding_mean(mean, window=window)
    score = np.where(np.isfinite(smooth), smooth, -np.inf if higher_is_better else np.inf)
    idx = int(np.argmax(score) if higher_is_better else np.argmin(score))
    return idx, mean, smooth


def recommend_tokens(
    run,
    *,
    metric: str,
    eta_python: float | str,
    window: int = 5,
    target: str | None = None,
    probe: str | None = None,
    init_steps: tuple[int, int] = (90, 100),
    loss_source: str = "auto",
    higher_is_better: bool = True,
    n_boot: int = 1000,
    confidence: float = 0.9,
    seed: int = 0,
) -> Recommendation:
    """Algorithm 1 on a continual run (see :mod:`lensprobe.fit.runs` for what ``run`` holds).

    Returns the best checkpoint (by the sliding mean of ``metric`` of width ``window``), the
    Eq.2 share at its loss, the recommended target tokens (same unit as ``eta_python``; strings
    like ``"11B"`` are read as token counts) and bootstrap intervals. Raises
    :class:`~lensprobe.fit.babel.NoFiniteTokens` when the best checkpoint sits at the run's
    lowest loss (share 0: no finite recommendation).
    """
    run = as_run(run, target=target)
    if run.target is None:
        raise ValueError(f"{run.name!r}: the target language is unknown; pass target=")
    eta_py = parse_tokens(eta_python)
    if eta_py <= 0:
        raise ValueError(f"eta_python must be positive, got {eta_python!r}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mat_df = run.performance_matrix(metric, probe=probe)
    steps = mat_df.index.to_numpy(float)
    mat = mat_df.to_numpy(float)
    loss_steps, losses, loss_desc = run.target_loss(source=loss_source)
    share_curve = python_share_from_loss(loss_steps, losses, init_steps=init_steps)
    loss_at_steps = np.interp(steps, share_curve.steps, share_curve.losses)
    share_at_steps = share_curve.at_loss(loss_at_steps)

    idx, mean, smooth = _best(steps, mat, window, higher_is_better)
    share = float(share_at_steps[idx])
    try:
        tokens = tokens_for_share(eta_py, share)
    except NoFiniteTokens as exc:
        raise NoFiniteTokens(
            f"{run.name!r}: the best {metric!r} checkpoint (step {steps[idx]:g}) is at the run's lowest "
            f"{run.target} loss, so Eq.2 gives share 0 and Algorithm 1 has no finite answer ({exc})"
        ) from None

    rng = np.random.default_rng(seed)
    n_items = mat.shape[1]
    resampled = "problems" if n_items > 1 else "checkpoints"
    boot_share = np.empty(n_boot)
    for b in range(n_boot):
        if resampled == "problems":
            cols = rng.integers(0, n_items, n_items)
            j, _, _ = _best(steps, mat[:, cols], window, higher_is_better)
            boot_share[b] = share_at_steps[j]
        else:
            keep = np.unique(rng.integers(0, len(steps), len(steps)))
            j, _, _ = _best(steps[keep], mat[keep], window, higher_is_better)
            boot_share[b] = share_at_steps[keep][j]
    q = [(1 - confidence) / 2, 1 - (1 - confidence) / 2]
    s_lo, s_hi = (np.quantile(boot_share, q) if n_boot else (share, share))
    t_lo, t_hi = _tokens_or_inf(eta_py, s_hi), _tokens_or_inf(eta_py, s_lo)

    checkpoint = None
    if "checkpoint" in run.sweep.columns:
        hit = run.sweep.loc[run.sweep["step"] == steps[idx], "checkpoint"].dropna()
        checkpoint = str(hit.iloc[0]) if len(hit) else None
    curve = pd.DataFrame({"step": steps, "value": mean, "smoothed": smooth, "loss": loss_at_steps,
                          "share": share_at_steps, "best": np.arange(len(steps)) == idx})
    return Recommendation(
        target=run.target, metric=metric, eta_python=eta_py, best_step=float(steps[idx]), best_checkpoint=checkpoint,
        best_value=float(smooth[idx]), loss_at_best=float(loss_at_steps[idx]), share=share, tokens=float(tokens),
        share_interval=(float(s_lo), float(s_hi)), tokens_interval=(float(t_lo), float(t_hi)),
        confidence=confidence, n_boot=n_boot, resampled=resampled, loss_source=loss_desc,
        curve=curve, loss_share=share_curve,
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
        return write_mixture(path, self.tokens, source=source or "lensprobe.fit.recommend_mixture", notes=text)


def recommend_mixture(runs: Mapping[str, object], *, metric: str, eta_python: float | str, **kwargs) -> MixtureRecommendation:
    """Algorithm 1 for several languages (one continual run each), Python fixed at ``eta_python``."""
    if not runs:
        raise ValueError("no runs given")
    eta_py = parse_tokens(eta_python)
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
        from .plots import plot_predicted_vs_actual

        return plot_predicted_vs_actual(self, ax=ax)


def predicted_vs_actual(continual, mixtures: pd.DataFrame | list[dict], *, metric: str, target: str | None = None,
                        window: int = 5, init_steps: tuple[int, int] = (90, 100), loss_source: str = "auto",
                        probe: str | None = None) -> PredictedVsActual:
    """Compare mixture runs with the prediction read off one continual run.

    ``mixtures``: rows with ``run, eta_python, eta_target, value`` (the final ``metric`` of each
    mixture run; token counts in any one unit). The prediction for a mixture is the continual
    run's (smoothed) performance at the mixture's Eq.3 share, interpolated along the Eq.2 share.
    """
    run = as_run(continual, target=target)
    mix = pd.DataFrame(mixtures)
    missing = {"run", "eta_python", "eta_target", "value"} - set(mix.columns)
    if missing:
        raise ValueError(f"mixtures lack column(s) {sorted(missing)}")
    mat = run.performance_matrix(metric, probe=probe)
    steps = mat.index.to_numpy(float)
    value = np.nanmean(mat.to_numpy(float), axis=1)
    ls, ll, _ = run.target_loss(source=loss_source)
    sc = python_share_from_loss(ls, ll, init_steps=init_steps)
    share = np.asarray(sc.at_loss(np.interp(steps, sc.steps, sc.losses)))
    curve = pd.DataFrame({"step": steps, "share": share, "value": value}).sort_values("share", kind="stable")
    curve["smoothed"] = sliding_mean(curve["value"].to_numpy(), window=window)
    by_share = curve.groupby("share", as_index=False)["smoothed"].mean()
    mix = mix.copy()
    mix["share"] = python_share_from_tokens(mix["eta_python"].map(parse_tokens).to_numpy(float),
                                            mix["eta_target"].map(parse_tokens).to_numpy(float))
    mix["predicted"] = np.interp(mix["share"], by_share["share"], by_share["smoothed"])
    mix["error"] = mix["predicted"] - mix["value"]
    mix = mix.rename(columns={"value": "actual"})
    return PredictedVsActual(curve=curve.sort_values("step").reset_index(drop=True), table=mix.reset_index(drop=True),
                             metric=metric)
