"""A tiny run whose tokenizer reads the bundled suites (``suite_bpe``), for the command-line tests."""
from __future__ import annotations

import pytest

from lensprobe.testing import build_tiny_run

STEPS = (0, 10)


@pytest.fixture(scope="session")
def suite_run(tmp_path_factory, suite_bpe):
    """``run/checkpoint-0``, ``run/checkpoint-10``: random tiny GPT-2s (context 512) with ``suite_bpe``."""
    return build_tiny_run(tmp_path_factory.mktemp("suite_run") / "run", list(STEPS), tokenizer=suite_bpe,
                          vocab_size=len(suite_bpe), n_positions=512)
