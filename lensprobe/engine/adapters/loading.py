"""Loading a checkpoint for probing, and the check that the lens reproduces the model's logits.

:func:`load_model` loads an HF checkpoint directory (or hub id + revision) refusing pickled
weights unless asked, puts the model in eval mode and checks with :func:`verify_lens` that the
lens on the last block's *raw* output reproduces the model's own logits.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lensprobe.engine.adapters.registry import BoundAdapter, block_output, get_adapter, text_config

__all__ = ["LoadedModel", "LensCheckError", "UnsafeCheckpointError", "CheckpointLoadError", "load_model",
           "verify_lens"]


class LensCheckError(RuntimeError):
    """The lens on the last block does not reproduce the model's own logits."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint stores pickled weights and ``allow_pickle`` was not given."""


class CheckpointLoadError(RuntimeError):
    """A checkpoint could not be loaded completely (missing weights, no config, ...)."""


# --------------------------------------------------------------------------------------------
# lens check


def _default_probe_ids(adapter: BoundAdapter, *, batch: int = 2, length: int = 12) -> torch.Tensor:
    config = text_config(adapter.config) if adapter.config is not None else None
    max_pos = None
    for name in ("n_positions", "max_position_embeddings"):
        max_pos = getattr(config, name, None) if config is not None else None
        if max_pos:
            break
    if max_pos:
        length = max(1, min(length, int(max_pos)))
    gen = torch.Generator().manual_seed(1234)
    return torch.randint(0, adapter.input_vocab_size, (batch, length), generator=gen)


def _tolerance(atol: float, dtype: torch.dtype, scale: float) -> float:
    """``atol`` is stated for float32; scale it by machine epsilon for other dtypes and by |logits|."""
    ratio = max(1.0, torch.finfo(dtype).eps / torch.finfo(torch.float32).eps) if dtype.is_floating_point else 1.0
    return atol * ratio * max(1.0, scale)


def verify_lens(model: Any, adapter: BoundAdapter | None = None, input_ids: torch.Tensor | None = None,
                *, atol: float = 1e-5) -> float:
    """Check that decoding the last block's raw output reproduces the model's logits.

    Runs one forward pass of ``input_ids`` (a deterministic random batch by default), hooks the
    raw output of the last block, decodes it with :meth:`BoundAdapter.decode` and compares with
    the model's logits at every position. Returns the max absolute difference; raises
    :class:`LensCheckError` when it exceeds the tolerance (``atol`` for float32, scaled by the
    dtype's machine epsilon relative to float32 and by ``max(1, |logits|max)``).
    """
    if isinstance(model, LoadedModel):
        adapter = adapter or model.adapter
        model = model.model
    adapter = adapter or get_adapter(model)
    if not isinstance(atol, (int, float)) or not atol > 0:
        raise ValueError(f"atol must be a positive number, got {atol!r}")
    if input_ids is None:
        input_ids = _default_probe_ids(adapter)
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int64, torch.int32) \
            or input_ids.dim() != 2:
        raise ValueError("verify_lens input_ids must be an integer tensor [batch, seq]")
    input_ids = input_ids.to(adapter.device)
    captured: list[torch.Tensor] = []
    handle = adapter.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.append(block_output(out)))
    try:
        with torch.inference_mode():
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False)
            logits = out.logits if hasattr(out, "logits") else out[0]
            if not captured:
                raise LensCheckError(f"the last block ({adapter.spec.blocks}[{adapter.n_layers - 1}]) never ran")
            try:
                lens_logits = adapter.decode(captured[-1])
            except (RuntimeError, ValueError, TypeError) as err:
                raise LensCheckError(f"decoding the last block's output with the {adapter.spec.model_type!r} adapter "
                                     f"failed: {err}") from err
    finally:
        handle.remove()
    if lens_logits.shape != logits.shape:
        raise LensCheckError(f"lens logits have shape {tuple(lens_logits.shape)} but the model's logits have "
                             f"{tuple(logits.shape)} (adapter {adapter.spec.model_type!r})")
    diff = float((lens_logits.float() - logits.float()).abs().max())
    tol = _tolerance(atol, logits.dtype, float(logits.float().abs().max()))
    if not math.isfinite(diff) or diff > tol:
        raise LensCheckError(
            f"the logit lens on the last block's output differs from the model's logits by {diff:.3g} "
            f"(tolerance {tol:.3g}) for model_type {adapter.spec.model_type!r}: the adapter's decode path "
            f"(final_norm={adapter.spec.final_norm!r}, pre_unembed={adapter.spec.pre_unembed!r}, "
            f"unembed={adapter.spec.unembed!r}, logit_transform={adapter.spec.logit_transform!r}) is not the "
            "path the model takes after its last block.")
    return diff


