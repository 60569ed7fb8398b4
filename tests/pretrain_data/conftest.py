"""Shared fixtures of the pretrain data tests: a small tokenizer trained once per session."""
from __future__ import annotations

import pytest

from lensprobe.languages import LANGUAGES
from pretrain.corpora import open_corpus
from pretrain.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(open_corpus("embedded"), languages=LANGUAGES, vocab_size=2048,
                    sample_bytes_per_language=60_000, seed=0, out_dir=out)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from pretrain.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer_dir)
