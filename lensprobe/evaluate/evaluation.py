"""``evaluate_samples``: load problems + completions, execute them sandboxed, score pass@k."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from lensprobe.languages import canonical_language
from lensprobe.progress import progress_bar

from .datasets import FAMILIES, DatasetError, Problem, load_problems, load_samples
from .defects import unpassable
from .runners import Executor, RunResult
from .sandbox import SandboxReport
from .scoring import mean_pass_at_k, per_problem_table

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("task_id", "completion_id", "language", "status", "passed", "exit_code", "output", "seconds",
                  "compile_seconds")


@dataclass
class EvalResult:
    """Per-completion results of one (family, language) evaluation."""

    family: str
    language: str
    results: pd.DataFrame
    excluded: dict[str, str] = field(default_factory=dict)  #: task_id -> reason (known unpassable)
    missing: list[str] = field(default_factory=list)  #: problems without a completion
    sandbox: SandboxReport | None = None

    def pass_at(self, k: int = 1) -> float:
        """Mean unbiased pass@k over the evaluated problems."""
        return mean_pass_at_k(self.results, k)

    def per_problem(self, ks: Iterable[int] = (1,)) -> pd.DataFrame:
        return per_problem_table(self.results, ks)

    def solved(self) -> dict[str, bool]:
        """task_id -> whether any completion passed."""
        return self.results.groupby("task_id", sort=False)["passed"].any().to_dict()

    def status_counts(self) -> dict[str, int]:
        return self.results["status"].value_counts().to_dict()

    def to_dataframe(self) -> pd.DataFrame:
        df = self.results.copy()
        df.insert(0, "family", self.family)
        return df

    def summary(self, ks: Iterable[int] = (1,)) -> dict[str, Any]:
        n = int(self.results.groupby("task_id").size().min()) if len(self.results) else 0
        out: dict[str, Any] = {"family": self.family, "language": self.language,
                               "problems": int(self.results["task_id"].nunique()), "samples": len(self.results)}
        for k in ks:
            out[f"pass@{k}"] = self.pass_at(k) if len(self.results) and k <= n else float("nan")
        out["excluded"] = sorted(self.excluded)
        out["missing"] = len(self.missing)
        out["status"] = self.status_counts()
        return out


def _problems(problems: str | Path | Sequence[Problem], family: str | None, language: str | None) -> list[Problem]:
    if isinstance(problems, (str, Path)):
        return load_problems(problems, family=family, language=language)
    out = list(problems)
    if not out or not all(isinstance(p, Problem) for p in out):
        raise DatasetError("problems must be a path or a non-empty list of Problem")
    return out


def evaluate_samples(problems_path: str | Path | Sequence[Problem],
                     samples: str | Path | Iterable[Mapping[str, Any]] | None = None, *,
                     family: str | None = None, language: str | None = None, workers: int = 2,
                     timeout: float = 10.0, compile_timeout: float = 60.0, exclude_unpassable: bool = True,
                     task_ids: Iterable[str] | None = None, sandbox: str = "auto",
                     cache_dir: str | Path | None = None, python: str | None = None,
                     progress: Callable[[int, int], None] | bool | None = None) -> EvalResult:
    """Execute completions against a benchmark file and score them.

    ``samples``: a JSONL path or dicts with ``task_id`` and ``completion`` (several per task for
    pass@k, k > 1); ``None`` runs the dataset's canonical solutions. ``family``: "humaneval-x",
    "multipl-e" or "mxeval" (inferred when omitted). Problems in the known-unpassable list are
    skipped unless ``exclude_unpassable=False``; they are listed in ``EvalResult.excluded``.
    ``task_ids`` restricts the run to those problems; samples of other problems are then ignored.
    ``progress``: True draws a bar on stderr (programs run, ETA); a callable receives
    ``(done, total)`` after each program; None/False: silent.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    lang = canonical_language(language) if language else None
    problems = _problems(problems_path, family, lang)
    source = str(problems_path) if isinstance(problems_path, (str, Path)) else "the given problems"
    fam = problems[0].family
    lang = problems[0].language
    by_id = {p.task_id: p for p in problems}
    if task_ids is not None:
        wanted = list(dict.fromkeys(task_ids))
        unknown = [t for t in wanted if t not in by_id]
        if unknown:
            raise DatasetError(f"{source}: unknown task_id(s) {unknown[:5]}")
        problems = [by_id[t] for t in wanted]
    excluded = unpassable(fam, lang) if exclude_unpassable else {}
    excluded = {t: r for t, r in excluded.items() if t in by_id and any(p.task_id == t for p in problems)}
    problems = [p for p in problems if p.task_id not in excluded]

    jobs: list[tuple[Problem, str, int]] = []
    missing: list[str] = []
    if samples is None:
        for p in problems:
            if p.canonical_solution is None:
                missing.append(p.task_id)
            else:
                jobs.append((p, p.canonical_solution, 0))
    else:
        recs = load_samples(samples)
        counts: dict[str, int] = {}
        unknown = sorted({r["task_id"] for r in recs if r["task_id"] not in by_id})
        if unknown:
            raise DatasetError(f"samples name task_id(s) not in {source}: {unknown[:5]}")
        keep = {p.task_id: p for p in problems}
        for r in recs:
            t = r["task_id"]
            if t not in keep:
                continue
            cid = counts.get(t, 0)
            counts[t] = cid + 1
            jobs.append((keep[t], r["completion"], cid))
        missing = [p.task_id for p in problems if p.task_id not in counts]
    executor = Executor(workers=workers, timeout=timeout, compile_timeout=compile_timeout, sandbox=sandbox,
                        cache_dir=cache_dir, python=python)
    for line in executor.report.lines():
        log.info(line)
    bar = None
    if progress is True:
        bar = progress_bar(total=len(jobs), desc=f"eval {fam} {lang}", unit="program")

        def progress(done: int, total: int) -> None:  # called once per finished program
            bar.update(1)
    elif progress is False:
        progress = None
    elif progress is not None and not callable(progress):
        raise ValueError(f"progress must be a bool, a callable or None, got {progress!r}")
    try:
        results: list[RunResult] = executor.run_jobs(jobs, progress=progress) if jobs else []
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame([r.to_dict() for r in results], columns=list(RESULT_COLUMNS))
    df["passed"] = df["passed"].astype(bool)
    return EvalResult(fam, lang, df, excluded, missing, executor.report)
