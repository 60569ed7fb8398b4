"""Activation counting against independent computations on tiny GPT-2, GPT-NeoX, Llama and all adapters."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lensprobe.engine.adapters import get_adapter
from lensprobe.lape import ActivationCounter, LapeInputs
from lensprobe.lape.counting import aggregate_probabilities
from lensprobe.probes.lape import LapeProbe
from lensprobe.testing import TINY_CONFIGS



def pad(seqs, side):
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, sl] = torch.as_tensor(s)
        mask[i, sl] = 1
    return ids, mask


def count_with_counter(model, seqs_by_group, *, side="right", batch_size=3):
    modules = get_adapter(model).neuron_modules
    counter = ActivationCounter(n_layers=len(modules), n_groups=len(seqs_by_group))
    rows = [(g, s) for g, seqs in enumerate(seqs_by_group) for s in seqs]
    with counter.hooked(modules):
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            ids, mask = pad([s for _, s in chunk], side)
            counter.forward(model, ids, mask, [g for g, _ in chunk])
    return counter


def capture_inputs(model, modules, ids):
    """Run one unpadded sequence; return each module's forward input (hidden states) and hidden_states."""
    grabbed = []
    handles = [m.register_forward_pre_hook(lambda _m, args, kw=None: grabbed.append(args[0].detach()))
               for m in modules]
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return grabbed, out.hidden_states


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def test_counter_update_matches_numpy():
    rng = np.random.default_rng(0)
    B, T, N, L, G = 5, 7, 11, 2, 3
    counter = ActivationCounter(n_layers=L, n_groups=G)
    expect = np.zeros((G, L, N), dtype=np.int64)
    tokens = np.zeros(G, dtype=np.int64)
    for step in range(4):
        mask = (rng.uniform(size=(B, T)) > 0.3).astype(np.int64)
        groups = rng.integers(0, G, B)
        for layer in range(L):
            act = rng.normal(size=(B, T, N)).astype(np.float32)
            flat = step % 2 == 1  # OPT-style [batch*positions, neurons] outputs
            a = torch.from_numpy(act.reshape(B * T, N) if flat else act)
            counter.update(layer, a, torch.from_numpy(mask), torch.from_numpy(groups))
            for b in range(B):
                expect[groups[b], layer] += ((act[b] > 0) & (mask[b, :, None] == 1)).sum(0)
        counter.add_tokens(torch.from_numpy(mask), torch.from_numpy(groups))
        np.add.at(tokens, groups, mask.sum(1))
    oz, nt = counter.group_counts()
    np.testing.assert_array_equal(oz, expect)
    np.testing.assert_array_equal(nt, tokens)
    probs = counter.probabilities([0, 1, 0], 2)
    np.testing.assert_allclose(probs[0], (expect[0] + expect[2]) / (tokens[0] + tokens[2]), rtol=1e-6)
    np.testing.assert_allclose(probs[1], expect[1] / tokens[1], rtol=1e-6)
    assert probs.dtype == np.float32


def test_integer_fallback_path_equals_matmul_path():
    import dataclasses

    rng = np.random.default_rng(3)
    act = torch.from_numpy(rng.normal(size=(4, 6, 9)).astype(np.float32))
    mask = torch.from_numpy((rng.uniform(size=(4, 6)) > 0.4).astype(np.int64))
    fast, exact = ActivationCounter(n_layers=1, n_groups=3), ActivationCounter(n_layers=1, n_groups=3)
    plan = fast.prepare(mask, [2, 0, 2, 1])
    assert plan.weights is not None and plan.single is None
    fast.update_prepared(0, act, plan)
    exact.update_prepared(0, act, dataclasses.replace(plan, weights=None))
    np.testing.assert_array_equal(fast.over_zero.numpy(), exact.over_zero.numpy())
    assert fast.over_zero.sum() > 0


def test_gpt2_matches_manual_act_c_fc_ln2(ragged_fn, tiny):
    model = tiny("gpt2", 0)
    groups = [ragged_fn(1, n=5), ragged_fn(2, n=4)]
    counter = count_with_counter(model, groups, side="right")
    blocks = model.transformer.h
    expect = np.zeros_like(counter.group_counts()[0])
    for g, seqs in enumerate(groups):
        for s in seqs:
            ids = torch.as_tensor(s)[None]
            mids, _ = capture_inputs(model, [b.ln_2 for b in blocks], ids)  # residual after attention
            for layer, (block, r) in enumerate(zip(blocks, mids)):
                with torch.no_grad():
                    pre = F.linear(F.layer_norm(r, (r.shape[-1],), block.ln_2.weight, block.ln_2.bias,
                                                block.ln_2.eps), block.mlp.c_fc.weight.T, block.mlp.c_fc.bias)
                expect[g, layer] += (gelu_new(pre)[0] > 0).sum(0).numpy()
    np.testing.assert_array_equal(counter.group_counts()[0], expect)
    assert counter.group_counts()[1].tolist() == [sum(len(s) for s in seqs) for seqs in groups]


