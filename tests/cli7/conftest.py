"""Shared fixtures: a BPE tokenizer trained on the embedded corpus (identifiers tokenize
meaningfully), a tiny run of HF checkpoints using it, and a JSONL of source documents."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent / "present"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


@pytest.fixture(scope="session")
def bpe(tmp_path_factory):
    from pretrain.corpora import open_corpus
    from pretrain.tokenizer import train_tokenizer

    return train_tokenizer(open_corpus("embedded"), languages=["python", "php"], vocab_size=600,
                           sample_bytes_per_language=60_000, out_dir=tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, bpe):
    from lensprobe.testing import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("run"), [0, 5, 10], tokenizer=bpe, vocab_size=len(bpe))


@pytest.fixture(scope="session")
def docs_jsonl(tmp_path_factory):
    from pretrain.corpora import open_corpus

    corpus = open_corpus("embedded")
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with path.open("w") as fh:
        for lang in ("python", "php"):
            for i in range(4):
                fh.write(json.dumps({"language": lang, "text": corpus.document(lang, i).text}) + "\n")
    return path

