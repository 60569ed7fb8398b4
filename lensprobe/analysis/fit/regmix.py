"""The public RegMix sweep (Liu et al., ICLR 2025): fit on small proxy runs, rank larger runs.

Data layout (``../shared/data/fitting/regmix/``): ``regmix_{train,test}_mixture_<scale>.csv``
(an ``index`` column and the weights of 17 Pile domains, ``train_the_pile_*``) and
``regmix_{train,test}_pile_loss_<scale>.csv`` (the ``index`` and validation losses
``metric/the_pile_*_val_loss``). Train: 512 runs at 1M parameters; test: 1M, 60M and 1B.
The RegMix paper's target is the Pile-CC validation loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .fitting import _single_thread, fit_law

__all__ = ["load_regmix", "regmix_comparison", "RegmixComparison", "REGMIX_TARGET"]

REGMIX_TARGET = "metric/the_pile_pile_cc_val_loss"


def load_regmix(data_dir, *, split: str = "train", scale: str = "1m") -> tuple[pd.DataFrame, list[str]]:
    """One split joined on ``index``: the mixture weight columns and the loss columns."""
    root = Path(data_dir)
    mix_p = root / f"regmix_{split}_mixture_{scale}.csv"
    loss_p = root / f"regmix_{split}_pile_loss_{scale}.csv"
    for p in (mix_p, loss_p):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: RegMix file not found (expected split={split!r}, scale={scale!r})")
    mix = pd.read_csv(mix_p)
    loss = pd.read_csv(loss_p)
    for p, df in ((mix_p, mix), (loss_p, loss)):
        if "index" not in df.columns:
            raise ValueError(f"{p}: no 'index' column")
    weights = [c for c in mix.columns if c.startswith("train_")]
    if not weights:
        raise ValueError(f"{mix_p}: no mixture weight columns (train_*)")
    joined = mix.merge(loss, on="index", how="inner", validate="one_to_one")
    if len(joined) != len(loss):
        raise ValueError(f"{loss_p}: {len(loss) - len(joined)} loss rows have no mixture in {mix_p}")
    return joined, weights


@dataclass(frozen=True)
class RegmixComparison:
    table: pd.DataFrame
    target: str
    train: str
    test: str
    predictions: pd.DataFrame = field(repr=False)

    def to_dataframe(self) -> pd.DataFrame:
        return self.table.copy()


def regmix_comparison(data_dir, *, target: str = REGMIX_TARGET, train_scale: str = "1m", test_scale: str = "1B",
                      n_starts: int = 64, seed: int = 0,
                      models: tuple[str, ...] = ("linear", "gradient_boosting", "mixing_exp")) -> RegmixComparison:
    """Fit linear regression, gradient-boosted trees (scikit-learn HistGradientBoosting) and the
    exponential mixing law on the train runs; report Spearman rank correlation with the test runs."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    train, weights = load_regmix(data_dir, split="train", scale=train_scale)
    test, weights_t = load_regmix(data_dir, split="test", scale=test_scale)
    if weights != weights_t:
        raise ValueError("train and test mixtures have different domain columns")
    if target not in train.columns or target not in test.columns:
        known = [c for c in train.columns if c.startswith("metric/")]
        raise ValueError(f"target {target!r} not in the RegMix loss files; choose one of {known}")
    Xtr, ytr, Xte, yte = train[weights].to_numpy(float), train[target].to_numpy(float), test[weights].to_numpy(float), test[target].to_numpy(float)
    unknown = set(models) - {"linear", "gradient_boosting", "mixing_exp"}
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from linear, gradient_boosting, mixing_exp")
    preds = {}
    with _single_thread():  # 512 rows: threads only add contention
        if "linear" in models:
            preds["linear"] = LinearRegression().fit(Xtr, ytr).predict(Xte)
        if "gradient_boosting" in models:
            preds["gradient_boosting"] = HistGradientBoostingRegressor(random_state=seed).fit(Xtr, ytr).predict(Xte)
    if "mixing_exp" in models:
        law = fit_law("mixing_exp", train, x=weights, y=target, n_starts=n_starts, seed=seed)
        preds["mixing_exp"] = law.predict(test)
    rows = [{"model": k, "spearman": float(stats.spearmanr(p, yte).statistic),
             "pearson": float(stats.pearsonr(p, yte).statistic), "n_train": len(ytr), "n_test": len(yte)}
            for k, p in preds.items()]
    pred_df = pd.DataFrame({"index": test["index"], "observed": yte, **preds})
    return RegmixComparison(table=pd.DataFrame(rows), target=target, train=train_scale, test=test_scale, predictions=pred_df)
