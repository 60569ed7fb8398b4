"""lensprobe.babel.down: the down table's numbers against NumPy/SciPy, and its verdicts on planted
forgetting, disconnect and no decline."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensprobe.babel.down import down_curves, down_row, half_width

STEPS = np.arange(0, 110, 10, dtype=float)
TRANSITION = {"stages": [{"name": "translation", "start_step": 0, "end_step": 40},
                         {"name": "transition", "start_step": 40, "end_step": 100}],
              "confidence": {"translation": 0.9, "transition": 0.8}}


def _table(php, python, *, control=0.05, prior=0.03, seeds=3, noise=0.01):
    rng = np.random.default_rng(0)
    rows = []
    for k in range(seeds):
        for i, st in enumerate(STEPS):
            vals = {("php", "python_only", "line_acc"): php[i], ("php", "control", "line_acc"): control,
                    ("php", "python_only", "line_acc_prior"): prior, ("python", "python_only", "line_acc"): python[i]}
            for (lang, split, metric), v in vals.items():
                rows.append({"run": f"php-seed{k}", "step": st, "probe": "babel", "language": lang, "identifier": split,
                             "metric": metric, "value": v + noise * rng.standard_normal(), "n": 40, "layer": np.nan})
            for metric, v in (("eq1_python_share", 0.9 - 0.03 * i), ("eq1_counted", 10 + i)):
                rows.append({"run": f"php-seed{k}", "step": st, "probe": "working_language", "language": None,
                             "identifier": "python_only:*", "metric": metric, "value": v, "n": 23, "layer": np.nan})
    return pd.DataFrame(rows)


def _rise_fall():
    return np.concatenate([np.linspace(0, 0.5, 5), np.linspace(0.5, 0.2, 6)[1:], [0.2]])


def test_disconnect_forgetting_and_none():
    php = _rise_fall()
    hold = np.full(STEPS.size, 0.9)
    fall = np.concatenate([np.full(5, 0.9), np.linspace(0.9, 0.1, 6)[1:], [0.1]])
    d = down_row(_table(php, hold), stages=TRANSITION, python_share=0.001)
    assert d.verdict.startswith("decline: disconnect") and d.transition
    f = down_row(_table(php, fall), stages=TRANSITION, python_share=0.001)
    assert f.verdict.startswith("decline: forgetting")
    n = down_row(_table(np.linspace(0, 0.4, STEPS.size), np.linspace(1.0, 0.0, STEPS.size)),
                 stages={"stages": [], "confidence": {}}, python_share=0.05)
    assert n.verdict.startswith("no decline; Python forgotten (") and not n.transition
    assert d.stages == "translation 0-40 (0.90), transition 40-100 (0.80)" and n.stages == "none"


def test_numbers_against_numpy():
    php = _rise_fall()
    table = _table(php, np.full(STEPS.size, 0.9), noise=0.02)
    r = down_row(table, stages=TRANSITION, python_share=0.01, window=3)
    c = down_curves(table)
    wide = c.pivot_table(index="step", columns="run", values="php_python_only").sort_index()
    smooth = wide.rolling(3, center=True, min_periods=1).mean()
    peak = int(np.argmax(smooth.mean(axis=1).to_numpy()))
    drop = smooth.iloc[peak] - smooth.iloc[-1]
    assert r.php_po_peak_step == STEPS[peak] and r.php_drop == pytest.approx(drop.mean())
    assert r.php_drop_hw == pytest.approx(stats.t.ppf(0.975, 2) * drop.std(ddof=1) / math.sqrt(3))
    last = c[c.step == 100]
    diff = (last.php_python_only - last.php_control).to_numpy()
    assert r.po_minus_control_last == pytest.approx(diff.mean())
    assert r.po_minus_control_last_hw == pytest.approx(half_width(diff))
    assert r.n_seeds == 3 and r.last_step == 100 and r.n_lens_last == 3 * 20 and r.n_lens_first == 30
    assert r.lens_py_last == pytest.approx(0.6) and r.python_share == 0.01
    assert math.isnan(half_width([0.3])) and half_width([0.1, 0.3]) == pytest.approx(stats.t.ppf(0.975, 1) * 0.1)
