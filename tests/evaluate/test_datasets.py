"""Loaders, program assembly, bad input, and the known-unpassable problems."""
from __future__ import annotations

import gzip
import json

import pytest

from lensprobe.evaluate import evaluate_samples
from lensprobe.evaluate.assembly import assemble
from lensprobe.evaluate.datasets import DatasetError, load_problems, load_samples


@pytest.mark.parametrize("parts,family,language,count", [
    (("humaneval-x", "humaneval_python.jsonl.gz"), "humaneval-x", "python", 164),
    (("humaneval-x", "humaneval_cpp.jsonl.gz"), "humaneval-x", "cpp", 164),
    (("humaneval-x", "humaneval_go.jsonl.gz"), "humaneval-x", "go", 164),
    (("multipl-e_from_deepseek-coder", "humaneval-php.jsonl"), "multipl-e", "php", 161),
    (("multipl-e_from_deepseek-coder", "humaneval-cpp.jsonl"), "multipl-e", "cpp", 161),
    (("multipl-e_from_deepseek-coder", "humaneval-cs.jsonl"), "multipl-e", "csharp", 158),
    (("multipl-e_from_deepseek-coder", "humaneval-go.jsonl"), "multipl-e", "go", 154),
    (("mxeval", "multilingual_humaneval", "HumanEval_php_v1.1.jsonl"), "mxeval", "php", 161),
    (("mxeval", "multilingual_humaneval", "HumanEval_csharp_v1.jsonl"), "mxeval", "csharp", 161),
    (("mxeval", "multilingual_humaneval", "HumanEval_go_v1.jsonl"), "mxeval", "go", 160),
    (("mxeval", "mbxp", "mbgp_release_v1.1.jsonl"), "mxeval", "go", 939),
])
def test_loaders_counts_family_and_language(eval_data, parts, family, language, count):
    path = eval_data(*parts)
    probs = load_problems(path)  # family and language inferred
    assert len(probs) == count
    assert {p.family for p in probs} == {family}
    assert {p.language for p in probs} == {language}
    assert all(p.number is not None for p in probs)


def test_problem_numbers_match_across_families(eval_data):
    hx = load_problems(eval_data("humaneval-x", "humaneval_cpp.jsonl.gz"))
    me = load_problems(eval_data("multipl-e_from_deepseek-coder", "humaneval-php.jsonl"))
    mx = load_problems(eval_data("mxeval", "multilingual_humaneval", "HumanEval_php_v1.1.jsonl"))
    assert hx[12].task_id == "CPP/12" and hx[12].number == 12
    strlen = next(p for p in me if p.task_id == "HumanEval_23_strlen")
    assert strlen.number == 23 and strlen.stop_tokens == ("\nfunction", "\n?>", "\n//", "\n#")
    assert next(p for p in mx if p.task_id == "HumanEval_php/2").number == 2


def test_assembly_per_family(eval_data):
    me = load_problems(eval_data("multipl-e_from_deepseek-coder", "humaneval-php.jsonl"))[0]
    assert assemble(me, "BODY").source == me.prompt + "BODY" + "\n" + me.tests
    mx = load_problems(eval_data("mxeval", "mbxp", "mbpp_release_v1.jsonl"))[0]
    assert assemble(mx, "BODY").source == mx.prompt + "BODY" + mx.tests + f"\ncheck({mx.entry_point})\n"
    mxphp = load_problems(eval_data("mxeval", "mbxp", "mbphp_release_v1.2.jsonl"))[0]
    assert assemble(mxphp, "B").source == mxphp.prompt + "B" + mxphp.tests
    go = load_problems(eval_data("humaneval-x", "humaneval_go.jsonl.gz"))[0]
    prog = assemble(go, go.canonical_solution)
    assert prog.mode == "gotest" and prog.source.startswith(go.extra["test_setup"])
    assert prog.source.count('"math"') == 1 and "github.com/stretchr/testify/assert" in prog.source
    assert prog.source.endswith(go.canonical_solution + "\n" + go.tests)
    py = load_problems(eval_data("humaneval-x", "humaneval_python.jsonl.gz"))[0]
    assert py.entry_point == "has_close_elements"
    assert assemble(py, "X").source.rstrip().endswith("check(has_close_elements)")
    assert assemble(py, "X").source.count("\ncheck(has_close_elements)") == 1


def test_bad_input_names_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "a", "prompt": "x", "test": "y", "entry_point": "f", "language": "python"}\n{oops\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2"):
        load_problems(bad, family="mxeval")
    missing = tmp_path / "missing.jsonl.gz"
    with gzip.open(missing, "wt") as fh:
        fh.write(json.dumps({"task_id": "MBPP/1", "prompt": "x", "entry_point": "f"}) + "\n")
    with pytest.raises(DatasetError, match=r"missing.jsonl.gz.*MBPP/1.*'test'"):
        load_problems(missing, family="mxeval")
    with pytest.raises(DatasetError, match="sample 1.*'completion'"):
        load_samples([{"task_id": "a"}])
    with pytest.raises(FileNotFoundError):
        load_problems(tmp_path / "nope.jsonl", family="mxeval")
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"task_id": "MBPP/1", "prompt": "def f():\\n", "test": "def check(c):\\n    pass\\n", '
                  '"entry_point": "f", "language": "python"}\n')
    with pytest.raises(DatasetError, match="not in .*ok.jsonl.*MBPP/999"):
        evaluate_samples(ok, [{"task_id": "MBPP/999", "completion": "    return 1\n"}], family="mxeval")


# ---- known-unpassable problems: a correct completion still fails, and they are skipped by default
DEFECTS = [
    (("multipl-e_from_deepseek-coder", "humaneval-php.jsonl"), "HumanEval_23_strlen",
     "    return mb_strlen($string);\n}\n", "php"),
    (("multipl-e_from_deepseek-coder", "humaneval-cs.jsonl"), "HumanEval_12_longest",
     "        if (strings.Count == 0) return null;\n        string best = strings[0];\n"
     "        foreach (var s in strings) if (s.Length > best.Length) best = s;\n        return best;\n", "mcs"),
    (("mxeval", "multilingual_humaneval", "HumanEval_php_v1.1.jsonl"), "HumanEval_php/2",
     "    return $number - floor($number);\n}\n", "php"),
    (("mxeval", "multilingual_humaneval", "HumanEval_go_v1.jsonl"), "HumanEval_go/12",
     "\tif len(strings) == 0 {\n\t\treturn nil\n\t}\n\tbest := strings[0]\n\tfor _, s := range strings {\n"
     "\t\tif len(s) > len(best) {\n\t\t\tbest = s\n\t\t}\n\t}\n\treturn best\n}\n", "go"),
]


@pytest.mark.parametrize("parts,task_id,completion,tool", DEFECTS, ids=[d[1] for d in DEFECTS])
def test_known_unpassable_fail_with_correct_completion_and_are_excluded(eval_data, tools, parts, task_id,
                                                                        completion, tool):
    tools(tool)
    path = eval_data(*parts)
    sample = [{"task_id": task_id, "completion": completion}]
    forced = evaluate_samples(path, sample, task_ids=[task_id], exclude_unpassable=False, workers=1)
    assert forced.results["passed"].tolist() == [False]
    default = evaluate_samples(path, sample, task_ids=[task_id], workers=1)
    assert task_id in default.excluded and default.results.empty
