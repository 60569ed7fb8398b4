"""Tuned lens (Belrose et al. 2023): one learned affine translator per block output.

The logit lens decodes a block output ``h_l`` with the model's own final norm and unembedding.
Early layers are not in the basis the unembedding reads, so the logit lens reads little there.
A tuned lens first maps ``h_l`` through a translator

    T_l(h) = h + A_l h + b_l          (A_l: [d, d], b_l: [d]; zero-initialised)

and then decodes ``T_l(h_l)`` the same way. ``A_l`` and ``b_l`` are trained so that the decoded
distribution matches the model's final distribution at the same position, minimising
``KL(final || layer)`` per token. Zero initialisation makes an unfitted lens equal the logit lens.
Block outputs ``1..L-1`` get a translator; layer ``L`` needs none (its decode *is* the model's
output).

:class:`TunedLens` follows the scikit-learn convention: settings in ``__init__``, ``fit`` returns
the fitted lens, learned state ends in ``_``. See docs/engine.md, "Tuned lens".

Example::

    >>> from lensprobe import load_model
    >>> from lensprobe.engine.tuned_lens import TunedLens
    >>> lm = load_model("pretrain/assets/babel-base-php")
    >>> lens = TunedLens().fit(lm, train_ids)                  # doctest: +SKIP
    >>> lens.evaluate(lm, heldout_ids)                          # doctest: +SKIP
       layer  kl_logit  kl_tuned  ...
    >>> lens.save("lenses/base")                                # doctest: +SKIP
    >>> TunedLens.load("lenses/base", model=lm)                 # doctest: +SKIP
    >>> TunedLens(steps=60).fit(lm_next, train_ids, init=lens)  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from lensprobe.checkpoints import weight_hash
from lensprobe.engine.adapters import BoundAdapter, LoadedModel, get_adapter
from lensprobe.engine.hooks import block_hook_points, forward_batch, point_layer, validate_batch
from lensprobe.engine.protocol import Batch
from lensprobe.files import atomic_directory

__all__ = [
    "TunedLens",
    "TunedLensError",
    "TunedLensMismatchError",
    "model_weight_hash",
    "pack_token_rows",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
]

CONFIG_FILE = "tuned_lens.json"
WEIGHTS_FILE = "tuned_lens.safetensors"
FORMAT = "lensprobe.tuned_lens"
FORMAT_VERSION = 1
SCHEDULES = ("constant", "linear")
STARTS = ("zero", "lstsq")

#: Rows per forward pass when the training rows are collected once (cached fits): small models run
#: small batches far below their throughput.
COLLECT_ROWS = 32
#: Most logits alive at once while fitting or evaluating (elements; 8M fp32 = 32 MB per tensor).
MAX_LOGITS_ELEMENTS = 1 << 23


class TunedLensError(ValueError):
    """A tuned lens cannot be fitted, read or applied as asked (bad file, shape, argument)."""


class TunedLensMismatchError(TunedLensError):
    """A tuned lens is applied to a model whose weights differ from the ones it was fitted on."""


# --------------------------------------------------------------------------------------------
# helpers


def _unwrap(model: Any) -> tuple[nn.Module, BoundAdapter]:
    if isinstance(model, LoadedModel):
        return model.model, model.adapter
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an HF causal LM (nn.Module) or a LoadedModel, got {type(model).__name__}")
    return model, get_adapter(model)


_HASH_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def _saved_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors ``save_pretrained`` writes: the state dict without tied aliases."""
    state = module.state_dict()
    tied = getattr(module, "_tied_weights_keys", None) or {}
    targets = set(tied)  # transformers 5: {target: source}; the target is not written
    groups: dict[Any, list[str]] = {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype) \
            if t.numel() else ("empty", name)
        groups.setdefault(key, []).append(name)
    keep = {}
    for names in groups.values():
        own = [n for n in names if n not in targets] or names
        keep[own[0]] = state[own[0]]
    return keep


