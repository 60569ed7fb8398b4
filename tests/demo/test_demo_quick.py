"""`lensprobe demo --quick` end to end (the CI run of the main job): outputs checked for content."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lensprobe.demo import SHIPPED_BASE


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    if not (SHIPPED_BASE / "model.safetensors").exists():
        pytest.fail(f"the shipped base checkpoint is missing: {SHIPPED_BASE}")
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "lensprobe.cli", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_every_probe_is_present_for_every_checkpoint(demo_out):
    from lensprobe.sweep import read_sweep

    out, _ = demo_out
    table = read_sweep(out)
    ckpts = sorted(table["checkpoint"].unique())
    run_dir = out / "runs" / "php-seed0"
    on_disk = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert ckpts == on_disk and len(ckpts) >= 8
    per = table.groupby("checkpoint")["probe"].apply(set)
    for ck, probes in per.items():
        assert {"working_language", "lape", "babel", "log"} <= probes, (ck, probes)
    from lensprobe.babel.evaluation import item_rows, summary_rows

    babel = summary_rows(table[(table.probe == "babel") & (table.metric == "line_acc")])
    assert set(babel["identifier"]) == {"shared", "python_only", "target_only", "control"}
    items = item_rows(table[(table.probe == "babel") & (table.metric == "line_acc")])
    assert set(items["split"]) == set(babel["identifier"]) and (items["n"] == 1).all()
    assert set(babel["language"]) == {"python", "php"}
    assert babel["value"].between(0, 1).all()
    # the shipped base knows its Python concepts: Python line accuracy on trained concepts beats control
    first = babel[babel.step == babel.step.min()].set_index(["language", "identifier"])["value"]
    assert first[("python", "python_only")] > first[("python", "control")] + 0.1
    # the continual run trains on PHP concepts (not base-stage filler): PHP learns its own concepts
    last = babel[babel.step == babel.step.max()].set_index(["language", "identifier"])["value"]
    assert last[("php", "target_only")] > first[("php", "target_only")] + 0.2, (first, last)
    assert last[("php", "shared")] > last[("php", "control")] + 0.3, last
    # ... and reaches Python-only knowledge it never saw in PHP (transfer), above the guessing level
    php = babel[babel.language == "php"].pivot_table(index="step", columns="identifier", values="value")
    tail = php.iloc[-3:]
    assert tail["python_only"].mean() > tail["control"].mean() + 0.05, php
    # the lens probe saw the generated suite's split ids
    wl = table[(table.probe == "working_language") & (table.metric == "eq1_python_share")]
    assert wl["identifier"].dropna().str.split(":").str[0].isin(["shared", "python_only", "target_only",
                                                                   "control"]).all()
    lape = table[(table.probe == "lape") & (table.metric == "n_neurons") & table.layer.isna()]
    assert set(lape["language"]) >= {"python", "php"}


def test_stages_recommendation_figures_and_report(demo_out):
    out, stdout = demo_out
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == {"php"}
    assert "notes" in stages["php"] and "evidence" in stages["php"]
    rec = yaml.safe_load((out / "recommendation.yaml").read_text())
    assert rec is not None and "tokens" in rec, (out / "recommendation.yaml").read_text()
    assert math.isfinite(rec["tokens"]["php"]) and rec["tokens"]["php"] >= 0
    assert rec["tokens"]["python"] > 0
    for name in ("performance", "working_language", "lape_counts", "lens_heatmap"):
        png = out / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{name}.svg").read_text().count("<path") > 20
    html = (out / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "http://" not in html and "https://" not in html.replace("https://huggingface", "")
    assert "torch" in html and "Stages" in html
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoints"] >= 8
    assert "[demo" in stdout  # progress printed all the way
