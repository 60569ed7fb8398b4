"""Baselines that make LAPE counts interpretable, computed from group counts (no extra forward pass).

At the defaults LAPE always selects ``round(0.01 * layers * neurons)`` neurons, so a count alone
says little. Two cheap references:

* :func:`shuffled_label_null` -- permute the language labels of the *groups* of sequences
  (contiguous slices of each language's documents), re-sum the counts and re-select. With no
  language signal left, the selected neurons tend to be shared by all languages and the
  per-neuron probability gap collapses (docs/lape.md: gap ~0.05 against ~0.7).
* :func:`split_half_agreement` -- select on two disjoint halves of every language's groups and
  report the Jaccard overlap of the two selections: a direct check that the token budget suffices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from lensprobe.lape.counting import aggregate_probabilities
from lensprobe.lape.selection import LapeResult, lape_select

__all__ = ["NullResult", "shuffled_label_null", "permuted_group_language", "split_half_agreement"]


def permuted_group_language(group_language: Sequence[int] | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random relabelling of groups that keeps the number of groups per language."""
    gl = np.asarray(group_language, dtype=np.int64)
    return gl[rng.permutation(len(gl))]


@dataclass(frozen=True)
class NullResult:
    """Selections under shuffled language labels (one :class:`LapeResult` per permutation)."""

    results: tuple[LapeResult, ...]
    group_languages: tuple[np.ndarray, ...]

    def summary(self) -> pd.DataFrame:
        """One row per permutation: the whole-model summary numbers of :meth:`LapeResult.summary`."""
        return pd.DataFrame([{"permutation": i, **r.summary()} for i, r in enumerate(self.results)])

    def mean_counts(self) -> pd.DataFrame:
        """Mean over permutations of neurons per (language, layer) (language = the shuffled label)."""
        frames = [r.counts().assign(permutation=i) for i, r in enumerate(self.results)]
        df = pd.concat(frames, ignore_index=True)
        return df.groupby(["language", "layer"], sort=False, as_index=False)["n_neurons"].mean()

    def mean_language_counts(self) -> pd.DataFrame:
        frames = [r.language_counts() for r in self.results]
        df = pd.concat(frames, ignore_index=True)
        return df.groupby("language", sort=False, as_index=False)[["n_neurons", "n_exclusive"]].mean()


def shuffled_label_null(over_zero: np.ndarray, n_tokens: np.ndarray, group_language: Sequence[int] | np.ndarray, *,
                        languages: Sequence[str], n_permutations: int = 1, seed: int = 0,
                        top_rate: float = 0.01, filter_rate: float = 0.95,
                        activation_bar_ratio: float = 0.95) -> NullResult:
    """Re-select LAPE neurons after shuffling the language labels of the groups.

    ``over_zero [groups, layers, neurons]`` and ``n_tokens [groups]`` come from
    :meth:`ActivationCounter.group_counts`; ``group_language[g]`` is group ``g``'s true language.
    A language needs at least one group (several, for a meaningful null).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    gl = np.asarray(group_language, dtype=np.int64)
    k = len(languages)
    rng = np.random.default_rng(seed)
    results, labels = [], []
    for _ in range(n_permutations):
        perm = permuted_group_language(gl, rng)
        probs = aggregate_probabilities(over_zero, n_tokens, perm, k, names=languages)
        results.append(lape_select(probs, top_rate=top_rate, filter_rate=filter_rate,
                                   activation_bar_ratio=activation_bar_ratio, languages=languages))
        labels.append(perm)
    return NullResult(tuple(results), tuple(labels))


def split_half_agreement(over_zero: np.ndarray, n_tokens: np.ndarray, group_language: Sequence[int] | np.ndarray, *,
                         languages: Sequence[str], top_rate: float = 0.01, filter_rate: float = 0.95,
                         activation_bar_ratio: float = 0.95) -> dict[str, float]:
    """Jaccard overlap (per language and ``"*"`` for all) of selections made on two halves of the groups.

    Groups of each language alternate between the halves (even / odd position). Needs >= 2 groups
    per language. Values near 1 mean the token budget gives stable sets.
    """
    gl = np.asarray(group_language, dtype=np.int64)
    k = len(languages)
    halves = []
    for parity in (0, 1):
        keep = np.zeros(len(gl), dtype=bool)
        for lang in range(k):
            idx = np.flatnonzero(gl == lang)
            if len(idx) < 2:
                raise ValueError(f"language {languages[lang]!r} has {len(idx)} group(s); split-half needs >= 2")
            keep[idx[parity::2]] = True
        probs = aggregate_probabilities(over_zero[keep], n_tokens[keep], gl[keep], k, names=languages)
        halves.append(lape_select(probs, top_rate=top_rate, filter_rate=filter_rate,
                                  activation_bar_ratio=activation_bar_ratio, languages=languages))
    return halves[0].jaccard(halves[1])
