"""Fixtures shared by several test folders (probes, sweep): a BPE tokenizer trained on the embedded corpus,
so identifiers tokenize meaningfully, and a JSONL of its source documents."""
from __future__ import annotations

import json

import pytest

from pretrain.corpora import open_corpus
from pretrain.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def bpe(tmp_path_factory):
    """A 600-token BPE tokenizer trained on the embedded corpus's Python and PHP."""
    return train_tokenizer(open_corpus("embedded"), languages=["python", "php"], vocab_size=600,
                           sample_bytes_per_language=60_000, out_dir=tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def docs_jsonl(tmp_path_factory):
    """Four embedded-corpus documents per language (Python, PHP), one JSON object per line."""
    corpus = open_corpus("embedded")
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with path.open("w") as fh:
        for lang in ("python", "php"):
            for i in range(4):
                fh.write(json.dumps({"language": lang, "text": corpus.document(lang, i).text}) + "\n")
    return path
