"""Functional correctness as a probe: generate completions, execute them in the sandbox, pass@k.

:class:`FunctionalProbe` is a :class:`~lensprobe.engine.protocol.ModelProbe` (it drives the model
itself); spec name ``functional``. Rows follow :data:`lensprobe.table.ROW_COLUMNS`:
``probe="eval"``, ``language``, ``identifier`` = the task family, ``layer=None``,
``metric="pass@k"``, ``n`` = problems evaluated. :func:`evaluate_checkpoints` runs it over a
series through the sweep. See ``docs/evaluate.md``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import pandas as pd
import torch

from lensprobe.checkpoints import CheckpointSeries
from lensprobe.engine.protocol import ModelProbe
from lensprobe.evaluate.datasets import Problem, load_problems
from lensprobe.evaluate.evaluation import evaluate_samples
from lensprobe.evaluate.generation import generate_completions
from lensprobe.probes.registry import register_probe
from lensprobe.sweep import run_sweep

__all__ = ["FunctionalProbe", "evaluate_checkpoints"]

log = logging.getLogger(__name__)


def _problems_by_language(problems: Any, *, family: str | None, language: str | None,
                          limit: int | None) -> dict[str, list[Problem]]:
    if isinstance(problems, (str, os.PathLike)):
        loaded = load_problems(problems, family=family, language=language)
        problems = {loaded[0].language: loaded} if loaded else {}
    elif not isinstance(problems, Mapping):
        items = list(problems)
        problems = {}
        for p in items:
            problems.setdefault(p.language, []).append(p)
    out = {lang: list(probs)[:limit] if limit is not None else list(probs) for lang, probs in problems.items()}
    bad = [p for probs in out.values() for p in probs if not isinstance(p, Problem)]
    if bad:
        raise TypeError(f"problems must be Problem objects, got {type(bad[0]).__name__}")
    if not any(out.values()):
        raise ValueError("no problems to evaluate")
    return out


@register_probe(name="functional")
class FunctionalProbe(ModelProbe):
    """pass@k of sampled completions executed in the sandbox, one row per language and k (rows ``probe="eval"``).

    Args:
        problems: a problem file (.jsonl or .jsonl.gz), a list of problems, or a mapping
            language -> problems.
        family: the file's dataset family: humaneval-x, multipl-e or mxeval (inferred when omitted).
        language: override the language read from the file.
        limit: only the first N problems of each language.
        n: samples per problem.
        ks: the k of pass@k (those above ``n`` are left out).
        temperature: sampling temperature (0: greedy).
        top_p: nucleus sampling mass.
        max_new_tokens: tokens generated per completion.
        batch_size: prompts per generation batch.
        seed: sampling seed.
        workers: parallel sandboxes.
        timeout: seconds per program run.
        sandbox: required sandbox level (auto, bwrap, unshare or plain).
        cache_dir: directory of compiled-program caches.
        exclude_unpassable: skip problems known to be unpassable.
    """

    name = "eval"

    def __init__(self, problems: str | Path | Sequence[Problem] | Mapping[str, Sequence[Problem]], *,
                 family: str | None = None, language: str | None = None, limit: int | None = None, n: int = 1,
                 ks: Sequence[int] = (1,), temperature: float = 0.0, top_p: float = 0.95, max_new_tokens: int = 256,
                 batch_size: int = 8, seed: int = 0, workers: int = 2, timeout: float = 10.0,
                 sandbox: Literal["auto", "bwrap", "unshare", "plain"] = "auto", cache_dir: str | None = None,
                 exclude_unpassable: bool = True) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.problems = _problems_by_language(problems, family=family, language=language, limit=limit)
        self.ks = tuple(int(k) for k in ks)
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive integers, got {ks!r}")
        self.generation = dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, seed=seed)
        self.execution = dict(workers=workers, timeout=timeout, sandbox=sandbox, cache_dir=cache_dir,
                              exclude_unpassable=exclude_unpassable)

    def config(self) -> dict[str, Any]:
        blob = json.dumps({lang: [dataclasses.asdict(p) for p in probs] for lang, probs in self.problems.items()},
                          sort_keys=True, default=str)
        return {"name": self.name, "problems": hashlib.sha256(blob.encode()).hexdigest()[:16], "ks": list(self.ks),
                **self.generation, "timeout": self.execution["timeout"],
                "exclude_unpassable": self.execution["exclude_unpassable"]}

    def run(self, model: torch.nn.Module, tokenizer: Any) -> list[dict[str, Any]]:
        if tokenizer is None:
            raise ValueError("the functional probe needs a tokenizer to generate completions")
        rows: list[dict[str, Any]] = []
        n = self.generation["n"]
        for language, probs in self.problems.items():
            if not probs:
                continue
            samples = generate_completions(model, tokenizer, probs, **self.generation)
            res = evaluate_samples(probs, samples, **self.execution)
            n_problems = int(res.results["task_id"].nunique())
            for k in self.ks:
                if k > n:
                    continue
                rows.append({"probe": self.name, "language": language, "identifier": probs[0].family, "layer": None,
                             "metric": f"pass@{k}", "value": res.pass_at(k) if n_problems else float("nan"),
                             "n": n_problems})
        return rows


def evaluate_checkpoints(series: CheckpointSeries | str | os.PathLike, problems: Any, *, tokenizer: Any = None,
                         out_dir: str | Path | None = None, device: str | torch.device = "cpu",
                         progress: bool = False, **options: Any) -> pd.DataFrame:
    """pass@k over every checkpoint of ``series`` (a :class:`CheckpointSeries` or a run directory).

    A thin call of :func:`lensprobe.sweep.run_sweep` with a :class:`FunctionalProbe` built from
    ``problems`` and ``options`` (its keyword arguments): in memory, or resumable under
    ``out_dir``. Returns the table of :data:`lensprobe.table.SWEEP_COLUMNS`. ``progress``: the
    sweep's bar over the checkpoints (stderr).
    """
    probe = FunctionalProbe(problems, **options)
    result = run_sweep(series, [probe], out_dir=out_dir, tokenizer=tokenizer, device=device, fail_fast=True,
                       log_rows=False, progress=progress, log=log.info,
                       on_checkpoint=lambda info, rows: log.info("eval: checkpoint %s done", info.name))
    return result.to_dataframe()
