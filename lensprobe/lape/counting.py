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
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["ActivationCounter", "neuron_modules", "backbone"]


def neuron_modules(model: torch.nn.Module, adapter: Any = None) -> list[torch.nn.Module]:
    """The per-block modules whose forward output is the neuron activation (from the adapter)."""
    if adapter is None:
        from lensprobe.adapters import get_adapter

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
        self._current: tuple | None = None
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
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer index {layer} out of range [0, {self.n_layers})")
        act = activation.detach()
        if attention_mask is not None:
            b, t = attention_mask.shape
            act = act.reshape(b, t, act.shape[-1])
        elif act.dim() == 2:
            act = act.unsqueeze(0)
        if act.dim() != 3:
            raise ValueError(f"activation must be [batch, positions, neurons], got shape {tuple(activation.shape)}")
        if self.over_zero is None:
            self._allocate(act.shape[-1], act.device)
        elif act.shape[-1] != self.n_neurons:
            raise ValueError(f"layer {layer} has {act.shape[-1]} neurons, expected {self.n_neurons}")
        g = self._as_groups(groups, act.shape[0], self.over_zero.device)
        self._check_group(g)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.to(device=act.device, dtype=torch.bool)
        self._accumulate(layer, act, mask, g)

    def _accumulate(self, layer: int, act: torch.Tensor, mask: torch.Tensor | None, g: torch.Tensor | int) -> None:
        """Hot path (validated inputs): ``act`` [batch, positions, neurons], ``mask`` None when no padding."""
        positive = act > 0
        if mask is not None:
            positive &= mask.unsqueeze(-1)
        if isinstance(g, int):
            self.over_zero[g, layer] += positive.sum(dim=(0, 1)).to(self.over_zero.device)
        else:
            per_row = positive.sum(dim=1).to(self.over_zero.device)  # [batch, neurons]
            self.over_zero[:, layer].index_add_(0, g.to(self.over_zero.device), per_row)
        self._seen_layers.add(layer)

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
        self._current = prepared = self.prepare(attention_mask, groups)
        try:
            yield
        finally:
            self._current = None
        self.add_tokens(attention_mask, prepared[1])

    def prepare(self, attention_mask: torch.Tensor, groups: torch.Tensor | Sequence[int] | int | None = None) -> tuple:
        """Validate one batch's mask and groups once, for :meth:`update_prepared` on every layer."""
        dev = self.over_zero.device if self.over_zero is not None else attention_mask.device
        g = self._as_groups(groups, attention_mask.shape[0], dev)
        self._check_group(g)
        mask = None if bool(attention_mask.all()) else attention_mask.to(dtype=torch.bool)
        return (mask, g, tuple(attention_mask.shape))

    def update_prepared(self, layer: int, output: torch.Tensor, prepared: tuple) -> None:
        """Fast :meth:`update` for a batch validated by :meth:`prepare` (called from forward hooks)."""
        mask, groups, shape = prepared
        act = output.detach().reshape(shape[0], shape[1], output.shape[-1])
        if self.over_zero is None:
            self._allocate(act.shape[-1], act.device)
        elif act.shape[-1] != self.n_neurons:
            raise ValueError(f"layer {layer} has {act.shape[-1]} neurons, expected {self.n_neurons}")
        if mask is not None and mask.device != act.device:
            mask = mask.to(act.device)
        self._accumulate(layer, act, mask, groups)

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
