"""Build and run assembled programs per language with the Debian toolchains, in parallel.

Compile caching: C++ programs get a precompiled header of the standard headers they include
(built once per header set, compiler version and flags, under the cache directory); Go builds share
a ``GOCACHE`` per sandbox uid; HumanEval-X Go tests use Debian's testify in GOPATH mode
(``GO111MODULE=off``, ``GOPATH=/usr/share/gocode``, ``GOPROXY=off``: nothing is downloaded).
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import queue
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

from lensprobe.languages import LANGUAGES, language_info

from .assembly import Program, assemble
from .datasets import Problem
from .sandbox import GiB, Limits, Sandbox, sandbox_report

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("passed", "failed", "timeout", "compile_error", "runtime_error")
CXX_FLAGS: tuple[str, ...] = ("-std=gnu++17", "-O0", "-w")
GOPATH_DEFAULT = "/usr/share/gocode"
_FAIL_MARKERS = re.compile(r"assert|test failed|test case|--- FAIL|Error at \d+th|exception --- test|did not pass",
                           re.I)


@dataclass
class RunResult:
    """Outcome of one completion."""

    task_id: str
    completion_id: int
    language: str
    status: str
    passed: bool
    exit_code: int | None
    output: str
    seconds: float
    compile_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def default_cache_dir() -> Path:
    """``$LENSPROBE_EVAL_CACHE`` or ``/var/tmp/lensprobe-eval-cache-<uid>`` (readable by the sandbox uid)."""
    env = os.environ.get("LENSPROBE_EVAL_CACHE")
    return Path(env) if env else Path("/var/tmp") / f"lensprobe-eval-cache-{os.getuid()}"


def missing_tools(language: str) -> list[str]:
    """The executables ``language`` needs (``Language.tools`` of :mod:`lensprobe.languages`) that are
    not on ``PATH``."""
    return [t for t in language_info(language).tools if shutil.which(t) is None]


class Executor:
    """Runs (problem, completion) jobs with ``workers`` sandboxes in parallel.

    ``timeout`` bounds each program's run (wall clock; CPU limit is ``timeout + 1`` s);
    ``compile_timeout`` bounds each compile step.
    """

    def __init__(self, *, workers: int = 2, timeout: float = 10.0, compile_timeout: float = 60.0,
                 sandbox: str = "auto", cache_dir: str | Path | None = None, python: str | None = None,
                 memory: int = 4 * GiB, processes: int = 128, use_pch: bool = True) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout <= 0 or compile_timeout <= 0:
            raise ValueError("timeout and compile_timeout must be > 0")
        self.workers, self.timeout, self.compile_timeout = workers, float(timeout), float(compile_timeout)
        self.sandbox_mode = sandbox
        self.report = sandbox_report(sandbox)
        if not (self.report.network_isolated and self.report.unprivileged_uid):
            for line in self.report.lines():
                log.warning(line)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.cache_dir, 0o755)
        self.python = python or sys.executable
        self._python_paths = _python_prefixes(self.python)
        self.memory, self.processes, self.use_pch = memory, processes, use_pch
        self._include_dir = self._install_shims()

    # ---------------------------------------------------------------- caches
    def _install_shims(self) -> Path:
        inc = self.cache_dir / "include"
        (inc / "boost").mkdir(parents=True, exist_ok=True)
        shim_dir = resources.files("lensprobe.evaluate") / "shims"
        text = (shim_dir / "boost_any.hpp").read_text()
        target = inc / "boost" / "any.hpp"
        if not target.exists() or target.read_text() != text:
            tmp = target.with_suffix(".tmp%d" % os.getpid())
            tmp.write_text(text)
            os.replace(tmp, target)
        for p in (inc, inc / "boost"):
            os.chmod(p, 0o755)
        return inc

    def _shim_path(self, name: str) -> Path:
        """A shim source copied into the cache (the package may sit where the sandbox cannot see,
        e.g. a checkout under /tmp, which the sandbox replaces by a private tmpfs)."""
        text = (resources.files("lensprobe.evaluate") / "shims" / name).read_text()
        target = self.cache_dir / "shims" / name
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(target.parent, 0o755)
            tmp = target.with_suffix(f"{target.suffix}.tmp{os.getpid()}-{threading.get_ident()}")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        return target

    def _pch(self, source: str) -> Path | None:
        """A precompiled header for the standard headers ``source`` includes (None: compile plainly)."""
        if not self.use_pch:
            return None
        lines = source.splitlines()
        headers, last = [], -1
        for i, line in enumerate(lines):
            m = re.match(r"\s*#\s*include\s*<([A-Za-z0-9_+./-]+)>", line)
            if m:
                last = i
                h = m.group(1)
                if ".." not in h and not h.startswith(("boost/", "assert", "cassert")) and h not in headers:
                    headers.append(h)
        if not headers:
            return None
        if any(re.match(r"\s*#\s*define\b", line) for line in lines[: last + 1]):
            return None
        key = hashlib.sha256(("\n".join(sorted(headers)) + "|" + " ".join(CXX_FLAGS) + "|" +
                              _gxx_version()).encode()).hexdigest()[:16]
        pch_dir = self.cache_dir / "pch"
        pch_dir.mkdir(exist_ok=True)
        os.chmod(pch_dir, 0o755)
        header = pch_dir / f"pch-{key}.h"
        gch = pch_dir / f"pch-{key}.h.gch"
        bad = pch_dir / f"pch-{key}.failed"
        if gch.exists():
            return header
        if bad.exists():
            return None
        with open(pch_dir / f"pch-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if gch.exists():
                return header
            header.write_text("".join(f"#include <{h}>\n" for h in sorted(headers)))
            tmp = pch_dir / f"pch-{key}.h.gch.tmp{os.getpid()}"
            r = subprocess.run(["g++", *CXX_FLAGS, "-I", str(self._include_dir), "-x", "c++-header", str(header),
                                "-o", str(tmp)], capture_output=True, timeout=300)
            if r.returncode != 0:
                bad.write_text(r.stderr.decode(errors="replace")[-2000:])
                tmp.unlink(missing_ok=True)
                return None
            os.chmod(tmp, 0o644)
            os.replace(tmp, gch)
        return header

    def _gocache(self, sandbox: Sandbox) -> Path:
        """One Go build cache shared by all sandbox uids (group-writable; see SANDBOX_GID)."""
        d = self.cache_dir / "go-build"
        if not d.exists() or (d.stat().st_mode & 0o2775) != 0o2775:
            sandbox.prepare_shared_dir(d)
        return d

    def warm_go_cache(self, sandbox: Sandbox) -> None:
        """Compile testify into the shared Go build cache once (a cold build takes seconds to a minute)."""
        cache = self._gocache(sandbox)
        marker = cache / ".lensprobe-testify-warm"
        if marker.exists():
            return
        with open(self.cache_dir / "go-warm.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if marker.exists():
                return
            src = ('package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n\n'
                   'func TestWarm(t *testing.T) {\n    assert.Equal(t, 1, 1)\n}\n')
            r = self.run_program(sandbox, Program(src, "gotest", "go"), task_id="warm-up",
                                 compile_timeout=max(self.compile_timeout, 600.0))
            if r.passed:
                marker.write_text("ok\n")
            else:
                log.warning("go: warming the build cache failed (%s): %s", r.status, r.output[-500:])

    # ---------------------------------------------------------------- one job
    def check_tools(self, languages: Iterable[str]) -> None:
        for lang in set(languages):
            if lang not in LANGUAGES:
                raise ValueError(f"no runner for language {lang!r}; supported: {sorted(LANGUAGES)}")
            miss = missing_tools(lang)
            if miss:
                raise RuntimeError(f"{lang}: missing toolchain executable(s) {miss} (see scripts/setup.sh)")

    def _limits(self, timeout: float, *, build: bool) -> Limits:
        return Limits(cpu_seconds=timeout + 1, address_space=(16 * GiB if build else self.memory),
                      processes=max(self.processes, 512) if build else self.processes)

    def run_program(self, sandbox: Sandbox, program: Program, *, task_id: str = "", completion_id: int = 0,
                    compile_timeout: float | None = None) -> RunResult:
        """Build (if needed) and run one program in a fresh directory."""
        lang = program.language
        compile_timeout = compile_timeout or self.compile_timeout
        with tempfile.TemporaryDirectory(prefix="lp-", dir=self._work_root()) as tmp:
            work = Path(tmp)
            writable: list[Path] = []
            reveal: list[Path] = []
            env: dict[str, str] = {}
            build: list[str] | None = None
            if lang == "python":
                (work / "prog.py").write_text(program.source)
                run = [self.python, "-I", "prog.py"]
                reveal = self._python_paths
            elif lang == "php":
                (work / "prog.php").write_text(program.source)
                run = ["php", "prog.php"]
            elif lang == "cpp":
                (work / "prog.cpp").write_text(program.source)
                build = ["g++", *CXX_FLAGS, "-I", str(self._include_dir)]
                pch = self._pch(program.source)
                if pch is not None:
                    build += ["-include", str(pch)]
                build += ["prog.cpp", "-o", "prog"]
                if "openssl/" in program.source:
                    build += ["-lcrypto"]
                run = ["./prog"]
            elif lang == "go":
                env = {"GO111MODULE": "off", "GOPATH": GOPATH_DEFAULT, "GOPROXY": "off", "GOFLAGS": "",
                       "CGO_ENABLED": "0", "GOCACHE": str(self._gocache(sandbox)), "GOTOOLCHAIN": "local"}
                writable = [Path(env["GOCACHE"])]
                if program.mode == "gotest":
                    (work / "prog_test.go").write_text(program.source)
                    build = ["go", "test", "-c", "-o", "prog.test", "."]
                    run = ["./prog.test"]
                else:
                    (work / "main.go").write_text(program.source)
                    build = ["go", "build", "-o", "prog", "main.go"]
                    run = ["./prog"]
            elif lang == "csharp":
                (work / "prog.cs").write_text(program.source)
                build = ["mcs", "-nologo", "-warn:0", "-d:DEBUG", "-r:System.Numerics.dll", "-out:prog.exe", "prog.cs"]
                if "KellermanSoftware.CompareNetObjects" in program.source:
                    build.append(str(self._shim_path("CompareNetObjects.cs")))
                run = ["mono", "--debug", "prog.exe"]
                # mono's Debug.Assert is silent by default: route failures to stderr, classify below
                env = {"MONO_TRACE_LISTENER": "Console.Error"}
            else:  # a language of lensprobe.languages without a tuned runner: its build/run commands
                spec = language_info(lang)
                if not spec.run:
                    raise ValueError(f"no runner for language {lang!r}: its entry in lensprobe.languages has no "
                                     f"'run' command (docs/adding-a-language.md)")
                (work / f"prog{spec.extensions[0]}").write_text(program.source)
                build = list(spec.build) or None
                run = list(spec.run)
            sandbox.prepare_dir(work)
            compile_seconds = 0.0
            if build is not None:
                b = sandbox.run(build, workdir=work, timeout=compile_timeout, env=env, writable=writable,
                                limits=self._limits(compile_timeout, build=True))
                compile_seconds = b.seconds
                if b.timed_out:
                    return RunResult(task_id, completion_id, lang, "timeout", False, b.returncode,
                                     "[compile timed out]\n" + b.output, 0.0, compile_seconds)
                if b.returncode != 0:
                    return RunResult(task_id, completion_id, lang, "compile_error", False, b.returncode, b.output,
                                     0.0, compile_seconds)
            r = sandbox.run(run, workdir=work, timeout=self.timeout, env=env, reveal=reveal,
                            limits=self._limits(self.timeout, build=False))
            status = classify(lang, r.returncode, r.timed_out, r.output)
            return RunResult(task_id, completion_id, lang, status, status == "passed", r.returncode, r.output,
                             r.seconds, compile_seconds)

    def _work_root(self) -> str:
        root = self.cache_dir / "work"  # not under /tmp: the sandbox mounts a private /tmp
        root.mkdir(exist_ok=True)
        os.chmod(root, 0o711)
        return str(root)

    # ---------------------------------------------------------------- many jobs
    def run_jobs(self, jobs: Sequence[tuple[Problem, str, int]], *,
                 progress: Callable[[int, int], None] | None = None) -> list[RunResult]:
        """Results for ``(problem, completion, completion_id)`` jobs, in job order."""
        self.check_tools(p.language for p, _, _ in jobs)
        slots: queue.Queue[Sandbox] = queue.Queue()
        boxes = [Sandbox(mode=self.sandbox_mode) for _ in range(min(self.workers, max(1, len(jobs))))]
        for b in boxes:
            slots.put(b)
        if any(p.language == "go" for p, _, _ in jobs):
            self.warm_go_cache(boxes[0])
        done = [0]

        def one(job: tuple[Problem, str, int]) -> RunResult:
            problem, completion, cid = job
            box = slots.get()
            try:
                program = assemble(problem, completion)
                return self.run_program(box, program, task_id=problem.task_id, completion_id=cid)
            finally:
                slots.put(box)
                done[0] += 1
                if progress:
                    progress(done[0], len(jobs))

        try:
            with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
                return list(pool.map(one, jobs))
        finally:
            for b in boxes:
                b.close()


def classify(language: str, returncode: int | None, timed_out: bool, output: str) -> str:
    """passed / failed (the harness's test found a wrong answer) / timeout / runtime_error (a crash:
    an exception the completion raised, out of memory, a signal).

    A non-zero exit is read per language from what ended the program, never from words anywhere
    in the output (a traceback quotes the test line ``assert candidate(...)`` whatever was
    raised): Python, the exception type on the last traceback's final line (``AssertionError``:
    failed); PHP, C++, C#, the uncaught exception or failed ``assert`` and whether it is the
    harness's own (MultiPL-E's ``Test failed!``, MBXP's ``test case N did not pass``, an
    ``assert`` in ``main``); Go, a ``panic`` (the harness's message: failed, else a crash) before
    ``--- FAIL``. Languages without a rule fall back to the harness markers (docs/evaluate.md).
    """
    if timed_out:
        return "timeout"
    if returncode == 0:
        if language == "csharp" and ("System.Diagnostics.Debug.Assert" in output or "TraceInternal.Fail" in output):
            return "failed"
        return "passed"
    if returncode is None:
        return "runtime_error"
    rule = _FAILURE_RULES.get(language)
    if rule is None:
        return "failed" if _FAIL_MARKERS.search(output) else "runtime_error"
    return "failed" if rule(output) else "runtime_error"


_PY_TRACEBACK = "Traceback (most recent call last):"
_PY_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s|:$|$)")


def python_exception(output: str) -> str | None:
    """The exception type that ended a Python program: the last traceback's final line
    (``ValueError: boom`` -> ``ValueError``), None when the output has no traceback."""
    at = output.rfind(_PY_TRACEBACK)
    if at < 0:
        return None
    for line in output[at + len(_PY_TRACEBACK):].splitlines():
        if not line.strip() or line[0] in " \t":  # frames, source lines, carets
            continue
        m = _PY_EXCEPTION.match(line)
        return m.group("type").rsplit(".", 1)[-1] if m else None
    return None


def _python_failed(output: str) -> bool:
    return python_exception(output) == "AssertionError"


_PHP_UNCAUGHT = re.compile(r"Uncaught (?P<type>[\w\\]+): (?P<message>.*?) in \S+:\d+$", re.M)
_PHP_HARNESS = re.compile(r"(?:Test failed!|Error at \d+th assert statement\.)")


def _php_failed(output: str) -> bool:
    found = list(_PHP_UNCAUGHT.finditer(output))
    return bool(found) and found[-1]["type"] == "Exception" and bool(_PHP_HARNESS.fullmatch(found[-1]["message"]))


_CPP_ASSERT = re.compile(r"\bmain\(\): Assertion `")  # the harness's asserts are in main
_CPP_HARNESS = re.compile(r"what\(\):\s+Exception -- test case \d+ did not pass")


def _cpp_failed(output: str) -> bool:
    return bool(_CPP_ASSERT.search(output) or _CPP_HARNESS.search(output))


_GO_PANIC = re.compile(r"^panic: (?P<message>.*?)(?: \[recovered\])?$", re.M)
_GO_HARNESS = re.compile(r"Exception --- test case \d+ failed to pass")


def _go_failed(output: str) -> bool:
    panic = _GO_PANIC.search(output)
    if panic is not None:  # a test that panics is reported as "--- FAIL" too: the panic decides
        return bool(_GO_HARNESS.fullmatch(panic["message"]))
    if re.search(r"^fatal error: ", output, re.M):  # out of memory, deadlock
        return False
    return "--- FAIL" in output


_CS_UNHANDLED = re.compile(r"Unhandled Exception:\s*(?P<type>[\w.]+): (?P<message>[^\n]*)")
_CS_HARNESS = re.compile(r"Exception --- test case \d+ failed to pass")


def _csharp_failed(output: str) -> bool:
    unhandled = _CS_UNHANDLED.search(output)
    if unhandled is not None:
        return unhandled["type"] == "System.Exception" and bool(_CS_HARNESS.fullmatch(unhandled["message"].strip()))
    return "System.Diagnostics.Debug.Assert" in output or "TraceInternal.Fail" in output


_FAILURE_RULES: dict[str, Callable[[str], bool]] = {
    "python": _python_failed, "php": _php_failed, "cpp": _cpp_failed, "go": _go_failed, "csharp": _csharp_failed,
}


def _python_prefixes(python: str) -> list[Path]:
    """sys.prefix and sys.base_prefix of ``python`` (to reveal them inside the sandbox)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        prefixes = {sys.prefix, sys.base_prefix}
    else:
        out = subprocess.run([python, "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"python interpreter {python!r} does not run: {out.stderr[-500:]}")
        prefixes = set(out.stdout.split())
    return sorted(Path(p) for p in prefixes)


_GXX: list[str] = []


def _gxx_version() -> str:
    if not _GXX:
        try:
            _GXX.append(subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0])
        except (OSError, IndexError):
            _GXX.append("unknown")
    return _GXX[0]
