"""One quick-demo output shared by every notebook test (the notebooks build it under runs/ when missing;
here it is built once per session in a temporary folder that $LENSPROBE_RUNS points them to)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lensprobe.demo import SHIPPED_BASE


@pytest.fixture(scope="session")
def notebook_runs(tmp_path_factory):
    """``$LENSPROBE_RUNS`` for the notebooks: a folder holding ``demo-quick``, the quick demo's output."""
    if not (SHIPPED_BASE / "model.safetensors").exists():
        pytest.fail(f"the shipped base checkpoint is missing: {SHIPPED_BASE}")
    runs = tmp_path_factory.mktemp("notebook_runs")
    proc = subprocess.run([sys.executable, "-m", "lensprobe.cli", "demo", "--quick", "--out", str(runs / "demo-quick")],
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return runs
