"""Law fitting: parameter recovery from known laws (poor starts included), bootstrap coverage,
held-out validation, the registry's forms, and the synergy matrix."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensprobe.analysis.fit import fit_law, list_laws, make_law, synergy_matrix, tau_from_synergy

CHIN = dict(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)  # Hoffmann et al.'s published values
POOR = dict(E=6.0, A=1.0, alpha=0.02, B=1.0, beta=0.02)


def _chinchilla_data(seed, noise=0.005):
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e13, 8))
    N, D = N.ravel(), D.ravel()
    L = CHIN["E"] + CHIN["A"] / N ** CHIN["alpha"] + CHIN["B"] / D ** CHIN["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": L * np.exp(rng.normal(0, noise, L.size))})


def test_registry_lists_the_forms():
    assert {"chinchilla", "mixing_exp", "mixing_linear", "multilingual", "log_linear"} <= set(list_laws())
    with pytest.raises(ValueError, match="unknown law"):
        make_law("nope")
    with pytest.raises(ValueError, match="lacks column"):
        fit_law("chinchilla", pd.DataFrame({"N": [1.0], "loss": [1.0]}), x=["N", "D"])


def test_chinchilla_prediction_matches_formula():
    law = make_law("chinchilla")
    theta = law.theta_from(CHIN)
    X = np.array([[1e8, 1e10], [7e9, 1.4e11]])
    expected = CHIN["E"] + CHIN["A"] / X[:, 0] ** CHIN["alpha"] + CHIN["B"] / X[:, 1] ** CHIN["beta"]
    np.testing.assert_allclose(law.predict(theta, X), expected)
    # analytic Jacobian against central differences
    J = law.jacobian(theta, X)
    for i in range(len(theta)):
        h = np.zeros_like(theta); h[i] = 1e-6
        np.testing.assert_allclose(J[:, i], (law.predict(theta + h, X) - law.predict(theta - h, X)) / 2e-6, rtol=1e-5)


def test_chinchilla_recovery_from_poor_start_within_bootstrap_intervals():
    df = _chinchilla_data(seed=0)
    fit = fit_law("chinchilla", df, x=["N", "D"], y="loss", init=POOR, seed=0)  # 64 starts by default
    assert fit.diagnostics["n_starts"] == 64 and fit.starts.user_init.sum() == 1
    assert fit.diagnostics["n_at_best"] >= 2  # the optimum is found by more than one start
    boot = fit.bootstrap(60, n_starts=3, seed=1)
    assert len(boot.samples) == 60 and boot.n_failed == 0
    for name, true in CHIN.items():
        lo, hi = boot.interval(name)
        assert lo <= true <= hi, f"{name}: true {true} outside [{lo}, {hi}]"
    assert fit.params["alpha"] == pytest.approx(CHIN["alpha"], abs=0.03)
    assert fit.params["beta"] == pytest.approx(CHIN["beta"], abs=0.03)
    assert fit.params["E"] == pytest.approx(CHIN["E"], rel=0.05)
    s = fit.summary()
    assert list(s.param) == ["E", "A", "alpha", "B", "beta"] and {"ci_low", "ci_high"} <= set(s.columns)
    assert not s.at_bound.any()


def test_single_start_from_poor_values_is_recorded_and_multistart_is_no_worse():
    df = _chinchilla_data(seed=5)
    one = fit_law("chinchilla", df, x=["N", "D"], n_starts=1, init=POOR)
    many = fit_law("chinchilla", df, x=["N", "D"], n_starts=32, init=POOR, seed=3)
    assert one.diagnostics["n_starts"] == 1 and bool(one.starts.user_init.iloc[0])
    assert many.objective <= one.objective + 1e-12


def test_mixing_exp_recovery():
    rng = np.random.default_rng(7)
    r = rng.uniform(0, 0.5, size=(150, 3))  # three free proportions (the rest is a fixed remainder)
    true = dict(c=1.5, k=0.8, t_a=-1.2, t_b=0.5, t_c=2.0)
    L = true["c"] + true["k"] * np.exp(r @ np.array([true["t_a"], true["t_b"], true["t_c"]]))
    df = pd.DataFrame(r, columns=["a", "b", "c"]).assign(loss=L * np.exp(rng.normal(0, 0.004, L.size)))
    fit = fit_law("mixing_exp", df, x=["a", "b", "c"], y="loss", n_starts=16, seed=0,
                  init=dict(c=0.0, k=5.0, t_a=3.0, t_b=-3.0, t_c=-2.0))
    boot = fit.bootstrap(40, n_starts=2)
    for name, value in true.items():
        lo, hi = boot.interval(name)
        assert lo <= value <= hi, f"{name}: true {value} outside [{lo}, {hi}]"


def test_multilingual_law_validates_on_larger_held_out_runs():
    rng = np.random.default_rng(11)
    law = make_law("multilingual", ["N", "D", "python", "php"], tau=[[0, 1], [1, 0]])
    true = dict(A=300.0, B=500.0, gamma=0.8, alpha_python=0.32, alpha_php=0.28, beta_python=0.30, beta_php=0.26,
                E_python=1.6, E_php=1.9)
    theta = law.theta_from(true)

    def table(Ns, n):
        N = rng.choice(Ns, n)
        D = np.exp(rng.uniform(np.log(1e9), np.log(1e11), n))
        p = rng.uniform(0.1, 0.9, n)
        X = np.column_stack([N, D, p, 1 - p])
        y = law.predict(theta, X)
        return pd.DataFrame(X, columns=law.x).assign(loss=y * np.exp(rng.normal(0, 0.003, n)))

    # hand-written formula as the oracle for the law's prediction
    X = np.array([[1e8, 1e10, 0.3, 0.7]])
    p = X[0, 2:]
    Dx = 1e10 * (1 + 0.8 * 2 * p[0] * p[1])
    manual = p @ [1.6, 1.9] + 300 / 1e8 ** (p @ [0.32, 0.28]) + 500 / Dx ** (p @ [0.30, 0.26])
    assert law.predict(theta, X)[0] == pytest.approx(manual)

    small = table([3e7, 6e7, 1e8, 2e8], 160)
    large = table([1e9, 2e9], 30)
    fit = fit_law(law, small, y="loss", n_starts=24, seed=0)
    v = fit.validate(large)
    pred = fit.predict(large)
    assert v.mean_relative_error == pytest.approx(np.mean(np.abs(pred - large.loss) / large.loss))
    assert v.spearman == pytest.approx(stats.spearmanr(pred, large.loss).statistic)
    assert v.mean_relative_error < 0.01 and v.spearman > 0.95


def test_log_linear_law_agrees_with_least_squares():
    from lensprobe.analysis.fit import fit_log_linear

    x = np.geomspace(1e3, 5e4, 12)
    y = -0.3328 * np.log10(x) + 1.4973
    fit = fit_law("log_linear", pd.DataFrame({"x": x, "y": y}), x="x", y="y", n_starts=4)
    ref = fit_log_linear(x, y)
    assert fit.params["a"] == pytest.approx(ref.a, abs=1e-6) and fit.params["b"] == pytest.approx(ref.b, abs=1e-6)


def test_synergy_matrix_and_tau():
    rows = [("python", "python", 1.00), ("python", "php", 0.95), ("python", "go", 1.02),
            ("php", "php", 1.20), ("php", "python", 1.10), ("go", "go", 1.30), ("go", "python", 1.31),
            ("go", "python", 1.29)]  # a repeated seed is averaged
    df = pd.DataFrame(rows, columns=["language", "partner", "loss"])
    d = synergy_matrix(df)
    assert d.loc["python", "php"] == pytest.approx(1.00 - 0.95)
    assert d.loc["python", "go"] == pytest.approx(1.00 - 1.02)
    assert d.loc["php", "python"] == pytest.approx(0.10)
    assert d.loc["go", "python"] == pytest.approx(0.0)
    assert np.isnan(d.loc["php", "go"]) and d.loc["python", "python"] == 0
    tau = tau_from_synergy(d, ["python", "php"])
    assert tau.shape == (2, 2) and tau[0, 1] == tau[1, 0] == pytest.approx(1.0) and tau[0, 0] == 0
    with pytest.raises(ValueError, match="baseline"):
        synergy_matrix(df[df.partner != df.language])


def test_mixing_exp_score_form_and_mixture_file_validation(tmp_path):
    from lensprobe.analysis.fit import read_mixture, write_mixture

    rng = np.random.default_rng(2)
    r = rng.uniform(0, 0.6, size=(80, 2))
    score = 0.8 - 0.5 * np.exp(r @ np.array([-2.0, -0.5])) + rng.normal(0, 0.002, 80)
    df = pd.DataFrame(r, columns=["php", "go"]).assign(acc=score)
    fit = fit_law("mixing_exp", df, x=["php", "go"], y="acc", sign=-1, n_starts=8)
    assert fit.space == "linear"
    assert fit.params["c"] == pytest.approx(0.8, abs=0.02) and fit.params["t_php"] == pytest.approx(-2.0, abs=0.15)

    good = write_mixture(tmp_path / "m.yaml", {"python": 11e9, "php": 5e9}, source="test", notes="n")
    assert read_mixture(good) == {"tokens": {"python": 11_000_000_000, "php": 5_000_000_000}, "source": "test", "notes": "n"}
    with pytest.raises(ValueError, match="unknown language 'rust'"):
        write_mixture(tmp_path / "x.yaml", {"rust": 1})
    (tmp_path / "bad.yaml").write_text("tokens: {python: -3}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: field 'tokens.python': not a token count: -3"):
        read_mixture(tmp_path / "bad.yaml")
    # the pretrain side (`lensprobe pretrain --mixture`) reads it with the same reader
    from lensprobe.mixture_file import load_mixture_file

    assert load_mixture_file(good) == {"python": 11_000_000_000, "php": 5_000_000_000}
    (tmp_path / "s.yaml").write_text("tokens: {python: 11B, php: 5B}\nextra: 1\n")
    assert read_mixture(tmp_path / "s.yaml")["tokens"] == load_mixture_file(tmp_path / "s.yaml")
    (tmp_path / "bad2.yaml").write_text("mixture: {python: 3}\n")
    with pytest.raises(ValueError, match="top-level 'tokens'"):
        read_mixture(tmp_path / "bad2.yaml")


def test_bad_initial_values_and_law_fit_plot():
    import matplotlib

    matplotlib.use("Agg")
    from lensprobe.analysis.fit import plot_law_fit

    df = _chinchilla_data(seed=1)
    with pytest.raises(ValueError, match="domain"):
        fit_law("chinchilla", df, x=["N", "D"], init=dict(E=-1, A=1, alpha=0.3, B=1, beta=0.3))
    f = fit_law("chinchilla", df, x=["N", "D"], n_starts=4)
    ax = plot_law_fit(f, df)
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 1], f.predict(df))


@pytest.mark.parametrize("name,x,opts", [("multilingual", ["N", "D", "python", "php", "go"],
                                          {"tau": [[0, 1, .5], [1, 0, .2], [.5, .2, 0]]}),
                                         ("mixing_exp", ["a", "b"], {"sign": -1})])
def test_analytic_jacobians_match_finite_differences(name, x, opts):
    rng = np.random.default_rng(0)
    law = make_law(name, x, **opts)
    n = 6
    if name == "multilingual":
        P = rng.dirichlet(np.ones(3), n)
        X = np.column_stack([np.geomspace(1e7, 1e9, n), np.geomspace(1e9, 1e11, n), P])
    else:
        X = rng.uniform(0, 1, (n, 2))
    lo, hi = law.init_box(X, np.ones(n))
    theta = rng.uniform(lo, hi)
    J = law.jacobian(theta, X)
    for i in range(len(theta)):
        h = np.zeros_like(theta); h[i] = 1e-6
        fd = (law.predict(theta + h, X) - law.predict(theta - h, X)) / 2e-6
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-4, atol=1e-8, err_msg=law.theta_names[i])
