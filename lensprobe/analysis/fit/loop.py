"""Algorithm 1's closed loop (docs/fit.md, "The closed loop"): the performance a continual run
predicts as a function of the Python share, the mixture runs to train, and the comparison of each
mixture run's measured performance with its prediction.

* :func:`prediction_curve` reads the continual run like :func:`~.recommend.predicted_vs_actual`
  (checkpoints at their Eq.2 share, performance smoothed along the share) and adds an interval: a
  bootstrap over the units (items; runs, then items) with the loss perturbed by its noise, so both
  the performance and the share of every checkpoint move in each replicate.
* :func:`plan_points` turns Algorithm 1's share, the natural corpus and a token cap into the
  mixture points (Eq.3 counts, exact), marking a recommendation that cannot be trained at this scale.
* :func:`final_performance` is a mixture run's measured value with its bootstrap interval;
  :func:`loop_table` / :func:`loop_statistics` put predictions and measurements side by side
  (Spearman, mean absolute error, recommended against natural).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lensprobe.analysis.smoothing import sliding_mean

from .recommend import _loss_for_eq2, as_run
from .share import PAPER_ALPHA_WINDOW, loss_noise, python_share_from_loss, python_share_from_tokens, tokens_for_share

__all__ = ["PredictionCurve", "MixturePoint", "LoopStatistics", "prediction_curve", "plan_points",
           "final_performance", "bootstrap_mean", "loop_table", "loop_statistics", "TABLE_COLUMNS"]

#: the columns of ``predicted_vs_actual.csv`` (one row per mixture run)
TABLE_COLUMNS = ["point", "seed", "share", "tokens", "predicted", "predicted_lo", "predicted_hi", "actual",
                 "actual_lo", "actual_hi", "error", "in_predicted_interval", "feasible", "asked_share",
                 "tokens_seen", "n_items", "run"]


def _smoothed_by_share(shares: np.ndarray, values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct shares ascending, smoothed value at each): sort the checkpoints by share (stable, so
    ties keep step order), centred sliding mean of width ``window``, ties averaged. Equal to
    :func:`~.recommend.predicted_vs_actual`'s curve."""
    order = np.argsort(shares, kind="stable")
    s, v = shares[order], values[order]
    sm = sliding_mean(v, window=window)
    uniq, inv = np.unique(s, return_inverse=True)
    out = np.bincount(inv, weights=sm) / np.bincount(inv)
    return uniq, out


