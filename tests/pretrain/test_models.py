"""Model presets: parameter counts against the published sizes."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from pretrain.config import ModelConfig
from pretrain.models import SIZES, flops_per_token, hf_config, n_params


def _meta_model(arch, size, vocab, context, tie=True):
    cfg = ModelConfig(arch=arch, size=size, tie=tie, **SIZES[size])
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config(cfg, vocab_size=vocab, context=context))


def test_gpt2_124m_matches_openai_count():
    # GPT-2 small with the 50257 vocabulary and 1024 positions has 124,439,808 parameters
    assert n_params(_meta_model("gpt2", "124M", 50257, 1024)) == 124_439_808


@pytest.mark.parametrize("size, low, high", [("1.3B", 1.25e9, 1.40e9), ("6.7B", 6.4e9, 6.9e9)])
def test_paper_sizes(size, low, high):
    n = n_params(_meta_model("gpt2", size, 50257, 2048))
    assert low < n < high
    layer, d = SIZES[size]["n_layer"], SIZES[size]["n_embd"]
    assert n == pytest.approx(12 * layer * d * d + 50257 * d + 2048 * d, rel=0.01)   # 12 L d^2 + embeddings


def test_llama_option_and_tiny_reference_size():
    m = _meta_model("llama", "124M", 32000, 1024)
    assert m.config.model_type == "llama" and m.config.num_hidden_layers == 12
    assert m.config.intermediate_size % 256 == 0
    tiny = _meta_model("gpt2", "tiny", 2048, 256)
    # the CPU size of docs/pretrain.md: 4 layers, d=128, tied, vocab 2048 -> ~1.1M parameters
    assert 1.0e6 < n_params(tiny) < 1.2e6
    assert flops_per_token(tiny) == 6 * (n_params(tiny) - 256 * 128)
