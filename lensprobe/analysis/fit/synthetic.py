"""Small generated runs for examples, docs and tests (no model, no network).

``synthetic_continual_run`` mimics a Babel continual run: the target-language loss falls from
``alpha`` toward ``beta`` exponentially, and the per-problem performance rises (translation) and
then declines (transition) around ``peak_step``, with noise. ``babel_like_arrays`` /
``synthetic_babel_run`` are shaped like the demo's run (snapshot schedule, held-out loss, per-item
line accuracy) and come with the noise-free truth, for the coverage check of Algorithm 1."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lensprobe.files import atomic_write_text

from .recommend import default_loss_smoothing, share_at_best
from .runs import BabelRun
from lensprobe.analysis.smoothing import sliding_mean

from .share import alpha_window_mask

__all__ = ["synthetic_continual_run", "write_run_dir", "babel_like_arrays", "synthetic_babel_run", "SyntheticTruth",
           "algorithm1_coverage", "CoverageResult"]


def synthetic_continual_run(
    target: str = "php",
    *,
    total_steps: int = 3000,
    log_every: int = 10,
    checkpoint_every: int = 100,
    peak_step: int = 700,
    n_problems: int = 24,
    loss_start: float = 3.0,
    loss_floor: float = 1.2,
    loss_tau: float = 600.0,
    loss_noise: float = 0.01,
    perf_noise: float = 0.04,
    seed: int = 0,
    name: str | None = None,
) -> BabelRun:
    rng = np.random.default_rng(seed)
    log_steps = np.arange(log_every, total_steps + 1, log_every)
    tgt_loss = loss_floor + (loss_start - loss_floor) * np.exp(-log_steps / loss_tau)
    tgt_loss = tgt_loss + rng.normal(0, loss_noise, len(log_steps))
    py_loss = 1.0 + 0.2 * (1 - np.exp(-log_steps / 2000)) + rng.normal(0, loss_noise, len(log_steps))
    loss_log = pd.DataFrame({
        "step": log_steps,
        "loss": 0.95 * tgt_loss + 0.05 * py_loss,
        "loss_by_language": [{target: float(a), "python": float(b)} for a, b in zip(tgt_loss, py_loss)],
    })
    ckpt_steps = np.arange(checkpoint_every, total_steps + 1, checkpoint_every)
    x = np.log(ckpt_steps / peak_step)
    base = 0.25 + 0.35 * np.exp(-0.5 * (x / 0.6) ** 2) + 0.05 * (ckpt_steps > peak_step)
    rows = []
    difficulty = rng.normal(0, 0.08, n_problems)
    run_name = name or f"continual-{target}"
    for s, b in zip(ckpt_steps, base):
        vals = np.clip(b + difficulty + rng.normal(0, perf_noise, n_problems), 0, 1)
        for j, v in enumerate(vals):
            rows.append({"run": run_name, "checkpoint": f"step-{int(s)}", "step": int(s), "tokens": int(s) * 16 * 256,
                         "probe": "suite_accuracy", "language": target, "identifier": f"problem-{j:02d}",
                         "layer": np.nan, "metric": "final_accuracy", "value": float(v), "n": 1})
    return BabelRun(sweep=pd.DataFrame(rows), loss_log=loss_log, target=target, name=run_name)


def write_run_dir(run: BabelRun, path) -> Path:
    """Write ``<path>/loss.jsonl`` and ``<path>/results/part-0.parquet`` (the layout of a run)."""
    path = Path(path)
    (path / "results").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({k: (v if not isinstance(v, (np.floating, np.integer)) else v.item()) for k, v in row.items()})
             for row in run.loss_log[["step", "loss", "loss_by_language"]].to_dict(orient="records")]
    atomic_write_text(path / "loss.jsonl", "\n".join(lines) + "\n")
    run.sweep.to_parquet(path / "results" / "part-0.parquet", index=False)
    return path


@dataclass(frozen=True)
class SyntheticTruth:
    """The noise-free quantities behind a generated run: ``best_step`` maximises the smoothed
    population-mean performance over checkpoints, ``share`` is Eq.2 there with the noise-free
    loss, alpha (same window as the estimator) and beta (its minimum)."""

    best_step: float
    share: float
    alpha: float
    beta: float
    curve: pd.DataFrame


@functools.lru_cache(maxsize=1)
def _gauss_hermite() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.hermite_e.hermegauss(48)


def _snapshot_steps(total: int, every: int, log_max: int) -> np.ndarray:
    steps = {0, total, *range(every, total + 1, every)}
    k = 1
    while k <= min(log_max, total):
        steps.add(k)
        k *= 2
    return np.array(sorted(steps), dtype=float)


def babel_like_arrays(
    rng: np.random.Generator,
    *,
    total_steps: int = 600,
    snapshot_every: int = 50,
    log_max: int = 32,
    n_items: int = 40,
    lines: int = 6,
    item_sd: float = 1.2,
    perf_floor: float = 0.12,
    perf_height: float = 0.35,
    peak_step: float = 150.0,
    peak_width: float = 0.8,
    loss_floor: float = 0.45,
    loss_fast: tuple[float, float] = (0.55, 15.0),
    loss_slow: tuple[float, float] = (0.2, 200.0),
    train_noise: float = 0.016,
    val_noise: float = 0.004,
    window: int = 5,
    alpha_mask=None,
) -> dict:
    """One generated continual run as arrays, shaped like the demo's (docs/fit.md, coverage).

    Checkpoints: 0, 1, 2, 4, ..., ``log_max``, every ``snapshot_every`` steps and the last step
    (pretrain's ``pythia`` schedule). Target loss L(t) = floor + a·exp(-t/tau_fast) + b·exp(-t/tau_slow);
    the training loss is L + N(0, ``train_noise``²) at every step, the held-out loss L + N(0,
    ``val_noise``²) at each checkpoint. Item i at checkpoint k scores Binomial(``lines``, p)/lines
    with logit p = logit mu(t_k) + u_i, u_i ~ N(0, ``item_sd``²), mu a bump on log(1 + t) peaking at
    ``peak_step``. ``alpha_mask(steps) -> bool mask`` says which logged steps alpha averages (truth
    uses the same steps as the estimator). Returns steps, values, val_steps, val, train_steps,
    train, truth_val, truth_train (:class:`SyntheticTruth` for each loss source).
    """
    ckpt = _snapshot_steps(total_steps, snapshot_every, log_max)
    train_steps = np.arange(1, total_steps + 1, dtype=float)

    def loss(t):
        return loss_floor + loss_fast[0] * np.exp(-t / loss_fast[1]) + loss_slow[0] * np.exp(-t / loss_slow[1])

    mu = perf_floor + perf_height * np.exp(-0.5 * ((np.log1p(ckpt) - np.log1p(peak_step)) / peak_width) ** 2)
    logit = np.log(mu / (1 - mu))
    u = rng.normal(0.0, item_sd, n_items)
    p = 1.0 / (1.0 + np.exp(-(logit[:, None] + u[None, :])))
    values = rng.binomial(lines, p) / lines
    val = loss(ckpt) + rng.normal(0.0, val_noise, ckpt.size)
    train = loss(train_steps) + rng.normal(0.0, train_noise, train_steps.size)
    # population mean over items: E_u[sigmoid(logit mu + u)] by Gauss-Hermite quadrature
    x, w = _gauss_hermite()
    pop = (1.0 / (1.0 + np.exp(-(logit[:, None] + item_sd * x[None, :])))) @ (w / w.sum())
    smooth = sliding_mean(pop, window=window)
    best = int(np.argmax(smooth))

    curve = pd.DataFrame({"step": ckpt, "mean": pop, "smoothed": smooth, "loss": loss(ckpt)})

    def truth(steps):
        mask = alpha_mask(steps) if alpha_mask is not None else np.zeros(steps.size, bool)
        a = float(loss(steps[mask]).mean()) if mask.any() else float("nan")
        b = float(loss(steps).min())
        return SyntheticTruth(best_step=float(ckpt[best]), share=float((loss(ckpt[best]) - b) / (a - b)), alpha=a,
                              beta=b, curve=curve)

    return {"steps": ckpt, "values": values, "val_steps": ckpt, "val": val, "train_steps": train_steps,
            "train": train, "truth_val": truth(ckpt), "truth_train": truth(train_steps)}


def synthetic_babel_run(seed: int = 0, *, target: str = "php", **kwargs) -> tuple[BabelRun, dict]:
    """:func:`babel_like_arrays` as a :class:`BabelRun` (per-item sweep rows ``"<split>:<concept>"``
    with n = 1, ``loss.jsonl`` rows, ``val.jsonl`` rows, ``total_steps``) and the arrays."""
    arrays = babel_like_arrays(np.random.default_rng(seed), **kwargs)
    steps, values = arrays["steps"], arrays["values"]
    n_items = values.shape[1]
    rows = [{"run": "synthetic", "checkpoint": f"checkpoint-{int(s)}", "step": int(s), "tokens": int(s) * 4096,
             "probe": "babel", "language": target,
             "identifier": f"{'python_only' if j % 2 else 'shared'}:concept_{j:03d}", "layer": np.nan,
             "metric": "line_acc", "value": float(values[k, j]), "n": 1}
            for k, s in enumerate(steps) for j in range(n_items)]
    loss_log = pd.DataFrame({"step": arrays["train_steps"].astype(int),
                             "loss": arrays["train"],
                             "loss_by_language": [{target: float(x)} for x in arrays["train"]]})
    val_log = pd.DataFrame({"step": arrays["val_steps"].astype(int), "tokens": 0, "language": target,
                            "loss": arrays["val"], "bpb": 0.0})
    total = int(arrays["train_steps"].max())
    run = BabelRun(sweep=pd.DataFrame(rows), loss_log=loss_log, val_log=val_log, target=target, name="synthetic",
                   total_steps=total)
    return run, arrays


@dataclass(frozen=True)
class CoverageResult:
    """How often Algorithm 1's interval held the true share over generated runs."""

    source: str
    n_rep: int
    coverage: float
    estimate_inside: float
    median_width: float
    bias: float
    rmse: float
    truth: float
    true_best_step: float
    mean_candidates: float
    settings: dict

    def to_dataframe(self) -> pd.DataFrame:
        row = {k: getattr(self, k) for k in ("source", "n_rep", "coverage", "estimate_inside", "median_width",
                                             "bias", "rmse", "truth", "true_best_step", "mean_candidates")}
        row.update(self.settings)
        return pd.DataFrame([row])

    def __str__(self) -> str:
        return (f"{self.source}: coverage {self.coverage:.3f} over {self.n_rep} runs (estimate inside "
                f"{self.estimate_inside:.3f}), median width {self.median_width:.3f}, bias {self.bias:+.4f}, "
                f"rmse {self.rmse:.4f}, true share {self.truth:.3f} at step {self.true_best_step:g}, "
                f"{self.mean_candidates:.1f} candidate checkpoints on average")


def algorithm1_coverage(n_rep: int = 300, *, source: str = "val", n_boot: int = 300, confidence: float = 0.9,
                        seed: int = 0, **kwargs) -> CoverageResult:
    """Run Algorithm 1 (:func:`~lensprobe.analysis.fit.recommend.share_at_best`, defaults as
    :func:`~lensprobe.analysis.fit.recommend.recommend_tokens`) on ``n_rep`` runs of :func:`babel_like_arrays`
    (``kwargs``) and count how often its interval holds the true share. ``source``: ``"val"``
    (held-out loss at the checkpoints) or ``"train"`` (per-step training loss, smoothed)."""
    from functools import partial

    if source not in ("val", "train"):
        raise ValueError(f"source must be 'val' or 'train', got {source!r}")
    if n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep}")
    total = kwargs.get("total_steps", 600)
    mask = partial(alpha_window_mask, run_steps=total)
    hit, inside, widths, errors, cands = 0, 0, [], [], []
    truth = None
    for r in range(n_rep):
        a = babel_like_arrays(np.random.default_rng(seed + r), alpha_mask=mask, **kwargs)
        if source == "val":
            steps, loss, truth, smooth = a["val_steps"], a["val"], a["truth_val"], 1
        else:
            steps, loss, truth = a["train_steps"], a["train"], a["truth_train"]
            smooth = default_loss_smoothing("train", steps.size)
        res = share_at_best(a["steps"], a["values"], steps, loss, loss_smooth=smooth, run_steps=total, n_boot=n_boot,
                            confidence=confidence, seed=seed + r)
        lo, hi = res.interval
        hit += lo <= truth.share <= hi
        inside += lo <= res.share <= hi
        widths.append(hi - lo)
        errors.append(res.share - truth.share)
        cands.append(int(res.candidates.sum()))
    err = np.asarray(errors)
    return CoverageResult(source=source, n_rep=n_rep, coverage=hit / n_rep, estimate_inside=inside / n_rep,
                          median_width=float(np.median(widths)), bias=float(err.mean()),
                          rmse=float(np.sqrt((err**2).mean())), truth=truth.share, true_best_step=truth.best_step,
                          mean_candidates=float(np.mean(cands)),
                          settings={"n_boot": n_boot, "confidence": confidence, "seed": seed, **kwargs})
