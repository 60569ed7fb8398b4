"""Load HumanEval-X, MultiPL-E and mxeval (Multi-HumanEval, MBXP) problem files into one schema.

Files are read by path (``.jsonl`` or ``.jsonl.gz``); nothing is downloaded or copied.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from lensprobe.files import iter_jsonl
from lensprobe.languages import UnknownLanguageError, canonical_language

FAMILIES: tuple[str, ...] = ("humaneval-x", "multipl-e", "mxeval")
# task-id prefixes; languages lensprobe has no entry for (lensprobe.languages) are named so that
# loading their files fails with that language's name
_MBXP_PREFIX = {"MBPP": "python", "MBPHP": "php", "MBCSP": "csharp", "MBGP": "go", "MBCPP": "cpp",
                "MBJP": "java", "MBJSP": "javascript"}
_HEX_PREFIX = {"Python": "python", "CPP": "cpp", "Go": "go", "Java": "java", "JavaScript": "javascript",
               "Rust": "rust"}


class DatasetError(ValueError):
    """A problem or sample file is malformed; the message names the file and the field."""


def _language(name: str, path: Path) -> str:
    """The canonical name of a language named in (or for) the file ``path``."""
    try:
        return canonical_language(name)
    except UnknownLanguageError as exc:
        raise DatasetError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Problem:
    """One benchmark problem, whatever file family it came from.

    ``program(completion)`` (see :mod:`lensprobe.evaluate.assembly`) turns prompt + completion + tests
    into the file that is executed. ``number`` is the problem's index in its source benchmark
    (HumanEval #, MBPP #), which matches problems across languages.
    """

    task_id: str
    family: str
    language: str
    prompt: str
    tests: str
    entry_point: str | None = None
    canonical_solution: str | None = None
    stop_tokens: tuple[str, ...] = ()
    benchmark: str = "humaneval"  # "humaneval" or "mbxp"
    number: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``.jsonl`` / ``.jsonl.gz`` file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    records = [rec for _, rec in iter_jsonl(path, error=DatasetError)]
    if not records:
        raise DatasetError(f"{path}: no records")
    return records


def _number(task_id: str) -> int | None:
    m = re.search(r"(?:/|HumanEval_)(\d+)", task_id)
    return int(m.group(1)) if m else None


def _require(rec: Mapping[str, Any], key: str, path: Path, lineno: int) -> Any:
    if key not in rec or rec[key] is None:
        raise DatasetError(f"{path}: record {lineno} ({rec.get('task_id', '?')}): missing field {key!r}")
    return rec[key]


def _python_entry_point(declaration: str) -> str | None:
    names = re.findall(r"^def\s+(\w+)\s*\(", declaration, flags=re.M)
    return names[-1] if names else None


def infer_family(records: list[Mapping[str, Any]]) -> str:
    rec = records[0]
    tid = str(rec.get("task_id", ""))
    if "stop_tokens" in rec and ("tests" in rec or tid.startswith("HumanEval_")):
        return "multipl-e"
    if "declaration" in rec and ("/" in tid and tid.split("/")[0] in _HEX_PREFIX):
        return "humaneval-x"
    if "entry_point" in rec:
        return "mxeval"
    raise DatasetError("cannot tell the dataset family from the first record; pass family=")


def _infer_language(rec: Mapping[str, Any], path: Path) -> str:
    if rec.get("language"):
        return _language(rec["language"], path)
    tid = str(rec.get("task_id", ""))
    prefix = tid.split("/")[0]
    if prefix in _HEX_PREFIX:
        return _language(_HEX_PREFIX[prefix], path)
    if prefix in _MBXP_PREFIX:
        return _language(_MBXP_PREFIX[prefix], path)
    m = re.search(r"(?:humaneval[-_])(\w+?)(?:[-_.]|$)", path.name.lower())
    if m:
        return _language(m.group(1), path)
    raise DatasetError(f"{path}: cannot infer the language of {tid!r}; pass language=")


def load_problems(path: str | Path, *, family: str | None = None, language: str | None = None) -> list[Problem]:
    """Problems of one file, in file order.

    ``family`` is one of :data:`FAMILIES` (inferred from the records when omitted); ``language``
    overrides the language read from the records / task ids / file name.
    """
    path = Path(path)
    records = read_jsonl(path)
    if family is None:
        family = infer_family(records)
    if family not in FAMILIES:
        raise DatasetError(f"unknown family {family!r}; expected one of {FAMILIES}")
    lang = _language(language, path) if language is not None else _infer_language(records[0], path)
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, rec in enumerate(records, 1):
        tid = str(_require(rec, "task_id", path, i))
        if tid in seen:
            raise DatasetError(f"{path}: duplicate task_id {tid!r}")
        seen.add(tid)
        prompt = _require(rec, "prompt", path, i)
        benchmark = "mbxp" if tid.split("/")[0] in _MBXP_PREFIX else "humaneval"
        if family == "multipl-e":
            tests = rec.get("tests", rec.get("test"))
            if tests is None:
                raise DatasetError(f"{path}: record {i} ({tid}): missing field 'tests'")
            extra = {}
            entry = None
            if "declaration" in rec:  # the HumanEval-X-style Python file of the snapshot
                entry = _python_entry_point(rec["declaration"])
                extra = {"declaration": rec["declaration"]}
            problems.append(Problem(tid, family, lang, prompt, tests, entry, rec.get("canonical_solution"),
                                    tuple(rec.get("stop_tokens") or ()), benchmark, _number(tid), extra))
        elif family == "humaneval-x":
            tests = _require(rec, "test", path, i)
            decl = rec.get("declaration", "")
            extra = {k: rec[k] for k in ("declaration", "import", "test_setup", "example_test") if k in rec}
            entry = _python_entry_point(decl) if lang == "python" else None
            problems.append(Problem(tid, family, lang, prompt, tests, entry, rec.get("canonical_solution"),
                                    (), benchmark, _number(tid), extra))
        else:  # mxeval
            tests = _require(rec, "test", path, i)
            entry = rec.get("entry_point")
            if lang == "python" and not entry:
                raise DatasetError(f"{path}: record {i} ({tid}): missing field 'entry_point'")
            problems.append(Problem(tid, family, lang, prompt, tests, entry, rec.get("canonical_solution"),
                                    (), benchmark, _number(tid), {}))
    return problems


def load_samples(samples: str | Path | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Samples as dicts with ``task_id`` and ``completion`` (a JSONL path or an iterable of dicts)."""
    if isinstance(samples, (str, Path)):
        source = str(samples)
        records = read_jsonl(samples)
    else:
        source = "samples"
        records = [dict(r) for r in samples]
    out = []
    for i, rec in enumerate(records, 1):
        for key in ("task_id", "completion"):
            if key not in rec or not isinstance(rec[key], str):
                raise DatasetError(f"{source}: sample {i}: missing or non-string field {key!r}")
        out.append(dict(rec))
    return out
