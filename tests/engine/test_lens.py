"""Logit lens: equality with the model's logits, with a manual computation, padding, oracles."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lensprobe.engine.adapters import get_adapter
from lensprobe.engine.lens import LogitLensResult, logit_lens, readout
from lensprobe.testing import TINY_CONFIGS, tiny_model

ALL_TYPES = sorted(TINY_CONFIGS)
TOKENS = [3, 17, 42, 99]
SETS = [[3, 17], [42], [5, 6, 7, 7], []]


def random_ids(batch: int, length: int, *, vocab: int = 101, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def sharp_model(model_type: str, seed: int = 0, **kw):
    """A tiny model with a scaled unembedding, so distributions are peaked and top-k is unambiguous."""
    model = tiny_model(model_type, seed=seed, tie_word_embeddings=False, **kw)
    with torch.no_grad():
        get_adapter(model).unembed.weight.mul_(20.0)
    return model


def np_reference(logits: np.ndarray, tokens, sets, k):
    """NumPy float64 reference of every readout quantity for logits [V]."""
    logits = logits.astype(np.float64)
    m = logits.max()
    lse = m + np.log(np.exp(logits - m).sum())
    logp = logits - lse
    p = np.exp(logp)
    entropy = -(p[p > 0] * logp[p > 0]).sum()
    ranks = [(logits > logits[t]).sum() for t in tokens]
    set_lp = [np.log(np.exp(logp[sorted(set(s))]).sum()) if s else -np.inf for s in sets]
    top = np.argsort(-logits, kind="stable")[:k]
    return logp[tokens], np.array(ranks), np.array(set_lp), top, logp[top], entropy


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_last_layer_equals_model_and_manual_layers(model_type):
    model = sharp_model(model_type)
    ids = random_ids(2, 9)
    res = logit_lens(model, ids, token_ids=TOKENS, token_sets=SETS, top_k=5, include_embeddings=True)
    assert res.layers == [0, 1, 2, 3]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    # last block == the model's own next-token distribution (< 1e-5 in fp32)
    model_logp = out.logits[:, -1].log_softmax(-1)
    assert torch.allclose(res.token_logprobs[:, -1], model_logp[:, TOKENS], atol=1e-5, rtol=0)
    assert torch.equal(res.top_tokens[:, -1], model_logp.topk(5).indices)
    # layers 0..L-1 from HF's hidden_states (raw for those layers), decoded through the same path,
    # reduced by an independent NumPy reference
    adapter = get_adapter(model)
    for j, layer in enumerate(res.layers):
        if layer < adapter.n_layers:
            states = out.hidden_states[layer][:, -1]
            logits = adapter.decode(states).detach().double().numpy()
        else:
            logits = out.logits[:, -1].double().numpy()
        for b in range(ids.shape[0]):
            lp, ranks, set_lp, top, top_lp, ent = np_reference(logits[b], TOKENS, SETS, 5)
            np.testing.assert_allclose(res.token_logprobs[b, j].numpy(), lp, atol=2e-5)
            np.testing.assert_array_equal(res.token_ranks[b, j].numpy(), ranks)
            np.testing.assert_allclose(res.set_logprobs[b, j].numpy(), set_lp, atol=2e-5)
            np.testing.assert_array_equal(res.top_tokens[b, j].numpy(), top)
            np.testing.assert_allclose(res.top_logprobs[b, j].numpy(), top_lp, atol=2e-5)
            np.testing.assert_allclose(res.entropy[b, j].item(), ent, atol=2e-5)


def _rms(x, weight, eps, *, offset=0.0):
    x = x.double()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (offset + weight.double())


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "gemma", "gemma2", "opt", "gpt_neox"])
def test_manual_decode_from_weights(model_type):
    """Decode re-derived from raw weights with torch.nn.functional (no adapter modules involved)."""
    kw = dict(word_embed_proj_dim=16) if model_type == "opt" else {}
    model = sharp_model(model_type, **kw)
    ids = random_ids(3, 8, seed=1)
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    res = logit_lens(model, ids, token_ids=TOKENS, layers=[1, 2])
    cfg = model.config
    for j, layer in enumerate([1, 2]):
        h = hs[layer][:, -1].double()
        if model_type == "gpt2":
            ln = model.transformer.ln_f
            x = F.layer_norm(h, (32,), ln.weight.double(), ln.bias.double(), cfg.layer_norm_epsilon)
        elif model_type == "gpt_neox":
            ln = model.gpt_neox.final_layer_norm
            x = F.layer_norm(h, (32,), ln.weight.double(), ln.bias.double(), cfg.layer_norm_eps)
        elif model_type == "opt":
            ln = model.model.decoder.final_layer_norm
            x = F.layer_norm(h, (32,), ln.weight.double(), ln.bias.double(), 1e-5)
            x = x @ model.model.decoder.project_out.weight.double().T
        elif model_type == "llama":
            x = _rms(h, model.model.norm.weight, cfg.rms_norm_eps)
        else:  # gemma / gemma2 scale by (1 + weight)
            x = _rms(h, model.model.norm.weight, cfg.rms_norm_eps, offset=1.0)
        logits = x @ model.lm_head.weight.double().T
        if model_type == "gemma2":
            cap = cfg.final_logit_softcapping
            logits = torch.tanh(logits / cap) * cap
        expected = logits.log_softmax(-1)[:, TOKENS]
        assert torch.allclose(res.token_logprobs[:, j].double(), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_padding_either_side_equals_unpadded(model_type, model_factory):
    model = model_factory(model_type)
    lengths = [7, 4, 2]
    rows = [random_ids(1, n, seed=10 + i)[0] for i, n in enumerate(lengths)]
    width = max(lengths)
    singles = [logit_lens(model, r, token_ids=TOKENS, token_sets=SETS, top_k=3, include_embeddings=True)
               for r in rows]
    for side in ("left", "right"):
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
            ids[i, sl], mask[i, sl] = r, 1
        res = logit_lens(model, ids, mask, token_ids=TOKENS, token_sets=SETS, top_k=3, include_embeddings=True)
        for i, single in enumerate(singles):
            assert torch.allclose(res.token_logprobs[i], single.token_logprobs[0], atol=1e-5), side
            assert torch.allclose(res.set_logprobs[i], single.set_logprobs[0], atol=1e-5), side
            assert torch.allclose(res.entropy[i], single.entropy[0], atol=1e-5), side
            assert torch.allclose(res.top_logprobs[i], single.top_logprobs[0], atol=1e-5), side


def test_per_row_tokens_batch_size_and_negative_layers(model_factory):
    model = model_factory("llama")
    ids = random_ids(5, 6, seed=3)
    per_row = torch.tensor([[3, 4], [5, 6], [7, 8], [9, 10], [11, 12]])
    whole = logit_lens(model, ids, token_ids=per_row, top_k=2)
    split = logit_lens(model, ids, token_ids=per_row, top_k=2, batch_size=2)
    assert torch.allclose(whole.token_logprobs, split.token_logprobs, atol=1e-6)
    assert torch.equal(whole.top_tokens, split.top_tokens)
    shared = logit_lens(model, ids, token_ids=list(range(3, 13)))
    for b in range(5):
        cols = [c - 3 for c in per_row[b].tolist()]
        assert torch.allclose(whole.token_logprobs[b], shared.token_logprobs[b][:, cols], atol=1e-6)
    last = logit_lens(model, ids, token_ids=per_row, layers=[-1])
    assert last.layers == [3] and torch.allclose(last.token_logprobs[:, 0], whole.token_logprobs[:, -1], atol=1e-6)


def test_readout_matches_numpy(model_factory):
    model = sharp_model("qwen2")
    adapter = get_adapter(model)
    hidden = torch.randn(4, 32, generator=torch.Generator().manual_seed(0)) * 3
    r = readout(hidden, adapter, token_ids=TOKENS, token_sets=SETS, top_k=4)
    logits = adapter.decode(hidden).detach().double().numpy()
    for b in range(4):
        lp, ranks, set_lp, top, top_lp, ent = np_reference(logits[b], TOKENS, SETS, 4)
        np.testing.assert_allclose(r.token_logprobs[b].numpy(), lp, atol=2e-5)
        np.testing.assert_array_equal(r.token_ranks[b].numpy(), ranks)
        np.testing.assert_allclose(r.set_logprobs[b].numpy(), set_lp, atol=2e-5)
        np.testing.assert_array_equal(r.top_tokens[b].numpy(), top)
        np.testing.assert_allclose(r.entropy[b].item(), ent, atol=2e-5)
    # stacked [L, B, d] states (one call per batch) equal per-layer calls, per-row ids broadcast over L
    stacked = torch.stack([hidden, 2 * hidden, -hidden])
    per_row = torch.tensor([[3, 4], [5, 6], [7, 8], [9, 10]])
    many = readout(stacked, adapter, token_ids=per_row, token_sets=SETS, top_k=2)
    assert many.token_logprobs.shape == (3, 4, 2) and many.entropy.shape == (3, 4)
    for j in range(3):
        one = readout(stacked[j], adapter, token_ids=per_row, token_sets=SETS, top_k=2)
        assert torch.allclose(many.token_logprobs[j], one.token_logprobs, atol=1e-6)
        assert torch.allclose(many.set_logprobs[j], one.set_logprobs, atol=1e-6)
        assert torch.equal(many.top_tokens[j], one.top_tokens) and torch.equal(many.token_ranks[j], one.token_ranks)
    # a set holding the whole vocabulary has probability one
    full = readout(hidden, adapter, token_sets=[list(range(101))])
    assert torch.allclose(full.set_logprobs, torch.zeros(4, 1), atol=1e-5)
    assert r.token_logprobs.shape == (4, 4) and full.token_logprobs is None and full.top_tokens is None


def test_to_dataframe_is_tidy_and_faithful(model_factory):
    model = model_factory("gpt2")
    res = logit_lens(model, random_ids(2, 5), token_ids=[3, 4], token_sets=[[5, 6]], top_k=2)
    df = res.to_dataframe()
    assert list(df.columns) == ["row", "layer", "lens", "metric", "index", "token_id", "token", "value"]
    assert df["token"].isna().all()  # no tokenizer was given: nothing to decode with
    # entropy (1) + token logprob (2) + rank (2) + set (1) + top (2) per (row, layer)
    assert len(df) == 2 * 3 * 8
    ent = df[df.metric == "entropy"].set_index(["row", "layer"])["value"]
    assert np.isclose(ent.loc[(1, 2)], res.entropy[1, 1].item())
    tok = df[(df.metric == "token_logprob") & (df.token_id == 4)].set_index(["row", "layer"])["value"]
    assert np.isclose(tok.loc[(0, 3)], res.token_logprobs[0, 2, 1].item())
    top = df[(df.metric == "top_logprob") & (df["index"] == 0)].set_index(["row", "layer"])["token_id"]
    assert top.loc[(1, 1)] == res.top_tokens[1, 0, 0].item()


@pytest.mark.parametrize("bad,match", [
    (dict(token_ids=[101]), r"\[0, 101\)"),
    (dict(token_ids=[-1]), r"\[0, 101\)"),
    (dict(token_ids=[1.5]), "integer"),
    (dict(token_ids=torch.tensor([[1, 2]] * 3)), "per-row"),
    (dict(token_sets=[[3, 500]]), "outside"),
    (dict(token_sets=["abc"]), "string"),
    (dict(top_k=-1), "top_k"),
    (dict(top_k=1000), "top_k"),
    (dict(layers=[4]), "out of range"),
    (dict(backend="tensorflow"), "backend"),
    (dict(batch_size=0), "batch_size"),
])
def test_argument_validation(bad, match, model_factory):
    model = model_factory("gpt2")
    with pytest.raises((ValueError, TypeError), match=match):
        logit_lens(model, random_ids(2, 4), **bad)


def test_input_validation(model_factory):
    model = model_factory("gpt2")
    with pytest.raises(ValueError, match="no real token"):
        logit_lens(model, random_ids(2, 4), torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="token ids must lie"):
        logit_lens(model, torch.tensor([[1, 2, 500]]))
    with pytest.raises(ValueError, match="shape"):
        logit_lens(model, random_ids(2, 4), torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="only 0 and 1"):
        logit_lens(model, random_ids(1, 3), torch.tensor([[1, 2, 1]]))
    with pytest.raises(TypeError, match="integer"):
        logit_lens(model, torch.rand(2, 4))
    with pytest.raises(ValueError, match="d_model"):
        readout(torch.zeros(2, 31), get_adapter(model))


def _padded_batch():
    rows = [random_ids(1, n, seed=20 + n)[0] for n in (6, 3, 5)]
    ids = torch.zeros(3, 6, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, 6 - len(r):], mask[i, 6 - len(r):] = r, 1  # left padding
    return ids, mask


def test_transformer_lens_oracle():
    """TransformerLens 4.x's own logit lens (TransformerBridge + tools.analysis.logit_lens) agrees."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.tools.analysis import logit_lens as tl_logit_lens

    from lensprobe.testing import tiny_tokenizer

    model = sharp_model("gpt2", seed=4)
    ids, mask = _padded_batch()
    ours = logit_lens(model, ids, mask, token_ids=TOKENS, top_k=3, include_embeddings=True)
    tok = tiny_tokenizer(101)
    tok.init_kwargs["name_or_path"] = "tiny"  # TL re-instantiates tokenizers from this key unless BOS is on
    tok.init_kwargs["add_bos_token"] = True
    bridge = TransformerBridge.boot_transformers("tiny-gpt2", hf_model=copy.deepcopy(model), tokenizer=tok,
                                                 device="cpu")
    bridge.eval()
    for b in range(ids.shape[0]):
        row = ids[b][mask[b].bool()].unsqueeze(0)  # token ids: TL prepends no BOS
        tl = tl_logit_lens(bridge, row, targets=TOKENS, return_type="log_probs")
        assert tl.labels == ["0_pre", "1_pre", "2_pre", "final_post"]
        assert torch.allclose(ours.token_logprobs[b], tl.values[:, 0], atol=1e-5)
        assert torch.equal(ours.token_ranks[b], tl.readout.target_ranks[:, 0])
        assert torch.allclose(ours.entropy[b], tl.readout.entropy[:, 0], atol=1e-5)
        top = tl_logit_lens(bridge, row, top_k=3, return_type="log_probs")
        assert torch.equal(ours.top_tokens[b], top.readout.top_ids[:, 0])
    # the lensprobe backend built on TransformerLens gives the same numbers (and leaves the model intact)
    tl_backend = logit_lens(model, ids, mask, token_ids=TOKENS, token_sets=SETS, top_k=3, backend="transformer_lens")
    torch_backend = logit_lens(model, ids, mask, token_ids=TOKENS, token_sets=SETS, top_k=3)
    assert torch.allclose(tl_backend.token_logprobs, torch_backend.token_logprobs, atol=1e-5)
    assert torch.allclose(tl_backend.set_logprobs, torch_backend.set_logprobs, atol=1e-5)
    assert torch.equal(tl_backend.top_tokens, torch_backend.top_tokens)
    assert type(model.transformer.h[0]).__name__ == "GPT2Block"


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_nnsight_backend_agrees(model_type):
    model = sharp_model(model_type, seed=5)
    ids, mask = _padded_batch()
    a = logit_lens(model, ids, mask, token_ids=TOKENS, token_sets=SETS, top_k=3, include_embeddings=True)
    b = logit_lens(model, ids, mask, token_ids=TOKENS, token_sets=SETS, top_k=3, include_embeddings=True,
                   backend="nnsight")
    assert b.backend == "nnsight"
    for name in ("token_logprobs", "set_logprobs", "top_logprobs", "entropy"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-5), name
    assert torch.equal(a.top_tokens, b.top_tokens) and torch.equal(a.token_ranks, b.token_ranks)
    assert isinstance(b, LogitLensResult)
    # nnsight's per-module forward controllers are removed again: the model is left as it was
    assert not [name for name, mod in model.named_modules() if "forward" in mod.__dict__]


