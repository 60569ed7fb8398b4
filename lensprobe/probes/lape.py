"""LapeProbe: language-specific neurons (LAPE) at one checkpoint, as rows of the long table.

Per checkpoint it counts, per group of sequences, how often each MLP neuron is > 0 (one forward
pass over the inputs, shared with other probes of equal :meth:`input_key`), selects neurons with
:func:`lensprobe.lape.lape_select`, and re-selects under shuffled language labels of the groups
(the null; no extra forward pass).

Rows (``probe="lape"``, ``identifier=None``; ``layer`` is the 1-based block number, None for a
whole-model number; ``n`` = tokens behind the number, or permutations for null means):

=====================  ==========  =====================================================
metric                 language    value
=====================  ==========  =====================================================
n_neurons              lang        neurons assigned to the language (whole model / per layer)
n_exclusive            lang        ... assigned to that language only
mean_activation_prob   lang        mean activation probability over all neurons
n_tokens               lang        tokens counted
n_selected             None        round(top_rate * layers * neurons) (fixed at the defaults)
n_distinct             None        neurons assigned to >= 1 language
n_exclusive / n_shared None        neurons assigned to exactly one / >= 2 languages
prob_gap_mean / _max   None        max - min probability across languages, selected neurons
filter_threshold       None        tau (the 95th-percentile probability)
null_<metric>          as above    mean over shuffled-label permutations
jaccard_vs_reference   lang / "*"  overlap with a reference selection (e.g. step 0)
split_half_jaccard     lang / "*"  overlap of selections on two halves of the groups
=====================  ==========  =====================================================
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from lensprobe.lape.counting import ActivationCounter, aggregate_probabilities
from lensprobe.lape.inputs import LapeInputs
from lensprobe.lape.null import NullResult, shuffled_label_null, split_half_agreement
from lensprobe.lape.selection import LapeResult, lape_select
from lensprobe.engine.protocol import Batch, Probe

__all__ = ["LapeProbe"]


def _row(language, layer, metric, value, n) -> dict[str, Any]:
    return {"probe": "lape", "language": language, "identifier": None,
            "layer": None if layer is None else int(layer), "metric": metric,
            "value": float(value), "n": None if n is None else int(n)}


class LapeProbe(Probe):
    """LAPE neurons per checkpoint (see the module docstring for the rows)."""

    name = "lape"

    def __init__(self, inputs: LapeInputs, *, languages: Sequence[str] | None = None, batch_size: int = 8,
                 n_groups: int = 16, padding_side: str = "right", pad_id: int = 0,
                 top_rate: float = 0.01, filter_rate: float = 0.95, activation_bar_ratio: float = 0.95,
                 null_permutations: int = 8, null_seed: int = 0, split_half: bool = True,
                 reference: LapeResult | None = None) -> None:
        if not isinstance(inputs, LapeInputs):
            raise TypeError(f"inputs must be LapeInputs, got {type(inputs).__name__}")
        self.inputs = inputs.select(languages) if languages is not None else inputs
        self.languages = self.inputs.languages
        if int(null_permutations) < 0:
            raise ValueError(f"null_permutations must be >= 0, got {null_permutations}")
        self.batch_size = int(batch_size)
        self.n_groups = int(n_groups)
        self.padding_side = padding_side
        self.pad_id = int(pad_id)
        self.top_rate, self.filter_rate, self.activation_bar_ratio = top_rate, filter_rate, activation_bar_ratio
        self.null_permutations = int(null_permutations)
        self.null_seed = int(null_seed)
        self.split_half = bool(split_half)
        self.reference = reference
        self.group_language, _ = self.inputs.group_layout(self.n_groups)
        self._lang_index = {lang: i for i, lang in enumerate(self.languages)}
        self.counter: ActivationCounter | None = None
        self._groups_cache: tuple[Batch, Any] | None = None
        #: results of the last finalize()
        self.result: LapeResult | None = None
        self.null: NullResult | None = None

    # -- Probe protocol -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "inputs": self.inputs.digest(), "languages": list(self.languages),
                "batch_size": self.batch_size, "n_groups": self.n_groups, "padding_side": self.padding_side,
                "top_rate": self.top_rate, "filter_rate": self.filter_rate,
                "activation_bar_ratio": self.activation_bar_ratio, "null_permutations": self.null_permutations,
                "null_seed": self.null_seed, "split_half": self.split_half,
                "reference": None if self.reference is None else _mask_digest(self.reference)}

    def input_key(self) -> str:
        return f"lape-inputs:{self.inputs.digest()}:{self.batch_size}:{self.n_groups}:{self.padding_side}:{self.pad_id}"

    def batches(self, tokenizer: Any = None) -> Iterable[Batch]:
        return self.inputs.batches(batch_size=self.batch_size, n_groups=self.n_groups,
                                   padding_side=self.padding_side, pad_id=self.pad_id)

    def hook_points(self, adapter: Any) -> Mapping[str, torch.nn.Module]:
        return {f"neuron.{i + 1}": m for i, m in enumerate(adapter.neuron_modules)}

    def start(self, model: torch.nn.Module, adapter: Any) -> None:
        self.counter = ActivationCounter(n_layers=len(adapter.neuron_modules), n_groups=len(self.group_language))
        self.result = self.null = None
        self._groups_cache = None

    def _prepared(self, batch: Batch):
        """The counter's :class:`~lensprobe.lape.counting.BatchPlan` for ``batch``, computed once per batch."""
        # the cache holds the batch itself, so a later batch can never reuse its id()
        if self._groups_cache is not None and self._groups_cache[0] is batch:
            return self._groups_cache[1]
        try:
            g = [int(m["group"]) for m in batch.meta]
            langs = [m["language"] for m in batch.meta]
        except (KeyError, TypeError) as exc:
            raise ValueError("LapeProbe needs batch.meta rows with 'language' and 'group' "
                             "(use LapeProbe.batches or an equal input_key)") from exc
        for lang, gi in zip(langs, g):
            if lang not in self._lang_index or not 0 <= gi < len(self.group_language) \
                    or self.group_language[gi] != self._lang_index[lang]:
                raise ValueError(f"batch row of language {lang!r} has group {gi}, which is not one of its groups")
        groups: torch.Tensor | int = g[0] if len(set(g)) == 1 else torch.tensor(g, dtype=torch.int64)
        prepared = self.counter.prepare(batch.attention_mask, groups)
        self._groups_cache = (batch, prepared)
        return prepared

    def on_activation(self, point: str, output: torch.Tensor, batch: Batch) -> None:
        layer = int(point.rsplit(".", 1)[1]) - 1
        self.counter.update_prepared(layer, output, self._prepared(batch))

    def on_batch_end(self, batch: Batch, logits: torch.Tensor | None = None) -> None:
        plan = self._prepared(batch)
        self.counter.add_tokens(batch.attention_mask, plan.gids[plan.row_slot])

    def finalize(self) -> list[dict[str, Any]]:
        if self.counter is None:
            raise RuntimeError("LapeProbe.finalize() before start()")
        self._groups_cache = None
        over_zero, n_tokens = self.counter.group_counts()
        k = len(self.languages)
        select = dict(top_rate=self.top_rate, filter_rate=self.filter_rate,
                      activation_bar_ratio=self.activation_bar_ratio)
        probs = aggregate_probabilities(over_zero, n_tokens, self.group_language, k, names=self.languages)
        self.result = res = lape_select(probs, languages=self.languages, **select)
        lang_tokens = np.bincount(self.group_language, weights=n_tokens, minlength=k).astype(np.int64)
        rows = _result_rows(res, lang_tokens, prefix="")
        for i, lang in enumerate(self.languages):
            rows.append(_row(lang, None, "mean_activation_prob", probs[i].mean(), lang_tokens[i]))
            rows.append(_row(lang, None, "n_tokens", lang_tokens[i], lang_tokens[i]))
        total = int(lang_tokens.sum())
        if self.null_permutations:
            self.null = shuffled_label_null(over_zero, n_tokens, self.group_language, languages=self.languages,
                                            n_permutations=self.null_permutations, seed=self.null_seed, **select)
            rows += _null_rows(self.null, total)
        if self.split_half and all((self.group_language == i).sum() >= 2 for i in range(k)):
            agree = split_half_agreement(over_zero, n_tokens, self.group_language, languages=self.languages, **select)
            rows += [_row(None if lang == "*" else lang, None, "split_half_jaccard", v, total)
                     for lang, v in agree.items()]
        if self.reference is not None:
            rows += [_row(None if lang == "*" else lang, None, "jaccard_vs_reference", v, total)
                     for lang, v in res.jaccard(self.reference).items()]
        return rows

    # -- standalone use -------------------------------------------------------------------------
    def run(self, model: Any, *, adapter: Any = None, device: torch.device | str | None = None) -> list[dict[str, Any]]:
        """Count, select and return this checkpoint's rows (one :func:`lensprobe.engine.hooks.run_probes` call)."""
        from lensprobe.engine.hooks import run_probes

        return run_probes(model, [self], adapter=adapter, device=device)


