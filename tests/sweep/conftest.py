"""Fixtures of the sweep tests: a tiny run of five checkpoints (the word-level tokenizer), and a tiny run
of three checkpoints sharing the ``bpe`` tokenizer (tests/conftest.py)."""
from __future__ import annotations

import pytest

from lensprobe.testing import build_tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("run"), [0, 1, 2, 4, 8])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, bpe):
    return build_tiny_run(tmp_path_factory.mktemp("run"), [0, 5, 10], tokenizer=bpe, vocab_size=len(bpe))
