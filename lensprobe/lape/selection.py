"""LAPE selection (Tang et al. 2024, "Language-Specific Neurons"): language activation probability entropy.

Given per-language activation probabilities ``probs[language, layer, neuron]`` (the share of a
language's tokens on which the neuron's post-activation value is > 0), :func:`lape_select`
reproduces the original ``identify.py`` step by step:

1. normalise each neuron's probabilities across languages to sum to 1 (0/0 -> 0);
2. entropy ``H = -sum_k q_k ln q_k`` with ``0 ln 0 = 0`` (natural log, not divided by ln K);
3. ``tau`` = the k-th smallest of *all* ``languages x layers x neurons`` probabilities,
   ``k = round(filter_rate * count)`` (1-based, like ``torch.kthvalue``); a neuron whose
   probability exceeds ``tau`` in no language gets ``H = +inf``;
4. the ``round(top_rate * layers * neurons)`` lowest-entropy neurons over the whole model;
5. each selected neuron is assigned to every language whose probability exceeds the
   ``activation_bar_ratio`` quantile (computed like ``tau``): one, several or no language.

Differences from the original, all deliberate: entropy ties are broken by flat index
(``layer * n_neurons + neuron``, ascending) instead of ``torch.topk``'s unspecified order; the
entropy is computed in float64 from the float32 probabilities (the original uses float32 all the
way, so neurons whose entropies differ by less than a float32 ulp may be ordered differently);
languages that receive no neuron are kept (the original's ``bincount`` split drops trailing ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["LapeResult", "lape_select", "lape_entropy", "kth_smallest_threshold"]


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0) or np.isnan(value):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def kth_smallest_threshold(probs: np.ndarray, rate: float) -> float:
    """The ``round(rate * probs.size)``-th smallest value (1-based), as ``torch.kthvalue`` in the original."""
    flat = np.asarray(probs).ravel()
    k = round(len(flat) * rate)  # Python round (half to even), as the original
    if k < 1:
        raise ValueError(
            f"rate {rate} of {len(flat)} probabilities selects no value (k = {k}); need more "
            "languages x layers x neurons or a larger rate")
    return float(np.partition(flat, k - 1)[k - 1])


def lape_entropy(probs: np.ndarray) -> np.ndarray:
    """Natural-log entropy of each neuron's probabilities normalised across languages: [layers, neurons]."""
    p = np.asarray(probs, dtype=np.float64)
    total = p.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)
        log_q = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), 0.0)
    return -(q * log_q).sum(axis=0)


@dataclass(frozen=True)
class LapeResult:
    """The outcome of :func:`lape_select`.

    Arrays are indexed by 0-based block index; the DataFrames report ``layer`` as the 1-based
    block number (``layer = block index + 1``), the convention of every lensprobe table.
    """

    languages: tuple[str, ...]
    probs: np.ndarray            #: float32 [languages, layers, neurons]
    mask: np.ndarray             #: bool [languages, layers, neurons]: neuron assigned to language
    entropy: np.ndarray          #: float64 [layers, neurons]; +inf where no language passes the filter
    selected: np.ndarray         #: int64 [n_selected, 2] (block index, neuron), by ascending entropy
    filter_threshold: float      #: tau: neurons need a probability > tau in some language
    activation_bar: float        #: a selected neuron belongs to languages whose probability > this
    top_rate: float = 0.01
    filter_rate: float = 0.95
    activation_bar_ratio: float = 0.95

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def n_languages(self) -> int:
        return self.probs.shape[0]

    @property
    def n_layers(self) -> int:
        return self.probs.shape[1]

    @property
    def n_neurons(self) -> int:
        return self.probs.shape[2]

    # -- summaries ------------------------------------------------------------------------------
    @property
    def neuron_mask(self) -> np.ndarray:
        """bool [layers, neurons]: assigned to at least one language."""
        return self.mask.any(axis=0)

    @property
    def n_distinct(self) -> int:
        """Number of distinct neurons assigned to at least one language."""
        return int(self.neuron_mask.sum())

    @property
    def n_passing_filter(self) -> int:
        """Neurons with a probability above the filter threshold in some language (finite entropy)."""
        return int(np.isfinite(self.entropy).sum())

    def languages_per_neuron(self) -> np.ndarray:
        """int [layers, neurons]: how many languages each neuron is assigned to."""
        return self.mask.sum(axis=0)

    @property
    def n_exclusive(self) -> int:
        """Neurons assigned to exactly one language."""
        return int((self.languages_per_neuron() == 1).sum())

    @property
    def n_shared(self) -> int:
        """Neurons assigned to two or more languages."""
        return int((self.languages_per_neuron() >= 2).sum())

    def prob_gap(self) -> np.ndarray:
        """Per distinct selected neuron (in :attr:`selected` order): max minus min probability across languages."""
        layer, neuron = self._assigned_indices()
        p = self.probs[:, layer, neuron].astype(np.float64)
        if p.shape[1] == 0:
            return np.zeros(0)
        return p.max(axis=0) - p.min(axis=0)

    def _assigned_indices(self) -> tuple[np.ndarray, np.ndarray]:
        sel = self.selected
        keep = self.neuron_mask[sel[:, 0], sel[:, 1]] if len(sel) else np.zeros(0, bool)
        return sel[keep, 0], sel[keep, 1]

    def language_counts(self) -> pd.DataFrame:
        """One row per language: n_neurons (assigned), n_exclusive (assigned to it alone)."""
        only = self.languages_per_neuron() == 1
        return pd.DataFrame({
            "language": list(self.languages),
            "n_neurons": self.mask.sum(axis=(1, 2)).astype(np.int64),
            "n_exclusive": (self.mask & only[None]).sum(axis=(1, 2)).astype(np.int64),
        })

    def counts(self) -> pd.DataFrame:
        """Long table language, layer (1-based), n_neurons: every language x layer, zeros included."""
        per = self.mask.sum(axis=2)  # [languages, layers]
        return pd.DataFrame({
            "language": np.repeat(list(self.languages), self.n_layers),
            "layer": np.tile(np.arange(1, self.n_layers + 1), self.n_languages),
            "n_neurons": per.ravel().astype(np.int64),
        })

    def summary(self) -> dict[str, float]:
        """Whole-model numbers to report beside the counts (docs/lape.md)."""
        gap = self.prob_gap()
        return {
            "n_selected": int(len(self.selected)),
            "n_distinct": self.n_distinct,
            "n_exclusive": self.n_exclusive,
            "n_shared": self.n_shared,
            "n_passing_filter": self.n_passing_filter,
            "prob_gap_mean": float(gap.mean()) if gap.size else float("nan"),
            "prob_gap_max": float(gap.max()) if gap.size else float("nan"),
            "filter_threshold": self.filter_threshold,
            "activation_bar": self.activation_bar,
        }

    def to_dataframe(self) -> pd.DataFrame:
        """One row per (selected neuron, language): rank, layer (1-based), neuron, entropy, prob, assigned."""
        sel = self.selected
        k = self.n_languages
        n = len(sel)
        return pd.DataFrame({
            "rank": np.repeat(np.arange(n), k),
            "layer": np.repeat(sel[:, 0] + 1, k).astype(np.int64),
            "neuron": np.repeat(sel[:, 1], k).astype(np.int64),
            "entropy": np.repeat(self.entropy[sel[:, 0], sel[:, 1]], k) if n else np.zeros(0),
            "language": np.tile(list(self.languages), n) if n else np.array([], dtype=object),
            "prob": self.probs[:, sel[:, 0], sel[:, 1]].T.ravel().astype(np.float64) if n else np.zeros(0),
            "assigned": self.mask[:, sel[:, 0], sel[:, 1]].T.ravel() if n else np.zeros(0, bool),
        })

    def to_original_format(self) -> dict[str, list[np.ndarray]]:
        """language -> per block the sorted neuron indices (the original ``activation_mask`` layout)."""
        return {lang: [np.flatnonzero(self.mask[i, b]) for b in range(self.n_layers)]
                for i, lang in enumerate(self.languages)}

    def jaccard(self, other: "LapeResult") -> dict[str, float]:
        """Per language (and ``"*"`` for the union over languages) the Jaccard overlap with ``other``'s sets."""
        if other.mask.shape[1:] != self.mask.shape[1:]:
            raise ValueError(f"cannot compare LAPE results of shapes {self.mask.shape} and {other.mask.shape}")
        out: dict[str, float] = {}
        other_index = {lang: i for i, lang in enumerate(other.languages)}
        pairs = [(lang, self.mask[i], other.mask[other_index[lang]])
                 for i, lang in enumerate(self.languages) if lang in other_index]
        pairs.append(("*", self.neuron_mask, other.neuron_mask))
        for lang, a, b in pairs:
            union = int((a | b).sum())
            out[lang] = float((a & b).sum() / union) if union else float("nan")
        return out


