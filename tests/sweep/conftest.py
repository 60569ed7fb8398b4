"""The sweep tests' probes (``sweep_probes.py``, loaded by file path so a subprocess can load them too)
and a tiny run of five checkpoints."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROBES_FILE = Path(__file__).with_name("sweep_probes.py")


def load_sweep_probes():
    """The module ``sweep_probes.py`` (LastTokenNorm, ParamSum), loaded from its file."""
    spec = importlib.util.spec_from_file_location("sweep_probes", PROBES_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sweep_probes():
    return load_sweep_probes()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from lensprobe.testing import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("run"), [0, 1, 2, 4, 8])
