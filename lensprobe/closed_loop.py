"""Algorithm 1's closed loop on the synthetic Babel benchmark (docs/fit.md, "The closed loop").

1. continual runs (Python base -> PHP with the Python tracer), swept with the Babel probe: the demo
   (:func:`lensprobe.demo.run_demo`) into ``OUT/continual``;
2. Algorithm 1 on them (:func:`~lensprobe.analysis.fit.recommend_tokens`) and the performance they
   predict as a function of the Python share (:func:`~lensprobe.analysis.fit.loop.prediction_curve`);
3. mixture runs at Eq.3 shares spanning what can be trained: a grid, the natural corpus (all the PHP
   tokens the continual run saw) and the recommendation (trained at the token cap, and marked, when
   it asks for more). Each is a mixture file ``OUT/mixtures/<point>-seed<k>.yaml`` trained with
   ``lensprobe pretrain babel-mixture --mixture FILE`` from the seed's Python base;
4. each mixture run's last checkpoint evaluated with the same probe; ``OUT/predicted_vs_actual.csv``,
   ``OUT/loop.json``, ``OUT/figures/loop.png``.

Every phase resumes: the demo, each training (its own resume) and the sweeps skip finished work.
"""
from __future__ import annotations

import json
import math
import shlex
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from lensprobe.analysis.fit import BabelRun, NoFiniteTokens, recommend_tokens
from lensprobe.analysis.fit.loop import (final_performance, loop_statistics, loop_table, plan_points,
                                         prediction_curve)
from lensprobe.analysis.fit.runs import read_jsonl
from lensprobe.babel.splits import BabelSplits
from lensprobe.checkpoints import CheckpointSeries
from lensprobe.demo import BABEL_CORPUS, DEFAULT, QUICK, DemoSettings, run_demo
from lensprobe.files import atomic_write_json, atomic_write_text
from lensprobe.mixture_file import write_mixture
from lensprobe.present.loop import plot_loop, save_loop_figure
from lensprobe.probes.babel import BabelProbe
from lensprobe.sweep import read_sweep, run_sweep

__all__ = ["LoopSettings", "QUICK_LOOP", "DEFAULT_LOOP", "run_loop", "IDENTIFIERS", "MIXTURE_RECIPE"]

#: the items Algorithm 1's performance reads (docs/fit.md, "Which items enter the performance curve")
IDENTIFIERS = ("python_only", "shared")
MIXTURE_RECIPE = "babel-mixture"


@dataclass(frozen=True)
class LoopSettings:
    """Sizes of one loop variant: the continual runs (the demo's settings), the grid of mixture runs
    (``multiples`` of the natural corpus's PHP tokens), the cap on a mixture run's PHP tokens
    (``cap_multiple`` x natural; Algorithm 1's recommendation beyond it is trained at the cap and
    marked), and the intervals (``confidence``, ``n_boot``)."""

    continual: DemoSettings
    multiples: tuple[float, ...] = (0.0625, 0.25)
    cap_multiple: float = 4.0
    confidence: float = 0.9
    n_boot: int = 1000
    mixture_overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.cap_multiple >= 1:
            raise ValueError(f"cap_multiple must be >= 1 (the natural corpus is always trained), got {self.cap_multiple}")
        if any(not m > 0 for m in self.multiples):
            raise ValueError(f"multiples must be positive, got {self.multiples}")


#: --quick: the quick demo's continual run (shipped base, 158 steps); 4 mixture runs, the largest 4x natural
QUICK_LOOP = LoopSettings(continual=QUICK, multiples=(0.0625, 0.25), cap_multiple=4.0)
#: default: the demo's continual run (601 steps) from the shipped base; 5 mixture runs, the largest 3x natural
DEFAULT_LOOP = LoopSettings(continual=replace(DEFAULT, train_base=False), multiples=(0.0625, 0.25, 0.5),
                            cap_multiple=3.0)


