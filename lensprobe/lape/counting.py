"""Streaming activation statistics for LAPE: how often each MLP neuron is > 0, per group of sequences.

A *neuron* is one coordinate of the MLP activation after the nonlinearity and before the down
projection (GPT-2 / GPT-NeoX: ``mlp.act``; Llama-style gated MLPs: ``act_fn(gate_proj(x))``, the
output of ``mlp.act_fn``, never ``act(gate) * up``). The architecture adapter names that module
per block; :class:`ActivationCounter` hooks it and keeps, for every *group* of sequences,

* ``over_zero[group, layer, neuron]``: non-padding tokens on which the neuron's value was > 0;
* ``n_tokens[group]``: non-padding tokens seen.

Memory is O(groups x layers x neurons), whatever the number of tokens. A group is normally a
contiguous slice of one language's sequences; languages are groups summed together, and a
shuffled-language-label null re-sums the same groups under permuted labels (no extra forward
pass, see :mod:`lensprobe.lape.null`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from lensprobe.engine.adapters.registry import get_adapter

__all__ = ["ActivationCounter", "BatchPlan", "neuron_modules", "backbone", "aggregate_probabilities",
           "count_activations"]


def neuron_modules(model: torch.nn.Module, adapter: Any = None) -> list[torch.nn.Module]:
    """The per-block modules whose forward output is the neuron activation (from the adapter)."""
    if adapter is None:
        adapter = get_adapter(model)
    modules = list(adapter.neuron_modules)
    if not modules:
        raise ValueError(f"adapter {adapter!r} names no neuron modules")
    return modules


def backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer without its LM head (no [batch x positions x vocab] logits are computed)."""
    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None) if prefix else None
    return inner if isinstance(inner, torch.nn.Module) else model


@dataclass(frozen=True)
class BatchPlan:
    """One batch's layout, computed once and used for every layer (see :meth:`ActivationCounter.prepare`)."""

    shape: tuple[int, int]            #: (batch, positions)
    gids: torch.Tensor                #: int64 [U]: the distinct groups of the batch
    weights: torch.Tensor | None      #: float32 [U, batch*positions]: 1 on group u's non-padding tokens
    mask: torch.Tensor                #: bool [batch, positions]
    row_slot: torch.Tensor            #: int64 [batch]: index into gids of each row
    single: int | None = None         #: the group when the whole batch is one group


