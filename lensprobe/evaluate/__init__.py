"""Functional-correctness evaluation: HumanEval-X, MultiPL-E and mxeval (Multi-HumanEval, MBXP)
in Python, PHP, C#, Go and C++, executed in a sandbox and scored with unbiased pass@k.

    res = evaluate_samples(path, samples=None, family="humaneval-x", workers=2, timeout=10.0)
    res.pass_at(1); res.results  # DataFrame: task_id, status, passed, exit_code, output, ...

See docs/evaluate.md.
"""
from __future__ import annotations

from .assembly import Program, assemble
from lensprobe.languages import LANGUAGES

from .datasets import FAMILIES, DatasetError, Problem, load_problems, load_samples
from .defects import BAD_CANONICAL, UNPASSABLE
from .evaluation import EvalResult, evaluate_samples
from .runners import STATUSES, Executor, RunResult
from .sandbox import Limits, Sandbox, SandboxReport, sandbox_report
from .scoring import PythonSpecificSubset, pass_at_k, per_problem_table, python_specific_subset

__all__ = [
    "evaluate_samples", "EvalResult", "Problem", "load_problems", "load_samples", "DatasetError", "FAMILIES",
    "LANGUAGES", "assemble", "Program", "Executor", "RunResult", "STATUSES", "Sandbox", "SandboxReport",
    "Limits", "sandbox_report", "pass_at_k", "per_problem_table", "python_specific_subset",
    "PythonSpecificSubset", "UNPASSABLE", "BAD_CANONICAL", "generate_completions",
]


def __getattr__(name: str):
    if name == "generate_completions":
        from .generation import generate_completions
        return generate_completions
    raise AttributeError(name)
