"""The public RegMix sweep: fit on the 512 1M-parameter runs, rank the 64 held-out 1B runs by
Pile-CC validation loss (the RegMix paper's target)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensprobe.analysis.fit import REGMIX_TARGET, fit_law, load_regmix, regmix_comparison

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "fitting" / "regmix"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"RegMix data not found at {DATA}")


def test_load_joins_on_index():
    test, weights = load_regmix(DATA, split="test", scale="1B")
    raw_mix = pd.read_csv(DATA / "regmix_test_mixture_1B.csv").set_index("index")
    raw_loss = pd.read_csv(DATA / "regmix_test_pile_loss_1B.csv").set_index("index")
    assert len(weights) == 17 and len(test) == 64
    row = test.iloc[5]
    i = row["index"]
    assert row[REGMIX_TARGET] == raw_loss.loc[i, REGMIX_TARGET]
    np.testing.assert_allclose(row[weights].to_numpy(float), raw_mix.loc[i, weights].to_numpy(float))
    np.testing.assert_allclose(test[weights].sum(axis=1), 1.0, atol=3e-3)  # weights are mixtures


def test_exponential_law_ranks_1B_runs():
    train, w = load_regmix(DATA, split="train", scale="1m")
    test, _ = load_regmix(DATA, split="test", scale="1B")
    law = fit_law("mixing_exp", train, x=w, y=REGMIX_TARGET, n_starts=8, seed=0)
    rho_exp = stats.spearmanr(law.predict(test), test[REGMIX_TARGET]).statistic
    # linear regression by plain least squares, as an independent baseline
    A = np.column_stack([np.ones(len(train)), train[w].to_numpy(float)])
    coef, *_ = np.linalg.lstsq(A, train[REGMIX_TARGET].to_numpy(float), rcond=None)
    lin = np.column_stack([np.ones(len(test)), test[w].to_numpy(float)]) @ coef
    rho_lin = stats.spearmanr(lin, test[REGMIX_TARGET]).statistic
    assert rho_exp >= 0.95, rho_exp
    assert rho_exp > rho_lin + 0.05
    assert law.validate(test).spearman == pytest.approx(rho_exp)


@pytest.mark.slow
def test_full_comparison_table():
    res = regmix_comparison(DATA, n_starts=64)
    t = res.table.set_index("model").spearman
    assert t["mixing_exp"] >= 0.97 and t["gradient_boosting"] >= 0.9 and t["linear"] < t["gradient_boosting"]
