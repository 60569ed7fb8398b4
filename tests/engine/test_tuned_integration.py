"""The tuned lens inside the readers: ``logit_lens(lens=...)`` against an independent computation
from HF hidden states, the default left unchanged, and clear errors for bad ``lens`` arguments."""
from __future__ import annotations

import pytest
import torch

import lensprobe
from lensprobe.engine.lens import logit_lens
from lensprobe.engine.tuned_lens import TunedLens, TunedLensMismatchError
from lensprobe.testing import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model("gpt2", seed=3)


@pytest.fixture(scope="module")
def fitted(model):
    """A lens fitted a few steps on random rows, then given random translators: an arbitrary
    affine map per layer, so the readout differs clearly from the logit lens."""
    ids = torch.randint(3, 101, (8, 12), generator=torch.Generator().manual_seed(0))
    lens = TunedLens(steps=2, batch_size=4).fit(model, ids)
    gen = torch.Generator().manual_seed(1)
    lens.weight_ = 0.3 * torch.randn(lens.weight_.shape, generator=gen)
    lens.bias_ = 0.5 * torch.randn(lens.bias_.shape, generator=gen)
    return lens


def _hf_logprobs(model, rows: list[list[int]], lens: TunedLens | None) -> torch.Tensor:
    """``[B, L, V]`` log-probabilities at each row's last token: ``hidden_states[l]`` of the
    unpadded row, the translator ``h + A h + b`` written out here, then ``ln_f`` and ``lm_head``
    (layer L: HF's last hidden state is already normalised, so it is the logits' input)."""
    n_layers = model.config.n_layer
    out = []
    with torch.no_grad():
        for row in rows:
            hs = model(input_ids=torch.tensor([row]), output_hidden_states=True, use_cache=False).hidden_states
            per_layer = []
            for layer in range(1, n_layers + 1):
                h = hs[layer][0, -1].double()
                if layer < n_layers:
                    if lens is not None:
                        a, b = lens.weight_[layer - 1].double(), lens.bias_[layer - 1].double()
                        h = h + a @ h + b
                    h = model.transformer.ln_f.double()(h)
                    model.transformer.ln_f.float()
                logits = h @ model.lm_head.weight.double().T
                per_layer.append(torch.log_softmax(logits, -1))
            out.append(torch.stack(per_layer))
    return torch.stack(out).float()


def test_exported():
    assert lensprobe.TunedLens is TunedLens
    assert "TunedLens" in lensprobe.__all__


def test_tuned_logit_lens_equals_hf_hidden_states(model, fitted):
    rows = [[5, 6, 7, 8, 9], [10, 11, 12], [40, 41, 42, 43, 44, 45, 46]]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):  # left padding
        ids[r, width - len(row):] = torch.tensor(row)
        mask[r, width - len(row):] = 1
    vocab = list(range(101))
    tuned = logit_lens(model, ids, mask, token_ids=vocab, lens=fitted)
    plain = logit_lens(model, ids, mask, token_ids=vocab)
    ref_tuned, ref_plain = _hf_logprobs(model, rows, fitted), _hf_logprobs(model, rows, None)
    assert tuned.lens == "tuned" and plain.lens == "logit"
    torch.testing.assert_close(tuned.token_logprobs, ref_tuned, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(plain.token_logprobs, ref_plain, atol=2e-5, rtol=1e-5)
    # the translators change layers 1..L-1 clearly, never the last layer
    assert (tuned.token_logprobs[:, :-1] - plain.token_logprobs[:, :-1]).abs().max() > 0.1
    torch.testing.assert_close(tuned.token_logprobs[:, -1], plain.token_logprobs[:, -1])
    df = tuned.to_dataframe()
    assert set(df["lens"]) == {"tuned"} and set(plain.to_dataframe()["lens"]) == {"logit"}


def test_logit_default_unchanged(model):
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    a = logit_lens(model, ids, top_k=3, token_ids=[4, 5])
    b = logit_lens(model, ids, top_k=3, token_ids=[4, 5], lens="logit")
    for name in ("entropy", "token_logprobs", "token_ranks", "top_tokens", "top_logprobs"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.lens == b.lens == "logit"
    assert a.to_dataframe().equals(b.to_dataframe())


def test_bad_lens_arguments(model, fitted):
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="lens must be one of 'logit', 'tuned' or a fitted TunedLens"):
        logit_lens(model, ids, lens="tunned")
    with pytest.raises(ValueError, match="needs translators"):
        logit_lens(model, ids, lens="tuned")
    with pytest.raises(ValueError, match="not fitted"):
        logit_lens(model, ids, lens=TunedLens())
    with pytest.raises(ValueError, match="layer 0"):
        logit_lens(model, ids, lens=fitted, include_embeddings=True)
    with pytest.raises(ValueError, match="'torch' or 'nnsight' backend"):
        logit_lens(model, ids, lens=fitted, backend="transformer_lens")
    with pytest.raises(TunedLensMismatchError, match="weight hash"):
        logit_lens(tiny_model("gpt2", seed=4), ids, lens=fitted)
