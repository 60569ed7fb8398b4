"""The probe protocol: what every probe looks like to the engine and the sweep.

A probe declares the inputs it needs (batches of token ids), the modules it hooks, reduces each
activation *inside* the forward hook (so nothing of shape [layers x positions x vocab] is kept),
and finally returns tidy rows. Adding a probe touches no engine code.

Rows use :data:`lensprobe.table.ROW_COLUMNS`; the sweep prepends :data:`lensprobe.table.CHECKPOINT_COLUMNS`.
"""
from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch


@dataclass
class Batch:
    """One padded batch of token ids handed to the model.

    ``attention_mask`` marks real tokens (1) and padding (0); padding may be on either side.
    ``meta`` holds one dict per row (e.g. language, identifier, item index) for the probe's own use.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    meta: list[dict[str, Any]] = field(default_factory=list)

    @property
    def position_ids(self) -> torch.Tensor:
        """Positions that make padded rows equal their unpadded runs: cumsum(mask) - 1, clamped."""
        return (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    @property
    def last_index(self) -> torch.Tensor:
        """Index of each row's last real token (works for left and right padding)."""
        mask = self.attention_mask.long()
        t = mask.shape[-1]
        idx = torch.arange(t, device=mask.device).expand_as(mask)
        return torch.where(mask.bool(), idx, torch.full_like(idx, -1)).max(dim=-1).values

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.meta)


class Probe(abc.ABC):
    """Base class of every probe.

    Life cycle per checkpoint, driven by :func:`lensprobe.engine.hooks.run_probes`::

        probe.start(model, adapter)
        for batch in probe.batches(tokenizer):          # shared between probes with equal input_key()
            # forward pass; for every (point, module) in probe.hook_points(adapter):
            probe.on_activation(point, output, batch)    # inside the hook: reduce at once
            probe.on_batch_end(batch)
        rows = probe.finalize()                          # list of dicts with table.ROW_COLUMNS
    """

    #: short name written to the ``probe`` column
    name: str = "probe"

    def config(self) -> dict[str, Any]:
        """JSON-serialisable configuration; part of the sweep's resume key."""
        return {"name": self.name}

    def config_hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def input_key(self) -> str | None:
        """Probes returning the same non-None key receive identical batches and share forward passes."""
        return None

    @abc.abstractmethod
    def batches(self, tokenizer: Any) -> Iterable[Batch]:
        """The batches this probe needs (deterministic)."""

    @abc.abstractmethod
    def hook_points(self, adapter: Any) -> Mapping[str, torch.nn.Module]:
        """Name -> module whose forward *output* the probe receives in :meth:`on_activation`."""

    def needs_logits(self) -> bool:
        """Whether the engine must compute the model's own logits (most probes decode themselves)."""
        return False

    def start(self, model: torch.nn.Module, adapter: Any) -> None:
        """Reset accumulators for a new checkpoint."""

    @abc.abstractmethod
    def on_activation(self, point: str, output: torch.Tensor, batch: Batch) -> None:
        """Reduce one hooked activation immediately (called inside the forward hook, under no_grad)."""

    def on_batch_end(self, batch: Batch, logits: torch.Tensor | None = None) -> None:
        """Called after the forward pass of ``batch``."""

    @abc.abstractmethod
    def finalize(self) -> list[dict[str, Any]]:
        """Rows (dicts with :data:`lensprobe.table.ROW_COLUMNS`) for this checkpoint."""


class ModelProbe(abc.ABC):
    """A probe that drives the model itself (e.g. generation + execution) instead of hooking a
    shared forward pass. The sweep calls :meth:`run` once per checkpoint."""

    name: str = "model_probe"

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def config_hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @abc.abstractmethod
    def run(self, model: torch.nn.Module, tokenizer: Any) -> list[dict[str, Any]]:
        """Rows (dicts with :data:`lensprobe.table.ROW_COLUMNS`) for this checkpoint."""