def _mask_digest(res: LapeResult) -> str:
    import hashlib

    return hashlib.sha256(np.packbits(res.mask).tobytes() + ",".join(res.languages).encode()).hexdigest()[:16]


def _result_rows(res: LapeResult, lang_tokens: np.ndarray, *, prefix: str) -> list[dict[str, Any]]:
    rows = []
    total = int(lang_tokens.sum())
    lc = res.language_counts()
    for i, rec in enumerate(lc.itertuples(index=False)):
        rows.append(_row(rec.language, None, prefix + "n_neurons", rec.n_neurons, lang_tokens[i]))
        rows.append(_row(rec.language, None, prefix + "n_exclusive", rec.n_exclusive, lang_tokens[i]))
    per_layer = res.mask.sum(axis=2)
    for i, lang in enumerate(res.languages):
        for b in range(res.n_layers):
            rows.append(_row(lang, b + 1, prefix + "n_neurons", per_layer[i, b], lang_tokens[i]))
    for metric, value in res.summary().items():
        if metric == "activation_bar":
            continue
        rows.append(_row(None, None, prefix + metric, value, total))
    return rows


def _null_rows(null: NullResult, total: int) -> list[dict[str, Any]]:
    n = len(null.results)
    rows = []
    lc = null.mean_language_counts()
    for rec in lc.itertuples(index=False):
        rows.append(_row(rec.language, None, "null_n_neurons", rec.n_neurons, n))
        rows.append(_row(rec.language, None, "null_n_exclusive", rec.n_exclusive, n))
    for rec in null.mean_counts().itertuples(index=False):
        rows.append(_row(rec.language, rec.layer, "null_n_neurons", rec.n_neurons, n))
    summary = null.summary().drop(columns=["permutation", "activation_bar"]).mean()
    for metric, value in summary.items():
        rows.append(_row(None, None, "null_" + metric, value, n))
    return rows
