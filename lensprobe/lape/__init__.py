"""LAPE: language-specific neurons (Tang et al. 2024) over a checkpoint series.

* :func:`lape_select`, :class:`LapeResult` -- the selection, exactly as the original ``identify.py``;
* :class:`ActivationCounter` -- streaming per-group counts of positive neuron activations;
* :class:`LapeInputs` -- token inputs per language under a budget (token store, files, suites);
* :func:`shuffled_label_null`, :func:`split_half_agreement` -- baselines from the same counts;
* the probe and :func:`~lensprobe.probes.lape.lape_over_series` (every checkpoint of a series) live
  in :mod:`lensprobe.probes.lape`;
* :mod:`lensprobe.present.lape_figures` -- seaborn figures.
"""
from lensprobe.lape.counting import ActivationCounter, aggregate_probabilities, count_activations
from lensprobe.lape.inputs import InputError, LapeInputs
from lensprobe.lape.null import NullResult, shuffled_label_null, split_half_agreement
from lensprobe.lape.selection import LapeResult, lape_entropy, lape_select

__all__ = [
    "ActivationCounter", "InputError", "LapeInputs", "LapeResult", "NullResult", "aggregate_probabilities",
    "count_activations", "lape_entropy", "lape_select", "shuffled_label_null",
    "split_half_agreement",
]
