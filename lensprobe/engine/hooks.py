"""The hook engine: one forward pass feeds many probes, each reducing its activations at once.

:func:`run_probes` groups probes by :meth:`~lensprobe.engine.protocol.Probe.input_key` (equal non-None keys
share batches and forward passes), registers one forward hook per hooked module for the union of
the probes' :meth:`~lensprobe.engine.protocol.Probe.hook_points`, and calls ``on_activation`` inside the
hook. When no probe needs the model's logits the forward pass stops right after the deepest
hooked block: the final norm and the unembedding (the largest matmul of a 50k-vocabulary model)
never run, nor do blocks no probe looks at.

Hook-point names used across lensprobe:

``block.{i}``   output of block ``i`` (1..L): the residual stream after block ``i``.
``block.0``     the residual stream entering block 1 (embeddings incl. positions/scaling), taken
                with a forward *pre*-hook on block 1 (:class:`InputOf`).
``neuron.{i}``  the MLP activation of block ``i`` (one coordinate per neuron, see
                :attr:`lensprobe.engine.adapters.ArchitectureAdapter.neuron`).

``on_activation`` always receives a tensor shaped ``[batch, seq, ...]``: tuple outputs are
reduced to their first element and outputs flattened to ``[batch*seq, ...]`` (OPT's MLP) are
reshaped back. Hooks and ``on_batch_end`` run under ``torch.inference_mode``: accumulate into
tensors created in ``start()`` (in-place updates of normal tensors are allowed there) and
``clone()`` a hooked tensor before keeping it beyond the batch.
"""
from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import torch
from torch import nn

from lensprobe.engine.adapters.loading import LoadedModel
from lensprobe.engine.adapters.registry import BoundAdapter, block_output, get_adapter
from lensprobe.engine.protocol import Batch, Probe

__all__ = [
    "InputOf",
    "HookPoint",
    "block_hook_points",
    "neuron_hook_points",
    "point_layer",
    "attach_hooks",
    "forward_batch",
    "validate_batch",
    "run_probes",
]


@dataclass(frozen=True, eq=False)
class InputOf:
    """Hook-point target meaning "the hidden-state *input* of ``module``" (a forward pre-hook)."""

    module: nn.Module


#: What a hook point maps to: a module (its forward output) or :class:`InputOf` (its hidden-state input).
HookPoint = Union[nn.Module, InputOf]

_POINT_RE = re.compile(r"^(block|neuron)\.(\d+)$")


def _layers(adapter: BoundAdapter, layers: Sequence[int] | None, *, lowest: int) -> list[int]:
    if layers is None:
        return list(range(1, adapter.n_layers + 1))
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"layers must be integers, got {layer!r}")
        if not lowest <= layer <= adapter.n_layers:
            raise ValueError(f"layer {layer} is out of range {lowest}..{adapter.n_layers} "
                             f"for this {adapter.n_layers}-block model")
        out.append(layer)
    if len(set(out)) != len(out):
        raise ValueError(f"layers contains duplicates: {list(layers)}")
    return out


def block_hook_points(adapter: BoundAdapter, layers: Sequence[int] | None = None) -> dict[str, nn.Module | InputOf]:
    """``{"block.i": adapter.blocks[i-1]}`` for ``layers`` (default 1..L); ``block.0`` is the embedding output."""
    adapter = get_adapter(adapter)
    points: dict[str, nn.Module | InputOf] = {}
    for layer in _layers(adapter, layers, lowest=0):
        points[f"block.{layer}"] = InputOf(adapter.blocks[0]) if layer == 0 else adapter.blocks[layer - 1]
    return points


def neuron_hook_points(adapter: BoundAdapter, layers: Sequence[int] | None = None) -> dict[str, nn.Module]:
    """``{"neuron.i": adapter.neuron_modules[i-1]}`` for ``layers`` (default 1..L)."""
    adapter = get_adapter(adapter)
    mods = adapter.neuron_modules
    return {f"neuron.{layer}": mods[layer - 1] for layer in _layers(adapter, layers, lowest=1)}


def point_layer(point: str) -> int:
    """The layer number of a ``block.{i}`` / ``neuron.{i}`` point name."""
    match = _POINT_RE.match(point)
    if not match:
        raise ValueError(f"{point!r} is not a 'block.<i>' or 'neuron.<i>' hook point")
    return int(match.group(2))


# --------------------------------------------------------------------------------------------
# hooks