def test_gpt_neox_matches_manual_from_hidden_states(ragged_fn, tiny):
    model = tiny("gpt_neox", 0)
    assert model.config.use_parallel_residual  # MLP input = post_attention_layernorm(block input)
    groups = [ragged_fn(3, n=4), ragged_fn(4, n=5)]
    counter = count_with_counter(model, groups, side="left")
    layers = model.gpt_neox.layers
    expect = np.zeros_like(counter.group_counts()[0])
    for g, seqs in enumerate(groups):
        for s in seqs:
            with torch.no_grad():
                hs = model(input_ids=torch.as_tensor(s)[None], output_hidden_states=True).hidden_states
                for layer, block in enumerate(layers):
                    ln = block.post_attention_layernorm
                    x = F.layer_norm(hs[layer], (hs[layer].shape[-1],), ln.weight, ln.bias, ln.eps)
                    pre = F.linear(x, block.mlp.dense_h_to_4h.weight, block.mlp.dense_h_to_4h.bias)
                    expect[g, layer] += (pre[0] > 0).sum(0).numpy()
    np.testing.assert_array_equal(counter.group_counts()[0], expect)


def test_llama_counts_gate_not_gate_times_up(ragged_fn, tiny):
    model = tiny("llama", 0)
    groups = [ragged_fn(5, n=4), ragged_fn(6, n=3)]
    counter = count_with_counter(model, groups, side="right")
    layers = model.model.layers
    expect = np.zeros_like(counter.group_counts()[0])
    wrong = np.zeros_like(expect)
    for g, seqs in enumerate(groups):
        for s in seqs:
            mids, _ = capture_inputs(model, [b.post_attention_layernorm for b in layers], torch.as_tensor(s)[None])
            for layer, (block, r) in enumerate(zip(layers, mids)):
                norm = block.post_attention_layernorm
                with torch.no_grad():
                    var = r.pow(2).mean(-1, keepdim=True)
                    x = norm.weight * (r * torch.rsqrt(var + norm.variance_epsilon))
                    gate = F.linear(x, block.mlp.gate_proj.weight)
                    up = F.linear(x, block.mlp.up_proj.weight)
                expect[g, layer] += (gate[0] > 0).sum(0).numpy()
                wrong[g, layer] += ((F.silu(gate) * up)[0] > 0).sum(0).numpy()
    np.testing.assert_array_equal(counter.group_counts()[0], expect)
    assert not np.array_equal(expect, wrong)  # TransformerLens-style act(gate)*up is a different tensor


def _preactivation_module(model_type, block):
    """The linear whose output's sign equals the neuron's sign (independent of the activation module)."""
    for path in ("mlp.gate_proj", "mlp.c_fc", "mlp.dense_h_to_4h", "fc1", "mlp.gate_up_proj"):
        try:
            return path, block.get_submodule(path)
        except AttributeError:
            continue
    raise AssertionError(f"no pre-activation linear known for {model_type}")


_DEFAULT_ARCHS = {"gpt2", "gpt_neox", "llama", "opt", "phi3"}  # the rest: -m slow


@pytest.mark.parametrize("model_type", [m if m in _DEFAULT_ARCHS else pytest.param(m, marks=pytest.mark.slow)
                                        for m in sorted(TINY_CONFIGS)])
