"""`lensprobe eval` from the shell: canonical runs, sample files, generation from a checkpoint, bad input."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from lensprobe.cli import main


def test_cli_canonical_with_output_table(eval_data, tmp_path, capsys):
    path = eval_data("humaneval-x", "humaneval_python.jsonl.gz")
    out = tmp_path / "res.csv"
    rc = main(["eval", str(path), "--family", "humaneval-x", "--limit", "5", "--out", str(out), "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["pass@1"] == 1.0 and summary["problems"] == 5
    assert "sandbox: bubblewrap=" in captured.err
    table = pd.read_csv(out)
    assert table["task_id"].tolist() == [f"Python/{i}" for i in range(5)] and table["passed"].all()


def test_cli_samples_and_pass_at_k(tmp_path, capsys, tools):
    tools("php")
    problems = tmp_path / "add.jsonl"
    problems.write_text(json.dumps({"task_id": "MBPHP/1", "language": "php", "entry_point": "add",
                                    "prompt": "<?php\nfunction add($a, $b) {\n",
                                    "test": "\nif (add(1, 2) !== 3) { throw new Exception('wrong'); }\n"}) + "\n")
    samples = tmp_path / "s.jsonl"
    lines = [{"task_id": "MBPHP/1", "completion": "    return 0;\n}\n"},
             {"task_id": "MBPHP/1", "completion": "    return $a + $b;\n}\n"},
             {"task_id": "MBPHP/1", "completion": "    return $a - $b;\n}\n"}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "r.jsonl"
    rc = main(["eval", str(problems), "--family", "mxeval", "--samples", str(samples), "--k", "1,2",
               "--out", str(out), "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["problems"] == 1 and summary["samples"] == 3
    assert summary["pass@1"] == pytest.approx(1 / 3) and summary["pass@2"] == pytest.approx(2 / 3)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["passed"] for r in rows] == [False, True, False]
    assert [r["status"] for r in rows] == ["runtime_error", "passed", "runtime_error"]


def test_cli_bad_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    assert main(["eval", str(bad), "--family", "mxeval", "--quiet"]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.jsonl"), "--quiet"]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_cli_generates_from_checkpoint(eval_data, tmp_path, tokenizer, capsys):
    pytest.importorskip("lensprobe.engine.adapters")
    from lensprobe.testing import tiny_model

    ckpt = tmp_path / "ckpt"
    tiny_model("gpt2", vocab_size=259, n_positions=2048).save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    path = eval_data("mxeval", "mbxp", "mbphp_release_v1.2.jsonl")
    samples_out = tmp_path / "gen.jsonl"
    rc = main(["eval", str(path), "--family", "mxeval", "--checkpoint", str(ckpt), "--limit", "2",
               "--max-new-tokens", "8", "--samples-out", str(samples_out), "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    gen = [json.loads(l) for l in samples_out.read_text().splitlines()]
    assert [g["task_id"] for g in gen] == ["MBPHP/1", "MBPHP/2"]
    assert summary["problems"] == 2 and summary["pass@1"] == 0.0  # a random model writes no valid PHP


def test_cli_run_dir_gives_pass_at_k_rows_per_checkpoint(tmp_path, tokenizer, capsys):
    pytest.importorskip("lensprobe.checkpoints")
    from lensprobe.table import CHECKPOINT_COLUMNS, ROW_COLUMNS
    from lensprobe.testing import tiny_model

    run = tmp_path / "run"
    for step in (10, 20):
        tiny_model("gpt2", vocab_size=259, n_positions=1024, seed=step).save_pretrained(run / f"step{step}")
        tokenizer.save_pretrained(run / f"step{step}")
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"task_id": "MBPP/1", "language": "python", "entry_point": "one",
                                    "prompt": "def one():\n", "test": "\ndef check(c):\n    assert c() == 1\n"}) + "\n")
    out = tmp_path / "rows.csv"
    rc = main(["eval", str(problems), "--family", "mxeval", "--run-dir", str(run), "--max-new-tokens", "4",
               "--quiet", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns) == list(CHECKPOINT_COLUMNS + ROW_COLUMNS)
    assert table["step"].tolist() == [10, 20] and set(table["metric"]) == {"pass@1"}
    assert table["value"].tolist() == [0.0, 0.0] and table["n"].tolist() == [1, 1]


def test_cli_limit_applies_to_a_sample_file_of_the_whole_benchmark(eval_data, tmp_path, capsys):
    """--limit 3 with completions for every problem evaluates the first 3 (it used to refuse the others'
    completions as unknown task ids); the bar goes to stderr unless --quiet."""
    from lensprobe.evaluate import load_problems

    path = eval_data("humaneval-x", "humaneval_python.jsonl.gz")
    problems = load_problems(path, family="humaneval-x")
    samples = tmp_path / "all.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n"
                               for p in problems))
    out = tmp_path / "res.csv"
    rc = main(["eval", str(path), "--family", "humaneval-x", "--samples", str(samples), "--limit", "3",
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["problems"] == 3 and summary["samples"] == 3 and summary["pass@1"] == 1.0
    assert pd.read_csv(out)["task_id"].tolist() == [p.task_id for p in problems[:3]]
    assert "eval humaneval-x python" in captured.err and "3/3" in captured.err  # the tqdm bar
    assert "eval: " not in captured.err  # the old "eval: 50/966" lines are gone
    assert main(["eval", str(path), "--family", "humaneval-x", "--samples", str(samples), "--limit", "3",
                 "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "%|" not in quiet.err and "3/3" not in quiet.err
    assert json.loads(quiet.out)["pass@1"] == 1.0
    assert main(["eval", str(path), "--family", "humaneval-x", "--limit", "0", "--quiet"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err
