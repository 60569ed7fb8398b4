"""Pairwise synergy Δ(i, j) = L(i+i) − L(i+j): the loss on language i after training on i alone
(``i+i``, the same token budget) minus the loss on i after training on the pair i+j. Positive means
that j helps i ("Scaling Laws for Code: Every Programming Language Matters")."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["synergy_matrix", "tau_from_synergy"]


def synergy_matrix(df: pd.DataFrame, *, language: str = "language", partner: str = "partner",
                   loss: str = "loss") -> pd.DataFrame:
    """Δ as a square DataFrame (rows i = evaluated language, columns j = training partner).

    ``df`` has one row per (evaluated language, partner) with the loss on the evaluated
    language; the ``partner == language`` rows are the monolingual baselines L(i+i). Repeated
    rows (seeds) are averaged. Missing pairs are NaN; a language without its baseline raises.
    """
    missing = [c for c in (language, partner, loss) if c not in df.columns]
    if missing:
        raise ValueError(f"synergy table lacks column(s) {missing}; it has {list(df.columns)}")
    mean = df.groupby([language, partner])[loss].mean()
    langs = sorted(set(mean.index.get_level_values(0)) | set(mean.index.get_level_values(1)))
    evaluated = sorted(set(mean.index.get_level_values(0)))
    out = pd.DataFrame(np.nan, index=pd.Index(evaluated, name=language), columns=pd.Index(langs, name=partner))
    for i in evaluated:
        if (i, i) not in mean.index:
            raise ValueError(f"no baseline row for {i!r} (language == partner == {i!r}): Δ({i}, j) needs L({i}+{i})")
        base = mean[(i, i)]
        for j in langs:
            if (i, j) in mean.index:
                out.loc[i, j] = base - mean[(i, j)]
    return out


def tau_from_synergy(delta: pd.DataFrame, languages) -> np.ndarray:
    """τ for the multilingual law from Δ: symmetrized, zero diagonal, scaled to max |τ| = 1."""
    langs = list(languages)
    d = delta.reindex(index=langs, columns=langs).to_numpy(float)
    d = np.where(np.isfinite(d), d, 0.0)
    t = (d + d.T) / 2
    np.fill_diagonal(t, 0.0)
    m = np.abs(t).max()
    return t / m if m > 0 else t
