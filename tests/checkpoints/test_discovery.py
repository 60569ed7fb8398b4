"""Discovery, ordering, metadata and explicit lists."""
from __future__ import annotations

import json
import warnings

import pytest

from lensprobe.checkpoints import CheckpointError, CheckpointSeries, CheckpointWarning
from lensprobe.testing import tiny_model


def _model(seed):
    return tiny_model("gpt2", seed=seed, vocab_size=101)


def test_every_naming_pattern_is_found_and_ordered_by_step(tmp_path, tools, tokenizer):
    names = {"step1000-tokens4B": 1000, "checkpoint-20": 20, "step-000100-2BT": 100, "step7": 7,
             "step-3": 3, "stage1-step2000-tokens8.5B": 2000, "ckpt_50": 50}
    for i, name in enumerate(names):
        tools.save_checkpoint(tmp_path / name, _model(i), tokenizer=tokenizer)
    (tmp_path / "logs").mkdir()  # unrelated directory: not a checkpoint, no warning
    (tmp_path / ".checkpoint-3000.abc.tmp").mkdir()  # an in-progress atomic write: never seen
    tools.save_checkpoint(tmp_path / ".checkpoint-3000.abc.tmp", _model(99))
    series = CheckpointSeries(tmp_path, hash_weights=False)
    assert series.steps == sorted(names.values())
    assert [c.name for c in series] == sorted(names, key=names.get)
    by_name = {c.name: c for c in series}
    assert by_name["step1000-tokens4B"].tokens == 4_000_000_000
    assert by_name["step-000100-2BT"].tokens == 2_000_000_000
    assert by_name["stage1-step2000-tokens8.5B"].tokens == 8_500_000_000
    assert by_name["step7"].tokens is None
    assert {c.step_source for c in series} == {"name"}
    assert series.run == tmp_path.name
    assert len(series) == 7 and not series.broken


def test_metadata_fills_step_tokens_and_wins_over_name_with_warning(tmp_path, tools, tokenizer):
    tools.save_checkpoint(tmp_path / "checkpoint-8", _model(0), tokenizer=tokenizer,
                          meta={"step": 7, "tokens": 7168, "tokens_by_language": {"python": 7000, "go": 168},
                                "lr": 0.01, "run": "myrun", "tokenizer_hash": "t"})
    tools.save_checkpoint(tmp_path / "checkpoint-16", _model(1), tokenizer=tokenizer,
                          meta={"step": 16, "tokens": 16384})
    with pytest.warns(CheckpointWarning, match=r"checkpoint-8.*name says step 8 but its metadata says 7"):
        series = CheckpointSeries(tmp_path, hash_weights=False)
    first = series[0]
    assert (first.step, first.step_source, first.tokens, first.tokens_source) == (7, "metadata", 7168, "metadata")
    assert first.tokens_by_language == {"python": 7000, "go": 168}
    assert first.meta["lr"] == 0.01
    assert series.run == "myrun"  # recorded by the trainer
    with pytest.warns(CheckpointWarning, match="using 8"):
        by_name = CheckpointSeries(tmp_path, hash_weights=False, step_priority="name")
    assert by_name.steps == [8, 16]
    df = series.to_dataframe()
    assert df.loc[0, "tokens_python"] == 7000 and df.loc[0, "tokens_go"] == 168


def test_token_conflict_beyond_name_resolution_warns(tmp_path, tools):
    tools.save_checkpoint(tmp_path / "step10-tokens4B", _model(0), meta={"step": 10, "tokens": 4_400_000_000})
    tools.save_checkpoint(tmp_path / "step20-tokens8B", _model(1), meta={"step": 20, "tokens": 8_300_000_000})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        series = CheckpointSeries(tmp_path, hash_weights=False)
    msgs = [str(w.message) for w in rec if issubclass(w.category, CheckpointWarning)]
    # 8.3B rounds to "8B" within one unit: fine; 4.4B vs "4B" also within 1B: fine
    assert not any("tokens" in m for m in msgs)
    assert series[0].tokens == 4_400_000_000
    (tmp_path / "step20-tokens8B" / "checkpoint.json").write_text(json.dumps({"step": 20, "tokens": 9_500_000_000}))
    with pytest.warns(CheckpointWarning, match="name says 8000000000 tokens but its metadata says 9500000000"):
        CheckpointSeries(tmp_path, hash_weights=False)


