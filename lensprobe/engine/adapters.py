"""Architecture adapters and model loading.

An :class:`ArchitectureAdapter` says, for one HF ``model_type``, where the pieces the lens needs
live inside the ``*ForCausalLM`` module: the list of blocks, the final norm, the unembedding, the
token embedding, the MLP activation module (one coordinate = one LAPE neuron) and an optional
transform applied to logits after the unembedding (Gemma-2's final soft-cap).

:func:`get_adapter` binds the adapter of a model's ``model_type`` to the model instance
(:class:`BoundAdapter`); :meth:`BoundAdapter.decode` is the lens' decode path
``final norm -> [extra modules] -> unembedding -> logit transform``.

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
from typing import Any, Callable

import torch
from torch import nn

__all__ = [
    "ArchitectureAdapter",
    "BoundAdapter",
    "LoadedModel",
    "AdapterError",
    "UnknownArchitectureError",
    "LensCheckError",
    "UnsafeCheckpointError",
    "CheckpointLoadError",
    "register_adapter",
    "get_adapter",
    "registered_model_types",
    "load_model",
    "verify_lens",
    "block_output",
]


# --------------------------------------------------------------------------------------------
# errors


class AdapterError(ValueError):
    """An adapter does not fit the model it is bound to (a path is missing or has the wrong kind)."""


class UnknownArchitectureError(LookupError):
    """No adapter is registered for a model_type."""

    def __str__(self) -> str:  # LookupError/KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class LensCheckError(RuntimeError):
    """The lens on the last block does not reproduce the model's own logits."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint stores pickled weights and ``allow_pickle`` was not given."""


class CheckpointLoadError(RuntimeError):
    """A checkpoint could not be loaded completely (missing weights, no config, ...)."""


# --------------------------------------------------------------------------------------------
# adapter spec and registry