def _log(msg: str) -> None:
    print(f"[loop {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _tokens_by_language(checkpoint: Path) -> dict[str, int]:
    meta = checkpoint / "checkpoint.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint.json (tokens seen unknown)")
    return {k: int(v) for k, v in (json.loads(meta.read_text()).get("tokens_by_language") or {}).items()}


def _last_checkpoint(run_dir: Path) -> Path:
    ckpts = sorted((p for p in run_dir.glob("checkpoint-*") if (p / "config.json").is_file()),
                   key=lambda p: int(p.name.split("-")[1]))
    if not ckpts:
        raise FileNotFoundError(f"{run_dir}: no checkpoints")
    return ckpts[-1]


def _seen(run_dir: Path, base: Path, language: str) -> int:
    """Tokens of ``language`` the run trained on itself (its last checkpoint's count minus the base's)."""
    return _tokens_by_language(_last_checkpoint(run_dir)).get(language, 0) - _tokens_by_language(base).get(language, 0)


def _pretrain(argv: list[str], commands: list[str], log: Callable[[str], None]) -> None:
    """``lensprobe pretrain ...`` through the CLI's own entry point (as a user runs it)."""
    from lensprobe.cli import main as cli_main

    cmd = shlex.join(["lensprobe", *argv])
    commands.append(cmd)
    log(f"$ {cmd}")
    rc = cli_main(argv)
    if rc == 143:
        raise KeyboardInterrupt(f"{cmd}: interrupted; re-run the loop to resume")
    if rc != 0:
        raise RuntimeError(f"{cmd}: exit code {rc}")