# --------------------------------------------------------------------------------------------
# loading


@dataclass
class LoadedModel:
    """A loaded causal LM with its tokenizer (``None`` when the checkpoint has none) and adapter."""

    model: nn.Module
    tokenizer: Any
    adapter: BoundAdapter
    path: str
    config: Any
    revision: str | None = None
    lens_check_diff: float | None = None
    loading_info: dict[str, Any] = field(default_factory=dict)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _check_local_weights(path: Path, allow_pickle: bool) -> bool:
    """Validate a local checkpoint dir; return whether to ask transformers for safetensors."""
    if not (path / "config.json").is_file():
        raise CheckpointLoadError(f"{path.absolute()} has no config.json; not a Hugging Face checkpoint directory")
    safe = [n for n in _SAFE_WEIGHTS if (path / n).is_file()]
    if safe:
        return True
    pickled = [n for n in _PICKLE_WEIGHTS if (path / n).is_file()]
    if pickled:
        if not allow_pickle:
            raise UnsafeCheckpointError(
                f"{path / pickled[0]} stores pickled weights (loading a pickle can run arbitrary code) and the "
                "checkpoint has no model.safetensors. Convert it to safetensors, or pass allow_pickle=True "
                "if you trust its source.")
        return False
    others = sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt"))
    raise CheckpointLoadError(f"{path.absolute()} has no model.safetensors (or sharded index) weights"
                              + (f"; found {others}" if others else ""))


def _unreadable_safetensors(path: Path) -> tuple[Path, Exception] | None:
    """The first ``*.safetensors`` file of a checkpoint directory that ``safetensors`` cannot open
    (a header that does not cover the file: truncated or corrupt), with the error; None if all open."""
    from safetensors import safe_open

    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ...: the file is named either way
            return file, exc
    return None