def lape_select(probs: np.ndarray | Sequence, *, top_rate: float = 0.01, filter_rate: float = 0.95,
                activation_bar_ratio: float = 0.95, languages: Sequence[str] | None = None) -> LapeResult:
    """Select language-specific neurons from activation probabilities ``[languages, layers, neurons]``.

    Exactly the procedure of the original ``identify.py`` (see the module docstring), with
    deterministic tie-breaking by flat index. ``languages`` names the first axis (default
    ``lang0, lang1, ...``).
    """
    top_rate = _check_rate("top_rate", top_rate)
    filter_rate = _check_rate("filter_rate", filter_rate)
    activation_bar_ratio = _check_rate("activation_bar_ratio", activation_bar_ratio)
    p = np.asarray(probs)
    if p.ndim != 3:
        raise ValueError(f"probs must have shape [languages, layers, neurons], got shape {p.shape}")
    if 0 in p.shape:
        raise ValueError(f"probs has an empty axis: shape {p.shape}")
    p = p.astype(np.float32, copy=False)
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probs must be finite probabilities in [0, 1] (a language with 0 tokens gives NaN)")
    n_lang, n_layers, n_neurons = p.shape
    if languages is None:
        languages = tuple(f"lang{i}" for i in range(n_lang))
    languages = tuple(str(x) for x in languages)
    if len(languages) != n_lang:
        raise ValueError(f"{len(languages)} language names for {n_lang} rows of probs")
    if len(set(languages)) != n_lang:
        raise ValueError(f"duplicate language names: {languages}")

    entropy = lape_entropy(p)
    tau = kth_smallest_threshold(p, filter_rate)
    passes = (p > tau).any(axis=0)
    entropy = np.where(passes, entropy, np.inf)

    n_select = min(round(n_layers * n_neurons * top_rate), n_layers * n_neurons)
    order = np.argsort(entropy.ravel(), kind="stable")[:n_select]  # ties: ascending flat index
    selected = np.stack(np.divmod(order, n_neurons), axis=1).astype(np.int64).reshape(-1, 2)

    bar = kth_smallest_threshold(p, activation_bar_ratio)
    mask = np.zeros(p.shape, dtype=bool)
    if n_select:
        rows, cols = selected[:, 0], selected[:, 1]
        mask[:, rows, cols] = p[:, rows, cols] > bar
    return LapeResult(languages=languages, probs=p, mask=mask, entropy=entropy, selected=selected,
                      filter_threshold=tau, activation_bar=bar, top_rate=top_rate,
                      filter_rate=filter_rate, activation_bar_ratio=activation_bar_ratio)