def run_loop(out: str | Path, *, settings: LoopSettings = DEFAULT_LOOP, seeds: int = 1,
             base: str | Path | Sequence[str | Path] | None = None,
             log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run the closed loop into ``out`` (re-running resumes). Returns the summary written to
    ``out/loop.json``: points, Algorithm 1's recommendation, statistics, timings, commands."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    commands: list[str] = []
    s = settings.continual

    # 1. continual runs + sweep ----------------------------------------------------------------
    demo = run_demo(out / "continual", seeds=seeds, settings=s, base=base, log=log)
    timings["continual"] = time.perf_counter() - t0
    commands += json.loads((out / "continual" / "commands.json").read_text())
    table = read_sweep(out / "continual")
    runs = [Path(r) for r in demo["runs"]]
    bases = {int(k): Path(v) for k, v in demo["bases"].items()}
    first = runs[0]
    eta_python = _tokens_by_language(bases[0]).get("python", 0)
    if eta_python <= 0:
        raise ValueError(f"base {bases[0]}: its checkpoint.json records no Python tokens (eta_python of Eq.3)")
    natural = _seen(first, bases[0], "php")

    # 2. Algorithm 1 and its prediction ----------------------------------------------------------
    t = time.perf_counter()
    meta = json.loads((first / "run.json").read_text())
    cont = BabelRun(sweep=table[table["probe"] == "babel"], loss_log=read_jsonl(first / "loss.jsonl"),
                    val_log=read_jsonl(first / "val.jsonl"), target="php", name=first.name,
                    total_steps=meta.get("total_steps"))
    n_steps = table.loc[table["probe"] == "babel", "step"].nunique()
    window = min(5, max(1, n_steps // 3))  # the demo's smoothing window
    rec_kw = dict(metric="line_acc", probe="babel", identifiers=IDENTIFIERS, window=window)
    try:
        rec = recommend_tokens(cont, eta_python=eta_python, n_boot=settings.n_boot, confidence=settings.confidence,
                               **rec_kw)
        recommendation = {"share": rec.share, "share_interval": list(rec.share_interval), "tokens": rec.tokens,
                          "tokens_interval": list(rec.tokens_interval), "best_step": rec.best_step,
                          "candidates": list(rec.candidates), "loss_source": rec.loss_source,
                          "resampled": rec.resampled}
        rec_share = rec.share
    except NoFiniteTokens as exc:  # share 0: "keep training"
        recommendation = {"share": 0.0, "tokens": math.inf, "error": str(exc)}
        rec_share = 0.0
    prediction = prediction_curve(cont, n_boot=settings.n_boot, confidence=settings.confidence, **rec_kw)
    atomic_write_text(out / "prediction_curve.csv", prediction.curve.to_csv(index=False))
    band = prediction.predict(np.linspace(0.0, 1.0, 201))
    atomic_write_text(out / "prediction_band.csv", band.to_csv(index=False))
    timings["algorithm1"] = time.perf_counter() - t
    log(f"Algorithm 1: share {rec_share:.4g} -> " + (f"{recommendation['tokens']:,.0f}" if math.isfinite(
        recommendation["tokens"]) else "no finite number of") + f" PHP tokens for {eta_python:,} Python tokens; "
        f"natural corpus {natural:,} PHP tokens")

    # 3. mixture points, files and runs ---------------------------------------------------------
    context = int(meta.get("context", 256))
    batch_tokens = int(json.loads((first / "run.json").read_text()).get("global_batch", 16)) * context
    points = plan_points(eta_python=eta_python, natural_tokens=natural, recommended_share=rec_share,
                         cap_tokens=int(round(settings.cap_multiple * natural)), multiples=settings.multiples,
                         min_tokens=batch_tokens)
    tracer = s.continual_python_tokens / s.continual_php_tokens  # the continual run's Python tracer, kept
    t = time.perf_counter()
    mix_dir = out / "mixtures"
    run_dirs: dict[tuple[str, int], Path] = {}
    for k in range(seeds):
        for p in points:
            path = mix_dir / f"{p.name}-seed{k}.yaml"
            # the tracer, at least one training window of Python (a corpus language needs context+1 tokens)
            python_tokens = max(int(round(tracer * p.eta_target)), context + 1)
            write_mixture(path, {"php": p.eta_target, "python": python_tokens},
                          source="lensprobe.closed_loop (benchmarks/closed_loop.py)",
                          notes=f"{p.note}. Eq.3 counts the base's Python tokens ({p.eta_python:,}) against this "
                                f"run's PHP tokens; the Python tracer ({tracer:.4g} of the PHP tokens, as in the "
                                "continual run) is outside Eq.3 on both sides.",
                          extra={"eq3": {"eta_python": p.eta_python, "eta_target": p.eta_target, "share": p.share},
                                 "point": p.to_dict(), "base": str(bases[k]), "seed": k})
            run_dir = mix_dir / "runs" / f"{p.name}-seed{k}"
            corpus = "data.corpus=" + json.dumps({**BABEL_CORPUS, "seed": k, "stage": "continual"})
            _pretrain(["pretrain", MIXTURE_RECIPE, "--mixture", str(path), "--out", str(run_dir),
                       "--set", f"model.init_from={bases[k]}", "--set", f"seed={k}", "--set", corpus,
                       *[x for o in settings.mixture_overrides for x in ("--set", o)]], commands, log)
            run_dirs[(p.name, k)] = run_dir
    timings["mixture_training"] = time.perf_counter() - t

    # 4. evaluate each mixture run's last checkpoint with the same probe --------------------------
    t = time.perf_counter()
    splits = {k: BabelSplits.load(out / "continual" / f"babel_splits{'' if k == 0 else f'-seed{k}'}.json")
              for k in range(seeds)}
    for (name, k), run_dir in run_dirs.items():
        series = CheckpointSeries(run_dir, run=run_dir.name)
        series = series.select(steps=[series.steps[-1]])
        probe = BabelProbe(splits[k], languages=("python", "php"),
                           split_names=("shared", "python_only", "target_only", "control"), execute=False,
                           n_boot=s.n_boot, limit=s.items_per_split)
        res = run_sweep(series, [probe], out_dir=mix_dir, log=log)
        if res.failed:
            raise RuntimeError(f"sweep of {run_dir} failed on {res.failed}")
    mix_table = read_sweep(mix_dir)
    timings["mixture_sweep"] = time.perf_counter() - t

    rows, extra_rows, item_values = [], [], {}
    for (name, k), run_dir in run_dirs.items():
        sel = mix_table[mix_table["run"] == run_dir.name]
        perf = final_performance(sel, metric="line_acc", language="php", identifiers=IDENTIFIERS,
                                 n_boot=settings.n_boot, confidence=settings.confidence, seed=k)
        seen = _seen(run_dir, bases[k], "php")
        rows.append({"point": name, "seed": k, "run": run_dir.name, "value": perf["value"], "lo": perf["lo"],
                     "hi": perf["hi"], "n_items": perf["n_items"], "tokens_seen": seen})
        last = sel[sel["step"] == perf["step"]]
        summ = last[(last["probe"] == "babel") & (last["metric"] == "line_acc") & last["identifier"].isin(
            ["python_only", "shared", "target_only", "control"])]
        extra = {f"{r.language}_{r.identifier}": r.value for r in summ.itertuples()}
        prior = last[(last["metric"] == "line_acc_prior") & (last["language"] == "php")
                     & (last["identifier"] == "python_only")]["value"]
        extra_rows.append({"point": name, "seed": k, "run": run_dir.name, "step": perf["step"], "tokens_seen": seen,
                           **extra, "php_python_only_prior": float(prior.iloc[0]) if len(prior) else np.nan})
        ident = last["identifier"].fillna("").astype(str)
        items = last[((last["probe"] == "babel") & (last["metric"] == "line_acc") & (last["language"] == "php")
                      & (pd.to_numeric(last["n"], errors="coerce") == 1)).to_numpy(bool)
                     & np.array([x.startswith(tuple(f"{w}:" for w in IDENTIFIERS)) for x in ident], dtype=bool)]
        item_values[(name, k)] = items.set_index("identifier")["value"]
    table_out = loop_table(points, prediction, pd.DataFrame(rows))
    diffs = None
    if seeds == 1 and ("recommended", 0) in item_values and ("natural", 0) in item_values:
        d = (item_values[("recommended", 0)] - item_values[("natural", 0)]).dropna()
        diffs = d.to_numpy(float)
    st = loop_statistics(table_out, item_differences=diffs, confidence=settings.confidence, n_boot=settings.n_boot)
    atomic_write_text(out / "predicted_vs_actual.csv", table_out.to_csv(index=False))
    atomic_write_text(out / "mixture_runs.csv", pd.DataFrame(extra_rows).to_csv(index=False))

    save_loop_figure(plot_loop(prediction.curve, table_out, band=band, recommendation=recommendation, natural_share=next(
        p.share for p in points if p.kind == "natural"), confidence=settings.confidence), out / "figures" / "loop")
    timings["total"] = time.perf_counter() - t0
    summary = {
        "seeds": seeds, "settings": {**asdict(settings), "continual": asdict(s)}, "eta_python": eta_python,
        "bases": {str(k): str(v) for k, v in bases.items()}, "natural_tokens": natural,
        "tracer_ratio": tracer, "window": window, "recommendation": recommendation,
        "points": [p.to_dict() for p in points], "statistics": st.to_dict(),
        "prediction": {"loss_source": prediction.loss_source, "loss_noise": prediction.loss_noise,
                       "alpha": prediction.alpha, "beta": prediction.beta, "units": prediction.units,
                       "n_units": prediction.n_units, "confidence": prediction.confidence,
                       "n_boot": prediction.n_boot},
        "timings_s": timings, "commands": commands,
    }
    atomic_write_json(out / "loop.json", _jsonable(summary))
    log(f"done in {timings['total']:.0f}s: {out / 'predicted_vs_actual.csv'}")
    return summary


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
