"""lape_select against planted neurons, a loop-based NumPy reference and a torch re-implementation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lensprobe.lape import LapeResult, lape_select


# ---------------------------------------------------------------------------------------------
# independent references


def reference_select(probs, top_rate=0.01, filter_rate=0.95, bar_ratio=0.95):
    """Straight loops from the paper's description: returns {language: set((layer, neuron))}."""
    K, L, N = probs.shape
    values = sorted(float(probs[k, l, n]) for k in range(K) for l in range(L) for n in range(N))
    k_filter = round(len(values) * filter_rate)
    tau = values[k_filter - 1]
    bar = values[round(len(values) * bar_ratio) - 1]
    scored = []
    for l in range(L):
        for n in range(N):
            ps = [float(probs[k, l, n]) for k in range(K)]
            total = sum(ps)
            h = 0.0
            for p in ps:
                q = p / total if total > 0 else 0.0
                if q > 0:
                    h -= q * math.log(q)
            if not any(p > tau for p in ps):
                h = math.inf
            scored.append((h, l * N + n, l, n))
    scored.sort()  # entropy, then flat index
    chosen = scored[: round(L * N * top_rate)]
    out = {k: set() for k in range(K)}
    for _, _, l, n in chosen:
        for k in range(K):
            if probs[k, l, n] > bar:
                out[k].add((l, n))
    return out, tau, bar


def torch_original_style(probs, top_rate=0.01, filter_rate=0.95, bar_ratio=0.95):
    """The original's tensor operations (layer x neuron x language, kthvalue, topk), rewritten."""
    p = torch.as_tensor(probs, dtype=torch.float32).permute(1, 2, 0)
    q = p / p.sum(-1, keepdim=True)
    q[torch.isnan(q)] = 0
    ent = -(q * torch.where(q > 0, q.log(), torch.zeros_like(q))).sum(-1)
    flat = p.flatten()
    tau = flat.kthvalue(round(len(flat) * filter_rate)).values.item()
    ent[(p > tau).sum(-1) == 0] = torch.inf
    _, idx = ent.flatten().topk(round(ent.numel() * top_rate), largest=False)
    rows, cols = idx // ent.shape[1], idx % ent.shape[1]
    bar = flat.kthvalue(round(len(flat) * bar_ratio)).values.item()
    sel = p[rows, cols] > bar  # n x lang
    return {k: {(int(r), int(c)) for r, c, s in zip(rows, cols, sel[:, k]) if s} for k in range(p.shape[-1])}


def as_sets(res: LapeResult):
    return {k: {(int(l), int(n)) for l, n in zip(*np.nonzero(res.mask[k]))} for k in range(res.n_languages)}


# ---------------------------------------------------------------------------------------------


def planted(seed=0, K=3, L=4, N=250):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.2, 0.5, size=(K, L, N)).astype(np.float32)
    plants = {}
    for i, (k, l, n) in enumerate([(0, 0, 3), (1, 2, 17), (2, 3, 99), (1, 1, 200), (0, 3, 5)]):
        probs[:, l, n] = 0.01
        probs[k, l, n] = 0.9 + 0.01 * i
        plants[(l, n)] = k
    probs[:, 0, 10] = 0.95                       # uniform, frequently firing
    probs[:, 1, 11] = [0.0, 0.0, 0.002]          # rarely firing: entropy 0, must be filtered out
    probs[:, 2, 12] = 0.0                        # dead
    return probs, plants


def test_planted_neurons_found_with_their_language():
    probs, plants = planted()
    res = lape_select(probs, languages=["python", "php", "go"])
    sets = as_sets(res)
    for (l, n), k in plants.items():
        assert (l, n) in sets[k]
        assert all((l, n) not in sets[j] for j in sets if j != k)
    chosen = {tuple(x) for x in res.selected.tolist()}
    for neuron in [(0, 10), (1, 11), (2, 12)]:
        assert neuron not in chosen
        assert not res.mask[:, neuron[0], neuron[1]].any()
    assert np.isinf(res.entropy[1, 11]) and np.isinf(res.entropy[2, 12])
    assert res.entropy[0, 10] == pytest.approx(math.log(3))


def test_count_is_fixed_at_defaults():
    probs, _ = planted(seed=3)
    res = lape_select(probs)
    L, N = probs.shape[1:]
    assert len(res.selected) == round(0.01 * L * N) == 10
    # at the defaults tau == bar, so every selected neuron with finite entropy has >= 1 language
    assert res.n_distinct == round(0.01 * L * N)
    assert res.filter_threshold == res.activation_bar


@pytest.mark.parametrize("seed", range(12))
def test_matches_loop_reference_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    K, L, N = rng.integers(2, 5), rng.integers(1, 5), rng.integers(20, 120)
    probs = rng.beta(0.7, 1.5, size=(K, L, N)).astype(np.float32)
    if seed % 3 == 0:  # quantised probabilities: many exact ties in values and entropies
        probs = (np.round(probs * 8) / 8).astype(np.float32)
    if seed % 4 == 1:
        probs[:, :, : N // 4] = 0  # dead neurons
    kw = dict(top_rate=[0.01, 0.05, 0.2][seed % 3], filter_rate=[0.95, 0.8][seed % 2],
              activation_bar_ratio=[0.95, 0.9, 0.5][seed % 3])
    res = lape_select(probs, **kw)
    ref, tau, bar = reference_select(probs, kw["top_rate"], kw["filter_rate"], kw["activation_bar_ratio"])
    assert res.filter_threshold == tau and res.activation_bar == bar
    assert as_sets(res) == ref
    n_select = round(L * N * kw["top_rate"])
    if res.n_passing_filter >= n_select and kw["filter_rate"] == kw["activation_bar_ratio"]:
        assert res.n_distinct == n_select


def test_count_formula_gives_the_papers_llama2_7b_number():
    # LLaMA-2-7B: 32 layers x 11008 neurons, 7 languages; the authors' released sets hold 3523 neurons
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, size=(7, 32, 11008)).astype(np.float32)
    res = lape_select(probs, languages=["en", "zh", "fr", "es", "vi", "id", "ja"])
    assert len(res.selected) == res.n_distinct == 3523