def test_nnsight_backend_traces_the_same_model_again():
    """Each chunk is a new trace of the same model: one row per chunk, layer 0 included, then once more.
    (NNsight used to leave ``__nnsight__`` state on every module, and the second trace of layer 0 failed.)"""
    from lensprobe.engine.lens import NnsightBackend, TorchBackend

    model = sharp_model("gpt2", seed=6)
    ids, mask = _padded_batch()
    a = logit_lens(model, ids, mask, token_ids=TOKENS, top_k=3, include_embeddings=True, backend=TorchBackend())
    for _ in range(2):
        b = logit_lens(model, ids, mask, token_ids=TOKENS, top_k=3, include_embeddings=True, batch_size=1,
                       backend="nnsight")
        assert torch.allclose(a.token_logprobs, b.token_logprobs, atol=1e-5)
        assert torch.equal(a.top_tokens, b.top_tokens)
    assert a.backend == "torch" and b.backend == NnsightBackend.name
    assert not [name for name, mod in model.named_modules() if {"forward", "__nnsight__"} & set(mod.__dict__)]


def test_chunked_decode_equals_single_pass(monkeypatch, model_factory):
    import lensprobe.engine.lens as lens_mod

    model = model_factory("gemma2")
    ids = random_ids(4, 6, seed=9)
    per_row = torch.tensor([[3, 4], [5, 6], [7, 8], [9, 10]])
    whole = logit_lens(model, ids, token_ids=per_row, token_sets=SETS, top_k=3)
    monkeypatch.setattr(lens_mod, "MAX_LOGITS_ELEMENTS", 101 * 5)  # 5 rows per unembedding chunk
    chunked = logit_lens(model, ids, token_ids=per_row, token_sets=SETS, top_k=3)
    for name in ("token_logprobs", "set_logprobs", "top_logprobs", "entropy"):
        assert torch.allclose(getattr(whole, name), getattr(chunked, name), atol=1e-6), name
    assert torch.equal(whole.top_tokens, chunked.top_tokens) and torch.equal(whole.token_ranks, chunked.token_ranks)


