"""The demo's performance curve: multi-seed half-widths use Student-t (docs/sweep.md "Stages")."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensprobe.demo import performance_curve


def _table(values_by_run, lo_hi=None):
    rows = []
    for run, values in values_by_run.items():
        for step, v in values.items():
            rows.append(dict(probe="babel", language="php", identifier="python_only", metric="line_acc",
                             value=v, step=step, run=run))
            if lo_hi is not None:
                rows += [dict(probe="babel", language="php", identifier="python_only", metric=m, value=v + d,
                              step=step, run=run) for m, d in (("line_acc_lo", -lo_hi), ("line_acc_hi", lo_hi))]
    return pd.DataFrame(rows)


def test_half_width_across_seeds_is_student_t():
    runs = {"s0": {0: 0.10, 10: 0.30, 20: 0.25}, "s1": {0: 0.14, 10: 0.36, 20: 0.21},
            "s2": {0: 0.12, 10: 0.27}}                                   # s2 lacks step 20
    steps, mean, half = performance_curve(_table(runs), language="php", split="python_only")
    np.testing.assert_array_equal(steps, [0, 10, 20])
    for i, step in enumerate(steps):
        v = np.array([r[step] for r in runs.values() if step in r])
        k = v.size
        assert mean[i] == pytest.approx(v.mean())
        assert half[i] == pytest.approx(stats.t.ppf(0.975, k - 1) * v.std(ddof=1) / np.sqrt(k))
    # three seeds: t(2) = 4.30, more than twice the normal 1.96
    assert half[0] > 2 * 1.96 * np.std([0.10, 0.14, 0.12], ddof=1) / np.sqrt(3)


def test_half_width_of_one_run_comes_from_its_interval_rows():
    steps, mean, half = performance_curve(_table({"s0": {0: 0.1, 10: 0.4}}, lo_hi=0.05), language="php",
                                          split="python_only")
    np.testing.assert_allclose(half, [0.05, 0.05])
    np.testing.assert_allclose(mean, [0.1, 0.4])