@pytest.mark.parametrize("seed", range(6))
def test_matches_original_tensor_operations_without_ties(seed):
    rng = np.random.default_rng(100 + seed)
    probs = rng.uniform(0, 1, size=(3, 4, 300)).astype(np.float32)
    probs[rng.integers(0, 3, 40), rng.integers(0, 4, 40), rng.integers(0, 300, 40)] *= 0.01
    assert as_sets(lape_select(probs, top_rate=0.03)) == torch_original_style(probs, top_rate=0.03)


def test_ties_broken_by_flat_index_and_deterministic():
    L, N = 4, 100
    probs = np.full((2, L, N), 0.1, dtype=np.float32)
    # 12 identical language-0-specific neurons scattered over the model; only round(0.01*400)=4 selected
    tied = [(3, 90), (0, 50), (2, 7), (1, 1), (0, 2), (3, 3), (2, 60), (1, 80), (0, 99), (2, 0), (1, 33), (3, 50)]
    for l, n in tied:
        probs[:, l, n] = [0.8, 0.0]
    first = lape_select(probs)
    expected = sorted(tied, key=lambda x: x[0] * N + x[1])[:4]
    assert [tuple(x) for x in first.selected.tolist()] == expected
    for _ in range(3):
        again = lape_select(probs.copy())
        np.testing.assert_array_equal(again.selected, first.selected)
        np.testing.assert_array_equal(again.mask, first.mask)


def test_several_or_no_language_and_empty_languages_kept():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.3, size=(1, 2, 100))
    probs = (base + rng.uniform(0, 0.01, size=(3, 2, 100))).astype(np.float32)  # near-uniform background
    probs[:2, 0, 0] = 0.95  # shared by languages 0 and 1
    probs[2, 0, 0] = 0.0
    res2 = lape_select(probs, languages=["python", "php", "cpp"], top_rate=0.005)
    assert res2.mask[:, 0, 0].tolist() == [True, True, False]
    assert res2.n_shared == 1 and res2.n_exclusive == 0
    counts = res2.counts()
    assert list(counts.columns) == ["language", "layer", "n_neurons"]
    assert len(counts) == 3 * 2 and set(counts.language) == {"python", "php", "cpp"}
    assert counts.query("language == 'cpp'").n_neurons.sum() == 0
    lc = res2.language_counts().set_index("language")
    assert lc.loc["cpp", "n_neurons"] == 0 and lc.loc["python", "n_neurons"] == 1
    # a bar above every probability assigns the selected neuron to no language
    res3 = lape_select(probs, languages=["python", "php", "cpp"], top_rate=0.005, activation_bar_ratio=1.0)
    assert len(res3.selected) == 1 and res3.n_distinct == 0


def test_summaries_and_dataframe():
    probs, plants = planted(seed=5)
    res = lape_select(probs, languages=["python", "php", "go"])
    df = res.to_dataframe()
    assert len(df) == 3 * len(res.selected)
    row = df[(df.layer == 1) & (df.neuron == 3) & (df.language == "python")].iloc[0]
    assert row.prob == pytest.approx(float(probs[0, 0, 3])) and bool(row.assigned)
    assert (df.layer >= 1).all()
    gap = res.prob_gap()
    sel = res.selected
    expect = probs[:, sel[:, 0], sel[:, 1]].max(0) - probs[:, sel[:, 0], sel[:, 1]].min(0)
    np.testing.assert_allclose(gap, expect, rtol=1e-6)
    s = res.summary()
    assert s["n_distinct"] == res.n_distinct == 10
    assert s["prob_gap_max"] == pytest.approx(float(expect.max()))
    orig = res.to_original_format()
    assert [list(x) for x in orig["python"]][0] == sorted(n for (l, n) in zip(*np.nonzero(res.mask[0])) if l == 0)
    counts = res.counts()
    assert counts.n_neurons.sum() == res.mask.sum()
    assert res.jaccard(res)["*"] == 1.0


def test_entropy_natural_log_not_normalised():
    probs = np.zeros((4, 1, 2), dtype=np.float32)
    probs[:, 0, 0] = 0.5            # uniform over 4 languages -> ln 4
    probs[:, 0, 1] = [0.6, 0.2, 0, 0]
    res = lape_select(probs, top_rate=0.0, filter_rate=0.1)
    assert res.entropy[0, 0] == pytest.approx(math.log(4))
    assert res.entropy[0, 1] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3)), "shape"),
    (np.full((2, 1, 5), np.nan), "finite"),
    (np.full((2, 1, 5), 1.5), r"\[0, 1\]"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        lape_select(bad)


def test_bad_options():
    p = np.full((2, 2, 50), 0.3, dtype=np.float32)
    with pytest.raises(ValueError, match="top_rate"):
        lape_select(p, top_rate=1.5)
    with pytest.raises(ValueError, match="language names"):
        lape_select(p, languages=["a"])
    with pytest.raises(ValueError, match="selects no value"):
        lape_select(np.full((1, 1, 1), 0.3), filter_rate=0.1)