def _interp(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.interp(x, xs, ys) if xs.size > 1 else np.full(np.shape(x), ys[0], dtype=float)


def _resample_weights(n_units: int, groups: np.ndarray | None, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot x n_units weights of a bootstrap mean: units resampled with replacement, or runs first
    and then units within each run (each run weighted equally, as the point estimate)."""
    if groups is None:
        return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot) / n_units
    labels, inv = np.unique(groups, return_inverse=True)
    r = len(labels)
    wr = rng.multinomial(r, np.full(r, 1.0 / r), size=n_boot) / r
    w = np.empty((n_boot, n_units))
    for g in range(r):
        cols = np.flatnonzero(inv == g)
        wi = rng.multinomial(cols.size, np.full(cols.size, 1.0 / cols.size), size=n_boot) / cols.size
        w[:, cols] = wr[:, [g]] * wi
    return w


def _point_weights(n_units: int, groups: np.ndarray | None) -> np.ndarray:
    if groups is None:
        return np.full(n_units, 1.0 / n_units)
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[inv])


@dataclass(frozen=True)
class PredictionCurve:
    """Performance against the Eq.2 share of one continual run (or several seeds' runs), with an interval.

    ``curve``: one row per checkpoint (``step, share, share_lo, share_hi, value, smoothed``);
    ``predict(shares)`` interpolates the smoothed curve along the share with its ``confidence``
    percentile interval over ``n_boot`` replicates (units resampled, loss perturbed by ``loss_noise``).
    """

    curve: pd.DataFrame
    metric: str
    window: int
    confidence: float
    n_boot: int
    units: str
    n_units: int
    loss_source: str
    loss_noise: float
    alpha: float
    beta: float
    _boot_shares: np.ndarray = field(repr=False)   # n_boot x checkpoints (Eq.2, clipped)
    _boot_values: np.ndarray = field(repr=False)   # n_boot x checkpoints (mean over resampled units)

    def predict(self, shares: Sequence[float] | np.ndarray) -> pd.DataFrame:
        """``share, predicted, predicted_lo, predicted_hi`` at each Eq.3 share."""
        x = np.asarray(shares, dtype=float)
        if x.ndim != 1 or not np.all((x >= 0) & (x <= 1)):
            raise ValueError(f"shares must be a list of numbers in [0, 1], got {shares!r}")
        us, ys = _smoothed_by_share(self.curve["share"].to_numpy(float), self.curve["value"].to_numpy(float),
                                    self.window)
        point = _interp(x, us, ys)
        boot = np.empty((self._boot_values.shape[0], x.size))
        for b in range(boot.shape[0]):
            bs, by = _smoothed_by_share(self._boot_shares[b], self._boot_values[b], self.window)
            boot[b] = _interp(x, bs, by)
        a = (1 - self.confidence) / 2
        lo, hi = (np.quantile(boot, [a, 1 - a], axis=0) if boot.shape[0] > 1 else (point, point))
        # the percentile interval of a smoothed, interpolated mean can miss its own estimate where
        # the curve is flat and skewed; the reported interval always holds the estimate
        return pd.DataFrame({"share": x, "predicted": point, "predicted_lo": np.minimum(lo, point),
                             "predicted_hi": np.maximum(hi, point)})

    def to_dataframe(self) -> pd.DataFrame:
        return self.curve.copy()


def prediction_curve(continual, *, metric: str, target: str | None = None, probe: str | None = None,
                     identifiers: Sequence[str] | None = None, window: int = 5,
                     alpha_window: tuple[float, float] = PAPER_ALPHA_WINDOW, init_steps: tuple[float, float] | None = None,
                     alpha_points: int = 5, max_alpha_fraction: float = 0.05, run_steps: float | None = None,
                     loss_source: str = "auto", loss_smooth: int | None = None, n_boot: int = 1000,
                     confidence: float = 0.9, seed: int = 0) -> PredictionCurve:
    """The continual run's performance against its Eq.2 share, with a bootstrap interval.

    The point estimate is :func:`~.recommend.predicted_vs_actual`'s (same loss, alpha window and
    smoothing; performance units as :func:`~.recommend.recommend_tokens` reads them). Each of the
    ``n_boot`` replicates resamples the units (items of one run; runs, then items within each run)
    and perturbs every logged loss by N(0, sigma^2), sigma the loss's point-to-point noise, before
    alpha, beta and the shares are recomputed."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    run = as_run(continual, target=target)
    units = run.performance_units(metric, probe=probe, identifiers=identifiers)
    loss, width = _loss_for_eq2(run, loss_source, loss_smooth)
    total = run_steps if run_steps is not None else run.run_length()
    kw = dict(run_steps=total, alpha_window=alpha_window, init_steps=init_steps, alpha_points=alpha_points,
              max_alpha_fraction=max_alpha_fraction, smooth=width)
    sc = python_share_from_loss(loss.steps, loss.losses, **kw)
    steps = units.steps
    share = sc.at_steps(steps)
    value = units.values @ _point_weights(units.values.shape[1], units.groups)
    rng = np.random.default_rng(seed)
    sigma = loss_noise(sc.steps, sc.logged) if sc.steps.size >= 3 else 0.0
    groups = units.groups
    w = _resample_weights(units.values.shape[1], groups, n_boot, rng) if units.values.shape[1] > 1 else \
        np.ones((n_boot, 1))
    boot_values = w @ units.values.T                                     # n_boot x checkpoints
    boot_shares = np.empty_like(boot_values)
    for b in range(n_boot):
        noisy = sc.logged + sigma * rng.standard_normal(sc.logged.size)
        try:
            boot_shares[b] = python_share_from_loss(sc.steps, noisy, **kw).at_steps(steps)
        except ValueError:   # a perturbed curve whose start is not above its minimum: keep the estimate
            boot_shares[b] = share
    lo_hi = np.quantile(boot_shares, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0) if n_boot > 1 else \
        np.vstack([share, share])
    order = np.argsort(share, kind="stable")
    sm = np.empty_like(value)
    sm[order] = sliding_mean(value[order], window=window)
    curve = pd.DataFrame({"step": steps, "share": share, "share_lo": np.minimum(lo_hi[0], share),
                          "share_hi": np.maximum(lo_hi[1], share), "value": value, "smoothed": sm})
    return PredictionCurve(curve=curve, metric=metric, window=window, confidence=confidence, n_boot=n_boot,
                           units=units.kind, n_units=int(units.values.shape[1]), loss_source=loss.source,
                           loss_noise=float(sigma), alpha=sc.alpha, beta=sc.beta,
                           _boot_shares=boot_shares, _boot_values=boot_values)


@dataclass(frozen=True)
class MixturePoint:
    """One mixture to train: ``eta_python`` Python tokens (fixed: the base's) and ``eta_target``
    target tokens, ``share`` = Eq.3 of the two (exact). ``asked_share``: the share Algorithm 1 asked
    for (recommended point) or None; ``feasible`` is False when that share needs more than the cap
    of target tokens (``eta_target`` is then the cap: the nearest point that can be trained)."""

    name: str
    kind: str          # "natural", "recommended" or "grid"
    eta_python: int
    eta_target: int
    share: float
    asked_share: float | None = None
    asked_tokens: float | None = None
    feasible: bool = True
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def plan_points(*, eta_python: int, natural_tokens: int, recommended_share: float | None, cap_tokens: int,
                multiples: Sequence[float] = (0.0625, 0.25), min_tokens: int = 1) -> list[MixturePoint]:
    """The mixture points of the loop, all with ``eta_python`` Python tokens (Eq.3, exact counts).

    * ``grid-<m>``: ``round(m * natural_tokens)`` target tokens for each of ``multiples``;
    * ``natural``: ``natural_tokens`` (all the target tokens the continual run saw);
    * ``recommended``: ``round(eta_python / P - eta_python)`` for Algorithm 1's share P
      (``recommended_share``; 0 or None when it gave no finite answer). When that exceeds
      ``cap_tokens`` (or is infinite) the point is trained at the cap and marked infeasible; below
      ``min_tokens`` (e.g. one training step's tokens) at ``min_tokens``, also marked.
    """
    for name, v in (("eta_python", eta_python), ("natural_tokens", natural_tokens), ("cap_tokens", cap_tokens),
                    ("min_tokens", min_tokens)):
        if not (isinstance(v, (int, np.integer)) and v > 0):
            raise ValueError(f"{name} must be a positive whole number of tokens, got {v!r}")
    if recommended_share is not None and not (0 <= recommended_share <= 1):
        raise ValueError(f"recommended_share must lie in [0, 1], got {recommended_share!r}")
    points = []
    for m in multiples:
        if not m > 0:
            raise ValueError(f"multiples must be positive, got {m!r}")
        tokens = int(round(m * natural_tokens))
        if tokens < 1:
            raise ValueError(f"multiple {m:g} of {natural_tokens} natural tokens rounds to 0 tokens")
        points.append(MixturePoint(name=f"grid-{m:g}", kind="grid", eta_python=int(eta_python), eta_target=tokens,
                                   share=python_share_from_tokens(eta_python, tokens),
                                   note=f"{m:g} x the natural corpus's target tokens"))
    points.append(MixturePoint(name="natural", kind="natural", eta_python=int(eta_python),
                               eta_target=int(natural_tokens), share=python_share_from_tokens(eta_python, natural_tokens),
                               note="all the target tokens the continual run saw"))
    asked = float(recommended_share) if recommended_share is not None else 0.0
    want = math.inf if asked == 0 else float(tokens_for_share(eta_python, asked))
    if want < min_tokens:
        points.append(MixturePoint(
            name="recommended", kind="recommended", eta_python=int(eta_python), eta_target=int(min_tokens),
            share=python_share_from_tokens(eta_python, min_tokens), asked_share=asked, asked_tokens=want,
            feasible=False, note=(f"INFEASIBLE: Algorithm 1 asks share {asked:.4g} = {want:.4g} target tokens, "
                                  f"fewer than {min_tokens:,}; trained at {min_tokens:,}")))
    elif want <= cap_tokens:
        tokens = int(round(want))
        points.append(MixturePoint(name="recommended", kind="recommended", eta_python=int(eta_python),
                                   eta_target=tokens, share=python_share_from_tokens(eta_python, tokens),
                                   asked_share=asked, asked_tokens=want,
                                   note="Algorithm 1's recommendation: eta_py / P - eta_py"))
    else:
        points.append(MixturePoint(
            name="recommended", kind="recommended", eta_python=int(eta_python), eta_target=int(cap_tokens),
            share=python_share_from_tokens(eta_python, cap_tokens), asked_share=asked, asked_tokens=want,
            feasible=False,
            note=(f"INFEASIBLE at this scale: Algorithm 1 asks share {asked:.4g} = "
                  + (f"{want:.4g}" if math.isfinite(want) else "infinitely many") + f" target tokens "
                  f"(the cap is {cap_tokens:,}); trained at the cap, the nearest feasible point")))
    return points


def bootstrap_mean(values: np.ndarray, *, groups: np.ndarray | None = None, n_boot: int = 1000,
                   confidence: float = 0.9, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi) of the mean of ``values`` (units; runs weighted equally when ``groups`` names
    each unit's run): a percentile interval over ``n_boot`` resamples (runs, then units), widened to
    hold the mean when it would not."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be a non-empty 1-D array of finite numbers, got shape {v.shape}")
    g = None if groups is None else np.asarray(groups)
    mean = float(v @ _point_weights(v.size, g))
    if v.size < 2 or n_boot < 2:
        return mean, mean, mean
    w = _resample_weights(v.size, g, n_boot, np.random.default_rng(seed))
    boot = w @ v
    a = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return mean, float(min(lo, mean)), float(max(hi, mean))


def final_performance(table: pd.DataFrame, *, metric: str, language: str, identifiers: Sequence[str],
                      step: float | None = None, probe: str = "babel", n_boot: int = 1000, confidence: float = 0.9,
                      seed: int = 0) -> dict:
    """A run's measured ``metric`` at ``step`` (default: its last evaluated step) over the items whose
    identifier starts with ``"<split>:"`` for a split in ``identifiers``, with a bootstrap interval
    over those items (runs first when the table holds several runs). Returns
    ``{"value", "lo", "hi", "n_items", "step"}``."""
    sel = table[(table["probe"] == probe) & (table["metric"] == metric) & (table["language"] == language)]
    ident = sel["identifier"].fillna("").astype(str)
    keep = np.array([any(x.startswith(f"{w}:") for w in identifiers) for x in ident], dtype=bool)
    sel = sel[keep & (pd.to_numeric(sel["n"], errors="coerce") == 1).to_numpy()]
    if sel.empty:
        raise ValueError(f"no per-item {metric!r} rows for {language} on {list(identifiers)} (probe {probe!r})")
    if step is None:
        step = float(sel["step"].max())
    sel = sel[sel["step"] == step]
    if sel.empty:
        raise ValueError(f"no per-item {metric!r} rows at step {step:g}")
    runs = sel["run"].astype(str).to_numpy()
    groups = runs if len(set(runs)) > 1 else None
    value, lo, hi = bootstrap_mean(sel["value"].to_numpy(float), groups=groups, n_boot=n_boot,
                                   confidence=confidence, seed=seed)
    return {"value": value, "lo": lo, "hi": hi, "n_items": int(len(sel)), "step": float(step)}


def loop_table(points: Sequence[MixturePoint], prediction: PredictionCurve, actual: pd.DataFrame) -> pd.DataFrame:
    """One row per mixture run (:data:`TABLE_COLUMNS`). ``actual``: rows ``point, seed, run, value,
    lo, hi, n_items, tokens_seen``."""
    need = {"point", "seed", "run", "value", "lo", "hi", "n_items"}
    missing = need - set(actual.columns)
    if missing:
        raise ValueError(f"actual lacks column(s) {sorted(missing)}")
    by_name = {p.name: p for p in points}
    unknown = set(actual["point"]) - set(by_name)
    if unknown:
        raise ValueError(f"actual names unknown point(s) {sorted(unknown)}; points: {sorted(by_name)}")
    pred = prediction.predict([p.share for p in points]).assign(point=[p.name for p in points])
    rows = []
    for _, a in actual.iterrows():
        p = by_name[a["point"]]
        q = pred[pred["point"] == p.name].iloc[0]
        rows.append({"point": p.name, "seed": int(a["seed"]), "share": p.share, "tokens": p.eta_target,
                     "predicted": q["predicted"], "predicted_lo": q["predicted_lo"], "predicted_hi": q["predicted_hi"],
                     "actual": a["value"], "actual_lo": a["lo"], "actual_hi": a["hi"],
                     "error": q["predicted"] - a["value"],
                     "in_predicted_interval": bool(q["predicted_lo"] <= a["value"] <= q["predicted_hi"]),
                     "feasible": p.feasible, "asked_share": p.asked_share,
                     "tokens_seen": a.get("tokens_seen", np.nan), "n_items": int(a["n_items"]), "run": a["run"]})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


@dataclass(frozen=True)
class LoopStatistics:
    """How well the prediction held over the mixture points (means over seeds per point).

    ``spearman``: rank correlation of predicted and actual over the ``n_points`` points (NaN with
    fewer than 3 or a constant side); ``mae``: mean |predicted - actual|; ``covered``: points whose
    seed-mean actual lies in the predicted interval; ``rec_minus_nat``: actual(recommended) -
    actual(natural), with its interval: Student t over the seeds' paired differences when there are
    at least 2 seeds, else a paired bootstrap over items (``rec_minus_nat_method`` says which)."""

    n_points: int
    n_seeds: int
    spearman: float
    spearman_p: float
    mae: float
    covered: int
    rec_minus_nat: float
    rec_minus_nat_lo: float
    rec_minus_nat_hi: float
    rec_minus_nat_method: str
    recommended_feasible: bool
    per_point: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "per_point"}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])


