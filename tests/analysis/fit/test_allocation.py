"""Allocation: every constraint and the sampled-support guard hold (property tests), infeasible
settings are reported (checked by an independent linear program), and the guard bites."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.optimize import linprog

from lensprobe.analysis.fit import InfeasibleAllocation, allocate, fit_law, project_to_box_simplex, read_mixture

LANGS = ["python", "php", "csharp", "go", "cpp"]
TOL = 1e-7


def _feasible_by_lp(lo, hi):
    k = len(lo)
    res = linprog(np.zeros(k), A_eq=np.ones((1, k)), b_eq=[1.0], bounds=list(zip(lo, hi)), method="highs")
    return res.status == 0


@st.composite
def problems(draw):
    k = draw(st.integers(2, 5))
    langs = LANGS[:k]
    total = draw(st.sampled_from([1e6, 1e9, 3.7e10]))
    t = np.array(draw(st.lists(st.floats(-3, 3), min_size=k, max_size=k)))
    avail = {l: draw(st.floats(0.05, 2.0)) * total for l in langs}
    epochs = draw(st.sampled_from([None, 1.0, 2.0, 4.0]))
    mins = {l: draw(st.floats(0, 0.3)) for l in langs if draw(st.booleans())}
    support = {}
    for l in langs:
        a = draw(st.floats(0, 0.5))
        support[l] = (a, min(1.0, a + draw(st.floats(0.05, 1.0))))
    anchor = None
    if draw(st.booleans()):
        anchor = {langs[0]: draw(st.floats(0.01, 0.6)) * total}
    return dict(langs=langs, total=total, t=t, avail=avail, epochs=epochs, mins=mins, support=support, anchor=anchor)


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_allocation_respects_every_constraint(pb):
    langs, T = pb["langs"], pb["total"]
    model = lambda df: 1.0 + np.exp(df[langs].to_numpy() @ pb["t"])  # noqa: E731
    k = len(langs)
    cap = np.array([pb["avail"][l] * (pb["epochs"] or 1.0) / T for l in langs])
    lo = np.maximum([pb["mins"].get(l, 0.0) for l in langs], [pb["support"][l][0] for l in langs])
    hi = np.minimum(np.minimum(cap, 1.0), [pb["support"][l][1] for l in langs])
    if pb["anchor"]:
        a = pb["anchor"][langs[0]] / T
        anchor_ok = lo[0] - 1e-12 <= a <= hi[0] + 1e-12
        lo[0] = hi[0] = a
    else:
        anchor_ok = True
    feasible = anchor_ok and np.all(lo <= hi) and _feasible_by_lp(lo, hi)
    kwargs = dict(languages=langs, total_tokens=T, availability=pb["avail"], max_epochs=pb["epochs"],
                  min_share=pb["mins"], anchor=pb["anchor"], support=pb["support"], n_starts=4, seed=0)
    if not feasible:
        with pytest.raises(InfeasibleAllocation):
            allocate(model, **kwargs)
        return
    res = allocate(model, **kwargs)
    p = np.array([res.shares[l] for l in langs])
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(p >= lo - TOL) and np.all(p <= hi + TOL)
    for i, l in enumerate(langs):
        assert res.tokens[l] <= pb["avail"][l] * (pb["epochs"] or 1.0) + 1
        lo_s, hi_s = pb["support"][l]
        if not (pb["anchor"] and i == 0):
            assert lo_s - TOL <= p[i] <= hi_s + TOL  # the sampled-support guard
        assert p[i] >= pb["mins"].get(l, 0.0) - TOL
    assert sum(res.tokens.values()) == round(T)
    if pb["anchor"]:
        assert res.tokens[langs[0]] == round(pb["anchor"][langs[0]])
    # the optimum is no worse than the best of many random feasible points
    rng = np.random.default_rng(0)
    pts = np.array([project_to_box_simplex(rng.dirichlet(np.ones(k)), lo, hi) for _ in range(200)])
    best_random = model(pd.DataFrame(pts, columns=langs)).min()
    assert res.predicted <= best_random + 1e-6


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.floats(-2, 2), min_size=2, max_size=6), st.data())
def test_projection_is_feasible_and_idempotent(q, data):
    k = len(q)
    lo = np.array(data.draw(st.lists(st.floats(0, 1.0 / k), min_size=k, max_size=k)))
    hi = lo + np.array(data.draw(st.lists(st.floats(1.0 / k, 1.0), min_size=k, max_size=k)))
    p = project_to_box_simplex(np.array(q), lo, hi)
    assert p.sum() == pytest.approx(1.0) and np.all(p >= lo - 1e-12) and np.all(p <= hi + 1e-12)
    np.testing.assert_allclose(project_to_box_simplex(p, lo, hi), p, atol=1e-9)


def _law_runs(seed=0):
    """Runs that never put more than 0.35 on php; the loss keeps falling with more php."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet([4, 1, 2], 90)
    P = P[P[:, 1] <= 0.35]
    df = pd.DataFrame(P, columns=["python", "php", "go"])
    df["loss"] = 1.0 + np.exp(0.5 - 2.5 * df.php + 0.3 * df.go - 0.2 * df.python) * np.exp(rng.normal(0, 0.003, len(df)))
    return df


