"""`lensprobe demo --quick` end to end (the CI run of the main job): outputs checked for content."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lensprobe.sweep import read_sweep


@pytest.fixture(scope="module")
def demo_out(quick_demo):
    """The session's quick demo (tests/conftest.py, shared with the snippet test): (output dir, stderr)."""
    return quick_demo.out, quick_demo.stderr


def test_every_probe_is_present_for_every_checkpoint(demo_out):
    out, _ = demo_out
    table = read_sweep(out)
    ckpts = sorted(table["checkpoint"].unique())
    run_dir = out / "runs" / "php-seed0"
    on_disk = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert ckpts == on_disk and len(ckpts) >= 8
    per = table.groupby("checkpoint")["probe"].apply(set)
    for ck, probes in per.items():
        assert {"working_language", "lape", "babel", "log"} <= probes, (ck, probes)
    from lensprobe.babel.rows import item_rows, summary_rows

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


def _php_curve(table, split):
    """PHP line accuracy of one split per step, read straight from the sweep table (per-split rows)."""
    rows = table[(table.probe == "babel") & (table.language == "php") & (table.identifier == split)
                 & (table.metric == "line_acc")]
    return rows.groupby("step")["value"].mean()


def test_stages_agree_with_the_curve_they_describe(demo_out):
    out, _ = demo_out
    stages = json.loads((out / "stages.json").read_text())["php"]
    curve = _php_curve(read_sweep(out), "python_only")
    steps = curve.index.to_numpy(float)
    found = stages["stages"]
    assert found or stages["notes"], "no stage and no reason given"
    for a, b in zip(found, found[1:]):  # ordered, contiguous, inside the observed steps
        assert a["end_step"] == b["start_step"], found
    for st in found:
        assert steps.min() <= st["start_step"] < st["end_step"] <= steps.max(), st
        seg = curve[(curve.index >= st["start_step"]) & (curve.index <= st["end_step"])]
        assert len(seg) >= 2, st
        assert 0.0 < stages["confidence"][st["name"]] <= 1.0
        if st["name"] == "translation":  # performance rises over the stage, by more than the noise
            assert seg.iloc[-3:].mean() - seg.iloc[0] > 2 * stages["noise"], (st, seg)
    names = [st["name"] for st in found]
    if "stabilization" in names and "translation" in names:  # flatter than the translation's rise
        tr = [st for st in found if st["name"] == "translation"][0]
        sb = [st for st in found if st["name"] == "stabilization"][0]
        rise = curve[curve.index <= tr["end_step"]]
        flat = curve[curve.index >= sb["start_step"]]
        assert abs(flat.iloc[-1] - flat.iloc[0]) < rise.iloc[-1] - rise.iloc[0]
    assert stages["evidence"]["n_points"] == len(curve)


def test_recommendation_is_algorithm_1_on_the_held_out_loss(demo_out):
    """Eq.2 recomputed from the run's val.jsonl (alpha over the reported early window, beta the lowest
    held-out loss) and Eq.3 inverted by hand give the recommended PHP tokens; or, when there is no
    finite answer, the best checkpoint sits at the lowest loss and the file says so."""
    out, _ = demo_out
    summary = json.loads((out / "summary.json").read_text())
    rec = summary["recommendation"]
    run = out / "runs" / "php-seed0"
    val = pd.read_json(run / "val.jsonl", lines=True)
    val = val[val.language == "php"].set_index("step")["loss"]
    base_py = json.loads((Path(summary["base"]) / "checkpoint.json").read_text())["tokens_by_language"]["python"]
    text = (out / "recommendation.yaml").read_text()
    if "error" in rec:
        assert text.startswith("# no recommendation:") and ("share" in text or "finite" in text), text
        return
    lo, hi = rec["alpha_steps"]
    assert hi <= 0.05 * val.index.max() + 1  # alpha is read early in the run, not at steps 90-100
    alpha = val[(val.index >= lo) & (val.index <= hi)].mean()
    beta = val.min()
    share = float(np.clip((val[rec["best_step"]] - beta) / (alpha - beta), 0, 1))
    assert rec["share"] == pytest.approx(share, abs=1e-9)
    assert rec["share_interval"][0] <= rec["share"] <= rec["share_interval"][1]
    doc = yaml.safe_load(text)
    assert doc["tokens"]["python"] == rec["python_tokens"] == base_py
    if share > 0:
        assert doc["tokens"]["php"] == pytest.approx(base_py / share - base_py, rel=1e-9)
    # the best checkpoint maximises the smoothed PHP performance on python_only + shared items
    table = read_sweep(out)
    table_curve = (_php_curve(table, "python_only") + _php_curve(table, "shared")) / 2
    assert rec["best_step"] in rec["candidates"] and rec["best_step"] in set(table_curve.index)
    assert table_curve[rec["best_step"]] >= table_curve.quantile(0.5)


def test_figures_and_report(demo_out):
    out, stderr = demo_out
    for name in ("performance", "working_language", "working_language_lenses", "lape_counts", "lens_heatmap"):
        png = out / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{name}.svg").read_text().count("<path") > 20
    html = (out / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert "id='tuned-lens'" in html  # the working language through both lenses (docs/tuned-lens.md)
    assert "http://" not in html and "https://" not in html.replace("https://huggingface", "")
    assert "torch" in html and "Stages" in html
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoints"] >= 8
    assert "[demo" in stderr  # progress printed all the way (on stderr)


def test_progress_on_stderr_and_quiet(quick_demo, tmp_path):
    """The default run shows its phases and the training and sweep bars on stderr (one tqdm style, no
    deprecation warnings), the result line on stdout; --quiet on a copy (resumed: nothing to train or sweep)
    prints nothing on stderr and the same result line."""
    import shutil

    err = quick_demo.stderr
    for k in range(1, 7):
        assert f"phase {k}/6" in err
    assert "train babel-continual: 100%" in err and "158/158" in err and "tok/s" in err
    assert "sweep php-seed0: 100%" in err and "ckpt" in err
    assert "Loading weights" not in err and "Writing model shards" not in err  # transformers' own bars are off
    assert "FutureWarning" not in err and "DeprecationWarning" not in err
    assert "[demo" not in quick_demo.stdout and "report" in quick_demo.stdout
    copy = tmp_path / "demo"
    shutil.copytree(quick_demo.out, copy, symlinks=True)
    proc = subprocess.run([sys.executable, "-m", "lensprobe.cli", "demo", "--quick", "--quiet", "--out", str(copy)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""
    assert proc.stdout.startswith("lensprobe demo: done in ") and str(copy / "report" / "index.html") in proc.stdout