def model_weight_hash(model: Any) -> str:
    """:func:`lensprobe.checkpoints.weight_hash` of a model's in-memory weights.

    The weights are written as ``save_pretrained`` would write them (tied aliases dropped) to a
    temporary safetensors file and hashed with the same function that hashes checkpoint
    directories, so a model loaded from a checkpoint hashes to that checkpoint's ``weight_hash``.
    Cached per model until any of its tensors changes (in-place loads bump tensor versions).
    For very large models pass the checkpoint's known hash to :meth:`TunedLens.fit` instead.
    """
    from safetensors.torch import save_file

    module, _ = _unwrap(model)
    state = _saved_state(module)
    fingerprint = tuple((n, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for n, t in state.items())
    cached = _HASH_CACHE.get(module)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    with tempfile.TemporaryDirectory(prefix="lensprobe-hash-") as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file({n: t.detach().to("cpu").contiguous() for n, t in state.items()}, str(path))
        digest = weight_hash([path])
    _HASH_CACHE[module] = (fingerprint, digest)
    return digest


def pack_token_rows(texts: Iterable[str], tokenizer: Any, *, length: int, n_rows: int, eos_id: int | None = None,
                    skip_rows: int = 0) -> torch.Tensor:
    """Tokenise documents (no special tokens, EOS after each, as pretraining packs them) and cut
    the stream into ``n_rows`` rows of ``length`` tokens, after skipping ``skip_rows`` rows.

    Returns ``[n_rows, length]`` long ids. Use disjoint ``skip_rows`` ranges of one stream for
    training and held-out rows.
    """
    for name, value, low in (("length", length, 1), ("n_rows", n_rows, 1), ("skip_rows", skip_rows, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if eos_id is None:
        eos_id = getattr(tokenizer, "eos_token_id", None)
        if eos_id is None:
            raise ValueError("the tokenizer has no eos_token_id; pass eos_id")
    need = (skip_rows + n_rows) * length
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        stream.append(int(eos_id))
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise ValueError(f"the documents give {len(stream)} tokens; {need} needed for {skip_rows} + {n_rows} rows "
                         f"of {length}")
    rows = torch.tensor(stream[skip_rows * length: need], dtype=torch.long)
    return rows.view(n_rows, length)  # [n_rows, length]


def _prepare(input_ids: Any, attention_mask: Any, adapter: BoundAdapter) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``[N, T]`` ids and 0/1 mask (CPU)."""
    if not isinstance(input_ids, torch.Tensor):
        try:
            input_ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64))
        except (TypeError, ValueError) as err:
            raise TypeError("input_ids must be an integer tensor [N, T]") from err
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool or input_ids.is_complex():
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [N, T], got shape {tuple(input_ids.shape)}")
    ids = input_ids.detach().to("cpu", torch.long)
    if attention_mask is None:
        mask = torch.ones_like(ids)
    else:
        mask = torch.as_tensor(attention_mask).detach().to("cpu")
        if mask.dim() == 1:
            mask = mask.unsqueeze(0)
        mask = mask.long()
    validate_batch(Batch(ids, mask), adapter, where="input_ids/attention_mask")
    return ids, mask


def _trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop columns that are padding in every row (positions come from the mask, so unaffected)."""
    real = mask.bool().any(0).nonzero().flatten()
    lo, hi = int(real[0]), int(real[-1]) + 1
    return ids[:, lo:hi], mask[:, lo:hi]


@dataclass
class _Tokens:
    """Training or evaluation tokens of some rows: the inputs and targets of the lens."""

    hidden: torch.Tensor  # [n_layers, N, d] block outputs 1..L-1 at real tokens
    last: torch.Tensor  # [N, d] block L's output (the final distribution's state)
    p: torch.Tensor  # [N, V] the model's final distribution
    negent: torch.Tensor  # [N] sum_v p log p
    rows: torch.Tensor  # [N] row of each token (within the rows given)


def _collect(model: nn.Module, adapter: BoundAdapter, ids: torch.Tensor, mask: torch.Tensor) -> _Tokens:
    """One forward pass without gradients, stopped after the last block: block outputs at real
    tokens, and the final distribution decoded from block L's output by the model's own path
    (the model's logits, as :func:`lensprobe.engine.adapters.verify_lens` checks at load)."""
    ids, mask = _trim(ids, mask)
    batch = Batch(ids, mask).to(adapter.device)
    real = batch.attention_mask.bool()  # [b, t]
    states: dict[int, torch.Tensor] = {}

    def callback(point: str, hidden: torch.Tensor) -> None:
        states[point_layer(point)] = hidden[real]  # [N, d]: real tokens only

    forward_batch(model, adapter, batch, block_hook_points(adapter), callback)
    n = adapter.n_layers
    with torch.inference_mode():
        logp = torch.log_softmax(adapter.decode(states[n]).float(), dim=-1)  # [N, V]
        p = logp.exp()
        negent = (p * logp).sum(-1)  # [N]
    # clone() outside inference mode: normal tensors that autograd may use
    hidden = torch.stack([states[layer] for layer in range(1, n)]).float().clone()  # [n-1, N, d]
    rows = torch.arange(ids.shape[0], device=real.device).unsqueeze(1).expand_as(real)[real]  # [N]
    return _Tokens(hidden, states[n].float().clone(), p.clone(), negent.clone(), rows.cpu())


def _cat(parts: list[_Tokens], offsets: list[int]) -> _Tokens:
    return _Tokens(torch.cat([t.hidden for t in parts], 1), torch.cat([t.last for t in parts]),
                   torch.cat([t.p for t in parts]), torch.cat([t.negent for t in parts]),
                   torch.cat([t.rows + o for t, o in zip(parts, offsets)]))


def _kl_terms(logits: torch.Tensor, p: torch.Tensor, negent: torch.Tensor, *, lse: torch.Tensor) -> torch.Tensor:
    """``KL(p || softmax(logits))`` = ``sum p log p - <p, logits> + logsumexp(logits)``: ``[n, c]``."""
    return negent - torch.einsum("ncv,cv->nc", logits, p) + lse  # [n, c]


def _translate(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``h + A h + b`` for stacked layers: ``hidden [n, c, d]``, ``weight [n, d, d]``, ``bias [n, d]``."""
    return hidden + torch.baddbmm(bias.unsqueeze(1), hidden, weight.transpose(1, 2))  # [n, c, d]


def _unembed_dtype(adapter: BoundAdapter) -> torch.dtype:
    param = next(iter(adapter.unembed.parameters()), None)
    return param.dtype if param is not None else torch.float32


class _FrozenModel:
    """Temporarily turn off ``requires_grad`` on a model's parameters (gradients flow to the
    translators through the decode path, never into the model)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.saved: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> None:
        self.saved = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self.saved:
            p.requires_grad_(False)
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        for p, flag in self.saved:
            p.requires_grad_(flag)
        if self.was_training:
            self.model.train()


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
            or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _tokens_digest(ids: torch.Tensor, mask: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(list(ids.shape)).encode())
    h.update(ids.numpy().astype("<i8").tobytes())
    h.update(mask.numpy().astype("u1").tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# the lens


class TunedLens:
    """Affine translators ``h + A_l h + b_l`` for block outputs ``1..L-1``, fitted to ``KL(final || layer)``.

    Args (settings; learned state ends in ``_``):
        steps: optimiser steps (one batch of rows each).
        lr: Adam learning rate (peak, see ``schedule``).
        batch_size: rows per step (each row is one sequence of the token stream).
        schedule: ``"linear"`` (lr decays linearly to 0 over the steps) or ``"constant"``.
        start: ``"zero"`` (``A = 0, b = 0``: the logit lens, Belrose et al.'s initialisation) or
            ``"lstsq"`` (ridge least squares of ``h_L - h_l`` on ``[h_l, 1]`` over the training
            tokens: the affine map that best predicts the last block's state; a cheap head start).
            Ignored when :meth:`fit` is given ``init``.
        weight_decay: decoupled weight decay (AdamW) on ``A`` and ``b``, i.e. toward the logit lens.
        seed: seeds the row order; a fit is deterministic for a seed (CPU, fixed thread count).
        cache_bytes: keep the training rows' block outputs and final distributions in memory when
            they fit in this many bytes (one forward pass over the rows in all); otherwise every
            step runs the model on its batch. Results agree to float rounding either way.

    Learned state after :meth:`fit` (or :meth:`load`):
        weight_: ``[L-1, d, d]`` the ``A_l`` (``nn.Linear`` convention: ``A h`` is ``h @ A.T``).
        bias_: ``[L-1, d]`` the ``b_l``.
        layers_: ``[1, ..., L-1]``; n_layers_, d_model_, vocab_size_, model_type_.
        weight_hash_: :func:`model_weight_hash` of the model fitted on.
        data_: what it was fitted on (rows, tokens, a digest of the ids, a description).
        init_: ``None`` or the weight hash / data digest of the lens it was warm-started from.
        history_: DataFrame ``step, layer, kl`` (training-batch KL before each update, nats/token).

    Example::

        lens = TunedLens().fit(lm, train_ids)
        lens.evaluate(lm, heldout_ids)        # layer, kl_logit, kl_tuned, ...
        warm = TunedLens(steps=40).fit(lm_next, train_ids, init=lens)
    """

    def __init__(self, *, steps: int = 150, lr: float = 1e-2, batch_size: int = 8, schedule: str = "linear",
                 start: str = "zero", weight_decay: float = 0.0, seed: int = 0, cache_bytes: int = 1 << 30):
        self.steps = _check_int("steps", steps, 0)
        self.lr = _check_float("lr", lr, positive=True)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.schedule = schedule
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        self.start = start
        self.weight_decay = _check_float("weight_decay", weight_decay, positive=False)
        self.seed = _check_int("seed", seed, 0)
        self.cache_bytes = _check_int("cache_bytes", cache_bytes, 0)
        self.weight_: torch.Tensor | None = None
        self.bias_: torch.Tensor | None = None
        self.layers_: list[int] = []
        self.n_layers_: int | None = None
        self.d_model_: int | None = None
        self.vocab_size_: int | None = None
        self.model_type_: str | None = None
        self.weight_hash_: str | None = None
        self.data_: dict[str, Any] = {}
        self.init_: dict[str, Any] | None = None
        self.history_: pd.DataFrame = pd.DataFrame(columns=["step", "layer", "kl"])
        self.source_: str | None = None

    # -- settings ------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The settings (scikit-learn's ``get_params``); part of any cache key."""
        return {"steps": self.steps, "lr": self.lr, "batch_size": self.batch_size, "schedule": self.schedule,
                "start": self.start, "weight_decay": self.weight_decay, "seed": self.seed,
                "cache_bytes": self.cache_bytes}

    def __repr__(self) -> str:
        state = f", fitted on {self.weight_hash_[:12]}" if self.weight_hash_ else ", unfitted"
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"TunedLens({args}{state})"

    @property
    def fitted(self) -> bool:
        return self.weight_ is not None

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise TunedLensError("this TunedLens is not fitted; call fit() or TunedLens.load() first")

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, model: Any, input_ids: Any, *, attention_mask: Any = None, init: "TunedLens | None" = None,
            weight_hash: str | None = None, description: str | None = None,
            callback: Callable[[int, "TunedLens"], None] | None = None) -> "TunedLens":
        """Fit one translator per block output ``1..L-1`` on ``input_ids`` and return ``self``.

        Args:
            model: an HF causal LM with a registered adapter, or a :class:`LoadedModel`.
            input_ids: ``[N, T]`` token rows (pad on either side; padding never enters the loss).
            attention_mask: ``[N, T]`` 1 = real token (default all ones).
            init: a fitted :class:`TunedLens` of the same shape (e.g. the previous checkpoint's)
                to start from; its learned values are copied, ``init`` is unchanged.
            weight_hash: the model's weight hash when already known (a checkpoint's
                ``CheckpointInfo.weight_hash``); computed with :func:`model_weight_hash` otherwise.
            description: free text stored in ``data_`` (what the rows are, for the reader).
            callback: ``callback(step, lens)`` after each optimiser step (e.g. to evaluate);
                ``lens`` holds the current translators.

        Each step takes ``batch_size`` rows (a seeded permutation, epoch after epoch) and
        minimises the sum over layers of the mean ``KL(final || layer)`` over their real tokens
        with Adam(W). The model runs without gradients; its parameters are untouched.
        """
        module, adapter = _unwrap(model)
        if adapter.n_layers < 2:
            raise TunedLensError(f"a tuned lens needs at least 2 blocks; the model has {adapter.n_layers}")
        ids, mask = _prepare(input_ids, attention_mask, adapter)
        if description is not None and not isinstance(description, str):
            raise TypeError(f"description must be a string, got {type(description).__name__}")
        if init is not None:
            self._check_init(init, adapter)
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable (step, lens) -> None")
        layers = list(range(1, adapter.n_layers))
        n, d, vocab = len(layers), adapter.d_model, adapter.vocab_size
        n_tokens = int(mask.sum())
        self.weight_hash_ = weight_hash if weight_hash is not None else model_weight_hash(module)
        self.data_ = {"n_rows": int(ids.shape[0]), "seq_len": int(ids.shape[1]), "n_tokens": n_tokens,
                      "tokens_digest": _tokens_digest(ids, mask), "description": description}
        self.init_ = None if init is None else {"weight_hash": init.weight_hash_,
                                                "tokens_digest": init.data_.get("tokens_digest"),
                                                "source": init.source_}
        self.source_ = None
        with _FrozenModel(module):
            cached = None
            if n_tokens * (n * d + d + vocab + 2) * 4 <= self.cache_bytes and (self.steps or self.start == "lstsq"):
                cached = self._collect_rows(module, adapter, ids, mask)
            if init is not None:
                weight, bias = init.weight_.clone(), init.bias_.clone()
            elif self.start == "lstsq":
                weight, bias = self._lstsq(module, adapter, ids, mask, cached)
            else:
                weight, bias = torch.zeros(n, d, d), torch.zeros(n, d)  # [n, d_out, d_in], [n, d]
            weight = weight.to(adapter.device).requires_grad_()
            bias = bias.to(adapter.device).requires_grad_()
            self._set_state(weight.detach(), bias.detach(), adapter, layers)
            opt = torch.optim.AdamW([weight, bias], lr=self.lr, weight_decay=self.weight_decay)
            gen = torch.Generator().manual_seed(self.seed)
            order: list[int] = []
            history: list[tuple[int, int, float]] = []
            for step in range(self.steps):
                if len(order) < self.batch_size:
                    order.extend(torch.randperm(ids.shape[0], generator=gen).tolist())
                rows, order = order[: self.batch_size], order[self.batch_size:]
                tokens = self._select(cached, rows) if cached is not None else _collect(module, adapter, ids[rows],
                                                                                       mask[rows])
                for group in opt.param_groups:
                    group["lr"] = self.lr * (1.0 - step / self.steps if self.schedule == "linear" else 1.0)
                opt.zero_grad(set_to_none=False)
                kl = self._kl_backward(adapter, weight, bias, tokens)  # [n]
                opt.step()
                history.extend((step, layer, float(v)) for layer, v in zip(layers, kl.tolist()))
                if callback is not None:
                    self._set_state(weight.detach(), bias.detach(), adapter, layers)
                    callback(step, self)
        self._set_state(weight.detach(), bias.detach(), adapter, layers)
        self.history_ = pd.DataFrame(history, columns=["step", "layer", "kl"])
        return self

    def _collect_rows(self, module: nn.Module, adapter: BoundAdapter, ids: torch.Tensor,
                      mask: torch.Tensor) -> tuple[_Tokens, torch.Tensor]:
        """All rows' tokens (one forward pass per ``COLLECT_ROWS`` rows at least) and each row's token offset."""
        size = max(self.batch_size, COLLECT_ROWS)
        parts = [_collect(module, adapter, ids[i:i + size], mask[i:i + size]) for i in range(0, ids.shape[0], size)]
        tokens = _cat(parts, list(range(0, ids.shape[0], size)))
        offsets = torch.zeros(ids.shape[0] + 1, dtype=torch.long)
        offsets[1:] = mask.sum(1).cumsum(0)
        return tokens, offsets

    @staticmethod
    def _select(cached: tuple[_Tokens, torch.Tensor], rows: list[int]) -> _Tokens:
        tokens, offsets = cached
        index = torch.cat([torch.arange(int(offsets[r]), int(offsets[r + 1])) for r in rows])
        return _Tokens(tokens.hidden[:, index], tokens.last[index], tokens.p[index], tokens.negent[index],
                       tokens.rows[index])

    def _lstsq(self, module: nn.Module, adapter: BoundAdapter, ids: torch.Tensor, mask: torch.Tensor,
               cached: tuple[_Tokens, torch.Tensor] | None, ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
        """Ridge least squares of ``h_L - h_l`` on ``[h_l, 1]`` per layer (float64 normal equations)."""
        n, d = adapter.n_layers - 1, adapter.d_model
        gram = torch.zeros(n, d + 1, d + 1, dtype=torch.float64)
        cross = torch.zeros(n, d + 1, d, dtype=torch.float64)
        parts = [cached[0]] if cached is not None else (
            _collect(module, adapter, ids[i:i + self.batch_size], mask[i:i + self.batch_size])
            for i in range(0, ids.shape[0], self.batch_size))
        for t in parts:
            x = t.hidden.double().cpu()  # [n, N, d]
            xa = torch.cat([x, torch.ones(n, x.shape[1], 1, dtype=torch.float64)], -1)  # [n, N, d+1]
            gram += xa.transpose(1, 2) @ xa
            cross += xa.transpose(1, 2) @ (t.last.double().cpu().unsqueeze(0) - x)
        scale = gram.diagonal(dim1=1, dim2=2).mean(-1)  # [n]
        gram += ridge * scale[:, None, None] * torch.eye(d + 1, dtype=torch.float64)
        sol = torch.linalg.solve(gram, cross)  # [n, d+1, d]
        return sol[:, :d].transpose(1, 2).float().contiguous(), sol[:, d].float().contiguous()

    def _set_state(self, weight: torch.Tensor, bias: torch.Tensor, adapter: BoundAdapter, layers: list[int]) -> None:
        self.weight_ = weight.to("cpu", torch.float32).clone()
        self.bias_ = bias.to("cpu", torch.float32).clone()
        self.layers_ = list(layers)
        self.n_layers_ = adapter.n_layers
        self.d_model_ = adapter.d_model
        self.vocab_size_ = adapter.vocab_size
        self.model_type_ = adapter.spec.model_type

    def _check_init(self, init: Any, adapter: BoundAdapter) -> None:
        if not isinstance(init, TunedLens):
            raise TypeError(f"init must be a fitted TunedLens, got {type(init).__name__}")
        if not init.fitted:
            raise TunedLensError("init is an unfitted TunedLens")
        where = f"init ({init.source_ or 'in memory'})"
        if init.n_layers_ != adapter.n_layers or init.d_model_ != adapter.d_model:
            raise TunedLensError(f"{where} was fitted on a {init.n_layers_}-block model with d_model={init.d_model_}; "
                                 f"this model has {adapter.n_layers} blocks, d_model={adapter.d_model}")

    @staticmethod
    def _kl_backward(adapter: BoundAdapter, weight: torch.Tensor, bias: torch.Tensor, tokens: _Tokens) -> torch.Tensor:
        """Accumulate gradients of ``sum_l mean_tokens KL(final || layer l)``; return the ``[n]`` means.

        The gradient of ``KL(p || softmax(z))`` with respect to the logits ``z`` is
        ``softmax(z) - p``; it is formed directly and back-propagated through the decode path, so
        only two ``[n, c, V]`` buffers exist per chunk (autograd through ``log_softmax`` needs
        several and is about twice as slow on a CPU).
        """
        n, n_tok, _ = tokens.hidden.shape
        vocab = tokens.p.shape[-1]
        chunk = max(1, MAX_LOGITS_ELEMENTS // (n * vocab))
        totals = torch.zeros(n, dtype=torch.float64)
        dtype = _unembed_dtype(adapter)
        device = weight.device
        for start in range(0, n_tok, chunk):
            h = tokens.hidden[:, start:start + chunk].to(device)  # [n, c, d]
            p = tokens.p[start:start + chunk].to(device)  # [c, V]
            logits = adapter.decode(_translate(h, weight, bias).to(dtype)).float()  # [n, c, V]
            with torch.no_grad():
                top, arg = logits.max(-1)  # [n, c]
                grad = torch.softmax(logits, dim=-1)  # [n, c, V]
                lse = top - torch.log(grad.gather(-1, arg.unsqueeze(-1)).squeeze(-1))  # [n, c]
                kl = _kl_terms(logits, p, tokens.negent[start:start + chunk].to(device), lse=lse)  # [n, c]
                grad.sub_(p)  # d KL / d logits, summed over tokens below
            logits.backward(grad)
            totals += kl.double().sum(-1).cpu()
        with torch.no_grad():
            weight.grad.div_(n_tok)
            bias.grad.div_(n_tok)
        return totals / n_tok

    # -- applying ------------------------------------------------------------------------------
    def transform(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Translate block-``layer`` outputs ``hidden [..., d]`` to ``h + A h + b`` (same shape/dtype).

        ``layer`` is a block number ``1..L``; layer ``L`` is returned unchanged (no translator).
        Decode the result with the model's own path (``adapter.decode`` or
        :func:`lensprobe.engine.lens.readout`).
        """
        self._require_fitted()
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer must be an integer, got {layer!r}")
        layer = int(layer)
        if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
            raise TypeError("hidden must be a floating-point tensor [..., d_model]")
        if hidden.shape[-1] != self.d_model_:
            raise ValueError(f"hidden must end in d_model={self.d_model_}, got shape {tuple(hidden.shape)}")
        if layer == self.n_layers_:
            return hidden
        if layer not in self.layers_:
            raise ValueError(f"layer {layer} has no translator; this lens covers blocks {self.layers_[0]}.."
                             f"{self.layers_[-1]} (and {self.n_layers_} needs none)")
        j = layer - self.layers_[0]
        w = self.weight_[j].to(hidden.device)  # [d, d]
        b = self.bias_[j].to(hidden.device)  # [d]
        h = hidden.float()
        return (h + torch.nn.functional.linear(h, w, b)).to(hidden.dtype)

    def verify_model(self, model: Any, *, weight_hash: str | None = None, check_model: bool = True) -> None:
        """Refuse a model this lens cannot or should not be applied to.

        A different number of blocks or ``d_model`` always raises :class:`TunedLensError`; other
        weights than the ones fitted on raise :class:`TunedLensMismatchError` unless
        ``check_model=False`` (e.g. to read checkpoint k+1 through checkpoint k's lens on purpose).
        """
        self._require_fitted()
        module, adapter = _unwrap(model)
        where = f"tuned lens {self.source_ or '(in memory)'}"
        if adapter.n_layers != self.n_layers_ or adapter.d_model != self.d_model_:
            raise TunedLensError(f"{where} was fitted on a {self.n_layers_}-block model with d_model={self.d_model_}; "
                                 f"this model has {adapter.n_layers} blocks, d_model={adapter.d_model}")
        if not check_model:
            return
        digest = weight_hash if weight_hash is not None else model_weight_hash(module)
        if digest != self.weight_hash_:
            raise TunedLensMismatchError(
                f"{where} was fitted on the model with weight hash {self.weight_hash_}, but this model's weights "
                f"hash to {digest}. A translator is specific to the weights it was fitted on; fit one for this "
                "model (warm-start it with init=<this lens>), or pass check_model=False to apply it anyway.")

    def evaluate(self, model: Any, input_ids: Any, *, attention_mask: Any = None, batch_size: int | None = None,
                 check_model: bool = True, weight_hash: str | None = None) -> pd.DataFrame:
        """Mean ``KL(final || layer)`` in nats per real token, logit lens vs this tuned lens.

        Returns one row per translated layer with columns ``layer``, ``kl_logit``, ``kl_tuned``,
        ``kl_logit_se``, ``kl_tuned_se`` (standard errors of the per-token means with rows as
        clusters: tokens of one row are not independent) and ``n_tokens``. Padding is excluded.
        ``batch_size``: rows per forward pass (default ``max(batch_size, COLLECT_ROWS)``).
        ``check_model`` / ``weight_hash``: see :meth:`verify_model`.
        """
        self.verify_model(model, weight_hash=weight_hash, check_model=check_model)
        module, adapter = _unwrap(model)
        ids, mask = _prepare(input_ids, attention_mask, adapter)
        batch_size = (max(self.batch_size, COLLECT_ROWS) if batch_size is None
                      else _check_int("batch_size", batch_size, 1))
        n_rows, n = ids.shape[0], len(self.layers_)
        sums = torch.zeros(2, n, n_rows, dtype=torch.float64)  # [lens, layer, row]: summed KL
        counts = mask.sum(1).double()  # [row]
        dtype = _unembed_dtype(adapter)
        weight, bias = self.weight_.to(adapter.device), self.bias_.to(adapter.device)
        was_training = module.training
        module.eval()
        try:
            for start in range(0, n_rows, batch_size):
                sl = slice(start, min(start + batch_size, n_rows))
                tokens = _collect(module, adapter, ids[sl], mask[sl])
                rows = tokens.rows + start  # [N]
                chunk = max(1, MAX_LOGITS_ELEMENTS // (n * tokens.p.shape[-1]))
                with torch.inference_mode():
                    for c0 in range(0, rows.shape[0], chunk):
                        h = tokens.hidden[:, c0:c0 + chunk]  # [n, c, d]
                        p, negent = tokens.p[c0:c0 + chunk], tokens.negent[c0:c0 + chunk]  # [c, V], [c]
                        for k, states in enumerate((h, _translate(h, weight, bias))):
                            logits = adapter.decode(states.to(dtype)).float()  # [n, c, V]
                            kl = _kl_terms(logits, p, negent, lse=torch.logsumexp(logits, -1))  # [n, c]
                            sums[k].index_add_(1, rows[c0:c0 + chunk], kl.double().cpu())
        finally:
            if was_training:
                module.train()
        total = counts.sum()
        means = sums.sum(-1) / total  # [2, n]
        resid = sums - means.unsqueeze(-1) * counts  # [2, n, row]
        se = torch.sqrt(n_rows / max(n_rows - 1, 1) * (resid ** 2).sum(-1)) / total  # [2, n]
        return pd.DataFrame({"layer": self.layers_, "kl_logit": means[0].numpy(), "kl_tuned": means[1].numpy(),
                             "kl_logit_se": se[0].numpy(), "kl_tuned_se": se[1].numpy(),
                             "n_tokens": int(total)})

    # -- files ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The JSON configuration written by :meth:`save`."""
        self._require_fitted()
        return {"format": FORMAT, "version": FORMAT_VERSION, "layers": self.layers_, "n_layers": self.n_layers_,
                "d_model": self.d_model_, "vocab_size": self.vocab_size_, "model_type": self.model_type_,
                "weight_hash": self.weight_hash_, "settings": self.get_params(), "data": self.data_,
                "init": self.init_,
                "final_train_kl": (self.history_[self.history_["step"] == self.history_["step"].max()]
                                   .set_index("layer")["kl"].to_dict() if len(self.history_) else {})}

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``path/tuned_lens.safetensors`` and ``path/tuned_lens.json`` atomically."""
        self._require_fitted()
        path = Path(path)
        with atomic_directory(path, overwrite=overwrite) as tmp:
            self.write_files(tmp)
        return path

    def write_files(self, directory: str | Path) -> None:
        """Write the files of :meth:`save` into an existing (temporary) directory, not atomically:
        for callers that add files of their own before renaming the directory into place
        (:mod:`lensprobe.engine.tuned_series`)."""
        from safetensors.torch import save_file

        self._require_fitted()
        tmp = Path(directory)
        config = self.config()
        config["final_train_kl"] = {str(k): v for k, v in config["final_train_kl"].items()}
        save_file({"weight": self.weight_.contiguous(), "bias": self.bias_.contiguous()},
                  str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "weight_hash": str(self.weight_hash_)})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if len(self.history_):
            self.history_.to_csv(tmp / "history.csv", index=False)

    @classmethod
    def load(cls, path: str | Path, *, model: Any = None, check_model: bool = True) -> "TunedLens":
        """Read a lens written by :meth:`save`; with ``model``, :meth:`verify_model` it at once."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise TunedLensError(f"{path} is not a saved tuned lens: {p.name} is missing")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise TunedLensError(f"{cfg_path}: not readable JSON ({err})") from err
        if not isinstance(cfg, dict):
            raise TunedLensError(f"{cfg_path}: expected a JSON object, got {type(cfg).__name__}")
        if cfg.get("format") != FORMAT:
            raise TunedLensError(f"{cfg_path}: field 'format' must be {FORMAT!r}, got {cfg.get('format')!r}")
        if cfg.get("version") != FORMAT_VERSION:
            raise TunedLensError(f"{cfg_path}: field 'version' {cfg.get('version')!r} is not supported "
                                 f"(this lensprobe reads {FORMAT_VERSION})")
        for key in ("layers", "n_layers", "d_model", "weight_hash", "settings"):
            if key not in cfg:
                raise TunedLensError(f"{cfg_path}: field {key!r} is missing")
        try:
            lens = cls(**cfg["settings"])
        except (TypeError, ValueError) as err:
            raise TunedLensError(f"{cfg_path}: field 'settings' is invalid ({err})") from err
        try:
            tensors = load_file(str(w_path))
        except (SafetensorError, OSError) as err:
            raise TunedLensError(f"{w_path}: not a readable safetensors file ({err})") from err
        n, d = len(cfg["layers"]), int(cfg["d_model"])
        shapes = {"weight": (n, d, d), "bias": (n, d)}
        for name, shape in shapes.items():
            t = tensors.get(name)
            if t is None or tuple(t.shape) != shape or t.dtype != torch.float32:
                got = None if t is None else (t.dtype, tuple(t.shape))
                raise TunedLensError(f"{w_path}: tensor {name!r} must be float32 {shape} (from {cfg_path.name}: "
                                     f"{n} layers, d_model={d}), got {got}")
        if list(cfg["layers"]) != list(range(1, int(cfg["n_layers"]))):
            raise TunedLensError(f"{cfg_path}: field 'layers' must be 1..n_layers-1, got {cfg['layers']}")
        lens.weight_, lens.bias_ = tensors["weight"], tensors["bias"]
        lens.layers_ = [int(x) for x in cfg["layers"]]
        lens.n_layers_, lens.d_model_ = int(cfg["n_layers"]), d
        lens.vocab_size_, lens.model_type_ = cfg.get("vocab_size"), cfg.get("model_type")
        lens.weight_hash_ = cfg["weight_hash"]
        lens.data_ = dict(cfg.get("data") or {})
        lens.init_ = cfg.get("init")
        hist = path / "history.csv"
        lens.history_ = pd.read_csv(hist) if hist.is_file() else pd.DataFrame(columns=["step", "layer", "kl"])
        lens.source_ = str(path)
        if model is not None:
            lens.verify_model(model, check_model=check_model)
        return lens
