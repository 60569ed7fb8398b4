"""Translation / transition / stabilization stage detection on noisy curves over training steps.

The paper's three stages for a new language, read from a performance curve (pass@1, suite
accuracy, Babel line accuracy; or a validation loss with ``higher_is_better=False``):

* **translation** — performance rises (the new language rides on the Python "system");
* **transition** — performance declines after its peak while the new system forms;
* **stabilization** — the curve is flat.

Detection smooths the curve (centered moving mean, window 5 as the paper), estimates the noise
from the residuals (or from given per-point intervals, e.g. across seeds), and accepts a rise or a
decline only when it exceeds ``min_effect`` noise units. A residual bootstrap gives a confidence
per boundary. Curves without a peak or a plateau get no such stage, and the result says so in
``notes``. Supporting curves (the working-language Python share, LAPE counts) are summarised per
stage in ``evidence`` so a reader can check that the mechanism agrees with the performance story.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

STAGE_NAMES = ("translation", "transition", "stabilization")


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


def smooth(values: Sequence[float], window: int = 5) -> np.ndarray:
    """Centered moving mean; the window shrinks symmetrically at the edges (no padding bias)."""
    y = np.asarray(values, dtype=float)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window == 1 or y.size == 0:
        return y.copy()
    half = window // 2
    out = np.empty_like(y)
    n = y.size
    for i in range(n):
        h = min(half, i, n - 1 - i)
        out[i] = y[i - h:i + h + 1].mean()
    return out


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


def _fit_pieces(x: np.ndarray, y: np.ndarray, *, min_seg: int) -> dict[str, dict[str, Any]]:
    """Least-squares fits of the candidate shapes (continuous piecewise-linear), vectorised.

    flat: c.  line: c + s x.  rise_flat: slope then flat (break b).  rise_fall: two slopes
    (break b).  rise_fall_flat: slope, slope, flat (breaks b1 < b2).
    Breakpoints are at observed steps; every piece spans >= ``min_seg`` points (>= 2 for slopes).
    """
    n = x.size
    fits: dict[str, dict[str, Any]] = {}
    ones = np.ones(n)

    def solve(designs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # designs [P, n, k] -> coefficients [P, k], sse [P]
        xtx = np.einsum("pnk,pnl->pkl", designs, designs) + 1e-12 * np.eye(designs.shape[-1])
        xty = np.einsum("pnk,n->pk", designs, y)
        coef = np.linalg.solve(xtx, xty[..., None])[..., 0]
        resid = np.einsum("pnk,pk->pn", designs, coef) - y
        return coef, np.sum(resid ** 2, axis=1)

    c = y.mean()
    fits["flat"] = dict(k=1, sse=float(np.sum((y - c) ** 2)), breaks=(), slopes=(0.0,))
    coef, sse = solve(np.stack([ones, x], axis=-1)[None])
    fits["line"] = dict(k=2, sse=float(sse[0]), breaks=(), slopes=(float(coef[0, 1]),))
    cand = np.arange(2, n - 1)
    if cand.size:
        # rise_flat: flat part needs >= min_seg points
        bs = cand[(n - cand) >= min_seg]
        if bs.size:
            d = np.stack([np.broadcast_to(ones, (bs.size, n)), np.minimum(x[None, :] - x[bs, None], 0.0)], axis=-1)
            coef, sse = solve(d)
            i = int(np.argmin(sse))
            fits["rise_flat"] = dict(k=4, sse=float(sse[i]), breaks=(int(bs[i]),), slopes=(float(coef[i, 1]), 0.0))
        bs = cand
        d = np.stack([np.broadcast_to(ones, (bs.size, n)), np.minimum(x[None, :] - x[bs, None], 0.0),
                      np.maximum(x[None, :] - x[bs, None], 0.0)], axis=-1)
        coef, sse = solve(d)
        i = int(np.argmin(sse))
        fits["rise_fall"] = dict(k=5, sse=float(sse[i]), breaks=(int(bs[i]),),
                                 slopes=(float(coef[i, 1]), float(coef[i, 2])))
        b1, b2 = np.meshgrid(cand, cand, indexing="ij")
        ok = (b2 - b1 >= 2) & ((n - b2) >= min_seg)
        b1, b2 = b1[ok], b2[ok]
        if b1.size:
            xb1, xb2 = x[b1, None], x[b2, None]
            d = np.stack([np.broadcast_to(ones, (b1.size, n)), np.minimum(x[None, :] - xb1, 0.0),
                          np.clip(x[None, :] - xb1, 0.0, None) - np.clip(x[None, :] - xb2, 0.0, None)], axis=-1)
            coef, sse = solve(d)
            i = int(np.argmin(sse))
            fits["rise_fall_flat"] = dict(k=7, sse=float(sse[i]), breaks=(int(b1[i]), int(b2[i])),
                                          slopes=(float(coef[i, 1]), float(coef[i, 2]), 0.0))
    for f in fits.values():
        f["bic"] = n * math.log(max(f["sse"], 1e-300) / n) + f["k"] * math.log(n)
    return fits


def _segment(steps: np.ndarray, ys: np.ndarray, y: np.ndarray, *, noise: float, window: int,
             min_effect: float, plateau_tol: float | None) -> dict[str, Any]:
    """Choose the curve's shape by BIC among piecewise-linear candidates fitted to the raw points
    (higher is better), and keep a rise / decline only when its size on the smoothed curve ``ys``
    exceeds ``min_effect`` standard errors."""
    n = ys.size
    se = noise * math.sqrt(2.0 / max(1, min(window, n)))
    threshold = max(min_effect * se, 1e-12)
    min_seg = max(3, window, math.ceil(n / 6))
    fits = _fit_pieces(steps, y, min_seg=min_seg)
    shape = min(fits, key=lambda k: fits[k]["bic"])
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
    # effect sizes on the smoothed curve
    end_rise = peak if peak is not None else (plateau if plateau is not None else int(np.argmax(ys)))
    rise = float(ys[end_rise] - ys[0])
    decline = float(ys[peak] - ys[plateau if plateau is not None else n - 1]) if peak is not None else 0.0
    rise_ok = (peak is not None or plateau is not None) and rise > threshold
    decline_ok = peak is not None and decline > threshold and rise_ok
    if peak is not None and not decline_ok:
        # a decline too small to trust: treat the peak as the start of a plateau when one is flat
        plateau, peak = (plateau if plateau is not None else peak), None
    tol = plateau_tol if plateau_tol is not None else max(threshold, 0.1 * (float(ys.max() - ys.min()) or 0.0))
    plateau_ok = plateau is not None and rise_ok
    if plateau_ok and plateau_tol is not None:
        plateau_ok = _is_flat(steps[plateau:], ys[plateau:], tol)
    final_level = float(ys[plateau:].mean()) if plateau_ok else float(ys[max(0, n - window):].mean())
    return dict(shape=shape, peak=peak if peak is not None else int(np.argmax(ys)),
                trough=plateau if plateau is not None else n - 1, rise=rise, decline=decline,
                threshold=threshold, plateau=plateau if plateau is not None else n - 1,
                plateau_len=(n - plateau) if plateau is not None else 0, final_level=final_level, tol=tol,
                rise_ok=rise_ok, decline_ok=decline_ok, plateau_ok=plateau_ok)


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
    notes.append("no transition stage: no significant decline after the peak (no peak, rise then plateau)")
    if seg["plateau_ok"] and plateau > 0:
        stages.append(Stage("translation", float(steps[0]), float(steps[plateau])))
        stages.append(Stage("stabilization", float(steps[plateau]), float(steps[-1])))
        return stages, notes, plateau
    notes.append("no stage boundaries: the curve rises monotonically to the last checkpoint (no peak, no plateau)")
    return [], notes, None


def detect_stages(steps: Sequence[float], values: Sequence[float], *, window: int = 5,
                  higher_is_better: bool = True, min_effect: float = 3.0, noise: float | None = None,
                  interval: Sequence[float] | None = None, plateau_tol: float | None = None,
                  n_boot: int = 200, seed: int = 0, language: str | None = None,
                  support: Mapping[str, Sequence[float]] | None = None) -> StageResult:
    """Detect the three stages in one performance curve.

    Args:
        steps, values: the curve (any order; sorted by step internally). NaNs are dropped.
        window: smoothing window (paper: 5).
        higher_is_better: False for losses (the curve is negated internally).
        min_effect: a rise/decline counts when it exceeds this many standard errors of a
            difference of two window means.
        noise: per-point noise sigma; default from given ``interval`` half-widths (95%) or
            estimated from second differences.
        interval: optional per-point 95% half-widths (e.g. across seeds or a bootstrap).
        plateau_tol: band around the final level that counts as flat (default: max(threshold,
            10% of the smoothed range)).
        n_boot: residual-bootstrap replicas for the boundary confidences (0 disables).
        support: named supporting curves on the same steps (working-language Python share, LAPE
            counts): summarised per stage in ``evidence``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if min_effect <= 0:
        raise ValueError(f"min_effect must be > 0, got {min_effect}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    x = np.asarray(steps, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"steps and values must be 1-D of equal length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    x, y = x[keep][order], y[keep][order]
    iv = None
    if interval is not None:
        iv = np.asarray(interval, dtype=float)
        if iv.shape != keep.shape:
            raise ValueError("interval must have the same length as values")
        iv = iv[keep][order]
    sign = 1.0 if higher_is_better else -1.0
    notes: list[str] = []
    if x.size < 3:
        return StageResult(language, [], None, None, math.nan,
                           notes=[f"too few points ({x.size}) to detect stages"])
    ys = smooth(sign * y, window)
    if noise is None:
        if iv is not None and np.isfinite(iv).any():
            noise = float(np.nanmedian(iv) / 1.96)
        else:
            noise = estimate_noise(sign * y)
    seg = _segment(x, ys, sign * y, noise=noise, window=window, min_effect=min_effect, plateau_tol=plateau_tol)
    stages, seg_notes, plateau_idx = _stages_from_segment(seg, x)
    notes.extend(seg_notes)

    evidence: dict[str, Any] = {
        "window": window, "min_effect": min_effect, "noise_sigma": noise,
        "threshold": seg["threshold"], "rise": seg["rise"] * 1.0, "decline": seg["decline"],
        "peak_value": float(sign * ys[seg["peak"]]), "final_level": float(sign * seg["final_level"]),
        "plateau_tolerance": seg["tol"], "n_points": int(x.size), "higher_is_better": higher_is_better,
        "shape": seg["shape"],
    }
    if support:
        evidence["support"] = _summarise_support(x, keep, order, stages, support)

    confidence = {}
    if n_boot and stages:
        confidence = _bootstrap_confidence(x, sign * y, ys, stages, n_boot=n_boot, seed=seed, window=window,
                                           noise=noise, min_effect=min_effect, plateau_tol=plateau_tol)
    peak_step = float(x[seg["peak"]]) if seg["rise_ok"] else None
    plateau_step = float(x[plateau_idx]) if plateau_idx is not None else None
    return StageResult(language, stages, peak_step, plateau_step, float(noise), evidence, confidence, notes)


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


def _bootstrap_confidence(x: np.ndarray, y: np.ndarray, ys: np.ndarray, stages: list[Stage], *, n_boot: int,
                          seed: int, window: int, noise: float, min_effect: float,
                          plateau_tol: float | None) -> dict[str, float]:
    """Share of residual-bootstrap replicas that find each stage with boundaries near the original.

    "Near" = within one smoothing window of checkpoints (the resolution of the detector).
    """
    rng = np.random.default_rng(seed)
    resid = y - ys
    resid = resid - resid.mean()
    idx_of = {float(s): i for i, s in enumerate(x)}
    tol_idx = max(1, window // 2 + 1)
    hits = {s.name: 0 for s in stages}
    for _ in range(n_boot):
        yb = ys + rng.choice(resid, size=resid.size, replace=True)
        ysb = smooth(yb, window)
        seg = _segment(x, ysb, yb, noise=noise, window=window, min_effect=min_effect, plateau_tol=plateau_tol)
        sb, _, _ = _stages_from_segment(seg, x)
        for st in stages:
            other = next((o for o in sb if o.name == st.name), None)
            if other is None:
                continue
            if (abs(idx_of[other.start_step] - idx_of[st.start_step]) <= tol_idx
                    and abs(idx_of[other.end_step] - idx_of[st.end_step]) <= tol_idx):
                hits[st.name] += 1
    return {k: v / n_boot for k, v in hits.items()}


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
