"""Sandboxed execution throughput: problems per second per language with 1 and 2 workers.

Runs canonical solutions (HumanEval-X for Python/C++/Go, MBXP for PHP/C#) through
:class:`lensprobe.evaluate.Executor`, after one warm-up pass (precompiled headers and the Go build
cache exist, as they do in steady state). Baselines side by side: the same jobs with
``sandbox="plain"`` (no bubblewrap namespaces; still a dropped uid and rlimits) and C++ without
the precompiled header.

    .venv/bin/python benchmarks/eval_exec.py [--problems 24] [--languages python,php,cpp,go,csharp]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from lensprobe.evaluate import Executor, load_problems, sandbox_report

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"
SOURCES = {
    "python": ("humaneval-x/humaneval_python.jsonl.gz", "humaneval-x"),
    "cpp": ("humaneval-x/humaneval_cpp.jsonl.gz", "humaneval-x"),
    "go": ("humaneval-x/humaneval_go.jsonl.gz", "humaneval-x"),
    "php": ("mxeval/mbxp/mbphp_release_v1.2.jsonl", "mxeval"),
    "csharp": ("mxeval/mbxp/mbcsp_release_v1.2.jsonl", "mxeval"),
}


def jobs_for(lang: str, n: int):
    path, fam = SOURCES[lang]
    probs = [p for p in load_problems(DATA / path, family=fam) if p.canonical_solution is not None][:n]
    return [(p, p.canonical_solution, 0) for p in probs]


def rate(executor: Executor, jobs) -> tuple[float, float]:
    t = time.perf_counter()
    res = executor.run_jobs(jobs)
    dt = time.perf_counter() - t
    return len(jobs) / dt, sum(r.passed for r in res) / len(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=24)
    ap.add_argument("--languages", default="python,php,cpp,go,csharp")
    args = ap.parse_args()
    print(sandbox_report())
    print(f"{'language':8} {'workers':>7} {'problems/s':>10} {'passed':>6}   baseline (1 worker)          ratio")
    for lang in args.languages.split(","):
        jobs = jobs_for(lang, args.problems)
        rate(Executor(workers=2), jobs)  # warm-up: PCH, Go build cache
        one, ok1 = rate(Executor(workers=1), jobs)
        two, ok2 = rate(Executor(workers=2), jobs)
        plain, _ = rate(Executor(workers=1, sandbox="plain"), jobs)
        print(f"{lang:8} {1:>7} {one:>10.2f} {ok1:>6.2f}   no-bwrap {plain:6.2f}/s             "
              f"{one / plain:5.2f}x")
        print(f"{lang:8} {2:>7} {two:>10.2f} {ok2:>6.2f}   (2 vs 1 worker)              {two / one:5.2f}x")
        if lang == "cpp":
            nopch, _ = rate(Executor(workers=1, use_pch=False), jobs)
            print(f"{lang:8} {1:>7} {one:>10.2f} {'':>6}   no-PCH   {nopch:6.2f}/s             "
                  f"{one / nopch:5.2f}x")


if __name__ == "__main__":
    main()
