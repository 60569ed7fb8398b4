"""pass@k against exact binomials (fractions) and a Monte-Carlo check; the Python-specific subset."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from lensprobe.evaluate.scoring import mean_pass_at_k, pass_at_k, per_problem_table, python_specific_subset


def exact(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@given(st.integers(1, 200), st.data())
@settings(max_examples=200, deadline=None)
def test_pass_at_k_equals_exact_binomial_ratio(n, data):
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    assert pass_at_k(n, c, k) == pytest.approx(exact(n, c, k), abs=1e-12)


def test_pass_at_k_stable_for_large_n():
    # math.comb(2000, 100) overflows float; the product form does not
    assert pass_at_k(2000, 3, 100) == pytest.approx(exact(2000, 3, 100), rel=1e-9)
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 6, 5) == 1.0
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)


def test_pass_at_k_is_probability_that_a_random_k_subset_contains_a_success():
    rng = np.random.default_rng(0)
    n, c, k = 12, 3, 4
    hits = [(rng.permutation(n)[:k] < c).any() for _ in range(20000)]
    assert pass_at_k(n, c, k) == pytest.approx(np.mean(hits), abs=0.01)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="at least 5"):
        pass_at_k(3, 1, 5)


def test_per_problem_table_and_mean():
    df = pd.DataFrame({"task_id": ["a"] * 4 + ["b"] * 4, "passed": [1, 0, 0, 1, 0, 0, 0, 0]}).astype({"passed": bool})
    t = per_problem_table(df, ks=(1, 2, 5))
    assert t["correct"].tolist() == [2, 0]
    assert t["pass@1"].tolist() == [0.5, 0.0]
    assert t.loc[0, "pass@2"] == pytest.approx(1 - 1 / 6)
    assert t["pass@5"].isna().all()
    assert mean_pass_at_k(df, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="pass@5"):
        mean_pass_at_k(df, 5)


def test_python_specific_subset():
    py = {0: True, 1: True, 2: True, 3: False, 4: True, 9: True}
    mono = [{0: False, 1: True, 2: False, 3: False, 4: False}, {0: False, 1: False, 2: True, 3: False, 4: False}]
    evaluated = {0: True, 1: True, 2: False, 3: True, 4: True}
    # problem 9 is not in every language; 4 is known-unpassable in some language -> excluded
    r = python_specific_subset(py, mono, evaluated, language="php", exclude=[4])
    assert r.common == [0, 1, 2, 3]
    assert r.subset == [0]  # 1 and 2 are solved by some monolingual model, 3 not by Python
    assert r.solved == [0, 1, 3]
    assert r.share == pytest.approx(1 / 3)
    r2 = python_specific_subset(py, mono, {0: False, 1: False, 2: False, 3: False, 4: False}, language="php")
    assert math.isnan(r2.share)