def _gemma2_softcap(config: Any, logits: torch.Tensor) -> torch.Tensor:
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is None:
        return logits
    return torch.tanh(logits / cap) * cap


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Where the lens' pieces live in a ``*ForCausalLM`` of one ``model_type``.

    All paths are dotted attribute paths (integers index ``ModuleList``\\ s) from the causal-LM
    module, except ``neuron``, which is relative to one block.

    Attributes:
        model_type: the HF ``config.model_type`` this adapter serves.
        blocks: path to the ``ModuleList`` of transformer blocks, e.g. ``"transformer.h"``.
        final_norm: path to the final norm applied before the unembedding. A path that resolves
            to ``None`` on a given model (OPT-350m has no final norm) means identity.
        unembed: path to the unembedding (``lm_head``).
        embed: path to the token embedding.
        neuron: path inside a block to the module whose forward output is the MLP activation
            after the nonlinearity and before the down projection, one coordinate per neuron
            (for gated MLPs the activated *gate* only, ``act_fn(gate_proj(x))``). ``""`` when
            unknown (then :attr:`BoundAdapter.neuron_modules` raises).
        logit_transform: ``(config, logits) -> logits`` applied after the unembedding, if any.
        pre_unembed: paths of modules applied, in order, between the final norm and the
            unembedding (OPT's ``project_out``); paths resolving to ``None`` are skipped.
        notes: free text shown in :func:`registered_model_types` listings and errors.
    """

    model_type: str
    blocks: str
    final_norm: str
    unembed: str
    embed: str
    neuron: str
    logit_transform: Callable[[Any, torch.Tensor], torch.Tensor] | None = None
    pre_unembed: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        for name in ("model_type", "blocks", "unembed", "embed"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise AdapterError(f"ArchitectureAdapter.{name} must be a non-empty string, got {value!r}")
        for name in ("final_norm", "neuron"):
            if not isinstance(getattr(self, name), str):
                raise AdapterError(f"ArchitectureAdapter.{name} must be a string, got {getattr(self, name)!r}")
        if isinstance(self.pre_unembed, str) or not all(isinstance(p, str) for p in self.pre_unembed):
            raise AdapterError(f"ArchitectureAdapter.pre_unembed must be a tuple of paths, got {self.pre_unembed!r}")
        if self.logit_transform is not None and not callable(self.logit_transform):
            raise AdapterError("ArchitectureAdapter.logit_transform must be callable (config, logits) -> logits")


def _llama_like(model_type: str, **kw: Any) -> ArchitectureAdapter:
    base = dict(blocks="model.layers", final_norm="model.norm", unembed="lm_head",
                embed="model.embed_tokens", neuron="mlp.act_fn")
    base.update(kw)
    return ArchitectureAdapter(model_type=model_type, **base)


_BUILTIN: tuple[ArchitectureAdapter, ...] = (
    ArchitectureAdapter("gpt2", blocks="transformer.h", final_norm="transformer.ln_f", unembed="lm_head",
                        embed="transformer.wte", neuron="mlp.act"),
    ArchitectureAdapter("gpt_neox", blocks="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                        unembed="lm_head", embed="gpt_neox.embed_in", neuron="mlp.act"),
    _llama_like("llama"),
    _llama_like("mistral"),
    _llama_like("qwen2"),
    _llama_like("qwen3"),
    _llama_like("starcoder2", neuron="mlp.act", notes="non-gated MLP: c_fc -> act -> c_proj"),
    _llama_like("gemma", notes="embedding scaled by sqrt(d) inside the model (before block 1)"),
    _llama_like("gemma2", logit_transform=_gemma2_softcap, notes="final logit soft-capping"),
    ArchitectureAdapter("opt", blocks="model.decoder.layers", final_norm="model.decoder.final_layer_norm",
                        unembed="lm_head", embed="model.decoder.embed_tokens", neuron="activation_fn",
                        pre_unembed=("model.decoder.project_out",),
                        notes="activation_fn lives in the decoder layer and sees [B*T, ffn] (the engine reshapes)"),
    _llama_like("phi3", neuron="mlp.activation_fn",
                notes="fused gate_up_proj; activation_fn(gate) is the gate activation"),
)

_REGISTRY: dict[str, ArchitectureAdapter] = {a.model_type: a for a in _BUILTIN}


def register_adapter(adapter: ArchitectureAdapter, *, overwrite: bool = False) -> None:
    """Register ``adapter`` for its ``model_type`` (refuses to replace one unless ``overwrite``)."""
    if not isinstance(adapter, ArchitectureAdapter):
        raise TypeError(f"register_adapter expects an ArchitectureAdapter, got {type(adapter).__name__}")
    if adapter.model_type in _REGISTRY and not overwrite:
        raise ValueError(f"an adapter for model_type {adapter.model_type!r} is already registered; "
                         "pass overwrite=True to replace it")
    _REGISTRY[adapter.model_type] = adapter


def registered_model_types() -> list[str]:
    """The model types that have an adapter."""
    return sorted(_REGISTRY)


# --------------------------------------------------------------------------------------------
# binding


def _resolve(root: nn.Module, path: str, *, what: str) -> Any:
    obj: Any = root
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(obj, (nn.ModuleList, nn.Sequential)) and part.lstrip("-").isdigit():
            try:
                obj = obj[int(part)]
            except IndexError:
                obj = _MISSING
        else:
            obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            raise AdapterError(f"{type(root).__name__} has no {'.'.join(walked)!r} (adapter field {what}={path!r})")
        if obj is None:
            return None
    return obj


_MISSING = object()


def block_output(output: Any) -> torch.Tensor:
    """The hidden-state tensor of a block's forward output (tensor in transformers 5, tuple before)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is None:
        hidden = getattr(output, "hidden_states", None)
    if isinstance(hidden, torch.Tensor):
        return hidden
    raise TypeError(f"cannot find a hidden-state tensor in a block output of type {type(output).__name__}")


def _text_config(config: Any) -> Any:
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


class BoundAdapter:
    """An :class:`ArchitectureAdapter` resolved against one model instance.

    Attributes: ``model``, ``spec``, ``n_layers``, ``d_model``, ``vocab_size`` (the number of
    logits the unembedding produces), ``blocks``, ``final_norm`` (``nn.Identity`` where the model
    has none), ``unembed``, ``embed``, ``pre_unembed``, ``neuron_modules``.
    """

    def __init__(self, model: nn.Module, spec: ArchitectureAdapter):
        self.model = model
        self.spec = spec
        blocks = _resolve(model, spec.blocks, what="blocks")
        if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) == 0:
            raise AdapterError(f"adapter {spec.model_type!r}: blocks path {spec.blocks!r} must be a non-empty "
                               f"ModuleList, got {type(blocks).__name__}")
        self.blocks: list[nn.Module] = list(blocks)
        norm = _resolve(model, spec.final_norm, what="final_norm") if spec.final_norm else None
        self.final_norm: nn.Module = norm if norm is not None else nn.Identity()
        self.pre_unembed: list[nn.Module] = [
            m for m in (_resolve(model, p, what="pre_unembed") for p in spec.pre_unembed) if m is not None
        ]
        unembed = _resolve(model, spec.unembed, what="unembed")
        embed = _resolve(model, spec.embed, what="embed")
        for name, mod in (("unembed", unembed), ("embed", embed)):
            if not isinstance(mod, nn.Module):
                raise AdapterError(f"adapter {spec.model_type!r}: {name} path resolves to {type(mod).__name__}, "
                                   "not a module")
        self.unembed: nn.Module = unembed
        self.embed: nn.Module = embed
        self.config = getattr(model, "config", None)
        self.n_layers = len(self.blocks)
        weight = getattr(unembed, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            self.vocab_size = int(weight.shape[0])
        elif hasattr(unembed, "out_features"):
            self.vocab_size = int(unembed.out_features)
        else:
            raise AdapterError(f"adapter {spec.model_type!r}: cannot tell the vocabulary size of unembed "
                               f"{type(unembed).__name__}")
        emb_weight = getattr(embed, "weight", None)
        self.input_vocab_size = int(emb_weight.shape[0]) if isinstance(emb_weight, torch.Tensor) else self.vocab_size
        text = _text_config(self.config) if self.config is not None else None
        d_model = getattr(text, "hidden_size", None) if text is not None else None
        if d_model is None:
            d_model = getattr(self.final_norm, "normalized_shape", [None])[-1] or getattr(
                getattr(self.final_norm, "weight", None), "shape", [None])[-1]
        if d_model is None:
            raise AdapterError(f"adapter {spec.model_type!r}: cannot tell d_model (no config.hidden_size)")
        self.d_model = int(d_model)
        self._neurons: list[nn.Module] | None = None

    # -- modules -------------------------------------------------------------------------------
    @property
    def neuron_modules(self) -> list[nn.Module]:
        """One module per block whose forward output is that block's MLP neuron activation."""
        if self._neurons is None:
            if not self.spec.neuron:
                raise AdapterError(f"adapter {self.spec.model_type!r} declares no neuron module "
                                   "(ArchitectureAdapter.neuron is empty)")
            mods = []
            for i, block in enumerate(self.blocks):
                mod = _resolve(block, self.spec.neuron, what=f"neuron (in block {i})")
                if not isinstance(mod, nn.Module):
                    raise AdapterError(f"adapter {self.spec.model_type!r}: neuron path {self.spec.neuron!r} "
                                       f"is not a module in block {i}")
                mods.append(mod)
            if len({id(m) for m in mods}) != len(mods):
                raise AdapterError(f"adapter {self.spec.model_type!r}: neuron modules are shared between blocks; "
                                   "hooks could not tell layers apart")
            self._neurons = mods
        return self._neurons

    @property
    def device(self) -> torch.device:
        w = getattr(self.embed, "weight", None)
        if isinstance(w, torch.Tensor):
            return w.device
        return next(self.model.parameters()).device

    # -- decode --------------------------------------------------------------------------------
    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., V]`` of residual-stream states ``[..., d_model]``.

        The model's own final norm, then ``pre_unembed`` modules, the unembedding and the
        logit transform — exactly the path the model takes after its last block.
        """
        if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
            raise TypeError("decode expects a floating-point tensor [..., d_model]")
        if hidden.shape[-1] != self.d_model:
            raise ValueError(f"decode expects hidden states ending in d_model={self.d_model}, "
                             f"got shape {tuple(hidden.shape)}")
        x = self.final_norm(hidden)
        for mod in self.pre_unembed:
            x = mod(x)
        logits = self.unembed(x)
        if self.spec.logit_transform is not None:
            logits = self.spec.logit_transform(self.config, logits)
        return logits

    def __repr__(self) -> str:
        return (f"BoundAdapter({self.spec.model_type!r}, n_layers={self.n_layers}, d_model={self.d_model}, "
                f"vocab_size={self.vocab_size})")


def _suggest(model: nn.Module) -> str:
    """Best-effort guess of adapter paths for an unregistered model (for the error message)."""
    config = getattr(model, "config", None)
    n_layers = getattr(_text_config(config), "num_hidden_layers", None) if config is not None else None
    names = dict(model.named_modules())
    blocks = next((n for n, m in names.items() if isinstance(m, nn.ModuleList) and n
                   and (n_layers is None or len(m) == n_layers)), None)
    norm = next((n for n in names if n.split(".")[-1] in ("norm", "ln_f", "final_layer_norm", "final_layernorm")
                 and (blocks is None or not n.startswith(blocks + "."))), None)
    unembed = embed = None
    inv = {id(m): n for n, m in names.items()}
    try:
        unembed = inv.get(id(model.get_output_embeddings()))
        embed = inv.get(id(model.get_input_embeddings()))
    except Exception:  # noqa: BLE001 - best effort only
        pass
    neuron = None
    if blocks is not None:
        first = names[blocks][0]
        for cand in ("mlp.act_fn", "mlp.act", "mlp.activation_fn", "activation_fn"):
            try:
                if isinstance(_resolve(first, cand, what="neuron"), nn.Module):
                    neuron = cand
                    break
            except AdapterError:
                continue
    model_type = getattr(config, "model_type", "my_model")
    return (f"    register_adapter(ArchitectureAdapter(model_type={model_type!r}, blocks={blocks!r}, "
            f"final_norm={norm!r}, unembed={unembed!r}, embed={embed!r}, neuron={neuron!r}))")


def get_adapter(model_or_model_type: Any) -> Any:
    """The adapter of a model (bound: :class:`BoundAdapter`) or of a model type string (spec).

    Accepts an HF causal LM, a :class:`LoadedModel`, a :class:`BoundAdapter` (returned as is) or a
    ``model_type`` string (returns the :class:`ArchitectureAdapter`).
    """
    obj = model_or_model_type
    if isinstance(obj, BoundAdapter):
        return obj
    if isinstance(obj, LoadedModel):
        return obj.adapter
    if isinstance(obj, str):
        if obj not in _REGISTRY:
            raise UnknownArchitectureError(
                f"no architecture adapter for model_type {obj!r}; known: {registered_model_types()}. "
                "Register one with lensprobe.engine.adapters.register_adapter(ArchitectureAdapter(...)).")
        return _REGISTRY[obj]
    if not isinstance(obj, nn.Module):
        raise TypeError(f"get_adapter expects a model, LoadedModel or model_type string, got {type(obj).__name__}")
    config = getattr(obj, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UnknownArchitectureError(
            f"{type(obj).__name__} has no config.model_type; bind an adapter explicitly with "
            "BoundAdapter(model, ArchitectureAdapter(...)).")
    if model_type not in _REGISTRY:
        raise UnknownArchitectureError(
            f"no architecture adapter for model_type {model_type!r} ({type(obj).__name__}); known: "
            f"{registered_model_types()}.\nRegister one before loading, naming where the blocks, final norm, "
            "unembedding, embedding and MLP activation live, e.g. (paths guessed from this model; check them):\n"
            "    from lensprobe.engine.adapters import ArchitectureAdapter, register_adapter\n"
            f"{_suggest(obj)}\n"
            "Then load_model()/verify_lens() checks that the lens on the last block reproduces the model's logits.")
    return BoundAdapter(obj, _REGISTRY[model_type])


# --------------------------------------------------------------------------------------------
# lens check


def _default_probe_ids(adapter: BoundAdapter, *, batch: int = 2, length: int = 12) -> torch.Tensor:
    config = _text_config(adapter.config) if adapter.config is not None else None
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
        raise CheckpointLoadError(f"{path} has no config.json; not a Hugging Face checkpoint directory")
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
    raise CheckpointLoadError(f"{path} has no model.safetensors (or sharded index) weights"
                              + (f"; found {others}" if others else ""))


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
        CheckpointLoadError: no config, no weights, or weights missing from the checkpoint (a
            randomly initialised parameter would silently change every number downstream).
        UnknownArchitectureError: no adapter for the checkpoint's model_type.
        LensCheckError: the adapter's decode path does not reproduce the model's logits.
    """
    from transformers import AutoModelForCausalLM

    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    local = Path(path_or_repo).expanduser()
    is_local = local.exists()
    if is_local:
        if not local.is_dir():
            raise CheckpointLoadError(f"{local} is not a directory; load_model expects a checkpoint directory")
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
        model, info = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, EnvironmentError) as err:
        if not is_local and use_safetensors and "safetensors" in str(err).lower():
            raise UnsafeCheckpointError(
                f"{source}{'@' + revision if revision else ''} has no safetensors weights; pass allow_pickle=True "
                f"to load pickled weights if you trust its source ({err})") from err
        raise CheckpointLoadError(f"cannot load checkpoint {source}: {err}") from err
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise CheckpointLoadError(
            f"checkpoint {source} lacks weights for {missing[:8]}{' ...' if len(missing) > 8 else ''}; "
            "transformers would initialise them randomly. (Tied-embedding checkpoints legitimately omit "
            "lm_head.weight only when config.tie_word_embeddings is true.)")
    unexpected = sorted(info.get("unexpected_keys") or [])
    if unexpected:
        warnings.warn(f"checkpoint {source} has weights the model does not use: {unexpected[:8]}", stacklevel=2)
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
                raise CheckpointLoadError(f"cannot load the tokenizer of {source}: {err}") from err
            warnings.warn(f"{source} has no loadable tokenizer ({err}); LoadedModel.tokenizer is None", stacklevel=2)
    adapter = get_adapter(model)
    diff = verify_lens(model, adapter, atol=atol) if check_lens else None
    return LoadedModel(model=model, tokenizer=tokenizer, adapter=adapter, path=source, config=model.config,
                       revision=revision, lens_check_diff=diff,
                       loading_info={k: sorted(v) if isinstance(v, (set, list)) else v for k, v in info.items()})
