"""pass@k as a probe over a checkpoint series: generate, execute, one row per (checkpoint, language).

Rows follow :data:`lensprobe.engine.protocol.ROW_COLUMNS` (``probe="eval"``, ``identifier`` = the task
family, ``layer=None``, ``metric="pass@k"``, ``n`` = problems evaluated); over a series the
checkpoint columns (run, checkpoint, step, tokens) are prepended.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from lensprobe.engine.protocol import CHECKPOINT_COLUMNS, ROW_COLUMNS
from lensprobe.evaluate.datasets import Problem
from lensprobe.evaluate.evaluation import evaluate_samples
from lensprobe.evaluate.generation import generate_completions

log = logging.getLogger(__name__)


def eval_probe_rows(model: Any, tokenizer: Any, problems: Mapping[str, Sequence[Problem]], *, n: int = 1,
                    ks: Iterable[int] = (1,), temperature: float = 0.0, top_p: float = 0.95,
                    max_new_tokens: int = 256, batch_size: int = 8, seed: int = 0, workers: int = 2,
                    timeout: float = 10.0, sandbox: str = "auto", cache_dir: Any = None,
                    exclude_unpassable: bool = True) -> list[dict[str, Any]]:
    """Rows of pass@k for one model; ``problems`` maps language -> problems of that language."""
    rows: list[dict[str, Any]] = []
    ks = tuple(ks)
    for language, probs in problems.items():
        probs = list(probs)
        if not probs:
            continue
        samples = generate_completions(model, tokenizer, probs, n=n, temperature=temperature, top_p=top_p,
                                       max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
        res = evaluate_samples(probs, samples, workers=workers, timeout=timeout, sandbox=sandbox,
                               cache_dir=cache_dir, exclude_unpassable=exclude_unpassable)
        n_problems = int(res.results["task_id"].nunique())
        for k in ks:
            if k > n:
                continue
            rows.append({"probe": "eval", "language": language, "identifier": probs[0].family, "layer": None,
                         "metric": f"pass@{k}", "value": res.pass_at(k) if n_problems else float("nan"),
                         "n": n_problems})
    return rows


def _tokenizer_for(ckpt: Any, series: Any) -> Any:
    from transformers import AutoTokenizer

    path = getattr(ckpt, "tokenizer_path", None) or getattr(series, "tokenizer_path", None)
    if path is None:
        raise ValueError(f"checkpoint {getattr(ckpt, 'name', ckpt)!r}: no tokenizer found (pass tokenizer=)")
    return AutoTokenizer.from_pretrained(str(path))


def evaluate_checkpoints(series: Any, problems: Mapping[str, Sequence[Problem]], *, tokenizer: Any = None,
                         **options: Any) -> pd.DataFrame:
    """pass@k over every checkpoint of ``series`` (anything with ``iter_models()`` yielding
    ``(checkpoint, model)``; see :class:`lensprobe.checkpoints.CheckpointSeries`).

    Returns a long table with ``CHECKPOINT_COLUMNS + ROW_COLUMNS``.
    """
    out: list[dict[str, Any]] = []
    run = getattr(series, "run", None)
    tok = tokenizer
    for ckpt, model in series.iter_models():
        if hasattr(model, "model") and hasattr(model, "tokenizer"):  # a LoadedModel
            model, tok_ = model.model, model.tokenizer
            tok = tokenizer or tok_
        if tok is None:
            tok = _tokenizer_for(ckpt, series)
        log.info("eval: checkpoint %s", getattr(ckpt, "name", ckpt))
        for row in eval_probe_rows(model, tok, problems, **options):
            out.append({"run": run, "checkpoint": getattr(ckpt, "name", str(ckpt)),
                        "step": getattr(ckpt, "step", None), "tokens": getattr(ckpt, "tokens", None), **row})
    return pd.DataFrame(out, columns=list(CHECKPOINT_COLUMNS + ROW_COLUMNS))
