"""The shuffled-language-label null (from group counts, no extra forward pass) and split-half agreement."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lensprobe.engine.adapters import get_adapter
from lensprobe.lape import ActivationCounter, LapeInputs, lape_select, shuffled_label_null, split_half_agreement
from lensprobe.lape.null import permuted_group_language
from lensprobe.probes.lape import LapeProbe


def test_null_equals_a_real_recount_under_permuted_labels(tiny, make_streams_fn):
    model = tiny("gpt2", 0)
    inputs = LapeInputs.from_token_arrays(make_streams_fn(seed=2, n_tokens=400), seq_len=25)  # 16 seqs each
    probe = LapeProbe(inputs, batch_size=8, n_groups=4, null_permutations=2, null_seed=7, top_rate=0.05)
    probe.run(model)
    gl, seq_groups = inputs.group_layout(4)
    modules = get_adapter(model).neuron_modules
    for perm_labels, null_res in zip(probe.null.group_languages, probe.null.results):
        assert sorted(perm_labels.tolist()) == sorted(gl.tolist())
        # recount from scratch: every sequence labelled with its group's permuted language
        counter = ActivationCounter(n_layers=len(modules), n_groups=2)
        with counter.hooked(modules):
            for lang, seqs in inputs.sequences.items():
                for g in np.unique(seq_groups[lang]):  # a group's sequences have equal length: no padding
                    rows = torch.as_tensor(np.stack([s for s, sg in zip(seqs, seq_groups[lang]) if sg == g]))
                    counter.forward(model, rows, None, int(perm_labels[g]))
        probs = counter.probabilities()
        np.testing.assert_array_equal(probs, null_res.probs)
        again = lape_select(probs, top_rate=0.05, languages=inputs.languages)
        np.testing.assert_array_equal(again.mask, null_res.mask)
    assert not np.array_equal(probe.null.results[0].probs, probe.result.probs)


def synthetic_group_counts(seed=0, groups_per_lang=8, L=2, N=500, tokens=1000):
    """Counts with 6 planted language-0 and 4 language-1 neurons over a shared background."""
    rng = np.random.default_rng(seed)
    G = 2 * groups_per_lang
    gl = np.repeat([0, 1], groups_per_lang)
    p = np.broadcast_to(rng.uniform(0.1, 0.5, size=(1, L, N)), (G, L, N)).copy()
    planted = {(0, 7): 0, (0, 100): 0, (1, 3): 0, (1, 250): 0, (1, 499): 0, (0, 300): 0,
               (0, 8): 1, (1, 9): 1, (0, 400): 1, (1, 401): 1}
    for (l, n), lang in planted.items():
        p[:, l, n] = np.where(gl == lang, 0.9, 0.05)
    n_tokens = np.full(G, tokens)
    over_zero = rng.binomial(tokens, p)
    return over_zero, n_tokens, gl, planted


def test_null_destroys_planted_signal():
    over_zero, n_tokens, gl, planted = synthetic_group_counts()
    from lensprobe.lape.counting import aggregate_probabilities

    true = lape_select(aggregate_probabilities(over_zero, n_tokens, gl, 2), languages=["python", "php"])
    for (l, n), lang in planted.items():
        assert true.mask[lang, l, n] and not true.mask[1 - lang, l, n]
    assert true.n_exclusive == 10 and true.prob_gap().max() > 0.8
    null = shuffled_label_null(over_zero, n_tokens, gl, languages=["python", "php"], n_permutations=20, seed=0)
    summary = null.summary()
    assert len(summary) == 20 and (summary.n_selected == 10).all()
    # a shuffled labelling mixes both languages' groups: gaps shrink far below the true ones
    assert summary.prob_gap_max.mean() < 0.5 * true.summary()["prob_gap_max"]
    assert summary.prob_gap_mean.mean() < true.summary()["prob_gap_mean"]
    counts = null.mean_counts()
    assert set(counts.columns) == {"language", "layer", "n_neurons"} and len(counts) == 4


def test_permutations_reproducible_and_balanced():
    gl = np.repeat([0, 1, 2], [3, 5, 2])
    a = [permuted_group_language(gl, np.random.default_rng(1)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    assert np.bincount(a[0]).tolist() == [3, 5, 2]
    b = permuted_group_language(gl, np.random.default_rng(2))
    assert not np.array_equal(a[0], b)


def test_split_half_agreement():
    over_zero, n_tokens, gl, _ = synthetic_group_counts(groups_per_lang=4)
    # identical halves: every even group duplicated into the next odd slot
    dup = over_zero.copy()
    dup[1::2] = dup[0::2]
    agree = split_half_agreement(dup, n_tokens, gl, languages=["python", "php"])
    assert agree == {"python": 1.0, "php": 1.0, "*": 1.0}
    noisy = split_half_agreement(over_zero, n_tokens, gl, languages=["python", "php"])
    assert 0.5 <= noisy["*"] <= 1.0
    with pytest.raises(ValueError, match="split-half needs"):
        split_half_agreement(over_zero[:3], n_tokens[:3], np.array([0, 0, 1]), languages=["python", "php"])
    with pytest.raises(ValueError, match="n_permutations"):
        shuffled_label_null(over_zero, n_tokens, gl, languages=["python", "php"], n_permutations=0)
