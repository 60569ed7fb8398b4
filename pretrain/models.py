"""Model configs for pre-training: GPT-2 from a CPU-sized ``tiny`` to the paper's 1.3B and 6.7B,
and a Llama-style alternative with the same sizes. Models are plain HF ``*ForCausalLM`` modules.
"""
from __future__ import annotations

from typing import Any

import torch

#: size name -> (n_layer, n_embd, n_head). 124M/350M are GPT-2's, 1.3B/6.7B the paper's (GPT-3 shapes).
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=4, n_embd=128, n_head=4),      # ~1.1M params at vocab 2048 (CPU minutes)
    "small": dict(n_layer=6, n_embd=256, n_head=8),
    "124M": dict(n_layer=12, n_embd=768, n_head=12),
    "350M": dict(n_layer=24, n_embd=1024, n_head=16),
    "1.3B": dict(n_layer=24, n_embd=2048, n_head=16),
    "6.7B": dict(n_layer=32, n_embd=4096, n_head=32),
}


def hf_config(model_cfg: Any, *, vocab_size: int, context: int, bos_token_id: int | None = None,
              eos_token_id: int | None = None, pad_token_id: int | None = None):
    """The transformers config for a resolved :class:`pretrain.config.ModelConfig`."""
    from transformers import GPT2Config, LlamaConfig

    m = model_cfg
    special = dict(bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    if m.arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_positions=context, n_layer=m.n_layer, n_embd=m.n_embd, n_head=m.n_head,
            n_inner=m.n_inner, resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
            tie_word_embeddings=m.tie, use_cache=False, **special)
    if m.arch == "llama":
        inner = m.n_inner or 256 * ((int(8 * m.n_embd / 3) + 255) // 256)
        return LlamaConfig(
            vocab_size=vocab_size, max_position_embeddings=context, num_hidden_layers=m.n_layer,
            hidden_size=m.n_embd, num_attention_heads=m.n_head, num_key_value_heads=m.n_head,
            intermediate_size=inner, attention_dropout=m.dropout, tie_word_embeddings=m.tie,
            use_cache=False, **special)
    raise ValueError(f"model.arch: unknown architecture {m.arch!r}")


def build_model(model_cfg: Any, *, vocab_size: int, context: int, seed: int = 0, **special: Any) -> torch.nn.Module:
    """A freshly initialised causal LM (fp32, eager-free SDPA attention where available)."""
    from transformers import AutoModelForCausalLM

    config = hf_config(model_cfg, vocab_size=vocab_size, context=context, **special)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)


def load_model(path: str, **kwargs: Any) -> torch.nn.Module:
    """Weights of an existing checkpoint (continual pre-training), in fp32."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa", **kwargs)


def n_params(model: torch.nn.Module, *, non_embedding: bool = False) -> int:
    """Parameter count (tied weights counted once); ``non_embedding`` drops token/position tables."""
    seen, total = set(), 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if non_embedding and any(k in name for k in ("wte", "wpe", "embed_tokens", "lm_head")):
            continue
        total += p.numel()
    return total


def flops_per_token(model: torch.nn.Module) -> float:
    """Training FLOPs per token, the usual 6 N with N the parameters used in matmuls (tied weights
    once, position table excluded; attention's own context-dependent term is left out)."""
    n = n_params(model) - sum(p.numel() for name, p in model.named_parameters() if "wpe" in name)
    return 6.0 * n
