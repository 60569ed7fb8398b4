"""Long-running commands show progress on stderr by default and nothing with --quiet (errors still print):
lape and babel eval here; lens in test_lens_cli.py, eval and pretrain in their packages' tests, sweep in
tests/sweep, the demo in tests/demo."""
from __future__ import annotations

import pandas as pd

from lensprobe.cli import main


def _bar(err: str) -> bool:
    return "%|" in err  # tqdm's "NN%|████| n/N" (written with \r between updates)


def test_lape(suite_run, tmp_path, capsys):
    args = ["lape", str(suite_run), "--languages", "go", "php", "--input", "go=suite", "--input", "php=suite",
            "--tokens-per-language", "256", "--seq-len", "32", "--null-permutations", "0"]
    assert main([*args, "--out", str(tmp_path / "a.csv")]) == 0
    loud = capsys.readouterr()
    assert _bar(loud.err) and "sweep run" in loud.err and "ckpt" in loud.err  # the first checkpoint, then the rest
    assert "[checkpoint-10] step 10" in loud.out and not _bar(loud.out)
    assert main([*args, "--out", str(tmp_path / "b.csv"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert not _bar(quiet.err) and "sweep run" not in quiet.err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


def test_babel_eval(suite_run, tmp_path, capsys):
    splits = tmp_path / "splits.json"
    assert main(["babel", "splits", "--out", str(splits), "--n-shared", "2", "--n-python-only", "2",
                 "--n-target-only", "2", "--n-control", "2"]) == 0
    args = ["babel", "eval", "--splits", str(splits), "--no-execute", "--max-new-tokens", "4", "--n-boot", "10"]
    capsys.readouterr()
    one = str(suite_run / "checkpoint-10")
    assert main([*args, one, "--out", str(tmp_path / "a.csv")]) == 0
    loud = capsys.readouterr()
    assert _bar(loud.err) and "babel: complete" in loud.err and "16/16" in loud.err  # 8 concepts x 2 languages
    assert main([*args, one, "--out", str(tmp_path / "b.csv"), "--quiet"]) == 0
    assert not _bar(capsys.readouterr().err)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    # a run directory: the sweep's bar over the checkpoints
    assert main([*args, str(suite_run), "--out", str(tmp_path / "c.csv")]) == 0
    loud = capsys.readouterr()
    assert _bar(loud.err) and "sweep run" in loud.err and "2/2" in loud.err
    assert main([*args, str(suite_run), "--out", str(tmp_path / "d.csv"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert not _bar(quiet.err) and "sweep run" not in quiet.err


def test_sweep(suite_run, tmp_path, capsys):
    args = ["sweep", str(suite_run), "--probe", "working_language:suite=php,limit=2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    loud = capsys.readouterr()
    assert _bar(loud.err) and "sweep run" in loud.err and "2/2" in loud.err
    assert main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert not _bar(quiet.err) and "sweep run:" not in quiet.err + quiet.out  # neither the bar nor the chatter
    assert "2 computed" in quiet.out  # the result line stays
