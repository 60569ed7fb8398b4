"""A hub series on the command line (--hub REPO --revisions LIST|PATTERN), against local stand-ins for
the hub's snapshots, as tests/checkpoints tests CheckpointSeries.from_hub."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensprobe.cli import main

REPO = "EleutherAI/pythia-tiny"


@pytest.fixture
def hub(suite_run, monkeypatch):
    """The hub's revisions step0 / step10 are the local checkpoints of ``suite_run``; calls are recorded."""
    import huggingface_hub

    snapshots = {"step0": suite_run / "checkpoint-0", "step10": suite_run / "checkpoint-10"}
    calls = []

    def fake_snapshot_download(repo_id, *, revision, allow_patterns, local_files_only=False, **kwargs):
        calls.append((repo_id, revision, local_files_only))
        if repo_id != REPO or revision not in snapshots:
            raise FileNotFoundError(f"{repo_id}@{revision} not found")
        return str(snapshots[revision])

    class Refs:
        branches = [type("B", (), {"name": n})() for n in ("main", "step0", "step10", "step5")]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_refs", lambda repo_id, token=None: Refs())
    return calls


def _values(table):
    keys = ["step", "identifier", "layer", "metric"]
    return table.sort_values(keys, na_position="first").reset_index(drop=True)[keys + ["value", "n"]]


def test_lens_on_a_hub_series_equals_the_local_run(hub, suite_run, tmp_path):
    local, remote = tmp_path / "local.csv", tmp_path / "hub.csv"
    args = ["--suite", "php", "--limit", "2", "--quiet"]
    assert main(["lens", str(suite_run), "--out", str(local), *args]) == 0
    assert main(["lens", "--hub", REPO, "--revisions", "step0,step10", "--out", str(remote), *args]) == 0
    assert [c[1] for c in hub] == ["step0", "step10"]
    a, b = pd.read_csv(local), pd.read_csv(remote)
    assert set(b.checkpoint) == {"step0", "step10"} and set(b.run) == {REPO}
    pd.testing.assert_frame_equal(_values(a), _values(b))
    # a glob over the repository's branches named like checkpoints (step5 is listed but has no snapshot)
    hub.clear()
    assert main(["lens", "--hub", REPO, "--revisions", "step1*", "--out", str(remote), *args]) == 0
    assert [c[1] for c in hub] == ["step10"]
    assert set(pd.read_csv(remote).step) == {10}


def test_lape_on_a_hub_series(hub, suite_run, tmp_path):
    out = tmp_path / "lape.csv"
    args = ["--languages", "go", "php", "--input", "go=suite", "--input", "php=suite",
            "--tokens-per-language", "256", "--seq-len", "32", "--null-permutations", "0", "--no-reference",
            "--quiet"]
    assert main(["lape", "--hub", REPO, "--revisions", "step10", "--out", str(out), *args]) == 0
    remote = pd.read_csv(out)
    assert main(["lape", str(suite_run / "checkpoint-10"), "--out", str(tmp_path / "local.csv"), *args]) == 0
    local = pd.read_csv(tmp_path / "local.csv")
    assert set(remote.checkpoint) == {"step10"}
    np.testing.assert_allclose(_values(remote).value, _values(local).value, equal_nan=True)


def test_hub_options_are_checked(hub, suite_run, tmp_path, capsys):
    out = str(tmp_path / "x.csv")
    cases = [
        (["lens", str(suite_run), "--hub", REPO], "not both"),
        (["lens", "--revisions", "step0"], "--revisions needs --hub"),
        (["lens", "--hub", REPO, "--revisions", "step*", "--offline"], "--offline needs --revisions as a list"),
        (["lens", "--hub", REPO, "--revisions", "step0,step0"], "listed twice"),
        (["lens", "--hub", REPO, "--revisions", "main*"], "no branch is named like a checkpoint"),
        (["lens", "--hub", REPO, "--revisions", "step7"], "no revision could be used"),
        (["lens"], "give a model or run directory, or --hub REPO"),
    ]
    for argv, message in cases:
        assert main([*argv, "--suite", "php", "--out", out]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    # --offline passes local_files_only to the hub client
    hub.clear()
    assert main(["lens", "--hub", REPO, "--revisions", "step0", "--offline", "--suite", "php", "--limit", "1",
                 "--out", out, "--quiet"]) == 0
    assert hub == [(REPO, "step0", True)]


def test_sweep_on_a_hub_series(hub, suite_run, tmp_path, capsys):
    spec = "working_language:suite=php,limit=2"
    assert main(["sweep", "--hub", REPO, "--revisions", "step0,step10", "--out", str(tmp_path / "hub"),
                 "--probe", spec, "--quiet"]) == 0
    assert main(["sweep", str(suite_run), "--out", str(tmp_path / "local"), "--probe", spec, "--quiet"]) == 0
    from lensprobe.sweep import read_sweep

    remote, local = read_sweep(tmp_path / "hub"), read_sweep(tmp_path / "local")
    remote, local = remote[remote.probe == "working_language"], local[local.probe == "working_language"]
    assert set(remote.checkpoint) == {"step0", "step10"} and set(remote.run) == {REPO}
    pd.testing.assert_frame_equal(_values(remote), _values(local))
    assert main(["sweep", str(suite_run), "--hub", REPO, "--out", str(tmp_path / "x"), "--probe", spec]) == 2
    assert "not both" in capsys.readouterr().err
