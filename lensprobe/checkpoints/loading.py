"""Loading a checkpoint's tensors into a resident model in place, and the helpers
:meth:`lensprobe.checkpoints.CheckpointSeries.iter_models` builds on (reading state dicts, the
first model through :func:`lensprobe.engine.adapters.load_model`, architecture comparison)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import torch

from lensprobe.engine.adapters import load_model, verify_lens

from .errors import CheckpointError, StateDictMismatchError

__all__ = ["load_state_dict_in_place", "read_state_dict", "materialize", "load_first_model",
           "verify_lens_after_load", "architecture", "diff_keys"]


def read_state_dict(files: Sequence[Path]) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's safetensors ``files``, memory-mapped (nothing read yet)."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            part = load_file(str(f), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{f}: cannot read tensors ({exc})") from exc
        clash = state.keys() & part.keys()
        if clash:
            raise CheckpointError(f"{f}: tensor(s) {sorted(clash)[:3]} also stored in another shard")
        state.update(part)
    return state


def materialize(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Own, in-memory copies (floating tensors in ``dtype``) of memory-mapped tensors: reading
    the pages here is the I/O the prefetch thread takes off the caller's hands."""
    return {k: v.to(dtype, copy=True) if v.is_floating_point() else v.clone() for k, v in state.items()}


def _ignored_unexpected(model: torch.nn.Module) -> list[re.Pattern[str]]:
    pats = [re.compile(p) for p in (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])]
    persistent = set(model.state_dict().keys())
    for name, _ in model.named_buffers():
        if name not in persistent:  # non-persistent buffers (rotary inv_freq, causal masks)
            pats.append(re.compile(re.escape(name.rsplit(".", 1)[-1]) + "$"))
    return pats


def load_state_dict_in_place(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *,
                             where: str = "checkpoint", share: bool = False) -> None:
    """Copy ``state_dict`` into ``model``'s existing parameters and buffers (no re-allocation).

    Keys are checked strictly: every parameter and persistent buffer must be provided, except
    aliases of a tied parameter (one key of each alias group suffices: tied checkpoints have no
    ``lm_head.weight``). A checkpoint saved from the base model (keys without the
    ``base_model_prefix``) is accepted. Keys the model declares ignorable and non-persistent
    buffers (e.g. ``rotary_emb.inv_freq``) are skipped. Anything else missing or unexpected, or
    a shape mismatch, raises :class:`StateDictMismatchError` naming ``where``. Values are cast to
    each parameter's dtype and device. Tied embeddings are re-tied afterwards if needed.

    ``share=True`` lets a parameter adopt a given tensor as its storage (``param.data = tensor``,
    no copy) when dtype, device and shape already match; the Parameter objects (and so ties and
    hooks) stay the same. Only pass tensors nobody else will modify.
    """
    targets = model.state_dict(keep_vars=True)
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and sum(f"{prefix}.{k}" in targets for k in state_dict) > sum(k in targets for k in state_dict):
        state_dict = {(f"{prefix}.{k}" if f"{prefix}.{k}" in targets else k): v for k, v in state_dict.items()}
    alias_groups: dict[int, list[str]] = {}
    for key, t in targets.items():
        alias_groups.setdefault(id(t), []).append(key)
    ignore = _ignored_unexpected(model)
    unexpected = [k for k in state_dict if k not in targets and not any(p.search(k) for p in ignore)]
    missing = [keys[0] for keys in alias_groups.values() if not any(k in state_dict for k in keys)]
    if missing or unexpected:
        msg = [f"{where}: tensors do not match the resident model ({type(model).__name__})"]
        if missing:
            msg.append(f"missing {len(missing)} key(s), e.g. {missing[:5]}")
        if unexpected:
            msg.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:5]}")
        raise StateDictMismatchError("; ".join(msg))
    for key, value in state_dict.items():
        t = targets.get(key)
        if t is not None and tuple(t.shape) != tuple(value.shape):
            raise StateDictMismatchError(
                f"{where}: tensor {key!r} has shape {tuple(value.shape)}, the resident model "
                f"expects {tuple(t.shape)}")
    for keys in alias_groups.values():
        present = [k for k in keys if k in state_dict]
        for k in present[1:]:
            if not torch.equal(state_dict[k], state_dict[present[0]]):
                raise StateDictMismatchError(
                    f"{where}: {k!r} and {present[0]!r} are tied in the model but differ in the checkpoint")
    with torch.no_grad():
        for keys in alias_groups.values():
            k = next(k for k in keys if k in state_dict)
            target, value = targets[k], state_dict[k]
            if share and value.dtype == target.dtype and value.device == target.device \
                    and value.is_contiguous():
                target.data = value
            else:
                target.copy_(value)
    _ensure_tied(model)


def _ensure_tied(model: torch.nn.Module) -> None:
    config = getattr(model, "config", None)
    if not getattr(config, "tie_word_embeddings", False):
        return
    try:
        inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return
    if inp is not None and out is not None and out.weight is not inp.weight:
        model.tie_weights()
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            raise StateDictMismatchError(f"{type(model).__name__}: could not re-tie the embeddings")


def load_first_model(path: Path, *, dtype: torch.dtype, device: str, check_lens: bool) -> Any:
    """Build a fresh model with :func:`lensprobe.engine.adapters.load_model` (no tokenizer: the series has one)."""
    return load_model(str(path), dtype=dtype, device=device, check_lens=check_lens, load_tokenizer=False)


def verify_lens_after_load(model: torch.nn.Module, where: str) -> None:
    """:func:`lensprobe.engine.adapters.verify_lens`, the error noting the in-place load of ``where``."""
    try:
        verify_lens(model)
    except Exception as exc:
        exc.add_note(f"while checking the logit lens of {where} after an in-place load")
        raise


_VOLATILE_CONFIG_KEYS = frozenset({
    "transformers_version", "_name_or_path", "name_or_path", "torch_dtype", "dtype", "use_cache",
    "_commit_hash", "_attn_implementation", "_attn_implementation_autoset", "attn_implementation",
    "_attn_implementation_internal", "output_hidden_states", "output_attentions", "return_dict",
    "architectures", "_experts_implementation",
})


def architecture(path: Path) -> dict[str, Any]:
    """The config of ``path`` as loaded by transformers, minus keys that do not define the network."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(path)).to_dict()
    except Exception as exc:
        raise CheckpointError(f"{path / 'config.json'}: unreadable config ({exc})") from exc
    return {k: v for k, v in cfg.items() if k not in _VOLATILE_CONFIG_KEYS}


def diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two configs (absent counts as a value)."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))