def test_strings_are_tokenized_with_the_models_tokenizer_and_tokens_decoded(tmp_path):
    """Prompts as strings give the numbers of their token ids (left-padded rows), single-token strings stand
    for their ids in token_ids / token_sets, and to_dataframe() decodes every token id beside it."""
    from lensprobe.engine.adapters import load_model
    from lensprobe.testing import tiny_tokenizer

    model, tok = tiny_model("llama"), tiny_tokenizer()
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    lm = load_model(tmp_path / "ckpt")
    texts = ["<t5> <t6> <t7>", "<t9> <t10>"]
    by_text = logit_lens(lm, texts, token_ids=["<t8>", "<t3>"], token_sets=[["<t4>", 11]], top_k=3)
    ids = torch.tensor([[5, 6, 7], [0, 9, 10]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    by_ids = logit_lens(lm.model, ids, mask, token_ids=[8, 3], token_sets=[[4, 11]], top_k=3)
    for name in ("token_logprobs", "token_ranks", "set_logprobs", "top_tokens", "top_logprobs", "entropy"):
        assert torch.allclose(getattr(by_text, name).double(), getattr(by_ids, name).double(), atol=1e-6), name
    assert by_text.token_ids.tolist() == [8, 3]
    # one row alone equals its row in the batch (left padding is exact)
    alone = logit_lens(lm, texts[1], token_ids=["<t8>"])
    assert torch.allclose(alone.token_logprobs[0, :, 0], by_text.token_logprobs[1, :, 0], atol=1e-5)
    df = by_text.to_dataframe()
    assert list(df.columns) == ["row", "layer", "lens", "metric", "index", "token_id", "token", "value"]
    named = df.dropna(subset=["token_id"])
    assert (named["token"] == named["token_id"].map(lambda t: f"<t{t}>")).all() and len(named) > 0
    assert df.loc[df.metric == "entropy", "token"].isna().all()
    # a plain model takes the tokenizer as an argument; without one, strings are refused by name
    plain = logit_lens(lm.model, texts, tokenizer=tok, token_ids=["<t8>", "<t3>"])
    assert torch.allclose(plain.token_logprobs, by_text.token_logprobs)
    with pytest.raises(ValueError, match="need a tokenizer"):
        logit_lens(lm.model, texts)
    with pytest.raises(ValueError, match="attention_mask"):
        logit_lens(lm, texts, mask)
    with pytest.raises(ValueError, match=r"'<t8> <t9>' is 2 tokens"):
        logit_lens(lm, texts, token_ids=["<t8> <t9>"])
