"""One resident model, weights swapped in place: every checkpoint must equal a fresh load."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from lensprobe.checkpoints import (ArchitectureMismatchError, CheckpointSeries, CheckpointWarning,
                                   StateDictMismatchError, weight_hash)
from lensprobe.testing import tiny_model

IDS = torch.tensor([[1, 5, 9, 33, 70, 2, 14, 100], [1, 64, 3, 3, 8, 99, 41, 7]])


def fresh_logits(path, dtype=torch.float32):
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, attn_implementation="eager").eval()
    with torch.no_grad():
        return model(IDS).logits


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def _embeddings(model):
    return model.get_input_embeddings().weight, model.get_output_embeddings().weight


@pytest.mark.parametrize("model_type, tied", [("gpt2", True), ("llama", False)])
def test_in_place_swap_equals_fresh_load_for_every_checkpoint(tmp_path, tools, model_type, tied):
    steps = [1, 2, 3, 4]
    run = tools.build_run(tmp_path / "run", model_type, steps)
    if tied:  # tied checkpoints carry no lm_head.weight: the swap must re-use the embedding
        assert "lm_head.weight" not in load_file(str(run / "checkpoint-2" / "model.safetensors"))
    series = CheckpointSeries(run)
    seen, model_ids = [], set()
    previous = None
    for ckpt, model in series.iter_models(check_lens="every"):
        model_ids.add(id(model))
        got = logits(model)
        want = fresh_logits(ckpt.path)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        emb, out = _embeddings(model)
        if tied:
            assert out is emb and out.data_ptr() == emb.data_ptr()
            file = load_file(str(ckpt.path / "model.safetensors"))
            assert torch.equal(out, file["transformer.wte.weight"])
        else:
            assert out.data_ptr() != emb.data_ptr()
        if previous is not None:
            assert not torch.allclose(got, previous)  # the weights really changed
        previous = got
        seen.append(ckpt.step)
    assert seen == steps
    assert len(model_ids) == 1  # one resident model


def test_prefetch_on_and_off_give_identical_results(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "llama", [10, 20, 30])
    series = CheckpointSeries(run)
    with_prefetch = [(c.name, logits(m)) for c, m in series.iter_models(prefetch=True, check_lens=False)]
    without = [(c.name, logits(m)) for c, m in series.iter_models(prefetch=False, check_lens=False)]
    assert [n for n, _ in with_prefetch] == [n for n, _ in without] == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    for (_, a), (_, b) in zip(with_prefetch, without):
        assert torch.equal(a, b)


def test_breaking_out_early_and_bfloat16(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "llama", [1, 2, 3])
    series = CheckpointSeries(run)
    it = series.iter_models(dtype="bfloat16", check_lens=False)
    for ckpt, model in it:
        assert next(model.parameters()).dtype == torch.bfloat16
        if ckpt.step == 2:
            torch.testing.assert_close(logits(model), fresh_logits(ckpt.path, torch.bfloat16), rtol=0, atol=0)
            break
    it.close()  # the prefetch thread is shut down


def test_architecture_change_errors_or_rebuilds(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "llama", [1, 2, 3])
    cfg_path = run / "checkpoint-2" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["rms_norm_eps"] = 1e-2  # same shapes, different network
    cfg_path.write_text(json.dumps(cfg))
    series = CheckpointSeries(run)
    with pytest.raises(ArchitectureMismatchError, match=r"checkpoint-2.*rms_norm_eps"):
        for _ in series.iter_models(check_lens=False):
            pass
    with pytest.warns(CheckpointWarning, match="architecture changed"):
        results = [(c, logits(m)) for c, m in series.iter_models(on_arch_change="rebuild", check_lens=False)]
    for ckpt, got in results:
        torch.testing.assert_close(got, fresh_logits(ckpt.path), rtol=0, atol=1e-6)


def _resave(path, edit):
    f = path / "model.safetensors"
    state = load_file(str(f))
    edit(state)
    save_file(state, str(f), metadata={"format": "pt"})


def test_tensors_that_do_not_fit_raise_a_clear_error(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "llama", [1, 2, 3])
    _resave(run / "checkpoint-2", lambda s: s.pop("model.layers.1.mlp.up_proj.weight"))
    _resave(run / "checkpoint-3", lambda s: s.update({"model.extra.weight": torch.zeros(2)}))
    series = CheckpointSeries(run)
    with pytest.raises(StateDictMismatchError, match=r"checkpoint-2.*missing 1 key\(s\), e.g. "
                                                     r"\['model.layers.1.mlp.up_proj.weight'\]"):
        list(series.iter_models(check_lens=False))
    with pytest.raises(StateDictMismatchError, match=r"checkpoint-3.*unexpected 1 key\(s\).*model.extra.weight"):
        list(series.select(steps=[1, 3]).iter_models(check_lens=False))


def test_base_model_keys_and_ignorable_buffers_are_accepted(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2])
    # like the hub's gpt2: saved from the base model (no "transformer." prefix), with causal-mask buffers
    def strip(state):
        for k in list(state):
            state[k.removeprefix("transformer.")] = state.pop(k)
        state["h.0.attn.bias"] = torch.ones(1, 1, 4, 4)
    _resave(run / "checkpoint-2", strip)
    llama = tools.build_run(tmp_path / "llama", "llama", [1, 2])
    _resave(llama / "checkpoint-2", lambda s: s.update({"model.rotary_emb.inv_freq": torch.ones(4)}))
    for r in (run, llama):
        for ckpt, model in CheckpointSeries(r).iter_models(check_lens=False):
            if ckpt.step == 2:
                torch.testing.assert_close(logits(model), fresh_logits(ckpt.path), rtol=0, atol=1e-6)


def test_lazy_hash_during_iteration_flags_and_skips_duplicates(tmp_path, tools):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2, 3])
    tools.copy_checkpoint(run / "checkpoint-2", run / "checkpoint-4")
    series = CheckpointSeries(run, hash_weights=False)
    with pytest.warns(CheckpointWarning, match="checkpoint-4 has the same weights as checkpoint-2"):
        names = [c.name for c, _ in series.iter_models(check_lens=False)]
    assert names == ["checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-4"]
    for c in series:
        assert c.weight_hash == weight_hash(c.weight_files)
    assert series[3].status == "duplicate" and series[3].duplicate_of == "checkpoint-2"
    names = [c.name for c, _ in series.iter_models(check_lens=False, skip_duplicates=True)]
    assert names == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]


def test_hooks_registered_once_see_every_checkpoint(tmp_path, tools):
    """The engine registers hooks once: modules and parameters must stay the same objects."""
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2, 3])
    series = CheckpointSeries(run)

    def block_out(store):
        return lambda _m, _i, out: store.append(out[0] if isinstance(out, tuple) else out)

    for prefetch in (True, False):
        captured, handle = [], None
        for ckpt, model in series.iter_models(check_lens=False, prefetch=prefetch):
            if handle is None:  # registered on the first checkpoint only
                handle = model.transformer.h[-1].register_forward_hook(block_out(captured))
            logits(model)
            fresh = AutoModelForCausalLM.from_pretrained(str(ckpt.path), attn_implementation="eager").eval()
            raw = []
            fresh.transformer.h[-1].register_forward_hook(block_out(raw))
            with torch.no_grad():
                fresh(IDS)
            torch.testing.assert_close(captured[-1], raw[-1], rtol=0, atol=1e-6)
        handle.remove()
        assert len(captured) == 3


@pytest.mark.parametrize("share", [False, True])
def test_load_state_dict_in_place_copy_and_share_keep_ties(share):
    from lensprobe.checkpoints import load_state_dict_in_place

    target = tiny_model("gpt2", seed=0, vocab_size=101)
    source = tiny_model("gpt2", seed=5, vocab_size=101)
    state = {k: v.clone() for k, v in source.state_dict().items() if k != "lm_head.weight"}
    params_before = {n: id(p) for n, p in target.named_parameters()}
    load_state_dict_in_place(target, state, share=share)
    assert {n: id(p) for n, p in target.named_parameters()} == params_before
    assert target.lm_head.weight is target.transformer.wte.weight
    assert torch.equal(target.lm_head.weight, source.transformer.wte.weight)
    assert (target.transformer.wte.weight.data_ptr() == state["transformer.wte.weight"].data_ptr()) == share
    torch.testing.assert_close(logits(target), logits(source), rtol=0, atol=0)
    # a checkpoint that stores a DIFFERENT lm_head for a tied model is refused
    state["lm_head.weight"] = state["transformer.wte.weight"] + 1
    with pytest.raises(StateDictMismatchError, match="tied in the model but differ"):
        load_state_dict_in_place(target, state)
