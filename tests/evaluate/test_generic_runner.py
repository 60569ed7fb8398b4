"""A language without a tuned runner is built and run with the commands of its lensprobe.languages entry."""
from __future__ import annotations

import shutil

import pytest

import lensprobe.evaluate.runners as runners
from lensprobe.evaluate.assembly import Program
from lensprobe.evaluate.runners import Executor
from lensprobe.evaluate.sandbox import Sandbox
from lensprobe.languages import Language, language_info

# a stand-in for a new language: POSIX shell, "built" by copying the source (so the build step runs)
SHELL = Language("shell", "Shell", ("sh",), (".sh",), "#", ("sh", "cp"), build=("cp", "prog.sh", "built.sh"),
                 run=("sh", "built.sh"))


@pytest.fixture
def shell_language(monkeypatch):
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    monkeypatch.setattr(runners, "language_info", lambda name: SHELL if name == "shell" else language_info(name))


@pytest.fixture(scope="module")
def ex():
    return Executor(workers=1, timeout=5.0)


@pytest.mark.parametrize("source, status", [
    ("echo PASS one\n", "passed"),
    ("echo 'assert failed' >&2; exit 1\n", "failed"),
    ("exit 3\n", "runtime_error"),
    ("sleep 30\n", "timeout"),
])
def test_generic_runner_builds_and_runs(shell_language, ex, source, status):
    with Sandbox() as box:
        r = ex.run_program(box, Program(source, "main", "shell"))
    assert r.status == status, r.output
    assert r.language == "shell" and (r.output.strip() == "PASS one") == (status == "passed")


def test_a_failing_build_is_a_compile_error(monkeypatch, ex):
    broken = Language("shell", "Shell", (), (".sh",), "#", ("sh",), build=("false",), run=("sh", "prog.sh"))
    monkeypatch.setattr(runners, "language_info", lambda name: broken)
    with Sandbox() as box:
        r = ex.run_program(box, Program("echo hi\n", "main", "shell"))
    assert r.status == "compile_error" and not r.passed


def test_an_entry_without_a_run_command_is_refused(monkeypatch, ex):
    monkeypatch.setattr(runners, "language_info", lambda name: Language("shell", "Shell", (), (".sh",), "#", ()))
    with Sandbox() as box, pytest.raises(ValueError, match="'shell'.*no 'run' command"):
        ex.run_program(box, Program("echo hi\n", "main", "shell"))