def _from_pretrained(source: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """``AutoModelForCausalLM.from_pretrained`` without transformers' own "Loading weights" bar
    (lensprobe draws one progress style, docs/engine.md)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.disable_progress_bar()
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_model(path_or_repo: str | os.PathLike, *, revision: str | None = None, allow_pickle: bool = False,
               trust_remote_code: bool = False, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               check_lens: bool = True, atol: float = 1e-5, attn_implementation: str | None = "eager",
               load_tokenizer: bool = True) -> LoadedModel:
    """Load an HF causal LM checkpoint for probing.

    Args:
        path_or_repo: a local checkpoint directory (``config.json`` + safetensors) or a hub id.
        revision: hub revision (branch, tag, commit); only for hub ids.
        allow_pickle: permit ``pytorch_model.bin`` weights (unsafe: pickle runs code).
        trust_remote_code: permit custom modeling code from the checkpoint (off by default).
        dtype: parameter dtype (float32 by default; the lens check tolerance scales with it).
        device: a torch device, or ``"auto"`` for an accelerate device map.
        check_lens: run :func:`verify_lens` after loading.
        atol: lens-check tolerance for float32 (see :func:`verify_lens`).
        attn_implementation: passed to transformers (``"eager"`` by default: padding-exact and
            hookable everywhere; ``None`` lets transformers choose).
        load_tokenizer: also load the tokenizer when the checkpoint has one.

    Raises:
        UnsafeCheckpointError: pickled weights without ``allow_pickle``.
        CheckpointLoadError: no config, no weights, weights missing from the checkpoint (a
            randomly initialised parameter would silently change every number downstream), or a
            weights file that cannot be read (truncated or corrupt; the message names the file).
        UnknownArchitectureError: no adapter for the checkpoint's model_type.
        LensCheckError: the adapter's decode path does not reproduce the model's logits.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    local = Path(path_or_repo).expanduser()
    is_local = local.exists()
    if is_local:
        if not local.is_dir():
            raise CheckpointLoadError(f"{local.absolute()} is not a directory; load_model expects a checkpoint directory")
        if revision is not None:
            raise ValueError(f"revision={revision!r} only applies to hub ids, but {local} is a local directory")
        use_safetensors = _check_local_weights(local, allow_pickle)
        source = str(local)
    else:
        text = str(path_or_repo)
        if text.startswith((".", "/", "~")) or text.count("/") > 1 or (os.sep != "/" and os.sep in text):
            raise CheckpointLoadError(f"checkpoint directory {path_or_repo} does not exist")
        source = str(path_or_repo)
        # transformers refuses .bin-only repos itself when use_safetensors=True.
        use_safetensors = None if allow_pickle else True

    where = str(local.absolute()) if is_local else source  # messages name the full path
    kwargs: dict[str, Any] = dict(dtype=dtype, trust_remote_code=trust_remote_code, output_loading_info=True)
    if use_safetensors is not None:
        kwargs["use_safetensors"] = use_safetensors
    if revision is not None:
        kwargs["revision"] = revision
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if str(device) == "auto":
        kwargs["device_map"] = "auto"
    try:
        model, info = _from_pretrained(source, kwargs)
    except Exception as err:  # noqa: BLE001 - re-raised unless a weights file is unreadable
        bad = _unreadable_safetensors(local) if is_local and use_safetensors else None
        if bad is not None:
            raise CheckpointLoadError(
                f"{bad[0].absolute()}: cannot read the weights ({type(bad[1]).__name__}: {bad[1]}); the file looks "
                "truncated or corrupt (an interrupted copy, download or save?). Copy or download the checkpoint "
                "again, or save it again from the model") from err
        if not isinstance(err, OSError):
            raise
        if not is_local and use_safetensors and "safetensors" in str(err).lower():
            raise UnsafeCheckpointError(
                f"{source}{'@' + revision if revision else ''} has no safetensors weights; pass allow_pickle=True "
                f"to load pickled weights if you trust its source ({err})") from err
        raise CheckpointLoadError(f"cannot load checkpoint {where}: {err}") from err
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise CheckpointLoadError(
            f"checkpoint {where} lacks weights for {missing[:8]}{' ...' if len(missing) > 8 else ''}; "
            "transformers would initialise them randomly. (Tied-embedding checkpoints legitimately omit "
            "lm_head.weight only when config.tie_word_embeddings is true.)")
    unexpected = sorted(info.get("unexpected_keys") or [])
    if unexpected:
        warnings.warn(f"checkpoint {where} has weights the model does not use: {unexpected[:8]}", stacklevel=2)
    if str(device) != "auto":
        model = model.to(device)
    model.eval()
    tokenizer = None
    if load_tokenizer and (not is_local or any((local / n).is_file() for n in _TOKENIZER_FILES)):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            if is_local:
                raise CheckpointLoadError(f"cannot load the tokenizer of {where}: {err}") from err
            warnings.warn(f"{source} has no loadable tokenizer ({err}); LoadedModel.tokenizer is None", stacklevel=2)
    adapter = get_adapter(model)
    diff = verify_lens(model, adapter, atol=atol) if check_lens else None
    return LoadedModel(model=model, tokenizer=tokenizer, adapter=adapter, path=source, config=model.config,
                       revision=revision, lens_check_diff=diff,
                       loading_info={k: sorted(v) if isinstance(v, (set, list)) else v for k, v in info.items()})