class ActivationCounter:
    """Per-group counts of positive neuron activations over non-padding tokens.

    Use it directly (``update`` with activations you computed), or let it hook a model::

        counter = ActivationCounter(n_layers=len(modules), n_groups=2)
        with counter.hooked(modules):
            for input_ids, mask, groups in data:
                counter.forward(model, input_ids, mask, groups)
        probs = counter.probabilities(group_language=[0, 1], n_languages=2)
    """

    def __init__(self, *, n_layers: int, n_neurons: int | None = None, n_groups: int = 1,
                 device: torch.device | str | None = None) -> None:
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if int(n_groups) < 1:
            raise ValueError(f"n_groups must be >= 1, got {n_groups}")
        if n_neurons is not None and int(n_neurons) < 1:
            raise ValueError(f"n_neurons must be >= 1, got {n_neurons}")
        self.n_layers = int(n_layers)
        self.n_groups = int(n_groups)
        self.n_neurons = None if n_neurons is None else int(n_neurons)
        self.device = torch.device(device) if device is not None else None
        self.over_zero: torch.Tensor | None = None
        self.n_tokens = torch.zeros(self.n_groups, dtype=torch.int64)
        self._seen_layers: set[int] = set()
        self._current: BatchPlan | None = None
        if self.n_neurons is not None and self.device is not None:
            self._allocate(self.n_neurons, self.device)

    # -- storage --------------------------------------------------------------------------------
    def _allocate(self, n_neurons: int, device: torch.device) -> None:
        self.n_neurons = n_neurons
        self.device = device
        with torch.inference_mode(False):  # normal tensors, also when allocated inside an inference-mode hook
            self.over_zero = torch.zeros(self.n_groups, self.n_layers, n_neurons, dtype=torch.int64, device=device)
            self.n_tokens = self.n_tokens.clone().to(device)

    def reset(self) -> None:
        """Zero all counts (keeps the shape)."""
        if self.over_zero is not None:
            self.over_zero.zero_()
        self.n_tokens.zero_()
        self._seen_layers.clear()

    # -- accumulation ---------------------------------------------------------------------------
    @staticmethod
    def _as_groups(groups: torch.Tensor | Sequence[int] | int | None, batch: int, device) -> torch.Tensor | int:
        if groups is None:
            return 0
        if isinstance(groups, (int, np.integer)):
            return int(groups)
        g = torch.as_tensor(groups, dtype=torch.int64, device=device)
        if g.shape != (batch,):
            raise ValueError(f"groups must have one entry per row ({batch}), got shape {tuple(g.shape)}")
        if bool((g == g[0]).all()):
            return int(g[0])
        return g

    def _check_group(self, groups: torch.Tensor | int) -> None:
        lo, hi = (groups, groups) if isinstance(groups, int) else (int(groups.min()), int(groups.max()))
        if lo < 0 or hi >= self.n_groups:
            raise ValueError(f"group ids must be in [0, {self.n_groups}), got {lo}..{hi}")

    def update(self, layer: int, activation: torch.Tensor, attention_mask: torch.Tensor | None = None,
               groups: torch.Tensor | Sequence[int] | int | None = None) -> None:
        """Add one layer's activation ``[batch, positions, neurons]`` (or ``[batch*positions, neurons]``)."""
        if attention_mask is None:
            if activation.dim() == 2:
                activation = activation.unsqueeze(0)
            if activation.dim() != 3:
                raise ValueError(f"activation must be [batch, positions, neurons], got {tuple(activation.shape)}")
            attention_mask = torch.ones(activation.shape[:2], dtype=torch.long, device=activation.device)
        self.update_prepared(layer, activation, self.prepare(attention_mask, groups))

    def add_tokens(self, attention_mask: torch.Tensor, groups: torch.Tensor | Sequence[int] | int | None = None) -> None:
        """Count the non-padding tokens of one batch (once per batch, not per layer)."""
        mask = attention_mask.to(self.n_tokens.device)
        g = self._as_groups(groups, mask.shape[0], self.n_tokens.device)
        self._check_group(g)
        if isinstance(g, int):
            self.n_tokens[g] += mask.long().sum()
        else:
            self.n_tokens.index_add_(0, g, mask.long().sum(dim=1))

    # -- hooking --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def hooked(self, modules: Sequence[torch.nn.Module]) -> Iterator["ActivationCounter"]:
        """Register forward hooks on one neuron module per block; each forward adds to the counts.

        Set the batch's padding mask and groups with :meth:`forward` (or :meth:`batch_context`).
        """
        modules = list(modules)
        if len(modules) != self.n_layers:
            raise ValueError(f"{len(modules)} neuron modules for a counter of {self.n_layers} layers")
        handles = []

        def make_hook(layer: int):
            def hook(_module, _inputs, output):
                if self._current is None:
                    raise RuntimeError("ActivationCounter hook fired outside forward()/batch_context()")
                self.update_prepared(layer, output, self._current)
            return hook

        try:
            for i, m in enumerate(modules):
                handles.append(m.register_forward_hook(make_hook(i)))
            yield self
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def batch_context(self, attention_mask: torch.Tensor, groups: torch.Tensor | Sequence[int] | int | None = None):
        """Within this block, hooked forwards count under this padding mask and these groups."""
        self._current = self.prepare(attention_mask, groups)
        try:
            yield
        finally:
            self._current = None
        self.add_tokens(attention_mask, groups)

    def prepare(self, attention_mask: torch.Tensor, groups: torch.Tensor | Sequence[int] | int | None = None
                ) -> BatchPlan:
        """Validate one batch's mask and groups once, for :meth:`update_prepared` on every layer."""
        if attention_mask.dim() != 2:
            raise ValueError(f"attention_mask must be [batch, positions], got {tuple(attention_mask.shape)}")
        dev = self.over_zero.device if self.over_zero is not None else attention_mask.device
        b, t = attention_mask.shape
        g = self._as_groups(groups, b, dev)
        self._check_group(g)
        if isinstance(g, int):
            gids = torch.tensor([g], dtype=torch.int64, device=dev)
            row_slot = torch.zeros(b, dtype=torch.int64, device=attention_mask.device)
        else:
            gids, row_slot = torch.unique(g, return_inverse=True)
            row_slot = row_slot.to(attention_mask.device)
        onehot = torch.nn.functional.one_hot(row_slot, len(gids)).to(torch.float32)  # [batch, U]
        weights = None
        if b * t < 2 ** 24:  # fp32 sums of 0/1 values are exact below 2^24 terms
            weights = (onehot.T[:, :, None] * attention_mask.to(torch.float32)[None]).reshape(len(gids), b * t)
        return BatchPlan((b, t), gids, weights, attention_mask.to(torch.bool), row_slot,
                         g if isinstance(g, int) else None)

    def update_prepared(self, layer: int, output: torch.Tensor, plan: BatchPlan) -> None:
        """Fast :meth:`update` for a batch planned by :meth:`prepare` (called from forward hooks).

        Per group the count is ``weights @ (activation > 0)``: one matrix product over the
        batch's tokens, where ``weights[u, token]`` is 1 on the non-padding tokens of group ``u``.
        """
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer index {layer} out of range [0, {self.n_layers})")
        b, t = plan.shape
        n = output.shape[-1]
        if output.numel() != b * t * n:
            raise ValueError(f"layer {layer}: activation of shape {tuple(output.shape)} does not match the "
                             f"batch {b}x{t}")
        if self.over_zero is None:
            self._allocate(n, output.device)
        elif n != self.n_neurons:
            raise ValueError(f"layer {layer} has {n} neurons, expected {self.n_neurons}")
        positive = output.detach().reshape(b * t, n) > 0
        if plan.weights is not None:
            w = plan.weights if plan.weights.device == positive.device else plan.weights.to(positive.device)
            part = (w @ positive.to(torch.float32)).round_().to(torch.int64)  # [groups in batch, n]
        else:  # a huge batch: exact integer path
            rows = (positive.view(b, t, n) & plan.mask.to(positive.device).unsqueeze(-1)).sum(dim=1)
            part = torch.zeros(len(plan.gids), n, dtype=torch.int64, device=rows.device)
            part.index_add_(0, plan.row_slot.to(rows.device), rows)
        part = part.to(self.over_zero.device)
        if plan.single is not None:
            self.over_zero[plan.single, layer] += part[0]
        else:
            self.over_zero[:, layer].index_add_(0, plan.gids.to(self.over_zero.device), part)
        self._seen_layers.add(layer)

    @torch.no_grad()
    def forward(self, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                groups: torch.Tensor | Sequence[int] | int | None = None) -> None:
        """Run the model's backbone on one (padded) batch under :meth:`hooked`.

        ``position_ids = cumsum(mask) - 1`` makes a padded row equal its unpadded run.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with self.batch_context(attention_mask, groups):
            backbone(model)(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=False)

    # -- results --------------------------------------------------------------------------------
    def group_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(over_zero int64 [groups, layers, neurons], n_tokens int64 [groups]) as NumPy arrays."""
        if self.over_zero is None:
            raise RuntimeError("no activations were counted")
        missing = sorted(set(range(self.n_layers)) - self._seen_layers)
        if missing and int(self.n_tokens.sum()) > 0:
            raise RuntimeError(f"no activations reached layers {missing}: is every neuron module hooked?")
        return self.over_zero.cpu().numpy(), self.n_tokens.cpu().numpy()

    def probabilities(self, group_language: Sequence[int] | np.ndarray | None = None,
                      n_languages: int | None = None) -> np.ndarray:
        """Activation probabilities float32 [languages, layers, neurons] (groups summed per language).

        ``group_language[g]`` is the language index of group ``g`` (default: one language per group).
        """
        over_zero, n_tokens = self.group_counts()
        return aggregate_probabilities(over_zero, n_tokens, group_language, n_languages)

    def state_dict(self) -> dict[str, Any]:
        over_zero, n_tokens = self.group_counts()
        return {"over_zero": over_zero, "n_tokens": n_tokens}

    def merge(self, other: "ActivationCounter") -> None:
        """Add another counter's counts (e.g. a shard of the data counted elsewhere)."""
        oz, nt = other.group_counts()
        if self.over_zero is None:
            self._allocate(oz.shape[-1], self.device or torch.device("cpu"))
        if tuple(oz.shape) != tuple(self.over_zero.shape):
            raise ValueError(f"cannot merge counts of shape {oz.shape} into {tuple(self.over_zero.shape)}")
        self.over_zero += torch.from_numpy(oz).to(self.over_zero.device)
        self.n_tokens += torch.from_numpy(nt).to(self.n_tokens.device)
        self._seen_layers |= other._seen_layers


