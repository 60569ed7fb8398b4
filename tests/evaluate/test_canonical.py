"""Canonical solutions pass, deliberately wrong solutions fail.

Default: every HumanEval-X canonical in Python and C++ (164 each) and every 4th in Go (41),
deterministic MBXP subsets; ``-m slow``: all 164 Go, all MBXP canonicals.
"""
from __future__ import annotations

import pytest

from lensprobe.evaluate import evaluate_samples, load_problems
from lensprobe.evaluate.defects import bad_canonical, unpassable
from lensprobe.languages import LANGUAGE_INFO

MBXP = {"python": "mbpp_release_v1.jsonl", "php": "mbphp_release_v1.2.jsonl", "cpp": "mbcpp_release_v1.2.jsonl",
        "csharp": "mbcsp_release_v1.2.jsonl"}


def _humaneval_x(eval_data, tools, lang, step):
    tools(*LANGUAGE_INFO[lang].tools)
    path = eval_data("humaneval-x", f"humaneval_{lang}.jsonl.gz")
    ids = [p.task_id for p in load_problems(path, family="humaneval-x")][::step]
    res = evaluate_samples(path, None, family="humaneval-x", task_ids=ids, workers=2, timeout=20)
    failed = res.results.loc[~res.results["passed"], ["task_id", "status", "output"]]
    assert failed.empty, failed.to_string()[:3000]
    assert len(res.results) == len(ids) and res.pass_at(1) == 1.0


@pytest.mark.parametrize("lang", ["python", "cpp"])
def test_humaneval_x_canonical_all_pass(eval_data, tools, lang):
    _humaneval_x(eval_data, tools, lang, 1)


def test_humaneval_x_go_canonical_subset_passes(eval_data, tools):
    _humaneval_x(eval_data, tools, "go", 4)


@pytest.mark.slow
def test_humaneval_x_go_canonical_all_pass(eval_data, tools):
    _humaneval_x(eval_data, tools, "go", 1)


@pytest.mark.parametrize("lang", ["python", "cpp", "go"])
def test_humaneval_x_wrong_solutions_fail(eval_data, tools, lang):
    """Each problem gets the canonical solution of the next problem: it must not pass."""
    tools(*LANGUAGE_INFO[lang].tools)
    path = eval_data("humaneval-x", f"humaneval_{lang}.jsonl.gz")
    probs = load_problems(path, family="humaneval-x")[10:16]
    samples = [{"task_id": p.task_id, "completion": q.canonical_solution} for p, q in zip(probs, probs[1:] + probs[:1])]
    res = evaluate_samples(path, samples, family="humaneval-x", task_ids=[p.task_id for p in probs])
    assert not res.results["passed"].any(), res.results[["task_id", "status"]]
    assert set(res.results["status"]) <= {"failed", "compile_error", "runtime_error"}


@pytest.mark.parametrize("lang,completion", [
    ("php", "    return 0;\n}\n"),
    ("csharp", "        return default;\n    }\n"),
    ("cpp", "    return {};\n}\n"),
    ("go", "    return\n}\n"),
])
def test_multipl_e_wrong_completions_fail(eval_data, tools, lang, completion):
    tools(*LANGUAGE_INFO[lang].tools)
    name = {"csharp": "cs"}.get(lang, lang)
    path = eval_data("multipl-e_from_deepseek-coder", f"humaneval-{name}.jsonl")
    skip = unpassable("multipl-e", lang)
    ids = [p.task_id for p in load_problems(path, family="multipl-e") if p.task_id not in skip][:3]
    res = evaluate_samples(path, [{"task_id": t, "completion": completion} for t in ids], family="multipl-e")
    assert len(res.results) == 3 and not res.results["passed"].any(), res.results[["task_id", "status", "output"]]


def _mbxp(eval_data, tools, lang, step):
    tools(*LANGUAGE_INFO[lang].tools)
    path = eval_data("mxeval", "mbxp", MBXP[lang])
    probs = [p for p in load_problems(path, family="mxeval") if p.canonical_solution is not None][::step]
    res = evaluate_samples(path, None, family="mxeval", task_ids=[p.task_id for p in probs], workers=2, timeout=20)
    bad = bad_canonical("mxeval", lang)
    failed = set(res.results.loc[~res.results["passed"], "task_id"])
    expected = {p.task_id for p in probs} & set(bad)
    assert failed == expected, (sorted(failed - expected)[:20], sorted(expected - failed)[:20])
    return res


@pytest.mark.parametrize("lang", ["python", "php", "cpp", "csharp"])
def test_mbxp_canonical_subset_passes_except_documented(eval_data, tools, lang):
    _mbxp(eval_data, tools, lang, 25)


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["python", "php", "cpp", "csharp"])
def test_mbxp_canonical_all_pass_except_documented(eval_data, tools, lang):
    _mbxp(eval_data, tools, lang, 1)
