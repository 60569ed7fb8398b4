"""``lensprobe sweep``: probe specs -> the same rows as the Python API, resume, shards, errors."""
from __future__ import annotations

import pandas as pd
import pytest

from lensprobe.cli import main
from lensprobe.sweep import read_sweep

WL = "working_language:suite=php,limit=3,exclude_last=1"


def lape_spec(docs) -> str:
    return f"lape:languages=python+php,inputs={docs},tokens_per_language=256,seq_len=32,null_permutations=1"


@pytest.fixture(scope="module")
def swept(tiny_run, docs_jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", str(tiny_run), "--out", str(out), "--probe", WL, "--probe", lape_spec(docs_jsonl),
                 "--no-progress"]) == 0
    return out


def test_rows_equal_the_python_api_on_each_checkpoint(swept, tiny_run, docs_jsonl, bpe):
    from transformers import AutoModelForCausalLM

    from lensprobe.engine.hooks import run_probes
    from lensprobe.lape import LapeInputs
    from lensprobe.probes.lape import LapeProbe
    from lensprobe.probes.working_language import WorkingLanguageProbe

    df = read_sweep(swept)
    assert sorted(df["step"].unique()) == [0, 5, 10]
    for step in (0, 10):
        model = AutoModelForCausalLM.from_pretrained(tiny_run / f"checkpoint-{step}",
                                                     attn_implementation="eager").eval()
        inputs = LapeInputs.from_files({"python": docs_jsonl, "php": docs_jsonl}, bpe, seq_len=32,
                                       tokens_per_language=256)
        rows = run_probes(model, [WorkingLanguageProbe("php", limit=3, exclude_last=1),
                                  LapeProbe(inputs, null_permutations=1, pad_id=bpe.pad_token_id)], tokenizer=bpe)
        ref = pd.DataFrame(rows)
        got = df[(df["step"] == step) & (df["probe"] != "log")]
        assert len(got) == len(ref)
        key = ["probe", "language", "identifier", "layer", "metric"]
        ref = ref.assign(identifier=ref["identifier"].fillna(""), language=ref["language"].fillna(""),
                         layer=ref["layer"].fillna(-1).astype(int))
        got = got.assign(identifier=got["identifier"].fillna(""), language=got["language"].fillna(""),
                         layer=got["layer"].fillna(-1).astype(int))
        merged = ref.merge(got, on=key, suffixes=("_ref", "_cli"))
        assert len(merged) == len(ref)
        pd.testing.assert_series_equal(merged["value_ref"], merged["value_cli"], check_names=False, rtol=1e-6)
    assert (df.loc[df["metric"] == "exclude_last", "value"] == 1).all()


def test_rerun_skips_and_a_changed_spec_recomputes(swept, tiny_run, docs_jsonl, capsys):
    before = read_sweep(swept)
    assert main(["sweep", str(tiny_run), "--out", str(swept), "--probe", WL, "--probe", lape_spec(docs_jsonl),
                 "--no-progress"]) == 0
    assert "0 computed, 3 already done" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_sweep(swept), before)
    changed = WL.replace("exclude_last=1", "exclude_last=2")
    assert main(["sweep", str(tiny_run), "--out", str(swept), "--probe", changed, "--probe", lape_spec(docs_jsonl),
                 "--steps", "5", "--no-progress"]) == 0
    assert "1 computed, 0 already done" in capsys.readouterr().out
    after = read_sweep(swept)
    assert after.loc[(after["metric"] == "exclude_last"), ["step", "value"]].set_index("step")["value"].to_dict() \
        == {0: 1.0, 5: 2.0, 10: 1.0}


def test_shards_from_environment_partition_checkpoints(tiny_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sharded"
    todo = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(["sweep", str(tiny_run), "--out", str(out), "--probe", "working_language:suite=php,limit=2",
                     "--no-progress"]) == 0
        todo[rank] = capsys.readouterr().out
    assert "3 checkpoints" not in todo[0]
    assert "on rank 0/2, 0 already done, 2 to run" in todo[0]   # checkpoints 0 and 10
    assert "on rank 1/2, 0 already done, 1 to run" in todo[1]   # checkpoint 5
    # one file per checkpoint and probe configuration, and one of the run's log rows per checkpoint
    assert len(list((out / "results").glob("*__working_language-*.parquet"))) == 3
    assert len(list((out / "results").glob("*__log.parquet"))) == 3
    assert sorted(read_sweep(out)["step"].unique()) == [0, 5, 10]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    # a single-process rerun finds every shard's result and skips it
    assert main(["sweep", str(tiny_run), "--out", str(out), "--probe", "working_language:suite=php,limit=2",
                 "--no-progress"]) == 0
    assert "0 computed, 3 already done" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["--probe", "working_language:suite=php,filter=true"], "unknown key 'filter'"),
    ([], "at least one --probe"),
    (["--probe", "working_language:suite=php", "--dtype", "float7"], "--dtype"),
])
def test_bad_input_exits_2_with_a_clear_message(tiny_run, tmp_path, capsys, argv, needle):
    assert main(["sweep", str(tiny_run), "--out", str(tmp_path / "o"), *argv]) == 2
    assert needle in capsys.readouterr().err


def test_missing_run_dir_and_list_probes(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--probe",
                 "working_language:suite=php"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sweep", "--list-probes"]) == 0
    out = capsys.readouterr().out
    assert "working_language: " in out and "suite* (text)" in out and "input_<name>" in out


def test_help_lists_every_probe_and_its_keys(capsys):
    from lensprobe.probes.registry import probe_help, registered_probes

    with pytest.raises(SystemExit) as info:
        main(["sweep", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in registered_probes():
        for line in probe_help(name).splitlines():
            assert " ".join(line.split()) in " ".join(out.split()), line