def loop_statistics(table: pd.DataFrame, *, item_differences: np.ndarray | None = None, confidence: float = 0.9,
                    n_boot: int = 1000, seed: int = 0) -> LoopStatistics:
    """Spearman, MAE and recommended-vs-natural from :func:`loop_table`'s rows.

    ``item_differences``: per-item actual(recommended) - actual(natural) of one seed (same items in
    both runs), used for the interval when there is a single seed."""
    per = (table.groupby("point", sort=False)
           .agg(share=("share", "first"), tokens=("tokens", "first"), predicted=("predicted", "first"),
                predicted_lo=("predicted_lo", "first"), predicted_hi=("predicted_hi", "first"),
                actual=("actual", "mean"), feasible=("feasible", "first"), n_seeds=("seed", "nunique"))
           .reset_index())
    per["error"] = per["predicted"] - per["actual"]
    per["in_predicted_interval"] = (per["predicted_lo"] <= per["actual"]) & (per["actual"] <= per["predicted_hi"])
    n = len(per)
    if n >= 3 and per["predicted"].nunique() > 1 and per["actual"].nunique() > 1:
        rho, p = stats.spearmanr(per["predicted"], per["actual"])
        rho, p = float(rho), float(p)
    else:
        rho, p = math.nan, math.nan
    mae = float(per["error"].abs().mean()) if n else math.nan
    seeds = sorted(table["seed"].unique())
    diff, lo, hi, method = math.nan, math.nan, math.nan, "none (no recommended or natural run)"
    rec = table[table["point"] == "recommended"].set_index("seed")["actual"]
    nat = table[table["point"] == "natural"].set_index("seed")["actual"]
    paired = (rec - nat).dropna()
    if len(paired) >= 2:
        diff = float(paired.mean())
        half = float(stats.t.ppf(0.5 + confidence / 2, len(paired) - 1) * paired.std(ddof=1) / math.sqrt(len(paired)))
        lo, hi = diff - half, diff + half
        method = f"Student t over {len(paired)} seeds (paired by seed)"
    elif len(paired) == 1:
        diff = float(paired.iloc[0])
        if item_differences is not None and len(item_differences) > 1:
            _, lo, hi = bootstrap_mean(np.asarray(item_differences, float), n_boot=n_boot, confidence=confidence,
                                       seed=seed)
            method = f"bootstrap over {len(item_differences)} items (paired, one seed)"
        else:
            method = "one seed, no item differences: no interval"
    rec_rows = table[table["point"] == "recommended"]
    return LoopStatistics(n_points=n, n_seeds=len(seeds), spearman=rho, spearman_p=p, mae=mae,
                          covered=int(per["in_predicted_interval"].sum()), rec_minus_nat=diff, rec_minus_nat_lo=lo,
                          rec_minus_nat_hi=hi, rec_minus_nat_method=method,
                          recommended_feasible=bool(rec_rows["feasible"].all()) if len(rec_rows) else False,
                          per_point=per)
