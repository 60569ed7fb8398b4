"""Library code never selects a matplotlib backend: importing the figure, report, demo and CLI modules keeps
the one a user chose (Jupyter's inline backend shows figures only if nobody replaced it), and headless use
works without one (matplotlib falls back to Agg when there is no display)."""
from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import lensprobe.present

PRESENT = sorted(f"lensprobe.present.{m.name}" for m in pkgutil.iter_modules(lensprobe.present.__path__))
MODULES = PRESENT + ["lensprobe.demo", "lensprobe.commands.plot", "lensprobe.commands.report", "lensprobe.cli"]


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env},
                          timeout=300)


def test_importing_lensprobe_keeps_the_chosen_backend():
    # a backend name that only exists in Jupyter would be replaced by matplotlib.use("Agg") at import time
    code = ("import matplotlib, importlib\n"
            "matplotlib.rcParams['backend'] = 'svg'\n"
            f"for m in {MODULES!r}: importlib.import_module(m)\n"
            "import matplotlib.pyplot as plt\n"
            "print(matplotlib.get_backend())\n")
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "svg", (MODULES, proc.stdout)


def test_headless_figures_need_no_backend_choice(tmp_path):
    code = ("from lensprobe.present import figures as plot\n"
            "from lensprobe.testing.tables import make_paper_table\n"
            f"plot.save_figure(plot.plot_performance(make_paper_table()), {str(tmp_path / 'p')!r})\n"
            "import matplotlib; print(matplotlib.get_backend())\n")
    proc = _run(code)  # no DISPLAY, no MPLBACKEND
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().lower() == "agg" and (tmp_path / "p.png").stat().st_size > 10_000
