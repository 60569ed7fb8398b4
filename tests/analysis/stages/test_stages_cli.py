"""``lensprobe stages`` on a synthetic sweep table with known curves."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lensprobe.analysis.stages import detect_stages
from lensprobe.cli import main
from lensprobe.testing.tables import STEPS, line_acc, python_share, write_sweep


@pytest.fixture()
def sweep_dir(tmp_path):
    return write_sweep(tmp_path / "sweep")


def test_stages_match_detect_stages_on_the_selected_curve(sweep_dir, capsys):
    assert main(["stages", str(sweep_dir), "--metric", "line_acc", "--probe", "babel", "--identifier",
                 "python_only", "--support", "python_share=working_language:eq1_python_share", "--n-boot", "20"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((sweep_dir / "stages.json").read_text())
    assert set(data) == {"php", "python"}
    # independent: the php python_only curve, its bootstrap half-width (0.04) as the interval
    curve = np.array([line_acc("php", "python_only", s) for s in STEPS])
    ref = detect_stages(STEPS, curve, interval=np.full(STEPS.size, 0.04), n_boot=20, language="php")
    got = data["php"]
    assert [(s["name"], s["start_step"], s["end_step"]) for s in got["stages"]] == \
        [(s.name, s.start_step, s.end_step) for s in ref.stages]
    assert [s["name"] for s in got["stages"]] == ["translation", "transition", "stabilization"]
    assert got["noise"] == pytest.approx(0.04 / 1.96)
    assert got["evidence"]["identifier"] == "python_only"
    assert "line_acc_lo/line_acc_hi" in got["evidence"]["interval"]
    share = np.array([python_share(s) for s in STEPS])
    tr = ref.stage("translation")
    expect = share[(STEPS >= tr.start_step) & (STEPS <= tr.end_step)].mean()
    # the support curve is the suite-level row averaged with the per-identifier ones (+0.05, -0.05)
    assert got["evidence"]["support"]["python_share"]["mean_per_stage"]["translation"] == pytest.approx(expect)
    assert "translation" in printed and "python: no translation stage" in printed


def test_loss_flag_and_json_path(sweep_dir, tmp_path, capsys):
    path = tmp_path / "loss_stages.json"
    # whole-model train_loss rows have no language: asking for python's is a clear error
    assert main(["stages", str(sweep_dir), "--metric", "train_loss", "--probe", "log", "--lower-is-better",
                 "--json", str(path), "--n-boot", "0", "--language", "python"]) == 2
    assert "no rows with metric 'train_loss' for language 'python'" in capsys.readouterr().err
    assert main(["stages", str(sweep_dir), "--metric", "line_acc", "--higher-is-lower", "--json", str(path),
                 "--n-boot", "0", "--no-interval"]) == 0
    data = json.loads(path.read_text())
    assert data["php"]["evidence"]["higher_is_better"] is False
    assert data["php"]["evidence"]["interval"] == "estimated from the curve"
    # negated, the php bump is a dip: no rise to a peak, so no translation stage
    assert not any(s["name"] == "translation" for s in data["php"]["stages"])
    assert not (sweep_dir / "stages.json").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--metric", "nope"], "no rows with metric 'nope'"),
    (["--metric", "line_acc", "--identifier", "klingon"], "for identifier 'klingon'"),
    (["--metric", "line_acc", "--support", "oops"], "NAME=PROBE:METRIC"),
])
def test_errors(sweep_dir, capsys, argv, needle):
    assert main(["stages", str(sweep_dir), *argv]) == 2
    assert needle in capsys.readouterr().err


def test_no_results_dir(tmp_path, capsys):
    assert main(["stages", str(tmp_path), "--metric", "line_acc"]) == 2
    assert "no sweep results" in capsys.readouterr().err
