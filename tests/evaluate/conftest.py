"""Shared fixtures: data paths, a tiny byte-level tokenizer, toolchain checks."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "eval"


def data_path(*parts: str) -> Path:
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"benchmark data not found: {p}")
    return p


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"toolchain not installed: {missing}")


def byte_tokenizer():
    """A 259-token byte-level tokenizer (256 bytes + <pad>, <s>, </s>): exact round trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="session")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="session")
def eval_data():
    """``eval_data("humaneval-x", "humaneval_cpp.jsonl.gz")`` -> path (skips when the data is absent)."""
    return data_path


@pytest.fixture(scope="session")
def tools():
    """``tools("g++", "go")`` skips the test when a toolchain is missing."""
    return need_tools