def test_support_guard_keeps_the_answer_where_runs_went(tmp_path):
    df = _law_runs()
    fit = fit_law("mixing_exp", df, x=["python", "php", "go"], y="loss", n_starts=8)
    fit.bootstrap(20, n_starts=2)
    res = allocate(fit, languages=["python", "php", "go"], total_tokens=1e9, seed=0)
    php_max = df.php.max()
    assert res.shares["php"] <= php_max + 1e-9
    assert res.shares["php"] == pytest.approx(php_max, abs=1e-6)  # the guard binds
    assert res.unguarded["php"] > 0.8  # without the guard the optimizer runs far past the data
    comp = res.comparison.set_index("mix")
    assert bool(comp.loc["optimized", "in_support"]) and not bool(comp.loc["unguarded", "in_support"])
    # predictions and intervals: recomputed from the fit and its bootstrap samples
    uniform = pd.DataFrame([[1 / 3] * 3], columns=["python", "php", "go"])
    assert comp.loc["uniform", "predicted"] == pytest.approx(fit.predict(uniform)[0])
    assert comp.loc["optimized", "predicted"] < comp.loc["uniform", "predicted"]
    s = fit.predict_samples(pd.DataFrame([res.shares]))[:, 0]
    assert res.interval == pytest.approx(tuple(np.quantile(s, [0.05, 0.95])))
    assert res.interval[0] <= res.predicted <= res.interval[1]
    path = res.write(tmp_path / "mix.yaml")
    assert read_mixture(path)["tokens"] == res.tokens


def test_natural_mix_and_dict_of_fits():
    df = _law_runs(1)
    df["loss_go"] = 1.2 + np.exp(0.3 - 1.5 * df.go)
    fits = {"php": fit_law("mixing_exp", df, x=["python", "php", "go"], y="loss", n_starts=4),
            "go": fit_law("mixing_exp", df, x=["python", "php", "go"], y="loss_go", n_starts=4)}
    avail = {"python": 6e8, "php": 1e8, "go": 3e8}
    res = allocate(fits, languages=["python", "php", "go"], total_tokens=1e9, availability=avail, max_epochs=2)
    comp = res.comparison.set_index("mix")
    nat = np.array([6, 1, 3]) / 10
    np.testing.assert_allclose(comp.loc["natural", ["share_python", "share_php", "share_go"]].to_numpy(float), nat)
    x = pd.DataFrame([nat], columns=["python", "php", "go"])
    assert comp.loc["natural", "predicted"] == pytest.approx((fits["php"].predict(x)[0] + fits["go"].predict(x)[0]) / 2)
    assert res.tokens["php"] <= 2e8 and list(res.per_target.columns) == ["php", "go"]
    assert np.isnan(comp.loc["optimized", "low"])  # no bootstrap, no interval


def test_infeasible_anchor_is_named():
    with pytest.raises(InfeasibleAllocation, match="anchor python"):
        allocate(lambda d: d.sum(axis=1).to_numpy(), languages=["python", "php"], total_tokens=100,
                 anchor={"python": 90}, support={"python": (0, 0.5), "php": (0, 1)})
