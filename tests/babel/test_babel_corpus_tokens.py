"""Babel corpora through the real pipeline: token files carry no Python-only or control names in the
target corpus, and bad recipes fail before training with the field named."""
from __future__ import annotations

import numpy as np
import pytest

from pretrain.babel import BabelCorpus, make_splits


def _contains(stream: np.ndarray, pattern: list[int]) -> bool:
    n = len(pattern)
    if n == 0 or stream.size < n:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(stream, n)
    return bool((windows == np.asarray(pattern, dtype=stream.dtype)).all(axis=1).any())


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from pretrain.tokenizer import train_tokenizer
    from pretrain.tokens import TokenStore, tokenize_corpus

    root = tmp_path_factory.mktemp("babel-tokens")
    splits = make_splits(seed=0, n_shared=10, n_python_only=10, n_target_only=10, n_control=10)
    base = BabelCorpus(splits, stage="base", target="php")
    cont = BabelCorpus(splits, stage="continual", target="php")
    tok = train_tokenizer(base, languages=["python", "php"], vocab_size=1024, sample_bytes_per_language=150_000,
                          out_dir=root / "tok")
    out = {}
    for name, corpus in (("base", base), ("continual", cont)):
        tokenize_corpus(corpus, tok, root / name, tokens_per_language={"python": 40_000, "php": 60_000},
                        validation_tokens_per_language=2_000)
        out[name] = TokenStore(root / name)
    return splits, tok, out


def _patterns(tok, name):
    return [tok(name, add_special_tokens=False)["input_ids"], tok(" " + name, add_special_tokens=False)["input_ids"]]


def test_no_python_only_or_control_name_in_the_target_token_files(stores):
    splits, tok, out = stores
    forbidden = splits.python_only + splits.control
    for stage, store in out.items():
        for split in ("train", "val"):
            php = np.asarray(store.tokens("php", split))
            assert php.size > 1000
            for c in forbidden:
                for pat in _patterns(tok, c.name):
                    assert not _contains(php, pat), (stage, split, c.name)
    # positive control: the scan finds names that are there
    php = np.asarray(out["continual"].tokens("php"))
    assert any(_contains(php, _patterns(tok, c.name)[0]) for c in splits.shared)
    py = np.asarray(out["continual"].tokens("python"))
    assert any(_contains(py, _patterns(tok, c.name)[0]) for c in splits.python_only)


def test_no_control_name_in_any_token_file(stores):
    splits, tok, out = stores
    for store in out.values():
        for lang in ("python", "php"):
            stream = np.asarray(store.tokens(lang))
            for c in splits.control:
                for pat in _patterns(tok, c.name):
                    assert not _contains(stream, pat), (lang, c.name)


@pytest.mark.parametrize("override, field", [
    ("data.corpus.splits.n_bogus=3", "n_bogus"),
    ("data.corpus.target=rust", "rust"),
    ('data.languages=["python", "go"]', "go"),
    ("data.tokens.go=1000", "data.tokens.go"),
    ("data.corpus.stage=middle", "stage"),
    ('data.corpus={"kind": "babel", "target": "php", "seed": 0}', "stage: required"),
])
def test_bad_babel_recipes_fail_before_training_naming_the_field(override, field):
    from pretrain.config import ConfigError, load_config

    with pytest.raises(ConfigError) as exc:
        load_config("babel-base", overrides=[override])
    assert field in str(exc.value)
    assert "data." in str(exc.value)
