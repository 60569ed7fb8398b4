"""Architecture adapters: decode path, neuron modules, registry errors, model loading."""
from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lensprobe.engine.adapters import (ArchitectureAdapter, BoundAdapter, CheckpointLoadError, LensCheckError,
                                UnknownArchitectureError, UnsafeCheckpointError, get_adapter, load_model,
                                register_adapter, verify_lens)
from lensprobe.engine.adapters.registry import _REGISTRY
from lensprobe.engine.hooks import attach_hooks, neuron_hook_points
from lensprobe.testing import TINY_CONFIGS, tiny_model, tiny_tokenizer

ALL_TYPES = sorted(TINY_CONFIGS)


def random_ids(batch: int, length: int, *, vocab: int = 101, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_type", ALL_TYPES)
@pytest.mark.parametrize("tie", [True, False])
def test_lens_on_last_block_reproduces_logits(model_type, tie, model_factory):
    model = model_factory(model_type, tie=tie)
    adapter = get_adapter(model)
    assert adapter.n_layers == 3 and adapter.d_model == 32 and adapter.vocab_size == 101
    assert verify_lens(model, adapter) < 1e-5
    # independent check: decode of the hooked raw last-block output vs the model's logits
    ids = random_ids(2, 7)
    captured = []
    handle = adapter.blocks[-1].register_forward_hook(lambda m, i, o: captured.append(o if torch.is_tensor(o) else o[0]))
    with torch.no_grad():
        logits = model(ids).logits
    handle.remove()
    assert torch.allclose(adapter.decode(captured[0]), logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_hidden_states_last_is_already_normalized(model_type, model_factory):
    """The pitfall the adapters avoid: HF's hidden_states[-1] is post-final-norm."""
    model = model_factory(model_type)
    adapter = get_adapter(model)
    with torch.no_grad():
        out = model(random_ids(1, 6), output_hidden_states=True)
    wrong = adapter.decode(out.hidden_states[-1])
    assert (wrong - out.logits).abs().max() > 1e-3  # normalizing twice changes the logits
    # ... while hidden_states[-1] passed straight to the unembedding IS the logits path
    x = out.hidden_states[-1]
    for mod in adapter.pre_unembed:
        x = mod(x)
    direct = adapter.unembed(x)
    if adapter.spec.logit_transform is not None:
        direct = adapter.spec.logit_transform(model.config, direct)
    assert torch.allclose(direct, out.logits, atol=1e-5)


def _manual_neuron(model_type, block, x):
    """The MLP neuron activation computed with torch.nn.functional from the MLP input ``x``."""
    if model_type == "gpt2":
        h = block.mlp.c_fc(x)
        return F.gelu(h, approximate="tanh")
    if model_type == "gpt_neox":
        return F.gelu(block.mlp.dense_h_to_4h(x))
    if model_type == "starcoder2":
        return F.gelu(block.mlp.c_fc(x), approximate="tanh")
    if model_type == "opt":
        return F.relu(block.fc1(x))
    if model_type == "phi3":
        gate, _up = block.mlp.gate_up_proj(x).chunk(2, dim=-1)
        return F.silu(gate)
    if model_type in ("gemma", "gemma2"):
        return F.gelu(block.mlp.gate_proj(x), approximate="tanh")
    return F.silu(block.mlp.gate_proj(x))  # llama, mistral, qwen2, qwen3


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_neuron_module_is_activated_gate_not_product(model_type, model_factory):
    model = model_factory(model_type)
    adapter = get_adapter(model)
    ids = random_ids(2, 5)
    got: dict[str, torch.Tensor] = {}
    mlp_in: list[torch.Tensor] = []
    # the MLP input: for OPT the input of fc1, otherwise the input of the mlp module
    target = adapter.blocks[1].fc1 if model_type == "opt" else adapter.blocks[1].mlp
    handle = target.register_forward_pre_hook(lambda m, args: mlp_in.append(args[0]))
    with attach_hooks(neuron_hook_points(adapter, [2]), lambda n, t: got.__setitem__(n, t.clone()),
                      batch_shape=tuple(ids.shape)):
        with torch.no_grad():
            model(ids)
    handle.remove()
    act = got["neuron.2"]
    expected = _manual_neuron(model_type, adapter.blocks[1], mlp_in[0]).reshape(act.shape)
    assert act.shape[:2] == ids.shape  # OPT's flattened [B*T, F] is reshaped back
    assert act.shape[-1] == (64 if model_type != "gpt2" else 128)
    assert torch.allclose(act, expected, atol=1e-6)
    if hasattr(getattr(adapter.blocks[1], "mlp", None), "up_proj"):  # gated: must not be act(gate) * up
        product = expected * adapter.blocks[1].mlp.up_proj(mlp_in[0])
        assert not torch.allclose(act, product, atol=1e-3)


def test_gemma2_softcap_is_part_of_decode():
    model = tiny_model("gemma2", final_logit_softcapping=0.5)
    adapter = get_adapter(model)
    assert verify_lens(model, adapter) < 1e-5
    bad = BoundAdapter(model, dataclasses.replace(adapter.spec, logit_transform=None))
    with pytest.raises(LensCheckError, match="gemma2"):
        verify_lens(model, bad)


@pytest.mark.parametrize("kwargs", [dict(word_embed_proj_dim=16), dict(word_embed_proj_dim=16, do_layer_norm_before=False)])
def test_opt_project_out_and_missing_final_norm(kwargs):
    model = tiny_model("opt", **kwargs)
    adapter = get_adapter(model)
    assert len(adapter.pre_unembed) == 1  # project_out
    assert isinstance(adapter.final_norm, torch.nn.Identity) == (not model.config.do_layer_norm_before)
    assert verify_lens(model, adapter) < 1e-5
    without = BoundAdapter(model, dataclasses.replace(adapter.spec, pre_unembed=()))
    with pytest.raises(LensCheckError, match="failed"):  # d=32 states cannot reach a 16-wide unembedding
        verify_lens(model, without)


def test_wrong_final_norm_is_caught():
    model = tiny_model("llama")
    bad = BoundAdapter(model, dataclasses.replace(get_adapter(model).spec, final_norm=""))
    with pytest.raises(LensCheckError, match="differs from the model's logits"):
        verify_lens(model, bad)


def test_unknown_model_type_explains_registration():
    model = tiny_model("llama")
    model.config.model_type = "mystery_lm"
    with pytest.raises(UnknownArchitectureError) as info:
        get_adapter(model)
    msg = str(info.value)
    assert "mystery_lm" in msg and "register_adapter" in msg and "ArchitectureAdapter" in msg
    assert "blocks='model.layers'" in msg and "final_norm='model.norm'" in msg and "unembed='lm_head'" in msg
    with pytest.raises(UnknownArchitectureError, match="register_adapter"):
        get_adapter("mystery_lm")


def test_register_custom_adapter():
    model = tiny_model("llama")
    model.config.model_type = "mystery_lm2"
    spec = dataclasses.replace(_REGISTRY["llama"], model_type="mystery_lm2")
    try:
        register_adapter(spec)
        with pytest.raises(ValueError, match="already registered"):
            register_adapter(spec)
        register_adapter(spec, overwrite=True)
        adapter = get_adapter(model)
        assert adapter.spec is spec and verify_lens(model) < 1e-5
    finally:
        _REGISTRY.pop("mystery_lm2", None)


def test_bad_adapter_paths_fail_fast():
    model = tiny_model("gpt2")
    with pytest.raises(ValueError, match="transformer.blocks"):
        BoundAdapter(model, dataclasses.replace(_REGISTRY["gpt2"], blocks="transformer.blocks"))
    with pytest.raises(ValueError, match="non-empty"):
        ArchitectureAdapter("x", blocks="", final_norm="n", unembed="u", embed="e", neuron="")
    empty = BoundAdapter(model, dataclasses.replace(_REGISTRY["gpt2"], neuron=""))
    with pytest.raises(ValueError, match="neuron"):
        empty.neuron_modules


# ---------------------------------------------------------------------------- loading


def _save(model, path, *, tokenizer=True):
    model.save_pretrained(path)
    if tokenizer:
        tiny_tokenizer(model.config.vocab_size).save_pretrained(path)
    return path


@pytest.mark.parametrize("model_type,tie", [("gpt2", True), ("llama", False), ("qwen2", True), ("opt", True)])
def test_load_model_roundtrip(tmp_path, model_type, tie):
    model = tiny_model(model_type, tie_word_embeddings=tie)
    path = _save(model, tmp_path / "ckpt")
    from safetensors import safe_open
    with safe_open(str(path / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert ("lm_head.weight" in keys) == (not tie)  # tied checkpoints store no lm_head.weight
    loaded = load_model(path)
    assert loaded.tokenizer is not None and loaded.tokenizer.convert_tokens_to_ids("<t7>") == 7
    assert not loaded.model.training and loaded.lens_check_diff is not None and loaded.lens_check_diff < 1e-5
    assert loaded.adapter.spec.model_type == model_type
    if tie:
        assert loaded.adapter.unembed.weight.data_ptr() == loaded.adapter.embed.weight.data_ptr()
    ids = random_ids(2, 6)
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, model(ids).logits)


def test_load_model_refuses_pickle_without_opt_in(tmp_path):
    model = tiny_model("gpt2")
    path = _save(model, tmp_path / "ckpt", tokenizer=False)
    state = load_file(str(path / "model.safetensors"))
    os.remove(path / "model.safetensors")
    torch.save(state, path / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin"):
        load_model(path)
    loaded = load_model(path, allow_pickle=True)
    assert loaded.tokenizer is None
    ids = random_ids(1, 5)
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, model(ids).logits)


def test_load_model_refuses_missing_weights(tmp_path):
    model = tiny_model("llama", tie_word_embeddings=False)
    path = _save(model, tmp_path / "ckpt", tokenizer=False)
    state = load_file(str(path / "model.safetensors"))
    del state["lm_head.weight"]
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointLoadError, match="lm_head.weight"):
        load_model(path)


def test_load_model_bad_directories(tmp_path):
    with pytest.raises(CheckpointLoadError, match="config.json"):
        (tmp_path / "empty").mkdir()
        load_model(tmp_path / "empty")
    with pytest.raises(CheckpointLoadError, match="does not exist"):
        load_model(tmp_path / "nope" / "deeper")
    path = _save(tiny_model("gpt2"), tmp_path / "ckpt", tokenizer=False)
    with pytest.raises(ValueError, match="revision"):
        load_model(path, revision="main")


def test_verify_lens_tolerance_scales_with_dtype():
    model = tiny_model("llama").to(torch.bfloat16)
    diff = verify_lens(model)
    assert math.isfinite(diff) and diff < 0.5


@pytest.mark.parametrize("sharded", [False, True])
def test_load_model_names_a_truncated_weights_file(tmp_path, sharded):
    """A truncated safetensors file: CheckpointLoadError naming the file's full path and saying it looks
    truncated, not a bare SafetensorError that names nothing."""
    model = tiny_model("llama")
    path = tmp_path / "ckpt"
    model.save_pretrained(path, **({"max_shard_size": "20KB"} if sharded else {}))
    tiny_tokenizer(model.config.vocab_size).save_pretrained(path)
    files = sorted(path.glob("*.safetensors"))
    assert len(files) > 1 if sharded else len(files) == 1
    victim = files[-1]
    with open(victim, "r+b") as fh:
        fh.truncate(victim.stat().st_size // 2)
    with pytest.raises(CheckpointLoadError) as err:
        load_model(path)
    msg = str(err.value)
    assert msg.startswith(str(victim.absolute())) and "truncated or corrupt" in msg and "again" in msg
    assert type(err.value.__cause__).__name__ == "SafetensorError"  # the original stays attached
