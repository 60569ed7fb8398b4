"""Fixtures of the sweep tests: a tiny run of five checkpoints."""
from __future__ import annotations

import pytest

from lensprobe.testing import build_tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("run"), [0, 1, 2, 4, 8])
