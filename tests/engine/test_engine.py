"""Hook engine: shared forward passes, early stop, hook hygiene, activations, padding."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from lensprobe.engine.adapters import get_adapter
from lensprobe.engine.hooks import (InputOf, attach_hooks, block_hook_points, neuron_hook_points, point_layer,
                              run_probes)
from lensprobe.engine.protocol import Batch, Probe


def random_ids(batch: int, length: int, *, vocab: int = 101, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def make_batches(n: int = 3, seed: int = 0) -> list[Batch]:
    out = []
    for i in range(n):
        ids = random_ids(2, 6, seed=seed + i)
        mask = torch.ones_like(ids)
        mask[1, :2] = 0  # row 1 left-padded
        out.append(Batch(ids, mask, meta=[{"i": i, "row": 0}, {"i": i, "row": 1}]))
    return out


class RecordingProbe(Probe):
    """Keeps the last-position states of its points (clones) and counts calls."""

    def __init__(self, name: str, points: Any, *, key: str | None = "shared", logits: bool = False,
                 batches: list[Batch] | None = None, fail_at: str | None = None):
        self.name, self._points, self._key, self._logits = name, points, key, logits
        self._batches = batches if batches is not None else make_batches()
        self.fail_at = fail_at

    def input_key(self):
        return self._key

    def batches(self, tokenizer):
        return iter(self._batches)

    def hook_points(self, adapter):
        return self._points(adapter)

    def needs_logits(self):
        return self._logits

    def start(self, model, adapter):
        self.seen: dict[str, list[torch.Tensor]] = {}
        self.batch_ids: list[int] = []
        self.logits: list[torch.Tensor | None] = []
        self.started = True

    def on_activation(self, point, output, batch):
        if point == self.fail_at:
            raise RuntimeError("probe failure")
        last = batch.last_index
        self.seen.setdefault(point, []).append(output[torch.arange(len(last)), last].clone())
        self.batch_ids.append(id(batch.input_ids))

    def on_batch_end(self, batch, logits=None):
        self.logits.append(None if logits is None else logits.clone())

    def finalize(self):
        return [dict(probe=self.name, language=None, identifier=None, layer=point_layer(p), metric="calls",
                     value=float(len(v)), n=len(v)) for p, v in sorted(self.seen.items())]


class CallCounter:
    def __init__(self, *modules):
        self.calls = 0
        self.handles = [m.register_forward_hook(self._hook) for m in modules]

    def _hook(self, *_):
        self.calls += 1

    def close(self):
        for h in self.handles:
            h.remove()


def n_hooks(model: torch.nn.Module) -> int:
    """Hooks on the model (transformers installs a few of its own, lazily, for output_hidden_states)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_shared_input_key_means_one_forward_per_batch(model_factory):
    model = model_factory("gpt2")
    adapter = get_adapter(model)
    before = n_hooks(model)
    a = RecordingProbe("a", lambda ad: block_hook_points(ad, [1, 3]))
    b = RecordingProbe("b", lambda ad: block_hook_points(ad, [3]) | neuron_hook_points(ad, [2]))
    c = RecordingProbe("c", lambda ad: block_hook_points(ad, [2]), key=None)
    first = CallCounter(adapter.blocks[0])
    try:
        rows = run_probes(model, [a, b, c])
    finally:
        first.close()
    assert first.calls == 3 + 3  # 3 batches shared by a and b, 3 more for c (no key)
    assert n_hooks(model) == before
    # both probes saw block.3 (one hook on that module, called back for each) with equal tensors
    assert len(a.seen["block.3"]) == len(b.seen["block.3"]) == 3
    for x, y in zip(a.seen["block.3"], b.seen["block.3"]):
        assert torch.equal(x, y)
    # batches come from the first probe of the group; b's own batches are never used
    a_batches = {id(x.input_ids) for x in a._batches}
    assert set(a.batch_ids) == set(b.batch_ids) == a_batches
    assert not {id(x.input_ids) for x in b._batches} & set(b.batch_ids)
    assert {r["probe"] for r in rows} == {"a", "b", "c"}
    assert [r["layer"] for r in rows if r["probe"] == "a"] == [1, 3]


