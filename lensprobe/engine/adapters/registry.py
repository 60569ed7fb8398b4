"""Architecture adapters: where the lens' pieces live in a model, one entry per ``model_type``.

An :class:`ArchitectureAdapter` says, for one HF ``model_type``, where the pieces the lens needs
live inside the ``*ForCausalLM`` module: the list of blocks, the final norm, the unembedding, the
token embedding, the MLP activation module (one coordinate = one LAPE neuron) and an optional
transform applied to logits after the unembedding (Gemma-2's final soft-cap).  The built-in
families are the table ``_BUILTIN`` below; :func:`register_adapter` adds one.

:func:`get_adapter` binds the adapter of a model's ``model_type`` to the model instance
(:class:`BoundAdapter`); :meth:`BoundAdapter.decode` is the lens' decode path
``final norm -> [extra modules] -> unembedding -> logit transform``.  Loading a checkpoint and
checking that decode path against the model's own logits is :mod:`lensprobe.engine.adapters.loading`.

>>> from lensprobe.testing import tiny_model
>>> adapter = get_adapter(tiny_model("llama"))
>>> adapter.n_layers, adapter.spec.final_norm
(3, 'model.norm')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

__all__ = [
    "ArchitectureAdapter",
    "BoundAdapter",
    "AdapterError",
    "UnknownArchitectureError",
    "register_adapter",
    "get_adapter",
    "registered_model_types",
    "block_output",
    "text_config",
]


# --------------------------------------------------------------------------------------------
# errors


class AdapterError(ValueError):
    """An adapter does not fit the model it is bound to (a path is missing or has the wrong kind)."""


class UnknownArchitectureError(LookupError):
    """No adapter is registered for a model_type."""

    def __str__(self) -> str:  # LookupError/KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


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


def text_config(config: Any) -> Any:
    """The text model's config (multimodal configs nest it; a plain LM config is returned as is)."""
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
        text = text_config(self.config) if self.config is not None else None
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
    n_layers = getattr(text_config(config), "num_hidden_layers", None) if config is not None else None
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

    Accepts an HF causal LM, a :class:`~lensprobe.engine.adapters.loading.LoadedModel` (anything
    that is not a module and holds a :class:`BoundAdapter` in ``.adapter``), a :class:`BoundAdapter`
    (returned as is) or a ``model_type`` string (returns the :class:`ArchitectureAdapter`).
    """
    obj = model_or_model_type
    if isinstance(obj, BoundAdapter):
        return obj
    if not isinstance(obj, nn.Module) and isinstance(getattr(obj, "adapter", None), BoundAdapter):
        return obj.adapter  # a LoadedModel
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


