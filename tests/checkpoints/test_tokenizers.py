"""Tokenizer identity across a series."""
from __future__ import annotations

import hashlib
import json

import pytest

from lensprobe.checkpoints import (CheckpointError, CheckpointSeries, CheckpointWarning, TokenizerMismatchError,
                                   load_tokenizer_from, tokenizer_hash)


def test_same_tokenizer_passes_and_a_different_one_is_named(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2, 3], tokenizer=tokenizer)
    assert CheckpointSeries(run).check_tokenizers() is True
    other = tools.make_tokenizer(variant=1)
    other.save_pretrained(run / "checkpoint-3")
    series = CheckpointSeries(run)
    with pytest.raises(TokenizerMismatchError, match=r"tokenizer files differ.*checkpoint-1, checkpoint-2 \| "
                                                     r"[0-9a-f]+: checkpoint-3"):
        series.check_tokenizers()
    with pytest.warns(CheckpointWarning, match="tokenizer differs"):
        assert series.check_tokenizers(warn_only=True) is False
    with pytest.raises(TokenizerMismatchError):  # iteration refuses a mixed series by default
        next(series.iter_models())
    assert len(list(series.iter_models(check_tokenizers=False, check_lens=False))) == 3


def test_volatile_keys_and_formatting_do_not_change_the_hash(tmp_path, tokenizer):
    a, b = tmp_path / "a", tmp_path / "b"
    tokenizer.save_pretrained(a)
    tokenizer.save_pretrained(b)
    cfg = json.loads((b / "tokenizer_config.json").read_text())
    cfg.update(name_or_path="/somewhere/else", transformers_version="4.0", tokenizer_class="PreTrainedTokenizerFast")
    (b / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok = json.loads((b / "tokenizer.json").read_text())
    (b / "tokenizer.json").write_text(json.dumps(tok, indent=7))
    assert tokenizer_hash(a) == tokenizer_hash(b)
    cfg["eos_token"] = "<pad>"  # a real change
    (b / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert tokenizer_hash(a) != tokenizer_hash(b)


def test_checkpoints_without_tokenizer_inherit_the_runs(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2], tokenizer=tokenizer)
    for f in (run / "checkpoint-2").glob("tokenizer*"):
        f.unlink()
    tokenizer.save_pretrained(run)  # the run-level tokenizer
    series = CheckpointSeries(run)
    first, second = series
    assert not first.tokenizer_inherited and second.tokenizer_inherited
    assert second.tokenizer_path == run and second.tokenizer_hash == first.tokenizer_hash
    assert series.check_tokenizers()
    tok = series.load_tokenizer()
    assert tok("w1 w2").input_ids == tokenizer("w1 w2").input_ids


def test_recorded_tokenizer_hash_in_metadata_is_compared(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2], tokenizer=tokenizer)
    meta = json.loads((run / "checkpoint-2" / "checkpoint.json").read_text())
    meta["tokenizer_hash"] = "tok-v2"
    (run / "checkpoint-2" / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(TokenizerMismatchError, match="checkpoint.json tokenizer_hash differ.*tok-v2: checkpoint-2"):
        CheckpointSeries(run).check_tokenizers()


def test_series_tokenizer_resolves_override_checkpoint_and_run_level(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2], tokenizer=tokenizer)
    series = CheckpointSeries(run)
    ids = tokenizer("w1 w2 w3").input_ids
    assert series.tokenizer()("w1 w2 w3").input_ids == ids  # from checkpoint-1's files
    other = tools.make_tokenizer(variant=1)
    assert series.tokenizer(other) is other  # an object override wins, returned as is
    other.save_pretrained(tmp_path / "other")
    by_dir = series.tokenizer(tmp_path / "other")  # a directory override wins over the checkpoints'
    assert by_dir("w1001").input_ids == other("w1001").input_ids != tokenizer("w1001").input_ids
    by_file = series.tokenizer(str(tmp_path / "other" / "tokenizer.json"))  # a tokenizer.json file
    assert by_file("w1001 w1002").input_ids == other("w1001 w1002").input_ids
    with pytest.raises(CheckpointError, match="does-not-exist.*does not exist"):
        series.tokenizer(tmp_path / "does-not-exist")