def _shape_like_batch(tensor: torch.Tensor, batch_shape: tuple[int, int] | None) -> torch.Tensor:
    if batch_shape is not None and tensor.dim() == 2 and tensor.shape[0] == batch_shape[0] * batch_shape[1]:
        return tensor.view(batch_shape[0], batch_shape[1], tensor.shape[1])
    return tensor


def _hidden_input(args: tuple, kwargs: dict) -> torch.Tensor:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    hidden = kwargs.get("hidden_states")
    if isinstance(hidden, torch.Tensor):
        return hidden
    raise TypeError("cannot find the hidden-state input of the hooked module")


@contextlib.contextmanager
def attach_hooks(points: Mapping[str, nn.Module | InputOf], callback: Callable[[str, torch.Tensor], None], *,
                 batch_shape: tuple[int, int] | None = None) -> Iterator[list[Any]]:
    """Call ``callback(point, tensor)`` for every hooked point during forward passes in the block.

    A module named by several points gets one hook that calls back once per name (in the order
    given). Handles are removed on exit, also when the block raises.
    """
    by_target: "OrderedDict[int, tuple[nn.Module | InputOf, list[str]]]" = OrderedDict()
    for name, target in points.items():
        if not isinstance(target, (nn.Module, InputOf)):
            raise TypeError(f"hook point {name!r} must map to an nn.Module or InputOf, got {type(target).__name__}")
        key = id(target.module) * 2 + 1 if isinstance(target, InputOf) else id(target) * 2
        by_target.setdefault(key, (target, []))[1].append(name)
    handles: list[Any] = []
    try:
        for target, names in by_target.values():
            if isinstance(target, InputOf):
                def pre_hook(_m, args, kwargs, _names=names):
                    hidden = _shape_like_batch(_hidden_input(args, kwargs), batch_shape)
                    for n in _names:
                        callback(n, hidden)
                handles.append(target.module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            else:
                def hook(_m, _args, output, _names=names):
                    tensor = _shape_like_batch(block_output(output), batch_shape)
                    for n in _names:
                        callback(n, tensor)
                handles.append(target.register_forward_hook(hook))
        yield handles
    finally:
        for handle in handles:
            handle.remove()


class _StopForward(Exception):
    """Raised by the engine's own hook once the deepest needed block has run."""


def _block_index_of(adapter: BoundAdapter) -> dict[int, int]:
    index: dict[int, int] = {}
    for i, block in enumerate(adapter.blocks):
        for mod in block.modules():
            index.setdefault(id(mod), i)
    return index


def _stop_block(adapter: BoundAdapter, targets: Sequence[nn.Module | InputOf]) -> int | None:
    """Index of the last block that must run for ``targets``; None if something after the blocks is hooked."""
    index = _block_index_of(adapter)
    embed_mods = {id(m) for m in adapter.embed.modules()}
    deepest = 0
    for target in targets:
        mod = target.module if isinstance(target, InputOf) else target
        if id(mod) in index:
            deepest = max(deepest, index[id(mod)])
        elif id(mod) in embed_mods:
            continue
        else:
            return None
    return deepest


def validate_batch(batch: Batch, adapter: BoundAdapter, *, where: str = "batch") -> None:
    """Check shapes, dtypes, mask values and token-id range of a :class:`~lensprobe.engine.protocol.Batch`."""
    if not isinstance(batch, Batch):
        raise TypeError(f"{where} must be a lensprobe.engine.protocol.Batch, got {type(batch).__name__}")
    ids, mask = batch.input_ids, batch.attention_mask
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{where}: input_ids must be an integer tensor [batch, seq], got "
                         f"{getattr(ids, 'dtype', type(ids))} {tuple(getattr(ids, 'shape', ()))}")
    if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
        raise ValueError(f"{where}: attention_mask must have the shape of input_ids {tuple(ids.shape)}, "
                         f"got {tuple(getattr(mask, 'shape', ()))}")
    if ids.numel() == 0:
        raise ValueError(f"{where} is empty")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{where}: attention_mask must hold only 0 and 1")
    empty = (mask.sum(-1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{where}: rows {empty} have no real token (attention_mask all zero)")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= adapter.input_vocab_size:
        raise ValueError(f"{where}: token ids must lie in [0, {adapter.input_vocab_size}), got range [{lo}, {hi}]")
    if batch.meta and len(batch.meta) != ids.shape[0]:
        raise ValueError(f"{where}: meta has {len(batch.meta)} entries for {ids.shape[0]} rows")


def forward_batch(model: nn.Module, adapter: BoundAdapter, batch: Batch, points: Mapping[str, nn.Module | InputOf],
                  callback: Callable[[str, torch.Tensor], None], *, need_logits: bool = False) -> torch.Tensor | None:
    """One forward pass of ``batch`` with ``points`` hooked; returns the logits if ``need_logits``.

    Runs under ``torch.inference_mode`` with ``position_ids = cumsum(mask) - 1``. Without
    ``need_logits`` the pass stops after the deepest hooked block (when every hooked module lies
    in a block or the embedding), so the final norm and unembedding never run.
    """
    stop = None if need_logits else _stop_block(adapter, list(points.values()))
    logits = None
    with attach_hooks(points, callback, batch_shape=tuple(batch.input_ids.shape)):
        stopper = None
        if stop is not None:
            def _stop(_m, _a, _o):
                raise _StopForward
            stopper = adapter.blocks[stop].register_forward_hook(_stop)
        try:
            with torch.inference_mode():
                out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            position_ids=batch.position_ids, use_cache=False)
            logits = out.logits if hasattr(out, "logits") else out[0]
        except _StopForward:
            logits = None
        finally:
            if stopper is not None:
                stopper.remove()
    return logits if need_logits else None


def _resolve_model(model: Any, tokenizer: Any, adapter: Any) -> tuple[nn.Module, Any, BoundAdapter]:
    if isinstance(model, LoadedModel):
        return model.model, tokenizer if tokenizer is not None else model.tokenizer, adapter or model.adapter
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or LoadedModel, got {type(model).__name__}")
    return model, tokenizer, get_adapter(adapter) if adapter is not None else get_adapter(model)


def run_probes(model: Any, probes: Sequence[Probe], *, tokenizer: Any = None, adapter: BoundAdapter | None = None,
               device: str | torch.device | None = None) -> list[dict[str, Any]]:
    """Run ``probes`` over ``model`` and return their concatenated rows.

    Probes with equal non-None :meth:`~lensprobe.engine.protocol.Probe.input_key` share batches (taken from
    the first of them) and one forward pass per batch; each of their hook points is served by
    one hook per module. ``device`` defaults to the device of the model's embedding.
    """
    model, tokenizer, adapter = _resolve_model(model, tokenizer, adapter)
    probes = list(probes)
    for p in probes:
        if not isinstance(p, Probe):
            raise TypeError(f"run_probes expects Probe instances, got {type(p).__name__}")
    if len({id(p) for p in probes}) != len(probes):
        raise ValueError("the same probe object is listed twice")
    device = torch.device(device) if device is not None else adapter.device
    groups: "OrderedDict[Any, list[Probe]]" = OrderedDict()
    for i, p in enumerate(probes):
        key = p.input_key()
        groups.setdefault(("key", key) if key is not None else ("solo", i), []).append(p)
    was_training = model.training
    model.eval()
    try:
        for p in probes:
            p.start(model, adapter)
        for members in groups.values():
            _run_group(model, adapter, members, tokenizer, device)
    finally:
        if was_training:
            model.train()
    rows: list[dict[str, Any]] = []
    for p in probes:
        out = p.finalize()
        if not isinstance(out, list):
            raise TypeError(f"probe {p.name!r}.finalize() must return a list of dicts, got {type(out).__name__}")
        rows.extend(out)
    return rows


def _run_group(model: nn.Module, adapter: BoundAdapter, members: list[Probe], tokenizer: Any,
               device: torch.device) -> None:
    points: dict[str, nn.Module | InputOf] = {}
    listeners: dict[str, list[tuple[Probe, str]]] = {}
    for j, p in enumerate(members):
        for name, target in p.hook_points(adapter).items():
            internal = f"{j}:{name}"
            points[internal] = target
            listeners[internal] = [(p, name)]
    need_logits = any(p.needs_logits() for p in members)
    current: dict[str, Batch] = {}

    def callback(internal: str, tensor: torch.Tensor) -> None:
        for probe, name in listeners[internal]:
            probe.on_activation(name, tensor, current["batch"])

    for n, batch in enumerate(members[0].batches(tokenizer)):
        validate_batch(batch, adapter, where=f"batch {n} of probe {members[0].name!r}")
        batch = batch.to(device)
        current["batch"] = batch
        logits = forward_batch(model, adapter, batch, points, callback, need_logits=need_logits)
        with torch.inference_mode():
            for p in members:
                p.on_batch_end(batch, logits)
