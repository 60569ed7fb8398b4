"""The Babel benchmark's evaluation as a sweep probe (see :mod:`lensprobe.babel.evaluation`).

Rows: ``probe="babel"``; per split x language x metric a summary row (``identifier`` = split, with
``_lo`` / ``_hi`` interval rows) and one row per item (``identifier`` = ``"<split>:<concept>"``,
``n`` = 1). See ``docs/babel.md``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import torch

from lensprobe.babel.evaluation import evaluate_babel
from lensprobe.babel.splits import SPLITS, BabelSplits
from lensprobe.engine.protocol import ModelProbe
from lensprobe.evaluate.runners import Executor
from lensprobe.probes.registry import register_probe

__all__ = ["BabelProbe"]


@register_probe
class BabelProbe(ModelProbe):
    """Synthetic Babel benchmark: greedy body completion; line accuracy, exact match, pass@1, body prior.

    Args:
        splits: the split manifest (``splits.json``) or a :class:`~lensprobe.babel.splits.BabelSplits`.
        languages: the languages whose bodies are completed.
        split_names: the splits evaluated.
        target: the target language of the ``target_only`` split (default: the first target).
        execute: run the completed functions' test cases in the sandbox (pass@1).
        batch_size: prompts per generation batch.
        n_boot: bootstrap resamples of the intervals.
        seed: bootstrap seed.
        limit: only the first N concepts of each split.
        max_new_tokens: tokens generated per body (default: 1.25 x the longest reference + 8).
    """

    name = "babel"

    def __init__(self, splits: BabelSplits | str, *, languages: Sequence[str] = ("python", "php"),
                 split_names: Sequence[str] = SPLITS, target: str | None = None, execute: bool = True,
                 batch_size: int = 64, n_boot: int = 1000, seed: int = 0, limit: int | None = None,
                 max_new_tokens: int | None = None) -> None:
        self.splits = splits if isinstance(splits, BabelSplits) else BabelSplits.load(splits)
        self.limit, self.max_new_tokens = limit, max_new_tokens
        self._executor: Any = None  # one sandbox executor for all checkpoints (its set-up is not free)
        self.languages, self.split_names, self.target = tuple(languages), tuple(split_names), target
        self.execute, self.batch_size, self.n_boot, self.seed = execute, batch_size, n_boot, seed

    def config(self) -> dict[str, Any]:
        digest = hashlib.sha256(json.dumps(self.splits.manifest(), sort_keys=True).encode()).hexdigest()[:16]
        return {"name": self.name, "row_format": 2, "splits": digest, "languages": list(self.languages),
                "split_names": list(self.split_names), "target": self.target, "execute": self.execute,
                "n_boot": self.n_boot, "seed": self.seed, "limit": self.limit,
                **({"max_new_tokens": self.max_new_tokens} if self.max_new_tokens is not None else {})}

    def _get_executor(self) -> Any:
        if self.execute and self._executor is None:
            self._executor = Executor(workers=1, timeout=20.0)
        return self._executor

    def run(self, model: torch.nn.Module, tokenizer: Any) -> list[dict[str, Any]]:
        ev = evaluate_babel(model, tokenizer, self.splits, languages=self.languages, split_names=self.split_names,
                            target=self.target, execute=self.execute, batch_size=self.batch_size,
                            n_boot=self.n_boot, seed=self.seed, limit=self.limit,
                            max_new_tokens=self.max_new_tokens, executor=self._get_executor())
        return ev.rows()
