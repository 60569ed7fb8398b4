"""Logit-lens readouts: decode residual-stream states and reduce them at once.

:func:`readout` decodes a batch of states ``[B, d]`` (one position per row) with the model's own
final norm, unembedding and logit transform (:meth:`lensprobe.engine.adapters.BoundAdapter.decode`) and
immediately reduces the ``[B, V]`` logits to the few numbers a probe keeps: log-probabilities and
ranks of requested tokens, log-probabilities of token *sets* (``logsumexp`` over the set minus
``logsumexp`` over the vocabulary), top-k tokens and the entropy.

:func:`logit_lens` runs a batch of prompts (token ids, or strings tokenized with the model's
tokenizer) and reads every block output at each row's last real token (padding on either side).
Nothing of shape ``[layers x positions x vocab]`` is ever kept.
How the block outputs are read is a :class:`LensBackend`: :class:`TorchBackend` (``"torch"``,
plain hooks, the fast path), :class:`NnsightBackend` (``"nnsight"``, ``nnsight.NNsight`` tracing)
and :class:`TransformerLensBackend` (``"transformer_lens"``, TransformerLens 4.x
``TransformerBridge`` + ``tools.analysis.logit_lens``; an oracle for tests).  The first two only
collect the last-token states and share one decode; the oracle decodes with TransformerLens.
"""
from __future__ import annotations

import abc
import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from lensprobe.engine.adapters.loading import LoadedModel
from lensprobe.engine.adapters.registry import BoundAdapter, get_adapter
from lensprobe.engine.hooks import block_hook_points, forward_batch, point_layer, validate_batch
from lensprobe.engine.protocol import Batch

__all__ = ["LensReadout", "readout", "LogitLensResult", "logit_lens", "BACKENDS", "LensBackend", "TorchBackend",
           "NnsightBackend", "TransformerLensBackend", "boot_transformer_bridge", "LENSES", "resolve_lens"]

#: The lens names :func:`logit_lens` and the lens probes accept (or a fitted
#: :class:`~lensprobe.engine.tuned_lens.TunedLens`): ``"logit"`` decodes block outputs as they are
#: (the paper's Eq.1 is defined on it), ``"tuned"`` through per-layer translators (docs/tuned-lens.md).
LENSES: tuple[str, ...] = ("logit", "tuned")


def resolve_lens(lens: Any, *, where: str = "lens") -> tuple[str, Any]:
    """``(name, TunedLens or None)`` of a ``lens`` argument: ``"logit"``, ``"tuned"`` or a fitted
    :class:`~lensprobe.engine.tuned_lens.TunedLens` (``("tuned", lens)``). ``"tuned"`` alone gives
    ``("tuned", None)``: the caller must find the translators. Anything else raises naming ``where``."""
    from lensprobe.engine.tuned_lens import TunedLens

    if isinstance(lens, TunedLens):
        if not lens.fitted:
            raise ValueError(f"{where}: the TunedLens is not fitted; fit it (TunedLens().fit(model, heldout_ids)) "
                             "or load one (TunedLens.load(dir))")
        return "tuned", lens
    if isinstance(lens, str) and lens in LENSES:
        return lens, None
    raise ValueError(f"{where} must be one of {', '.join(repr(x) for x in LENSES)} or a fitted TunedLens, "
                     f"got {lens!r}")

# Above this many booleans, ranks are computed one requested token at a time.
_RANK_CHUNK_ELEMENTS = 1 << 24


@dataclass
class LensReadout:
    """Reduced lens numbers for ``B`` states (one layer).

    Attributes:
        token_logprobs: ``[B, K]`` log-softmax over the full vocabulary of the requested tokens.
        token_ranks: ``[B, K]`` full-vocabulary rank (0 = top-1; ties count strictly larger logits).
        set_logprobs: ``[B, S]`` ``logsumexp(set) - logsumexp(vocab)``; ``-inf`` for an empty set.
        top_tokens, top_logprobs: ``[B, k]`` the k most likely tokens and their log-probabilities.
        entropy: ``[B]`` entropy of the next-token distribution, in nats.
    """

    token_logprobs: torch.Tensor | None
    token_ranks: torch.Tensor | None
    set_logprobs: torch.Tensor | None
    top_tokens: torch.Tensor | None
    top_logprobs: torch.Tensor | None
    entropy: torch.Tensor


