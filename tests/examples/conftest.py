"""One quick-demo output shared by every notebook test: the notebooks build it under runs/ when it is missing;
here $LENSPROBE_RUNS points them to a temporary folder whose ``demo-quick`` is the session's quick demo
(``tests/conftest.py``'s ``quick_demo``, shared with tests/demo and tests/docs; built here when that fixture is
absent). What the notebooks write themselves (``data_mix/``, ``suites/``) goes beside it, never into it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lensprobe.demo import SHIPPED_BASE


@pytest.fixture(scope="session")
def notebook_runs(request, tmp_path_factory):
    """``$LENSPROBE_RUNS`` for the notebooks: a folder holding ``demo-quick``, the quick demo's output."""
    runs = tmp_path_factory.mktemp("notebook_runs")
    try:
        demo = Path(request.getfixturevalue("quick_demo").out)
    except pytest.FixtureLookupError:
        if not (SHIPPED_BASE / "model.safetensors").exists():
            pytest.fail(f"the shipped base checkpoint is missing: {SHIPPED_BASE}")
        demo = runs / "demo-own"
        proc = subprocess.run([sys.executable, "-m", "lensprobe.cli", "demo", "--quick", "--out", str(demo)],
                              capture_output=True, text=True, timeout=3000)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (runs / "demo-quick").symlink_to(demo, target_is_directory=True)
    return runs
