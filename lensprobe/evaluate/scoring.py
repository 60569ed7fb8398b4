"""pass@k (the unbiased estimator of Chen et al. 2021) and the Python-specific subset metric."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), computed as a product (no huge binomials): the Codex paper's form."""
    if not (0 <= c <= n) or n < 1 or k < 1:
        raise ValueError(f"need 0 <= c <= n, n >= 1, k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def per_problem_table(results: pd.DataFrame, ks: Iterable[int] = (1,)) -> pd.DataFrame:
    """One row per task: n, correct, and pass@k for each k with k <= n (NaN otherwise)."""
    if results.empty:
        cols = ["task_id", "n", "correct"] + [f"pass@{k}" for k in ks]
        return pd.DataFrame(columns=cols)
    g = results.groupby("task_id", sort=False)["passed"].agg(n="size", correct="sum").reset_index()
    g["correct"] = g["correct"].astype(int)
    for k in ks:
        g[f"pass@{k}"] = [pass_at_k(int(n), int(c), k) if k <= n else np.nan for n, c in zip(g["n"], g["correct"])]
    return g


def mean_pass_at_k(results: pd.DataFrame, k: int) -> float:
    table = per_problem_table(results, ks=(k,))
    if table.empty:
        raise ValueError("no results to score")
    if (table["n"] < k).any():
        short = table.loc[table["n"] < k, "task_id"].tolist()[:5]
        raise ValueError(f"pass@{k} needs >= {k} samples for every problem; too few for {short}")
    return float(table[f"pass@{k}"].mean())


@dataclass
class PythonSpecificSubset:
    """The paper's Fig. 2 quantity for one target language.

    ``subset``: problem numbers the Python model solves but none of the target-language
    monolingual models solves; ``share``: the fraction of the evaluated model's correct answers that
    fall in the subset.
    """

    language: str
    common: list[int]
    subset: list[int]
    solved: list[int]
    share: float

    def to_dict(self) -> dict:
        return {"language": self.language, "n_common": len(self.common), "n_subset": len(self.subset),
                "n_solved": len(self.solved), "share": self.share}


def python_specific_subset(python_solved: Mapping[int, bool], monolingual_solved: Iterable[Mapping[int, bool]],
                           evaluated_solved: Mapping[int, bool], *, language: str,
                           exclude: Iterable[int] = (), all_languages: Iterable[Iterable[int]] = ()) -> PythonSpecificSubset:
    """Problems (by HumanEval number) solved by the Python model and by no target monolingual model.

    Only problem numbers present in every mapping given (and in every id set of
    ``all_languages``) count, minus ``exclude`` (known-unpassable problems). ``share`` is
    |solved ∩ subset| / |solved| of the evaluated model (NaN when it solves nothing).
    """
    monos = list(monolingual_solved)
    sets = [set(python_solved), set(evaluated_solved), *[set(m) for m in monos], *[set(s) for s in all_languages]]
    common = set.intersection(*sets) - set(exclude)
    subset = sorted(i for i in common if python_solved[i] and not any(m[i] for m in monos))
    solved = sorted(i for i in common if evaluated_solved[i])
    share = (len(set(solved) & set(subset)) / len(solved)) if solved else float("nan")
    return PythonSpecificSubset(language, sorted(common), subset, solved, share)
