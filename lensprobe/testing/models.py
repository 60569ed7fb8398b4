"""Tiny random models built from configs (no downloads), a word-level tokenizer, and runs of tiny checkpoints."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

#: model_type -> config overrides that make a tiny model of that architecture.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": dict(n_layer=3, n_embd=32, n_head=4, n_positions=128),
    "gpt_neox": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=128),
    "llama": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_position_embeddings=128),
    "mistral": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=64, max_position_embeddings=128),
    "qwen2": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_position_embeddings=128),
    "qwen3": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_position_embeddings=128, head_dim=8),
    "starcoder2": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=64, max_position_embeddings=128),
    "gemma": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_position_embeddings=128, head_dim=8),
    "gemma2": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=64, max_position_embeddings=128, head_dim=8,
                   final_logit_softcapping=30.0, attn_logit_softcapping=50.0),
    "opt": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, ffn_dim=64,
                word_embed_proj_dim=32, max_position_embeddings=128),
    "phi3": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=64, max_position_embeddings=128, pad_token_id=0),
}


def tiny_config(model_type: str, *, vocab_size: int = 101, tie_word_embeddings: bool | None = None,
                **overrides: Any):
    """An HF config of ``model_type`` small enough for unit tests."""
    from transformers import AutoConfig

    if model_type not in TINY_CONFIGS:
        raise KeyError(f"no tiny config for model_type {model_type!r}; known: {sorted(TINY_CONFIGS)}")
    kwargs = dict(TINY_CONFIGS[model_type])
    kwargs.update(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if tie_word_embeddings is not None:
        kwargs["tie_word_embeddings"] = tie_word_embeddings
    kwargs.update(overrides)
    return AutoConfig.for_model(model_type, **kwargs)


def tiny_model(model_type: str = "gpt2", *, seed: int = 0, vocab_size: int = 101,
               tie_word_embeddings: bool | None = None, **overrides: Any) -> torch.nn.Module:
    """A randomly initialised tiny causal LM (fp32, eval mode, eager attention)."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(model_type, vocab_size=vocab_size, tie_word_embeddings=tie_word_embeddings,
                         **overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    # Random init leaves norms at identity; perturb every parameter so tests exercise them.
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return model.eval()


def tiny_tokenizer(vocab_size: int = 101):
    """A word-level fast tokenizer whose tokens are ``<t0>`` .. ``<t{vocab_size-1}>`` (ids = numbers).

    ``<t0>`` is pad/unk, ``<t1>`` BOS, ``<t2>`` EOS, matching :func:`tiny_config`. Save it beside a
    tiny model (``tok.save_pretrained(dir)``) to make a complete local checkpoint directory.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"<t{i}>": i for i in range(vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<t0>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<t1>", eos_token="<t2>",
                                   pad_token="<t0>", unk_token="<t0>")


def build_tiny_run(root, steps, *, model_type: str = "gpt2", tokenizer=None, vocab_size: int = 101,
                   languages=("python", "php"), **model_kwargs: Any):
    """A run directory of ``checkpoint-<step>`` HF checkpoints (safetensors, tokenizer,
    ``checkpoint.json``) whose weights differ per step (seed = step), plus a ``loss.jsonl``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer(vocab_size=vocab_size)
    for step in steps:
        model = tiny_model(model_type, seed=step, vocab_size=vocab_size, **model_kwargs)
        path = root / f"checkpoint-{step}"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        per_lang = {lang: step * 100 * (i + 1) for i, lang in enumerate(languages)}
        (path / "checkpoint.json").write_text(json.dumps(
            {"step": step, "tokens": sum(per_lang.values()), "tokens_by_language": per_lang, "run": root.name}))
    with open(root / "loss.jsonl", "w") as fh:
        for step in range(0, max(steps) + 1):
            fh.write(json.dumps({"step": step, "loss": 5.0 / (1 + step), "tokens": step * 100,
                                 "loss_by_language": {lang: 5.0 / (1 + step) + i for i, lang in enumerate(languages)}})
                     + "\n")
    return root