def test_trainer_state_global_step_and_unnamed_dirs(tmp_path, tools):
    tools.save_checkpoint(tmp_path / "checkpoint-5", _model(0))
    final = tools.save_checkpoint(tmp_path / "final", _model(1))
    (final / "trainer_state.json").write_text(json.dumps({"global_step": 9, "num_input_tokens_seen": 9216,
                                                          "log_history": [{"loss": 1.0}]}))
    tools.save_checkpoint(tmp_path / "best", _model(2))  # no step anywhere
    with pytest.warns(CheckpointWarning, match=r"ignoring model-like sub-directories.*\['best'\]"):
        series = CheckpointSeries(tmp_path, hash_weights=False)
    assert [(c.name, c.step, c.tokens) for c in series] == [("checkpoint-5", 5, None), ("final", 9, 9216)]
    assert series[1].meta["trainer_state"] == {"global_step": 9, "num_input_tokens_seen": 9216}


def test_run_dir_that_is_a_model_is_a_one_element_series(tmp_path, tools, tokenizer):
    model_dir = tools.save_checkpoint(tmp_path / "mymodel", _model(0), tokenizer=tokenizer)
    series = CheckpointSeries(model_dir)
    assert len(series) == 1
    assert series[0].path == model_dir and series[0].step is None and series[0].name == "mymodel"


def test_empty_or_missing_run_dir(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints found in"):
        CheckpointSeries(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CheckpointSeries(tmp_path / "nope")


def test_from_paths_given_steps_names_and_order(tmp_path, tools):
    a = tools.save_checkpoint(tmp_path / "a", _model(0))
    b = tools.save_checkpoint(tmp_path / "b", _model(1))
    c = tools.save_checkpoint(tmp_path / "step-40", _model(2))
    series = CheckpointSeries.from_paths([a, b, c], steps=[30, 10, 40], hash_weights=False)
    assert [x.name for x in series] == ["b", "a", "step-40"] and series.steps == [10, 30, 40]
    assert {x.step_source for x in series} == {"given"}
    # no steps anywhere: kept in the given order
    plain = CheckpointSeries.from_paths([b, a], hash_weights=False)
    assert [x.name for x in plain] == ["b", "a"] and plain.steps == [None, None]
    # steps for some but not all: cannot order
    with pytest.raises(CheckpointError, match=r"no step for \['a'\]"):
        CheckpointSeries.from_paths([a, c], hash_weights=False)
    with pytest.raises(ValueError, match="one entry per path"):
        CheckpointSeries.from_paths([a, b], steps=[1])
    with pytest.raises(TypeError, match="sequence"):
        CheckpointSeries.from_paths(a)
    with pytest.warns(CheckpointWarning, match="given step 41 differs"):
        CheckpointSeries.from_paths([c], steps=[41], hash_weights=False)


def test_options_are_validated(tmp_path, tools):
    tools.save_checkpoint(tmp_path / "checkpoint-1", _model(0))
    with pytest.raises(ValueError, match="step_priority"):
        CheckpointSeries(tmp_path, step_priority="newest")
    with pytest.raises(ValueError, match="loss_window"):
        CheckpointSeries(tmp_path, loss_window=0)
    with pytest.raises(ValueError, match="hash_weights"):
        CheckpointSeries(tmp_path, hash_weights="yes")
    series = CheckpointSeries(tmp_path)
    with pytest.raises(ValueError, match="check_lens"):
        series.iter_models(check_lens="sometimes")
    with pytest.raises(ValueError, match="on_arch_change"):
        series.iter_models(on_arch_change="ignore")
    with pytest.raises(ValueError, match="dtype"):
        series.iter_models(dtype="float33")


def test_same_step_twice_warns(tmp_path, tools):
    tools.save_checkpoint(tmp_path / "checkpoint-5", _model(0))
    tools.save_checkpoint(tmp_path / "step-5", _model(1))
    with pytest.warns(CheckpointWarning, match="several checkpoints claim the same step"):
        series = CheckpointSeries(tmp_path, hash_weights=False)
    assert [c.name for c in series] == ["checkpoint-5", "step-5"]
