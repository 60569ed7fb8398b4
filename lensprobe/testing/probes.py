"""Toy probes for engine and sweep tests, one per protocol: :class:`LastTokenNorm` (a :class:`Probe`, hooks on
every block, optional sleep per batch) and :class:`ParamSum` (a :class:`ModelProbe` that can fail on request).
Importable by name, so a test's subprocess can use them too."""
from __future__ import annotations

import os
import time

import torch

from lensprobe.engine.hooks import block_hook_points
from lensprobe.engine.protocol import Batch, ModelProbe, Probe


class LastTokenNorm(Probe):
    """Mean L2 norm of each block's output at the last real token; optional sleep per batch."""

    name = "last_norm"

    def __init__(self, *, n_batches: int = 2, sleep: float = 0.0, seed: int = 0, vocab: int = 101):
        self.n_batches, self.sleep, self.seed, self.vocab = n_batches, sleep, seed, vocab

    def config(self):
        return {"name": self.name, "n_batches": self.n_batches, "seed": self.seed}

    def input_key(self):
        return f"random-{self.seed}-{self.n_batches}"

    def batches(self, tokenizer):
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.n_batches):
            ids = torch.randint(4, self.vocab, (3, 7), generator=g)
            yield Batch(ids, torch.ones_like(ids))

    def hook_points(self, adapter):
        return block_hook_points(adapter)

    def start(self, model, adapter):
        self.sums, self.count = {}, 0

    def on_activation(self, point, output, batch):
        h = output[torch.arange(output.shape[0]), batch.last_index]
        self.sums[point] = self.sums.get(point, 0.0) + float(h.norm(dim=-1).sum())

    def on_batch_end(self, batch, logits=None):
        self.count += batch.input_ids.shape[0]
        if self.sleep:
            time.sleep(self.sleep)

    def finalize(self):
        return [dict(probe=self.name, language=None, identifier=None, layer=int(p.split(".")[1]),
                     metric="last_norm", value=s / self.count, n=self.count) for p, s in sorted(self.sums.items())]


class ParamSum(ModelProbe):
    """A model probe: the sum of all parameters; fails on a chosen checkpoint if asked."""

    name = "param_sum"

    def __init__(self, *, fail_marker: str | None = None):
        self.fail_marker = fail_marker

    def run(self, model, tokenizer):
        if self.fail_marker and os.path.exists(self.fail_marker):
            raise RuntimeError("planted failure")
        total = sum(float(p.detach().double().sum()) for p in model.parameters())
        return [dict(probe=self.name, language=None, identifier=None, layer=None, metric="param_sum",
                     value=total, n=1)]
