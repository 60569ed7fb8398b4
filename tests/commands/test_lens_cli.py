"""`lensprobe lens` from the shell: several suites in one pass, the NaN warning, --tokenizer errors,
progress on stderr and --quiet."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensprobe.cli import main
from lensprobe.commands.lens import nan_share_warnings
from lensprobe.probes.working_language import OTHER, PYTHON, TARGET, working_language

LIMIT = ["--limit", "2"]


def test_several_suites_in_one_pass_equal_separate_runs(suite_run, tmp_path, capsys):
    out = tmp_path / "both.csv"
    assert main(["lens", str(suite_run), "--suite", "php", "--suite", "go", "--out", str(out), *LIMIT,
                 "--quiet"]) == 0
    both = pd.read_csv(out)
    assert set(both.language) == {"php", "go"}  # not only the last --suite
    for suite in ("php", "go"):
        one = tmp_path / f"{suite}.csv"
        assert main(["lens", str(suite_run), "--suite", suite, "--out", str(one), *LIMIT, "--quiet"]) == 0
        alone = pd.read_csv(one)
        part = both[both.language == suite]
        keys = ["checkpoint", "identifier", "layer", "metric"]
        merged = part.merge(alone, on=keys, suffixes=("_both", "_alone"))
        assert len(merged) == len(part) == len(alone)
        np.testing.assert_allclose(merged.value_both, merged.value_alone, equal_nan=True)
        assert (merged.n_both == merged.n_alone).all()
    printed = capsys.readouterr().out
    assert "language" in printed and "go" in printed and "php" in printed  # the summary names each suite
    # the API takes the list too; two suites of one language are refused
    df = working_language(suite_run, ["php", "go"], limit=2)
    assert set(df.language) == {"php", "go"}
    from lensprobe.suites import resolve_suite_path

    copy = tmp_path / "my_php.yaml"
    copy.write_text(resolve_suite_path("php").read_text())
    with pytest.raises(ValueError, match="same language"):
        working_language(suite_run, ["php", str(copy)], limit=2)


def test_nan_shares_come_with_a_reason(suite_run, tmp_path, capsys):
    """Random checkpoints generate no target identifier: the shares are NaN and the command says why."""
    out = tmp_path / "wl.csv"
    assert main(["lens", str(suite_run), "--suite", "go", "--out", str(out), *LIMIT, "--quiet"]) == 0
    err = capsys.readouterr().err
    table = pd.read_csv(out)
    suite_share = table[table.identifier.isna() & (table.metric == "eq1_python_share")]
    assert suite_share.value.isna().all() and (suite_share.n == 0).all()  # what the warning explains
    line = next(ln for ln in err.splitlines() if ln.startswith("warning: go:"))
    assert "NaN at 2 of 2 checkpoint(s)" in line and "no prompt kept at step 0, step 10" in line
    assert "docs/suites.md" in line


def _rows(cls_by_prompt, n_layers=4):
    """Suite-level rows of a probe whose prompts' per-layer top-1 classes are given."""
    from lensprobe.probes.working_language import WorkingLanguageProbe, _ItemRecord

    probe = WorkingLanguageProbe("php", identifiers=["count"], limit=len(cls_by_prompt), exclude_last=1)
    probe._n_layers = n_layers
    from lensprobe.suites import TokenSets

    probe.token_sets = {"count": TokenSets("count", frozenset({1}), frozenset({2}))}
    for k, cls in enumerate(cls_by_prompt):
        probe._records[k] = _ItemRecord(np.array(cls, dtype=np.int8), np.zeros(n_layers), np.zeros(n_layers))
    df = pd.DataFrame(probe.finalize())
    df["checkpoint"], df["step"] = "checkpoint-5", 5
    return df


def test_nan_warning_tells_the_two_cases_apart():
    kept_but_uncounted = _rows([[OTHER, OTHER, OTHER, TARGET]])  # kept, but no top-1 in either set
    (line,) = nan_share_warnings(kept_but_uncounted, ["generated"])
    assert "no counted top-1 token at step 5 (eq1_counted=0" in line and "no prompt kept" not in line
    counted = _rows([[PYTHON, TARGET, OTHER, TARGET]])
    assert nan_share_warnings(counted, ["generated"]) == []


@pytest.mark.parametrize("command", [
    ["lens", "{run}", "--suite", "php", "--out", "{tmp}/x.csv"],
    ["lape", "{run}", "--languages", "python", "php", "--input", "python=suite", "--input", "php=suite",
     "--out", "{tmp}/x.csv"],
    ["probes", "validate", "php"],
    ["babel", "eval", "{run}/checkpoint-0", "--splits", "{tmp}/splits.json", "--out", "{tmp}/x.csv"],
])
@pytest.mark.parametrize("bad", ["missing", "empty_dir"])
def test_bad_tokenizer_names_the_option_and_what_to_do(suite_run, tmp_path, capsys, command, bad):
    (tmp_path / "empty_dir").mkdir()
    assert main(["babel", "splits", "--out", str(tmp_path / "splits.json"), "--n-shared", "2", "--n-python-only",
                 "2", "--n-target-only", "2", "--n-control", "2"]) == 0
    capsys.readouterr()
    tok = tmp_path / bad
    argv = [a.format(run=suite_run, tmp=tmp_path) for a in command] + ["--tokenizer", str(tok)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert f"--tokenizer {tok}" in err  # the option and the full path
    assert ("no such file or directory" if bad == "missing" else "holds no tokenizer files") in err
    assert "leave --tokenizer out" in err  # what to do


def test_progress_on_stderr_unless_quiet(suite_run, tmp_path, capsys):
    out = tmp_path / "wl.csv"
    assert main(["lens", str(suite_run), "--suite", "php", "--out", str(out), *LIMIT]) == 0
    captured = capsys.readouterr()
    assert "sweep run:" in captured.err and "2/2" in captured.err and "ckpt" in captured.err  # the tqdm bar
    assert "sweep run" not in captured.out and f"wrote" in captured.out  # results on stdout only
    assert main(["lens", str(suite_run), "--suite", "php", "--out", str(out), *LIMIT, "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "ckpt" not in quiet.err and "%|" not in quiet.err
    assert quiet.out == captured.out  # the same results
