"""A demo-like run directory with everything a report reads: the sweep table of
``lensprobe.testing.tables.make_paper_table``, stages, figures drawn by ``lensprobe plot``, a recommendation
(summary.json as the demo writes it), the commands, and one added report section."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lensprobe.cli import main
from lensprobe.present.report import ReportSection, write_report
from lensprobe.testing.tables import make_paper_table, write_sweep

STAGES = {"php": {"language": "php", "stages": [
    {"name": "translation", "start_step": 0, "end_step": 60},
    {"name": "transition", "start_step": 60, "end_step": 120},
    {"name": "stabilization", "start_step": 120, "end_step": 158}],
    "confidence": {"translation": 0.91, "transition": 0.58, "stabilization": 0.8},
    "notes": [], "evidence": {"metric": "line_acc", "identifier": "python_only", "noise_sigma": 0.0123456789}}}

RECOMMENDATION = {"php_tokens": 100538064.68432139, "python_tokens": 5999151, "share": 0.0563,
                  "share_interval": [0.031, 0.094], "tokens_interval": [57820304.2, 187519281.9], "best_step": 150.0,
                  "candidates": [120.0, 150.0, 158.0]}

LOOP = ReportSection(id="loop", title="Closed loop", html="<p>loop body</p>",
                     finding="the loop's one-sentence finding")


@pytest.fixture(scope="session")
def paper_run(tmp_path_factory):
    out = write_sweep(tmp_path_factory.mktemp("paper_run"), make_paper_table())
    (out / "stages.json").write_text(json.dumps(STAGES))
    (out / "commands.json").write_text(json.dumps(["lensprobe demo --quick --out x", "lensprobe sweep runs/x"]))
    (out / "summary.json").write_text(json.dumps({"quick": True, "recommendation": RECOMMENDATION,
                                                  "timings_s": {"sweep": 45.65361}}))
    assert main(["plot", str(out)]) == 0
    write_report(out, sections=[LOOP])
    return out


@pytest.fixture(scope="session")
def report_inputs():
    """What :func:`paper_run` wrote beside the table: stages, recommendation, the added section."""
    return SimpleNamespace(stages=STAGES, recommendation=RECOMMENDATION, loop=LOOP)
