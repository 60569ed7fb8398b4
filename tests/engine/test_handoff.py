"""The hand-off from load_model's LoadedModel to TransformerLens 4.x and nnsight 0.8 (docs/engine.md,
"Hand-off to TransformerLens and nnsight"): the same checkpoint gives the same states and logits."""
from __future__ import annotations

import copy

import pytest
import torch

from lensprobe import load_model, logit_lens
from lensprobe.engine.lens import readout
from lensprobe.testing import tiny_model, tiny_tokenizer

TEXTS = ["<t5> <t6> <t7> <t8>", "<t9> <t10> <t11> <t12>"]


@pytest.fixture(params=["gpt2", "llama"])
def loaded(request, tmp_path):
    model, tok = tiny_model(request.param, seed=3), tiny_tokenizer()
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    return load_model(tmp_path / "ckpt")


def _ids(lm):
    return torch.tensor([lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS])


def test_transformer_lens_bridge_on_the_loaded_checkpoint(loaded):
    from transformer_lens.model_bridge import TransformerBridge

    lm, ids = loaded, _ids(loaded)
    bridge = TransformerBridge.boot_transformers("tiny", hf_model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer,
                                                 device="cpu")
    bridge.eval()
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(ids)
        hf = lm.model(ids).logits
    assert torch.allclose(logits, hf, atol=1e-5)  # the same model
    ours = logit_lens(lm, TEXTS, top_k=5)
    for i in range(lm.adapter.n_layers):  # TL's blocks.i.hook_resid_post is lensprobe's layer i + 1
        state = cache[f"blocks.{i}.hook_resid_post"][:, -1]
        theirs = readout(state, lm, top_k=5)
        assert torch.allclose(theirs.entropy, ours.entropy[:, i], atol=1e-5)
        assert torch.equal(theirs.top_tokens, ours.top_tokens[:, i])
        assert torch.allclose(theirs.top_logprobs, ours.top_logprobs[:, i], atol=1e-5)
    # the bridge wrapped a copy: lensprobe's model is untouched
    assert torch.equal(logit_lens(lm, TEXTS, top_k=5).top_tokens, ours.top_tokens)


def test_nnsight_on_the_loaded_checkpoint(loaded):
    from nnsight import TransformersModel

    lm = loaded
    ours = logit_lens(lm, TEXTS, top_k=5)
    wrapped = TransformersModel(lm.model, tokenizer=lm.tokenizer, task="text-generation")
    envoy = wrapped
    for part in lm.adapter.spec.blocks.split("."):  # "transformer.h" / "model.layers"
        envoy = getattr(envoy, part)
    saved = []
    with torch.no_grad():
        with wrapped.trace(torch.as_tensor(_ids(lm))):
            for i in range(lm.adapter.n_layers):
                saved.append(envoy[i].output.save())
            logits = wrapped.output.logits.save()
    with torch.no_grad():
        assert torch.allclose(logits, lm.model(_ids(lm)).logits, atol=1e-6)
    for i, out in enumerate(saved):
        state = (out[0] if isinstance(out, tuple) else out)[:, -1]
        theirs = readout(state, lm, top_k=5)
        assert torch.allclose(theirs.entropy, ours.entropy[:, i], atol=1e-5)
        assert torch.equal(theirs.top_tokens, ours.top_tokens[:, i])
    # nnsight wrapped the model itself: lensprobe's readouts are unchanged afterwards
    after = logit_lens(lm, TEXTS, top_k=5)
    assert torch.equal(after.top_tokens, ours.top_tokens) and torch.allclose(after.entropy, ours.entropy)
