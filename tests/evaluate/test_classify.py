"""Statuses are read from what ended the program, per language: a wrong answer the harness caught is
``failed``, an exception the completion raised (ValueError, MemoryError, a Go panic, a C++ throw...)
is ``runtime_error``, whatever words the traceback quotes. Real programs of the benchmarks' harnesses
(HumanEval-X, MultiPL-E, MBXP), run in the sandbox."""
from __future__ import annotations

import pytest

from lensprobe.evaluate import load_problems
from lensprobe.evaluate.assembly import assemble
from lensprobe.evaluate.datasets import Problem
from lensprobe.evaluate.runners import Executor, classify, python_exception
from lensprobe.evaluate.sandbox import Sandbox


@pytest.fixture(scope="module")
def ex():
    return Executor(workers=1, timeout=20)


@pytest.fixture(scope="module")
def box():
    with Sandbox() as b:
        yield b


def _status(ex, box, problem, completion):
    r = ex.run_program(box, assemble(problem, completion))
    return r.status, r.output


# the traceback of each crash quotes the harness's `assert candidate(...)` line: the old rule called them failed
PY_CHECK = "\ndef check(candidate):\n    assert candidate(3) == 4\n"


@pytest.mark.parametrize("body, status, exception", [
    ("    return x + 1\n", "passed", None),
    ("    return x\n", "failed", "AssertionError"),
    ("    raise ValueError('assert failed: not a test')\n", "runtime_error", "ValueError"),
    ("    return bytearray(16 * 2**30)\n", "runtime_error", "MemoryError"),
    ("    import sys\n    sys.exit(3)\n", "runtime_error", None),
    ("    return {}[x]\n", "runtime_error", "KeyError"),
])
def test_python_status_is_the_exception_type(ex, box, body, status, exception):
    problem = Problem("t/0", "humaneval", "python", "def f(x):\n", PY_CHECK, "f")
    got, output = _status(ex, box, problem, body)
    assert got == status, output
    assert python_exception(output) == exception


def test_python_exception_reads_the_last_traceback():
    chained = ("Traceback (most recent call last):\n  File \"p.py\", line 3, in check\n    assert c() == 1\n"
               "AssertionError\n\nDuring handling of the above exception, another exception occurred:\n\n"
               "Traceback (most recent call last):\n  File \"p.py\", line 9, in <module>\n    assert check(f)\n"
               "           ^^^^^^^^\nRecursionError: maximum recursion depth exceeded\n")
    assert python_exception(chained) == "RecursionError"
    assert classify("python", 1, False, chained) == "runtime_error"
    assert classify("python", 1, False, chained.split("\n\nDuring")[0]) == "failed"
    assert classify("python", -9, False, "") == "runtime_error"            # killed: no traceback
    assert classify("python", 0, False, "assert anything") == "passed"
    assert classify("python", 1, True, "AssertionError") == "timeout"


@pytest.mark.parametrize("family, file, index, cases", [
    ("humaneval-x", "humaneval-x/humaneval_python.jsonl.gz", 2,
     [("    return 5\n", "failed"), ("    raise ValueError('boom')\n", "runtime_error")]),
    ("mxeval", "mxeval/mbxp/mbphp_release_v1.2.jsonl", 0,
     [("    return 5;\n}\n", "failed"), ("    throw new Exception('boom');\n}\n", "runtime_error")]),
    ("multipl-e", "multipl-e_from_deepseek-coder/humaneval-php.jsonl", 2,
     [("    return false;\n}\n", "failed"), ("    return intdiv(1, 0);\n}\n", "runtime_error")]),
    ("humaneval-x", "humaneval-x/humaneval_cpp.jsonl.gz", 0,
     [("    return false;\n}\n", "failed"), ("    throw std::invalid_argument(\"boom\");\n}\n", "runtime_error")]),
    ("mxeval", "mxeval/mbxp/mbcpp_release_v1.2.jsonl", 0,
     [("    return 5;\n}\n", "failed"), ("    throw std::runtime_error(\"boom\");\n}\n", "runtime_error")]),
    ("humaneval-x", "humaneval-x/humaneval_go.jsonl.gz", 0,
     [("    return false\n}\n", "failed"), ("    panic(\"boom\")\n}\n", "runtime_error")]),
    ("mxeval", "mxeval/mbxp/mbgp_release_v1.1.jsonl", 0,
     [("\treturn 5\n}\n", "failed"), ("\tvar a []int\n\treturn a[3]\n}\n", "runtime_error")]),
    ("mxeval", "mxeval/mbxp/mbcsp_release_v1.2.jsonl", 0,
     [("        return 5;\n    }\n", "failed"),
      ("        throw new System.ArgumentException(\"boom\");\n    }\n", "runtime_error")]),
])
def test_harness_failures_versus_crashes_per_language(ex, box, eval_data, tools, family, file, index, cases):
    problem = load_problems(eval_data(*file.split("/")), family=family)[index]
    tools(*{"php": ("php",), "cpp": ("g++",), "go": ("go",), "csharp": ("mcs", "mono")}.get(problem.language, ()))
    for completion, status in cases:
        got, output = _status(ex, box, problem, completion)
        assert got == status, (problem.task_id, completion, output[-1500:])


def test_generic_languages_keep_the_harness_markers():
    assert classify("shell", 1, False, "assert failed") == "failed"
    assert classify("shell", 3, False, "segmentation fault") == "runtime_error"
