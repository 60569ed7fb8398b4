"""Small generated runs for examples, docs and tests (no model, no network).

``synthetic_continual_run`` mimics a Babel continual run: the target-language loss falls from
``alpha`` toward ``beta`` exponentially, and the per-problem performance rises (translation) and
then declines (transition) around ``peak_step``, with noise."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lensprobe._io import atomic_write_text

from .runs import BabelRun

__all__ = ["synthetic_continual_run", "write_run_dir"]


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
