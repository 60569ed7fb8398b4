"""The byte-level BPE: identifiers whole, exact round trip, balanced sample, hash."""
from __future__ import annotations

import json

import pytest

from pretrain.corpora import Document, open_corpus
from pretrain.tokenizer import (EOS_TOKEN, balanced_sample, load_tokenizer, tokenizer_hash,
                                train_tokenizer)


@pytest.mark.parametrize("word", ["len", "count", "strlen", "sum", "array_sum", "print", "append",
                                  "push_back", "Console", "None", "nil"])
def test_identifiers_are_single_tokens(tokenizer, word):
    for context in ("{}", "x = {}(y)", "    return {}(items)\n", "$n = {}($a);", "a.{}(b)"):
        tokens = tokenizer.tokenize(context.format(word))
        assert word in tokens, (context, tokens)


def test_identifiers_are_never_merged_with_neighbours(tokenizer):
    tokens = tokenizer.tokenize("total = len(values) + array_sum($xs)")
    assert "len" in tokens and "array_sum" in tokens
    for tok in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
        if tok == EOS_TOKEN:
            continue
        text = tokenizer.convert_tokens_to_string([tok])
        # a token never mixes an identifier character with punctuation or with a space
        kinds = {("w" if ch.isalnum() or ch == "_" else "s" if ch.isspace() else "p") for ch in text}
        assert not ({"w", "p"} <= kinds or {"w", "s"} <= kinds), repr(text)


@pytest.mark.parametrize("text", [
    "def f(x):\n\treturn x  # trailing  \r\n",
    "héllo wörld — ünïcödé 😀 \u00a0 \u200b",
    "<?php\necho \"\\n\";\n",
    "",
    "   leading and trailing   ",
    "<|endoftext|> is text here",
])
def test_round_trip_is_exact(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, clean_up_tokenization_spaces=False).encode("utf-8") == text.encode("utf-8")


def test_special_token_and_files(tokenizer, tokenizer_dir):
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == EOS_TOKEN
    assert tokenizer.convert_tokens_to_ids(EOS_TOKEN) == tokenizer.eos_token_id
    assert 1800 <= len(tokenizer) <= 2048  # BPE stops early when no pair is frequent enough
    assert tokenizer("a b", add_special_tokens=True)["input_ids"] == tokenizer("a b", add_special_tokens=False)["input_ids"]
    meta = json.loads((tokenizer_dir / "lensprobe_tokenizer.json").read_text())
    assert meta["hash"] == tokenizer_hash(tokenizer) == tokenizer_hash(tokenizer_dir)
    assert meta["vocab_size"] == len(tokenizer)
    assert meta["settings"]["languages"] == ["python", "php", "csharp", "go", "cpp"]
    assert len(set(meta["sample_bytes"].values())) == 1  # balanced


class _Finite:
    languages = ("python", "go")

    def documents(self, language):
        n = 50 if language == "python" else 3
        for i in range(n):
            yield Document(f"value_{i} = compute({i})\n" * 5, language, f"s{i}")


def test_balanced_sample_caps_every_language_to_the_smallest():
    texts = balanced_sample(_Finite(), ["python", "go"], 10_000)
    sizes = {k: sum(len(t.encode()) for t in v) for k, v in texts.items()}
    go_total = sum(len(d.text.encode()) for d in _Finite().documents("go"))
    assert sizes == {"python": go_total, "go": go_total}


def test_hash_changes_with_the_vocabulary_and_reuse(tmp_path):
    corpus = open_corpus("embedded")
    a = train_tokenizer(corpus, languages=["python"], vocab_size=300, sample_bytes_per_language=20_000,
                        out_dir=tmp_path / "a")
    b = train_tokenizer(corpus, languages=["python"], vocab_size=320, sample_bytes_per_language=20_000)
    assert len(a) == 300 and len(b) == 320
    assert tokenizer_hash(a) != tokenizer_hash(b)
    assert tokenizer_hash(a) == tokenizer_hash(load_tokenizer(tmp_path / "a"))
    mtime = (tmp_path / "a" / "tokenizer.json").stat().st_mtime_ns
    again = train_tokenizer(corpus, languages=["python"], vocab_size=300, sample_bytes_per_language=20_000,
                            out_dir=tmp_path / "a")
    assert (tmp_path / "a" / "tokenizer.json").stat().st_mtime_ns == mtime  # reused, not retrained
    assert tokenizer_hash(again) == tokenizer_hash(a)
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(corpus, languages=["python"], vocab_size=100)
    with pytest.raises(ValueError, match="unknown preset"):
        train_tokenizer(corpus, languages=["python"], vocab_size=300, sample_bytes_per_language=1000,
                        pre_tokenizer="words")
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_gpt2_pre_tokenizer_option_differs():
    corpus = open_corpus("embedded")
    tok = train_tokenizer(corpus, languages=["python"], vocab_size=400, sample_bytes_per_language=20_000,
                          pre_tokenizer="gpt2")
    text = "    return len(values)\n"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert any(t.startswith("Ġ") and len(t) > 1 for t in tok.tokenize(text))  # space joined to words


def test_hash_is_the_one_identity_whoever_saved_the_tokenizer(tokenizer, tokenizer_dir, tmp_path):
    """pretrain's hash is the series' identity: the trained tokenizer re-saved by HF save_pretrained
    (AutoTokenizer, as a Hub upload would be) hashes to the value pretrain recorded."""
    from transformers import AutoTokenizer

    from lensprobe.checkpoints import tokenizer_hash as series_identity

    assert series_identity is tokenizer_hash
    recorded = json.loads((tokenizer_dir / "lensprobe_tokenizer.json").read_text())["hash"]
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(tmp_path / "hf")
    assert not (tmp_path / "hf" / "lensprobe_tokenizer.json").exists()
    assert tokenizer_hash(tmp_path / "hf") == recorded == tokenizer_hash(tokenizer)