def _token_id_tensor(token_ids: Any, vocab_size: int, *, n_rows: int | None, name: str = "token_ids") -> torch.Tensor:
    """``[K]`` (shared) or ``[B, K]`` (per row) long tensor, validated."""
    if isinstance(token_ids, torch.Tensor):
        if token_ids.dtype.is_floating_point or token_ids.dtype == torch.bool or token_ids.is_complex():
            raise TypeError(f"{name} must hold integer token ids, got dtype {token_ids.dtype}")
        ids = token_ids.detach().to("cpu", torch.long)
    else:
        try:
            arr = np.asarray(token_ids)
        except Exception as err:  # noqa: BLE001
            raise TypeError(f"{name} must be a sequence of integer token ids") from err
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise TypeError(f"{name} must hold integer token ids, got {token_ids!r}")
        ids = torch.as_tensor(arr.astype(np.int64))
    if ids.dim() == 0:
        ids = ids.reshape(1)
    if ids.dim() not in (1, 2):
        raise ValueError(f"{name} must be [K] (shared by all rows) or [B, K] (per row), got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError(f"{name} is empty")
    if ids.dim() == 2 and n_rows is not None and ids.shape[0] != n_rows:
        raise ValueError(f"per-row {name} has {ids.shape[0]} rows but the batch has {n_rows}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{name} must lie in [0, {vocab_size}) (the unembedding's vocabulary), got range [{lo}, {hi}]")
    return ids


def _set_index(token_sets: Sequence[Sequence[int]], vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``[S, M]`` index and validity mask of deduplicated token sets."""
    if isinstance(token_sets, (str, bytes)) or not isinstance(token_sets, Sequence) and not isinstance(
            token_sets, torch.Tensor):
        raise TypeError("token_sets must be a sequence of sequences of token ids")
    sets: list[list[int]] = []
    for s, members in enumerate(token_sets):
        if isinstance(members, (str, bytes)):
            raise TypeError(f"token_sets[{s}] is a string; expected token ids")
        try:
            ids = sorted({int(t) for t in (members.tolist() if isinstance(members, torch.Tensor) else members)})
        except (TypeError, ValueError) as err:
            raise TypeError(f"token_sets[{s}] must be a sequence of integer token ids, got {members!r}") from err
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"token_sets[{s}] has ids outside [0, {vocab_size}): {bad[:5]}")
        sets.append(ids)
    if not sets:
        raise ValueError("token_sets is empty")
    width = max(1, max(len(s) for s in sets))
    index = torch.zeros(len(sets), width, dtype=torch.long)
    valid = torch.zeros(len(sets), width, dtype=torch.bool)
    for s, ids in enumerate(sets):
        index[s, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        valid[s, : len(ids)] = True
    return index, valid


def _validate_top_k(top_k: Any, vocab_size: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 0 <= int(top_k) <= vocab_size:
        raise ValueError(f"top_k must be an integer in [0, {vocab_size}], got {top_k!r}")
    return int(top_k)


def _reduce(logits: torch.Tensor, *, token_ids: torch.Tensor | None, sets: tuple[torch.Tensor, torch.Tensor] | None,
            top_k: int) -> LensReadout:
    logits = logits.float()
    log_probs = torch.log_softmax(logits, dim=-1)
    entropy = torch.special.entr(log_probs.exp()).sum(-1)
    token_logprobs = token_ranks = set_logprobs = top_tokens = top_logprobs = None
    n = logits.shape[0]
    if token_ids is not None:
        ids = token_ids.to(logits.device)
        ids = ids.expand(n, -1) if ids.dim() == 1 else ids
        token_logprobs = log_probs.gather(1, ids)
        chosen = logits.gather(1, ids)
        if n * ids.shape[1] * logits.shape[1] <= _RANK_CHUNK_ELEMENTS:
            token_ranks = (logits.unsqueeze(1) > chosen.unsqueeze(-1)).sum(-1)
        else:
            token_ranks = torch.stack([(logits > chosen[:, k: k + 1]).sum(-1) for k in range(ids.shape[1])], dim=1)
    if sets is not None:
        index, valid = (t.to(logits.device) for t in sets)
        gathered = log_probs[:, index]  # [n, S, M]
        set_logprobs = gathered.masked_fill(~valid, float("-inf")).logsumexp(-1)
    if top_k:
        top = torch.topk(log_probs, top_k, dim=-1)
        top_tokens, top_logprobs = top.indices, top.values
    return LensReadout(token_logprobs, token_ranks, set_logprobs, top_tokens, top_logprobs, entropy)


_FIELDS = ("token_logprobs", "token_ranks", "set_logprobs", "top_tokens", "top_logprobs", "entropy")

#: Most logits materialised at once by :func:`readout` (elements; 4M fp32 = 16 MB, ~80 rows of a 50k vocabulary:
#: enough rows per matmul to be compute-bound, few enough to keep temporaries small).
MAX_LOGITS_ELEMENTS = 1 << 22


def _decode_reduce(hidden: torch.Tensor, adapter: BoundAdapter, *, token_ids: torch.Tensor | None,
                   sets: Any, top_k: int) -> LensReadout:
    """Decode + reduce states ``[*lead, d]``; per-row ``token_ids [B, K]`` align with ``lead[-1]``.

    All rows go through the unembedding together (in chunks bounded by
    :data:`MAX_LOGITS_ELEMENTS`): with few rows the unembedding is memory-bound, so decoding the
    L layers of a batch in one matmul reads the ``[V, d]`` weight once instead of L times.
    """
    lead = tuple(hidden.shape[:-1])
    flat = hidden.reshape(-1, hidden.shape[-1])
    ids = token_ids
    if ids is not None and ids.dim() == 2:
        ids = ids.to(flat.device).expand(*lead, ids.shape[-1]).reshape(-1, ids.shape[-1])
    step = max(1, MAX_LOGITS_ELEMENTS // max(1, adapter.vocab_size))
    parts = []
    for start in range(0, flat.shape[0], step):
        chunk_ids = ids if ids is None or ids.dim() == 1 else ids[start:start + step]
        parts.append(_reduce(adapter.decode(flat[start:start + step]), token_ids=chunk_ids, sets=sets, top_k=top_k))
    out = {}
    for name in _FIELDS:
        values = [getattr(p, name) for p in parts]
        if values[0] is None:
            out[name] = None
            continue
        joined = values[0] if len(values) == 1 else torch.cat(values, 0)
        out[name] = joined.reshape(*lead, *joined.shape[1:])
    return LensReadout(**out)


def readout(hidden: torch.Tensor, adapter: Any, *, token_ids: Any = None,
            token_sets: Sequence[Sequence[int]] | None = None, top_k: int = 0) -> LensReadout:
    """Decode states ``hidden [B, d]`` (one position per row) and reduce them at once.

    ``hidden`` may also be ``[L, B, d]`` (e.g. the last-position states of every layer of a
    batch, stacked): outputs then gain the leading ``L`` axis. Decoding a batch's layers in one
    call is much faster than one call per layer on a large vocabulary (the unembedding weight is
    read once). ``token_ids`` is ``[K]`` (shared by all rows) or ``[B, K]``; ``token_sets`` is a
    list of token-id sets shared by all rows; ``top_k`` 0 disables top-k. ``adapter`` is a
    :class:`~lensprobe.engine.adapters.BoundAdapter` (or a model/LoadedModel it can be taken from).
    """
    adapter = get_adapter(adapter)
    if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
        raise TypeError("hidden must be a floating-point tensor [B, d_model]")
    if hidden.dim() not in (2, 3) or hidden.shape[-1] != adapter.d_model:
        raise ValueError(f"hidden must be [B, d_model={adapter.d_model}] (one position per row) or [L, B, d_model], "
                         f"got shape {tuple(hidden.shape)}")
    ids = None if token_ids is None else _token_id_tensor(token_ids, adapter.vocab_size, n_rows=hidden.shape[-2])
    sets = None if token_sets is None else _set_index(token_sets, adapter.vocab_size)
    top_k = _validate_top_k(top_k, adapter.vocab_size)
    with torch.inference_mode():
        return _decode_reduce(hidden, adapter, token_ids=ids, sets=sets, top_k=top_k)


# --------------------------------------------------------------------------------------------
# logit lens over a batch of prompts


@dataclass
class LogitLensResult:
    """Lens readouts at each row's last real token for every requested layer.

    Attributes:
        layers: layer numbers along axis 1 (1..L are block outputs; 0 is the embedding output).
        token_ids: the requested token ids, ``[K]`` or ``[B, K]`` (``None`` if none).
        token_logprobs, token_ranks: ``[B, n_layers, K]``.
        set_logprobs: ``[B, n_layers, S]`` (``token_sets`` given).
        top_tokens, top_logprobs: ``[B, n_layers, top_k]``.
        entropy: ``[B, n_layers]`` nats.
        backend: which backend produced the numbers.
        lens: ``"logit"`` (block outputs decoded as they are) or ``"tuned"`` (through a
            :class:`~lensprobe.engine.tuned_lens.TunedLens`' translators; layer L is never translated).
        tokenizer: the tokenizer that decodes ``token_id`` into the ``token`` column of
            :meth:`to_dataframe` (the model's, when it was given or strings were passed).
    """

    layers: list[int]
    entropy: torch.Tensor
    token_ids: torch.Tensor | None = None
    token_logprobs: torch.Tensor | None = None
    token_ranks: torch.Tensor | None = None
    set_logprobs: torch.Tensor | None = None
    top_tokens: torch.Tensor | None = None
    top_logprobs: torch.Tensor | None = None
    backend: str = "torch"
    lens: str = "logit"
    n_sets: int = field(default=0, repr=False)
    tokenizer: Any = field(default=None, repr=False, compare=False)

    def to_dataframe(self, *, tokenizer: Any = None) -> pd.DataFrame:
        """Long format, one observation per row.

        Columns: ``row`` (batch row), ``layer``, ``lens`` (:attr:`lens`: which lens read the
        layer), ``metric`` (``entropy``, ``token_logprob``,
        ``token_rank``, ``set_logprob``, ``top_logprob``), ``index`` (position of the requested
        token / set / top-k slot; ``<NA>`` for entropy), ``token_id`` (the token concerned;
        ``<NA>`` for entropy and sets), ``token`` (``token_id`` decoded with ``tokenizer``, default
        :attr:`tokenizer`; ``<NA>`` without one), ``value``.
        """
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        b, n_layers = self.entropy.shape
        rows = np.repeat(np.arange(b), n_layers)
        layers = np.tile(np.asarray(self.layers), b)
        frames = [pd.DataFrame({"row": rows, "layer": layers, "metric": "entropy", "index": pd.NA,
                                "token_id": pd.NA, "value": self.entropy.reshape(-1).double().numpy()})]

        def per_slot(metric: str, values: torch.Tensor, ids: torch.Tensor | None) -> pd.DataFrame:
            k = values.shape[-1]
            frame = pd.DataFrame({
                "row": np.repeat(np.arange(b), n_layers * k),
                "layer": np.tile(np.repeat(np.asarray(self.layers), k), b),
                "metric": metric,
                "index": np.tile(np.arange(k), b * n_layers),
                "token_id": pd.NA if ids is None else ids.reshape(-1).numpy(),
                "value": values.reshape(-1).double().numpy(),
            })
            return frame

        if self.token_logprobs is not None and self.token_ids is not None:
            ids = self.token_ids
            ids = ids.expand(b, -1) if ids.dim() == 1 else ids
            ids3 = ids.unsqueeze(1).expand(b, n_layers, ids.shape[-1])
            frames.append(per_slot("token_logprob", self.token_logprobs, ids3))
            if self.token_ranks is not None:
                frames.append(per_slot("token_rank", self.token_ranks, ids3))
        if self.set_logprobs is not None:
            frames.append(per_slot("set_logprob", self.set_logprobs, None))
        if self.top_tokens is not None and self.top_logprobs is not None:
            frames.append(per_slot("top_logprob", self.top_logprobs, self.top_tokens))
        frame = pd.concat(frames, ignore_index=True)
        frame["index"] = frame["index"].astype("Int64")
        frame["token_id"] = frame["token_id"].astype("Int64")
        frame.insert(frame.columns.get_loc("token_id") + 1, "token", _decode_tokens(frame["token_id"], tokenizer))
        frame["metric"] = frame["metric"].astype(str)
        frame.insert(frame.columns.get_loc("metric"), "lens", self.lens)
        return frame.sort_values(["row", "layer", "metric", "index"], kind="stable", ignore_index=True)


def _decode_tokens(ids: pd.Series, tokenizer: Any) -> pd.Series:
    """Each token id decoded on its own (``" len"``, ``"strlen"``); ``<NA>`` without a tokenizer."""
    if tokenizer is None:
        return pd.Series(pd.NA, index=ids.index, dtype="string")
    unique = [int(t) for t in ids.dropna().unique()]
    text = {t: tokenizer.decode([t]) for t in unique}
    return ids.map(lambda t: pd.NA if pd.isna(t) else text[int(t)]).astype("string")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and len(value) > 0
                                       and all(isinstance(v, str) for v in value))


def _encode_prompts(prompts: str | Sequence[str], tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Strings -> left-padded ``input_ids`` and ``attention_mask`` (no special tokens: a BOS is
    never added for you; put it in the text, or pass token ids)."""
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    encoded = []
    for i, text in enumerate(texts):
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"prompt {i} ({text!r}) tokenizes to nothing")
        encoded.append(ids)
    width = max(len(e) for e in encoded)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = int(pad) if pad is not None else 0
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for r, ids in enumerate(encoded):
        input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[r, width - len(ids):] = 1
    return input_ids, mask


def _token_of(text: str, tokenizer: Any, name: str) -> int:
    """The one token id a string is (``" len"``); ValueError naming its pieces when it is several."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(ids) != 1:
        pieces = [tokenizer.decode([t]) for t in ids]
        raise ValueError(f"{name}: {text!r} is {len(ids)} tokens {pieces} with this tokenizer, not one; give a "
                         "single token's text (e.g. its first piece) or its id")
    return int(ids[0])


def _texts_to_ids(value: Any, tokenizer: Any, name: str) -> Any:
    """Strings inside ``token_ids`` / ``token_sets`` (nested lists) -> token ids; other values unchanged."""
    if isinstance(value, str):
        if tokenizer is None:
            raise ValueError(f"{name} holds the string {value!r}: strings need a tokenizer (pass tokenizer= or a "
                             "LoadedModel)")
        return _token_of(value, tokenizer, name)
    if isinstance(value, (list, tuple)):
        return [_texts_to_ids(v, tokenizer, name) for v in value]
    return value


def _prepare_inputs(input_ids: Any, attention_mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(input_ids, torch.Tensor):
        try:
            input_ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64))
        except (TypeError, ValueError) as err:
            raise TypeError("input_ids must be an integer tensor [B, T] (or [T])") from err
    if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
        if attention_mask is not None and torch.as_tensor(attention_mask).dim() == 1:
            attention_mask = torch.as_tensor(attention_mask).unsqueeze(0)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, T] or [T], got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    if attention_mask.dtype == torch.bool:
        attention_mask = attention_mask.long()
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids "
                         f"{tuple(input_ids.shape)}")
    return input_ids.long(), attention_mask.long()


def _resolve_layers(adapter: BoundAdapter, layers: Sequence[int] | None, include_embeddings: bool) -> list[int]:
    if layers is None:
        chosen = list(range(1, adapter.n_layers + 1))
    else:
        if isinstance(layers, int):
            layers = [layers]
        chosen = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
                raise TypeError(f"layers must be integers, got {layer!r}")
            layer = int(layer)
            if layer < 0:
                layer += adapter.n_layers + 1
            if not 0 <= layer <= adapter.n_layers:
                raise ValueError(f"layer {layer} out of range 0..{adapter.n_layers} (0 = embeddings)")
            chosen.append(layer)
    if include_embeddings:
        chosen.append(0)
    out = sorted(set(chosen))
    if not out:
        raise ValueError("no layers selected")
    return out


def _trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop leading/trailing columns that are padding in every row (positions are unaffected)."""
    real = mask.bool().any(0).nonzero().flatten()
    lo, hi = int(real[0]), int(real[-1]) + 1
    return ids[:, lo:hi], mask[:, lo:hi]


# --------------------------------------------------------------------------------------------
# backends: how the block outputs are read (one interface, three implementations)


#: ``store(rows, layer, readout)``: writes one layer's readout of a slice of rows into the result.
Store = Callable[[slice, int, LensReadout], None]


def _layer_readout(r: LensReadout, j: int) -> LensReadout:
    """Layer ``j`` of a readout whose fields lead with the layer axis."""
    return LensReadout(**{name: None if getattr(r, name) is None else getattr(r, name)[j] for name in _FIELDS})


class LensBackend(abc.ABC):
    """How :func:`logit_lens` reads block outputs; a backend calls ``store`` for every row slice and layer."""

    name: str = "backend"

    @abc.abstractmethod
    def run(self, model: torch.nn.Module, adapter: BoundAdapter, ids: torch.Tensor, mask: torch.Tensor, *,
            token_ids: torch.Tensor | None, sets: Any, top_k: int, layers: list[int], batch_size: int,
            store: Store) -> None:
        """Readouts of ``layers`` at each row's last real token of ``ids [B, T]`` / ``mask [B, T]``."""


class _LastStatesBackend(LensBackend):
    """Backends that take each chunk's last-token states ``[n_layers, b, d]`` and share one decode:
    all layers of a chunk go through the unembedding together (:func:`_decode_reduce`).
    ``transform(layer, states [b, d])``, when given, maps each layer's states before the decode
    (a tuned lens' translators)."""

    def run(self, model: torch.nn.Module, adapter: BoundAdapter, ids: torch.Tensor, mask: torch.Tensor, *,
            token_ids: torch.Tensor | None, sets: Any, top_k: int, layers: list[int], batch_size: int,
            store: Store, transform: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> None:
        n_rows = ids.shape[0]
        model_was_training = model.training
        model.eval()
        try:
            for start in range(0, n_rows, batch_size):
                rows = slice(start, min(start + batch_size, n_rows))
                chunk_ids, chunk_mask = _trim(ids[rows], mask[rows])
                batch = Batch(chunk_ids, chunk_mask).to(adapter.device)
                chunk_tok = token_ids if token_ids is None or token_ids.dim() == 1 else token_ids[rows]
                states = self.last_states(model, adapter, batch, layers)  # [n_layers, b, d]
                with torch.inference_mode():
                    if transform is not None:
                        states = torch.stack([transform(layer, states[j]) for j, layer in enumerate(layers)])
                    r = _decode_reduce(states, adapter, token_ids=chunk_tok, sets=sets, top_k=top_k)
                for j, layer in enumerate(layers):
                    store(rows, layer, _layer_readout(r, j))
        finally:
            if model_was_training:
                model.train()

    @abc.abstractmethod
    def last_states(self, model: torch.nn.Module, adapter: BoundAdapter, batch: Batch,
                    layers: list[int]) -> torch.Tensor:
        """States ``[len(layers), b, d]`` at each row's last real token (layer 0: the input of block 1)."""


class TorchBackend(_LastStatesBackend):
    """Plain forward hooks (:func:`lensprobe.engine.hooks.forward_batch`): the fast path."""

    name = "torch"

    def last_states(self, model: torch.nn.Module, adapter: BoundAdapter, batch: Batch,
                    layers: list[int]) -> torch.Tensor:
        last = batch.last_index
        arange = torch.arange(last.shape[0], device=last.device)
        states: dict[int, torch.Tensor] = {}

        def callback(point: str, hidden: torch.Tensor) -> None:
            states[point_layer(point)] = hidden[arange, last].clone()  # [b, d]: the only thing kept

        forward_batch(model, adapter, batch, block_hook_points(adapter, layers), callback)
        return torch.stack([states[layer] for layer in layers])


class NnsightBackend(_LastStatesBackend):
    """``nnsight.NNsight`` tracing; the model's modules are left as they were afterwards."""

    name = "nnsight"
    #: instance attributes NNsight adds to every module it wraps (removed again after each trace)
    _PATCHED = ("forward", "__nnsight__")

    def last_states(self, model: torch.nn.Module, adapter: BoundAdapter, batch: Batch,
                    layers: list[int]) -> torch.Tensor:
        import nnsight
        from nnsight import NNsight

        before = {(id(m), key) for m in model.modules() for key in self._PATCHED if key in m.__dict__}
        try:
            return self._trace(NNsight(model), nnsight, adapter, batch, layers)
        finally:
            # NNsight swaps instance-level ``forward`` controllers and ``__nnsight__`` state into every
            # module; a second trace of a module that still holds them fails, so remove them again.
            for mod in model.modules():
                for key in self._PATCHED:
                    if key in mod.__dict__ and (id(mod), key) not in before:
                        del mod.__dict__[key]

    @staticmethod
    def _trace(wrapped: Any, nnsight: Any, adapter: BoundAdapter, batch: Batch, layers: list[int]) -> torch.Tensor:
        envoy: Any = wrapped
        for part in adapter.spec.blocks.split("."):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        last = batch.last_index
        arange = torch.arange(last.shape[0], device=last.device)
        with torch.inference_mode():
            with wrapped.trace(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False):
                saved = nnsight.save([])
                if 0 in layers:
                    saved.append(envoy[0].input[arange, last])
                for layer in layers:
                    if layer > 0:
                        saved.append(envoy[layer - 1].output[arange, last])
            return torch.stack(list(saved))


def _dummy_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer over ``vocab_size`` ids: TransformerLens needs *a* tokenizer to boot;
    lensprobe only ever hands it token ids (so no BOS is prepended)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"<t{i}>": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<t0>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<t1>", eos_token="<t2>", pad_token="<t0>",
                                   unk_token="<t0>", name_or_path="lensprobe-token-ids", add_bos_token=True)


def boot_transformer_bridge(model: torch.nn.Module, *, copy_model: bool = True) -> Any:
    """A TransformerLens 4.x ``TransformerBridge`` around an in-memory HF model (no hub access).

    The bridge rewrites the model's modules in place, so by default it wraps a deep copy.
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf_model = copy.deepcopy(model) if copy_model else model
    device = next(hf_model.parameters()).device
    dtype = next(hf_model.parameters()).dtype
    config = hf_model.config
    bridge = TransformerBridge.boot_transformers(
        getattr(config, "_name_or_path", "") or f"lensprobe-{config.model_type}", hf_model=hf_model,
        tokenizer=_dummy_tokenizer(int(config.vocab_size)), device=str(device), dtype=dtype)
    bridge.eval()
    return bridge


class TransformerLensBackend(LensBackend):
    """TransformerLens' own logit lens on a ``TransformerBridge`` of a copy of the model, one unpadded
    row at a time: an oracle for tests, not a fast path (``batch_size`` is ignored)."""

    name = "transformer_lens"

    def run(self, model: torch.nn.Module, adapter: BoundAdapter, ids: torch.Tensor, mask: torch.Tensor, *,
            token_ids: torch.Tensor | None, sets: Any, top_k: int, layers: list[int], batch_size: int,
            store: Store) -> None:
        from transformer_lens.tools.analysis import logit_lens as tl_logit_lens

        tok, chosen = token_ids, layers
        bridge = boot_transformer_bridge(model)
        n_layers = adapter.n_layers
        names = [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
        union = None
        if sets is not None:
            index, valid = sets
            union = sorted(set(index[valid].tolist())) or [0]
            remap = torch.tensor([union.index(t) if v else 0 for t, v in zip(index.flatten().tolist(),
                                                                               valid.flatten().tolist())]).view_as(index)
        device = next(bridge.parameters()).device
        with torch.no_grad():
            for r in range(ids.shape[0]):
                row = ids[r][mask[r].bool()].unsqueeze(0).to(device)
                _, cache = bridge.run_with_cache(row, names_filter=names)
                base = tl_logit_lens(cache, layers=chosen, return_type="log_probs")  # entropy
                entropy = base.readout.entropy[:, 0]
                per_layer: dict[str, torch.Tensor] = {}
                if tok is not None:
                    targets = (tok if tok.dim() == 1 else tok[r]).tolist()
                    res = tl_logit_lens(cache, layers=chosen, targets=targets, return_type="log_probs")
                    per_layer["token_logprobs"] = res.values[:, 0]
                    per_layer["token_ranks"] = res.readout.target_ranks[:, 0]
                if union is not None:
                    res = tl_logit_lens(cache, layers=chosen, vocab=union, return_type="log_probs")
                    gathered = res.values[:, 0][:, remap]  # [n_layers, S, M]
                    per_layer["set_logprobs"] = gathered.masked_fill(~valid, float("-inf")).logsumexp(-1)
                if top_k:
                    res = tl_logit_lens(cache, layers=chosen, top_k=top_k, return_type="log_probs")
                    per_layer["top_tokens"] = res.readout.top_ids[:, 0]
                    per_layer["top_logprobs"] = res.values[:, 0]
                for j, layer in enumerate(chosen):
                    store(slice(r, r + 1), layer, LensReadout(
                        token_logprobs=per_layer["token_logprobs"][j:j + 1] if "token_logprobs" in per_layer else None,
                        token_ranks=per_layer["token_ranks"][j:j + 1] if "token_ranks" in per_layer else None,
                        set_logprobs=per_layer["set_logprobs"][j:j + 1] if "set_logprobs" in per_layer else None,
                        top_tokens=per_layer["top_tokens"][j:j + 1] if "top_tokens" in per_layer else None,
                        top_logprobs=per_layer["top_logprobs"][j:j + 1] if "top_logprobs" in per_layer else None,
                        entropy=entropy[j:j + 1]))


_BACKENDS: dict[str, LensBackend] = {b.name: b for b in (TorchBackend(), TransformerLensBackend(), NnsightBackend())}
#: The backend names :func:`logit_lens` accepts.
BACKENDS = tuple(_BACKENDS)


# --------------------------------------------------------------------------------------------
# the logit lens over a batch of prompts


def logit_lens(model: Any, input_ids: Any, attention_mask: Any = None, *, tokenizer: Any = None,
               token_ids: Any = None, token_sets: Sequence[Sequence[int | str]] | None = None, top_k: int = 0,
               layers: Sequence[int] | None = None, include_embeddings: bool = False, batch_size: int | None = None,
               backend: str | LensBackend = "torch", lens: Any = "logit") -> LogitLensResult:
    """Logit lens at each row's last real token over block outputs ``1..L``.

    Args:
        model: an HF causal LM with a registered adapter, or a :class:`~lensprobe.engine.adapters.LoadedModel`.
        input_ids: ``[B, T]`` (or ``[T]``) token ids, pad on either side; or a prompt string or a
            list of them, tokenized with ``tokenizer`` (no special tokens added) and left-padded.
        attention_mask: ``[B, T]`` 1 for real tokens, 0 for padding (default all ones). Positions
            are ``cumsum(mask) - 1`` so a padded row equals its unpadded run. Not with strings.
        tokenizer: tokenizes strings and decodes the ``token`` column of ``to_dataframe()``;
            default: a LoadedModel's own.
        token_ids: ``[K]`` or ``[B, K]`` tokens whose log-prob and rank to report; with a
            tokenizer, a string stands for the one token it is (``" len"``).
        token_sets: token-id sets whose total log-probability to report (shared by all rows);
            members may be strings like ``token_ids``.
        top_k: report the k most likely tokens (0: none).
        layers: layer numbers (default all blocks ``1..L``; negative counts from the end; 0 is the
            embedding output, the residual stream entering block 1).
        include_embeddings: add layer 0.
        batch_size: rows per forward pass (default all).
        backend: ``"torch"``, ``"transformer_lens"`` or ``"nnsight"`` (:data:`BACKENDS`), or a
            :class:`LensBackend` instance.
        lens: ``"logit"`` (default: block outputs decoded as they are, the paper's lens) or a
            fitted :class:`~lensprobe.engine.tuned_lens.TunedLens` of this model (each block output
            ``1..L-1`` goes through its translator first; layer ``L`` is decoded as it is; layer 0
            has no translator). The lens is refused when fitted on other weights
            (:meth:`~lensprobe.engine.tuned_lens.TunedLens.verify_model`). ``"tuned"`` alone is
            refused here: there are no translators to use (see docs/tuned-lens.md). The result's
            :attr:`~LogitLensResult.lens` says which lens read it.

    >>> from lensprobe.testing import tiny_model
    >>> res = logit_lens(tiny_model("gpt2"), [[5, 6, 7]], token_ids=[8, 9], top_k=2)
    >>> res.layers, tuple(res.token_logprobs.shape)          # [B, n_layers, K]
    ([1, 2, 3], (1, 3, 2))
    """
    if isinstance(model, LoadedModel):
        tokenizer = model.tokenizer if tokenizer is None else tokenizer
        adapter, model = model.adapter, model.model
    else:
        adapter = get_adapter(model)
    if _is_text(input_ids):
        if tokenizer is None:
            raise ValueError("input_ids are strings: they need a tokenizer (pass tokenizer=, or a LoadedModel whose "
                             "checkpoint has one)")
        if attention_mask is not None:
            raise ValueError("attention_mask is built from the strings' tokens; pass it only with token ids")
        input_ids, attention_mask = _encode_prompts(input_ids, tokenizer)
    if token_ids is not None:
        token_ids = _texts_to_ids(token_ids, tokenizer, "token_ids")
    if token_sets is not None and not isinstance(token_sets, (str, bytes, torch.Tensor)):
        token_sets = [m if isinstance(m, (str, bytes)) else _texts_to_ids(m, tokenizer, f"token_sets[{i}]")
                      for i, m in enumerate(token_sets)]
    lens_name, tuned = resolve_lens(lens)
    if lens_name == "tuned" and tuned is None:
        raise ValueError("lens='tuned' needs translators: pass a fitted TunedLens (lensprobe.TunedLens().fit(model, "
                         "heldout_ids), or TunedLens.load(dir)) as lens=; the probes fit them per checkpoint "
                         "(docs/tuned-lens.md)")
    if isinstance(backend, LensBackend):
        runner = backend
    elif backend in _BACKENDS:
        runner = _BACKENDS[backend]
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    ids, mask = _prepare_inputs(input_ids, attention_mask)
    validate_batch(Batch(ids, mask), adapter, where="input")
    n_rows = ids.shape[0]
    tok = None if token_ids is None else _token_id_tensor(token_ids, adapter.vocab_size, n_rows=n_rows)
    sets = None if token_sets is None else _set_index(token_sets, adapter.vocab_size)
    top_k = _validate_top_k(top_k, adapter.vocab_size)
    chosen = _resolve_layers(adapter, layers, include_embeddings)
    transform = None
    if tuned is not None:
        if not isinstance(runner, _LastStatesBackend):
            raise ValueError(f"a tuned lens reads through the 'torch' or 'nnsight' backend, not {runner.name!r}")
        if 0 in chosen:
            raise ValueError("layer 0 (the embeddings) has no tuned-lens translator; leave it out with a tuned lens")
        tuned.verify_model(model)
        transform = tuned.transform
    if batch_size is None:
        batch_size = n_rows
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    n_layers, col = len(chosen), {layer: j for j, layer in enumerate(chosen)}
    k = 0 if tok is None else tok.shape[-1]
    result = LogitLensResult(
        layers=chosen,
        entropy=torch.empty(n_rows, n_layers),
        token_ids=tok,
        token_logprobs=None if tok is None else torch.empty(n_rows, n_layers, k),
        token_ranks=None if tok is None else torch.empty(n_rows, n_layers, k, dtype=torch.long),
        set_logprobs=None if sets is None else torch.empty(n_rows, n_layers, sets[0].shape[0]),
        top_tokens=torch.empty(n_rows, n_layers, top_k, dtype=torch.long) if top_k else None,
        top_logprobs=torch.empty(n_rows, n_layers, top_k) if top_k else None,
        backend=runner.name,
        lens=lens_name,
        n_sets=0 if sets is None else sets[0].shape[0],
        tokenizer=tokenizer,
    )

    def store(rows: slice, layer: int, r: LensReadout) -> None:
        j = col[layer]
        result.entropy[rows, j] = r.entropy.cpu()
        for name in ("token_logprobs", "token_ranks", "set_logprobs", "top_tokens", "top_logprobs"):
            value = getattr(r, name)
            if value is not None:
                getattr(result, name)[rows, j] = value.cpu()

    extra = {} if transform is None else {"transform": transform}
    runner.run(model, adapter, ids, mask, token_ids=tok, sets=sets, top_k=top_k, layers=chosen,
               batch_size=batch_size, store=store, **extra)
    return result