def test_activations_equal_independent_forward(model_factory):
    model = model_factory("llama")
    probe = RecordingProbe("a", lambda ad: block_hook_points(ad, [0, 1, 2, 3]), batches=make_batches(1))
    run_probes(model, [probe])
    batch = make_batches(1)[0]
    for row in range(2):  # row 1 is padded: its unpadded run must give the same states
        ids = batch.input_ids[row][batch.attention_mask[row].bool()].unsqueeze(0)
        with torch.no_grad():
            hs = model(ids, output_hidden_states=True).hidden_states
        for layer in range(3):  # hidden_states[0..L-1] are raw (hidden_states[L] is normalized)
            assert torch.allclose(probe.seen[f"block.{layer}"][0][row], hs[layer][0, -1], atol=1e-5)


def test_no_logits_means_no_unembedding_and_early_stop(model_factory):
    model = model_factory("gpt2")
    adapter = get_adapter(model)
    before = n_hooks(model)
    head = CallCounter(adapter.unembed, adapter.final_norm)
    last_block = CallCounter(adapter.blocks[-1])
    try:
        run_probes(model, [RecordingProbe("a", lambda ad: block_hook_points(ad, [1]))])
        assert head.calls == 0 and last_block.calls == 0  # stopped after block 1
        run_probes(model, [RecordingProbe("a", lambda ad: block_hook_points(ad, [3]))])
        assert head.calls == 0 and last_block.calls == 3
        probe = RecordingProbe("b", lambda ad: block_hook_points(ad, [1]), logits=True)
        run_probes(model, [probe])
        assert head.calls == 2 * 3  # final norm + unembedding per batch
    finally:
        head.close()
        last_block.close()
    batch = make_batches()[0]
    with torch.no_grad():
        ref = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids).logits
    assert torch.allclose(probe.logits[0], ref, atol=1e-6)
    assert n_hooks(model) == before


def test_hooks_removed_after_exception(model_factory):
    model = model_factory("qwen2")
    probe = RecordingProbe("boom", lambda ad: block_hook_points(ad) | neuron_hook_points(ad), fail_at="block.2")
    before = n_hooks(model)
    with pytest.raises(RuntimeError, match="probe failure"):
        run_probes(model, [probe])
    assert n_hooks(model) == before
    # the model still works and the engine can run again
    ok = RecordingProbe("ok", lambda ad: block_hook_points(ad, [2]))
    rows = run_probes(model, [ok])
    assert rows[0]["value"] == 3.0


def test_neuron_points_shaped_per_token_for_opt(model_factory):
    model = model_factory("opt")
    adapter = get_adapter(model)
    before = n_hooks(model)
    seen: dict[str, torch.Tensor] = {}
    ids = random_ids(2, 5)
    with attach_hooks(neuron_hook_points(adapter), lambda n, t: seen.__setitem__(n, t.clone()),
                      batch_shape=tuple(ids.shape)):
        with torch.no_grad():
            model(ids)
    assert sorted(seen) == ["neuron.1", "neuron.2", "neuron.3"]
    assert all(t.shape == (2, 5, 64) for t in seen.values())
    assert all(bool((t >= 0).all()) for t in seen.values())  # ReLU outputs
    assert n_hooks(model) == before


def test_hook_point_helpers(model_factory):
    adapter = get_adapter(model_factory("gpt2"))
    pts = block_hook_points(adapter, [0, 2])
    assert isinstance(pts["block.0"], InputOf) and pts["block.0"].module is adapter.blocks[0]
    assert pts["block.2"] is adapter.blocks[1]
    assert list(block_hook_points(adapter)) == ["block.1", "block.2", "block.3"]
    assert neuron_hook_points(adapter, [3])["neuron.3"] is adapter.blocks[2].mlp.act
    assert point_layer("neuron.12") == 12
    with pytest.raises(ValueError, match="out of range"):
        block_hook_points(adapter, [4])
    with pytest.raises(ValueError, match="out of range"):
        neuron_hook_points(adapter, [0])
    with pytest.raises(ValueError):
        point_layer("resid.1")


def test_bad_batches_are_reported(model_factory):
    model = model_factory("gpt2")
    before = n_hooks(model)
    bad = Batch(torch.tensor([[1, 2, 300]]), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch 0 of probe 'p'.*token ids"):
        run_probes(model, [RecordingProbe("p", lambda ad: block_hook_points(ad, [1]), batches=[bad])])
    mask_bad = Batch(torch.tensor([[1, 2, 3]]), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="no real token"):
        run_probes(model, [RecordingProbe("p", lambda ad: block_hook_points(ad, [1]), batches=[mask_bad])])
    with pytest.raises(TypeError, match="Probe"):
        run_probes(model, [object()])
    assert n_hooks(model) == before