def test_every_adapter_padded_matches_unpadded_preactivation(model_type, make_streams_fn, tiny):
    model = tiny(model_type, 0)
    adapter = get_adapter(model)
    streams = make_streams_fn(seed=7, n_tokens=60)
    inputs = LapeInputs.from_token_arrays(streams, seq_len=11)  # 6 sequences per language, last ones shorter
    inputs = LapeInputs({k: tuple(s[: 3 + i] for i, s in enumerate(v)) for k, v in inputs.sequences.items()})
    got = {}
    for side in ("left", "right"):
        probe = LapeProbe(inputs, batch_size=4, n_groups=2, padding_side=side, null_permutations=0,
                          split_half=False)
        probe.run(model, adapter=adapter)
        got[side], got_tokens = probe.counter.group_counts()
    # oracle: every sequence alone (no padding), sign of the pre-activation linear's output
    expect = np.zeros_like(got_tokens, shape=got['left'].shape)
    grab = {}
    hooks = []
    for layer, block in enumerate(adapter.blocks):
        path, mod = _preactivation_module(model_type, block)
        hooks.append(mod.register_forward_hook(lambda _m, _i, out, layer=layer: grab.__setitem__(layer, out.detach())))
    gl, seq_groups = inputs.group_layout(2)
    try:
        for lang, seqs in inputs.sequences.items():
            for s, g in zip(seqs, seq_groups[lang]):
                with torch.no_grad():
                    model(input_ids=torch.as_tensor(s)[None])
                for layer, out in grab.items():
                    out = out.reshape(-1, out.shape[-1])
                    if path == "mlp.gate_up_proj":
                        out = out[:, : out.shape[-1] // 2]
                    expect[g, layer] += (out > 0).sum(0).numpy()
    finally:
        for h in hooks:
            h.remove()
    np.testing.assert_array_equal(got["left"], expect)
    np.testing.assert_array_equal(got["right"], expect)
    assert got_tokens.sum() == sum(inputs.n_tokens().values())


def test_padding_sides_and_batch_sizes_give_identical_rows(make_streams_fn, tiny):
    model = tiny("llama", 0)
    inputs = LapeInputs.from_token_arrays(make_streams_fn(seed=8, n_tokens=150), seq_len=37)  # 5 seqs, last short
    tables = []
    for side, bs in [("left", 3), ("right", 4), ("right", 2)]:
        probe = LapeProbe(inputs, batch_size=bs, padding_side=side, n_groups=4, null_permutations=2)
        tables.append(probe.run(model))
        counts = probe.counter.group_counts()[0]
        if side == "left":
            first = counts
        np.testing.assert_array_equal(counts, first)
    frames = [pd.DataFrame(t) for t in tables]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])


def test_memory_independent_of_token_count(make_streams_fn, tiny):
    model = tiny("gpt2", 0)
    sizes = []
    for n_tokens in (200, 2000):
        probe = LapeProbe(LapeInputs.from_token_arrays(make_streams_fn(n_tokens=n_tokens), seq_len=50),
                          n_groups=4, null_permutations=0, split_half=False)
        probe.run(model)
        sizes.append((probe.counter.over_zero.numel(), probe.counter.over_zero.shape))
        assert int(probe.counter.n_tokens.sum()) == 2 * n_tokens
    L, N = 3, 4 * 32
    assert sizes[0] == sizes[1] == (8 * L * N, (8, L, N))


def test_merge_of_shards_equals_whole(ragged_fn, tiny):
    model = tiny("gpt_neox", 0)
    seqs = [ragged_fn(9, n=6), ragged_fn(10, n=6)]
    whole = count_with_counter(model, seqs)
    a = count_with_counter(model, [seqs[0][:3], seqs[1][:2]])
    b = count_with_counter(model, [seqs[0][3:], seqs[1][2:]])
    a.merge(b)
    for x, y in zip(a.group_counts(), whole.group_counts()):
        np.testing.assert_array_equal(x, y)


def test_probes_with_equal_input_key_share_forward_passes(make_streams_fn, tiny):
    from lensprobe.engine.hooks import run_probes

    model = tiny("gpt2", 0)
    inputs = LapeInputs.from_token_arrays(make_streams_fn(n_tokens=120), seq_len=20)
    p1 = LapeProbe(inputs, batch_size=4, null_seed=0, null_permutations=1)
    p2 = LapeProbe(inputs, batch_size=4, null_seed=1, null_permutations=1)
    assert p1.input_key() == p2.input_key()
    calls = []
    h = model.transformer.h[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        run_probes(model, [p1, p2])
    finally:
        h.remove()
    assert len(calls) == len(list(p1.batches(None))) == 4
    np.testing.assert_array_equal(p1.counter.group_counts()[0], p2.counter.group_counts()[0])
    np.testing.assert_array_equal(p1.result.mask, p2.result.mask)


def test_errors_name_the_problem():
    counter = ActivationCounter(n_layers=2, n_groups=2)
    with pytest.raises(ValueError, match="group ids"):
        counter.update(0, torch.ones(2, 3, 4), torch.ones(2, 3), [0, 5])
    with pytest.raises(ValueError, match="layer index"):
        counter.update(2, torch.ones(2, 3, 4))
    counter.update(0, torch.ones(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="neurons"):
        counter.update(1, torch.ones(2, 3, 5), torch.ones(2, 3))
    with pytest.raises(ValueError, match="no tokens"):
        aggregate_probabilities(np.zeros((2, 1, 3)), np.array([5, 0]), [0, 1], 2, names=["python", "php"])