def aggregate_probabilities(over_zero: np.ndarray, n_tokens: np.ndarray,
                            group_language: Sequence[int] | np.ndarray | None = None,
                            n_languages: int | None = None, *, names: Sequence[str] | None = None) -> np.ndarray:
    """Sum group counts per language and divide by the language's token count (float32 result)."""
    over_zero = np.asarray(over_zero)
    n_tokens = np.asarray(n_tokens)
    n_groups = over_zero.shape[0]
    gl = np.arange(n_groups) if group_language is None else np.asarray(group_language, dtype=np.int64)
    if gl.shape != (n_groups,):
        raise ValueError(f"group_language needs {n_groups} entries, got shape {gl.shape}")
    k = int(gl.max()) + 1 if n_languages is None else int(n_languages)
    if gl.min() < 0 or gl.max() >= k:
        raise ValueError(f"group_language entries must be in [0, {k})")
    lang_counts = np.zeros((k,) + over_zero.shape[1:], dtype=np.int64)
    np.add.at(lang_counts, gl, over_zero)
    lang_tokens = np.bincount(gl, weights=n_tokens, minlength=k).astype(np.int64)
    empty = np.flatnonzero(lang_tokens == 0)
    if empty.size:
        label = [names[i] for i in empty] if names is not None else empty.tolist()
        raise ValueError(f"no tokens were counted for language(s) {label}")
    return (lang_counts / lang_tokens[:, None, None].astype(np.float64)).astype(np.float32)


def count_activations(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, Any]], *,
                      modules: Sequence[torch.nn.Module] | None = None, adapter: Any = None, n_groups: int = 1,
                      device: torch.device | str | None = None) -> ActivationCounter:
    """Count over ``(input_ids, attention_mask, groups)`` batches; returns the filled counter."""
    modules = list(modules) if modules is not None else neuron_modules(model, adapter)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    counter = ActivationCounter(n_layers=len(modules), n_groups=n_groups)
    with counter.hooked(modules):
        for input_ids, mask, groups in batches:
            counter.forward(model, input_ids.to(dev), None if mask is None else mask.to(dev), groups)
    return counter
