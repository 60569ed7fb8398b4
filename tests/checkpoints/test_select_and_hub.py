"""Sub-series selection, the sequence protocol and Hub revisions (with a local stand-in for the Hub)."""
from __future__ import annotations

import pytest

from lensprobe.checkpoints import CheckpointSeries, CheckpointWarning
from lensprobe.testing import tiny_model


@pytest.fixture
def series(tmp_path, tools, tokenizer):
    steps = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000]
    root = tmp_path / "run"
    model = tiny_model("gpt2", seed=0, vocab_size=101)
    for s in steps:  # same weights everywhere is fine here: only selection is under test
        tools.save_checkpoint(root / f"step{s}", model, tokenizer=tokenizer)
    return CheckpointSeries(root, hash_weights=False)


def test_select(series):
    assert series.select(steps=[1000, 4, 0]).steps == [0, 4, 1000]
    assert series.select(every=1000).steps == [0, 1000, 2000, 3000]
    assert series.select(every=2).steps == [0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000]
    picked = series.select(max_count=4).steps
    assert picked == [0, 8, 256, 3000]  # positions 0, 4.33->4, 8.67->9, 13 of 14
    assert series.select(max_count=1).steps == [3000]
    assert series.select(every=1000, max_count=2).steps == [0, 3000]
    assert series.select(max_count=100).steps == series.steps
    with pytest.raises(KeyError, match=r"no checkpoint at step\(s\) \[5\]"):
        series.select(steps=[4, 5])
    with pytest.raises(ValueError, match="every"):
        series.select(every=0)
    with pytest.raises(ValueError, match="max_count"):
        series.select(max_count=-1)


def test_sequence_protocol(series):
    assert len(series) == 14
    assert series[0].step == 0 and series[-1].step == 3000
    sub = series[2:5]
    assert isinstance(sub, CheckpointSeries) and sub.steps == [2, 4, 8]
    assert [c.step for c in series][:3] == [0, 1, 2]
    assert series.by_step(64).name == "step64"
    with pytest.raises(KeyError, match="no checkpoint at step 65"):
        series.by_step(65)
    df = series.to_dataframe()
    assert list(df["step"]) == series.steps and (df["run"] == "run").all()
    assert "CheckpointSeries(run='run', 14 checkpoints" in repr(series)


def test_from_hub_with_local_snapshots(tmp_path, tools, tokenizer, monkeypatch):
    import huggingface_hub

    snapshots = {}
    for i, rev in enumerate(["step143000", "step1000", "step0"]):
        snapshots[rev] = tools.save_checkpoint(tmp_path / "cache" / f"commit{i}",
                                               tiny_model("gpt_neox", seed=i, vocab_size=101), tokenizer=tokenizer)
    calls = []

    def fake_snapshot_download(repo_id, *, revision, allow_patterns, **kwargs):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        if revision not in snapshots:
            raise FileNotFoundError(f"revision {revision} not found")
        return str(snapshots[revision])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.warns(CheckpointWarning, match="1 broken"):
        series = CheckpointSeries.from_hub("EleutherAI/pythia-tiny", ["step143000", "step1000", "step0", "step7"])
    assert series.steps == [0, 1000, 143000]
    assert [c.revision for c in series] == ["step0", "step1000", "step143000"]
    assert series.run == "EleutherAI/pythia-tiny"
    assert series.broken[0].name == "step7" and "download failed" in series.broken[0].reason
    assert {c[1] for c in calls} == {"step143000", "step1000", "step0", "step7"}
    assert "*.safetensors" in calls[0][2]
    # revisions=None lists the branches named like checkpoints
    class Refs:
        branches = [type("B", (), {"name": n})() for n in ("main", "step1000", "step0")]

    monkeypatch.setattr(huggingface_hub, "list_repo_refs", lambda repo_id, token=None: Refs())
    assert CheckpointSeries.from_hub("EleutherAI/pythia-tiny").steps == [0, 1000]
