"""Multi-seed demo runs vary the split seed with the training seed; a base must match its split seed.

Training is replaced by a recorder (these tests check what would be trained on what, in seconds)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import lensprobe.demo as demo
from lensprobe.babel.splits import BabelSplits, make_splits

SPEC = {"kind": "babel", "stage": "base", "target": "php", "seed": 0,
        "splits": {"n_shared": 40, "n_python_only": 40, "n_target_only": 40, "n_control": 40}}


def fake_base(root: Path, **changes) -> Path:
    """A run directory with a config.yaml (the corpus spec) and one checkpoint."""
    spec = {**SPEC, **changes}
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump({"data": {"corpus": spec}}))
    ckpt = root / "checkpoint-10"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    return ckpt


def test_check_base_reads_the_corpus_spec_and_refuses_other_concepts(tmp_path):
    ckpt = fake_base(tmp_path / "base1", seed=1)
    demo.check_base(ckpt, make_splits(seed=1))
    with pytest.raises(ValueError, match=r"trained on Babel split seed 1 .*evaluates split seed 0"):
        demo.check_base(ckpt, make_splits(seed=0))
    small = fake_base(tmp_path / "small", splits={"n_shared": 4, "n_python_only": 4, "n_target_only": 4,
                                                   "n_control": 4})
    with pytest.raises(ValueError, match="python_only 4"):
        demo.check_base(small, make_splits(seed=0))
    bare = tmp_path / "bare" / "checkpoint-1"
    bare.mkdir(parents=True)
    with pytest.raises(ValueError, match="cannot tell which Babel concepts"):
        demo.check_base(bare, make_splits(seed=0))
    other = fake_base(tmp_path / "emb", kind="embedded")
    with pytest.raises(ValueError, match="not a Babel corpus"):
        demo.check_base(other, make_splits(seed=0))
    demo.check_base(demo.SHIPPED_BASE, make_splits(seed=0))  # the shipped base: split seed 0 (its recipe.yaml)


class Stop(Exception):
    pass


@pytest.fixture
def recorder(monkeypatch):
    """Replace training by a recorder (a run directory with config.yaml and a checkpoint) and stop
    the demo when it reaches the sweep."""
    calls = []

    def fake_train(recipe, out, overrides, commands, **_):
        opts = dict(o.split("=", 1) for o in overrides)
        spec = json.loads(opts["data.corpus"])
        calls.append(dict(recipe=recipe, out=Path(out), spec=spec, opts=opts))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.yaml").write_text(yaml.safe_dump({"data": {"corpus": spec}}))
        (Path(out) / "checkpoint-10").mkdir(exist_ok=True)
        (Path(out) / "checkpoint-10" / "config.json").write_text("{}")
        return Path(out)

    def stop(*args, **kwargs):
        raise Stop()

    monkeypatch.setattr(demo, "_train", fake_train)
    monkeypatch.setattr(demo, "CheckpointSeries", stop)
    return calls


def test_seed_k_trains_on_split_seed_k_from_its_own_base(tmp_path, recorder):
    out = tmp_path / "out"
    with pytest.raises(Stop):
        demo.run_demo(out, quick=True, seeds=3, log=lambda msg: None)
    bases = [c for c in recorder if c["recipe"] == "babel-base"]
    runs = [c for c in recorder if c["recipe"] == "babel-continual"]
    # split seed 0: the shipped base; split seeds 1 and 2: a base each, at the shipped base's sizes
    assert [c["spec"]["seed"] for c in bases] == [1, 2]
    assert [c["out"].name for c in bases] == ["base-seed1", "base-seed2"]
    shipped = yaml.safe_load((demo.SHIPPED_BASE / "recipe.yaml").read_text())["data"]["tokens"]
    assert all(int(c["opts"]["data.tokens.python"]) == shipped["python"] for c in bases)
    assert all(c["spec"]["stage"] == "base" for c in bases)
    assert [c["spec"]["seed"] for c in runs] == [0, 1, 2]
    assert [int(c["opts"]["seed"]) for c in runs] == [0, 1, 2]
    assert all(c["spec"]["stage"] == "continual" for c in runs)
    assert Path(runs[0]["opts"]["model.init_from"]) == demo.SHIPPED_BASE
    assert Path(runs[1]["opts"]["model.init_from"]) == out / "runs" / "base-seed1" / "checkpoint-10"
    assert Path(runs[2]["opts"]["model.init_from"]) == out / "runs" / "base-seed2" / "checkpoint-10"
    # each seed has its own manifest and lens suite
    manifests = [BabelSplits.load(out / name) for name in
                 ("babel_splits.json", "babel_splits-seed1.json", "babel_splits-seed2.json")]
    assert [m.seed for m in manifests] == [0, 1, 2]
    assert len({m.python_only[0].name for m in manifests}) == 3
    for k, m in enumerate(manifests):
        assert m.manifest() == make_splits(seed=k).manifest()
    assert (out / "babel_php.yaml").is_file() and (out / "babel_php-seed2.yaml").is_file()
    assert "seed 2" in (out / "babel_php-seed2.yaml").read_text()


def test_a_given_base_is_used_for_its_split_seed_and_refused_otherwise(tmp_path, recorder):
    given = fake_base(tmp_path / "mybase", seed=1)
    with pytest.raises(Stop):
        demo.run_demo(tmp_path / "out", quick=True, seeds=2, base=[given], log=lambda msg: None)
    assert not [c for c in recorder if c["recipe"] == "babel-base"]  # seed 0: shipped; seed 1: the given one
    runs = [c for c in recorder if c["recipe"] == "babel-continual"]
    assert Path(runs[1]["opts"]["model.init_from"]) == given
    recorder.clear()
    with pytest.raises(ValueError, match=r"split seed 1, but this run uses split seeds \[0\]"):
        demo.run_demo(tmp_path / "out1", quick=True, seeds=1, base=str(given), log=lambda msg: None)
    wrong = fake_base(tmp_path / "wrong", seed=0, splits={"n_shared": 40, "n_python_only": 40,
                                                           "n_target_only": 40, "n_control": 40, "n_cases": 5})
    with pytest.raises(ValueError, match="its Python concepts are not the run's"):
        demo.run_demo(tmp_path / "out2", quick=True, seeds=1, base=wrong, log=lambda msg: None)
    assert not recorder  # refused before anything was trained