def test_series_tokenizer_without_files_names_where_it_looked(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1, 2], tokenizer=tokenizer)
    for ckpt in ("checkpoint-1", "checkpoint-2"):
        for f in (run / ckpt).glob("tokenizer*"):
            f.unlink()
        (run / ckpt / "special_tokens_map.json").unlink(missing_ok=True)
    series = CheckpointSeries(run)
    with pytest.raises(CheckpointError, match=r"series run: no tokenizer files .* in .*run.*checkpoint-1"):
        series.tokenizer()
    assert series.tokenizer(required=False) is None
    assert series.tokenizer(tokenizer, required=False) is tokenizer
    with pytest.raises(ValueError, match="required must be a bool"):
        series.tokenizer(required="no")


def test_series_tokenizer_reports_unloadable_files_with_the_directory(tmp_path, tools, tokenizer):
    run = tools.build_run(tmp_path / "run", "gpt2", [1], tokenizer=tokenizer)
    series = CheckpointSeries(run)
    (run / "checkpoint-1" / "tokenizer.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match=r"checkpoint-1: cannot load the tokenizer"):
        series.tokenizer(required=False)


def _bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["def f(x): return len(x)\n" * 40, "function g($x) { return strlen($x); }\n" * 40],
                                trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|endoftext|>")


def _write_legacy_copy(src, dst):
    """``src`` rewritten as older tokenizers/transformers releases save the same tokenizer: merges as
    "a b" strings, no ``ignore_merges`` field, a tokenizer_config.json with the 4.x keys and a
    special_tokens_map.json."""
    dst.mkdir()
    tok = json.loads((src / "tokenizer.json").read_text())
    tok["model"]["merges"] = [" ".join(pair) for pair in tok["model"]["merges"]]
    assert tok["model"].pop("ignore_merges") is False
    (dst / "tokenizer.json").write_text(json.dumps(tok, indent=2))
    eos = "<|endoftext|>"
    (dst / "tokenizer_config.json").write_text(json.dumps({
        "added_tokens_decoder": {"0": {"content": eos, "lstrip": False, "normalized": False, "rstrip": False,
                                       "single_word": False, "special": True}},
        "bos_token": eos, "clean_up_tokenization_spaces": False, "eos_token": eos, "extra_special_tokens": {},
        "model_max_length": 1000000000000000019884624838656, "pad_token": eos,
        "tokenizer_class": "PreTrainedTokenizerFast", "transformers_version": "4.46.0"}))
    (dst / "special_tokens_map.json").write_text(json.dumps({"bos_token": eos, "eos_token": eos, "pad_token": eos}))


def test_identity_is_the_tokenizer_not_its_files(tmp_path):
    """The same tokenizer hashes equal as an object, saved by save_pretrained, and saved the way older
    library versions write it (different files: the identity is computed from the loaded tokenizer)."""
    tok = _bpe_tokenizer()
    tok.save_pretrained(tmp_path / "new")
    _write_legacy_copy(tmp_path / "new", tmp_path / "old")
    assert (tmp_path / "new" / "tokenizer.json").read_bytes() != (tmp_path / "old" / "tokenizer.json").read_bytes()
    ident = tokenizer_hash(tok)
    assert len(ident) == 64 and int(ident, 16) >= 0
    assert tokenizer_hash(tmp_path / "new") == ident == tokenizer_hash(tmp_path / "old")
    legacy = load_tokenizer_from(tmp_path / "old")
    text = "def f(x): return len(x)\n"
    assert legacy(text).input_ids == tok(text).input_ids  # what the identity claims: the same ids
    # independent computation of the definition: SHA-256 of the canonical JSON and the special tokens
    payload = {"tokenizer": json.loads(tok.backend_tokenizer.to_str()),
               "special": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                           "pad_token": "<|endoftext|>", "unk_token": None}}
    assert ident == hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    tok.add_special_tokens({"unk_token": "<|endoftext|>"})  # a real change
    assert tokenizer_hash(tok) != ident


def test_identity_errors_and_the_files_fallback(tmp_path, tokenizer):
    with pytest.raises(CheckpointError, match="no tokenizer files"):
        tokenizer_hash(tmp_path)
    with pytest.raises(TypeError, match="fast tokenizer"):
        tokenizer_hash(object())
    tokenizer.save_pretrained(tmp_path / "bad")
    (tmp_path / "bad" / "tokenizer.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match=r"bad: cannot load the tokenizer"):
        tokenizer_hash(tmp_path / "bad")
    slow = tmp_path / "slow"  # only a file no converter here can read: identified by its bytes
    slow.mkdir()
    (slow / "spiece.model").write_bytes(b"not a sentencepiece model")
    first = tokenizer_hash(slow)
    assert first.startswith("files:") and len(first) == len("files:") + 32
    (slow / "spiece.model").write_bytes(b"another model")
    assert tokenizer_hash(slow) != first
