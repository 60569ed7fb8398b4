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
null_n_neurons_lo/_hi  lang        least / most neurons of the language over the permutations
jaccard_vs_reference   lang / "*"  overlap with a reference selection (e.g. step 0)
split_half_jaccard     lang / "*"  overlap of selections on two halves of the groups
=====================  ==========  =====================================================

:func:`lape_over_series` runs the probe over a series through the sweep, comparing every
checkpoint with the first one.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lensprobe.checkpoints import CheckpointInfo, CheckpointSeries
from lensprobe.engine.hooks import run_probes
from lensprobe.engine.protocol import Batch, Probe
from lensprobe.lape.counting import ActivationCounter, aggregate_probabilities
from lensprobe.lape.inputs import InputError, LapeInputs, resolve_inputs
from lensprobe.lape.null import NullResult, shuffled_label_null, split_half_agreement
from lensprobe.lape.selection import LapeResult, lape_select
from lensprobe.probes.registry import register_probe
from lensprobe.sweep import read_sweep, run_sweep
from lensprobe.table import empty_table, sort_table

__all__ = ["LapeProbe", "lape_over_series"]


def _row(language, layer, metric, value, n) -> dict[str, Any]:
    return {"probe": "lape", "language": language, "identifier": None,
            "layer": None if layer is None else int(layer), "metric": metric,
            "value": float(value), "n": None if n is None else int(n)}


@register_probe(prefixes={"input_": "input_sources"})
class LapeProbe(Probe):
    """LAPE language-specific neurons (Tang et al. 2024) with a shuffled-label null; rows in the module docstring.

    Args:
        inputs: the token inputs: :class:`~lensprobe.lape.LapeInputs`, or a source for every
            language (a pretrain token store ``tokens:DIR`` or a directory with ``manifest.json``,
            a directory of source files, a ``.jsonl`` file with a ``language`` field, ``suite``), or
            a mapping language -> source; see :func:`lensprobe.lape.inputs.resolve_inputs`.
        languages: the languages (required with sources; selects from given inputs).
        input_sources: per-language sources, overriding ``inputs`` for those languages.
        tokenizer: tokenizes text sources (the series' tokenizer in a sweep).
        tokens_per_language: token budget per language (default: all the source holds).
        seq_len: sequence length of packed inputs.
        split: token-store split (train or val).
        suite_seed: rendering seed of ``suite`` sources.
        batch_size: sequences per forward pass.
        n_groups: sequence groups per language (the null permutes their labels).
        padding_side: ``"left"`` or ``"right"``.
        pad_id: padding token id (default: the tokenizer's pad token, else 0).
        top_rate: share of all neurons selected (Tang et al.'s 1%).
        filter_rate: quantile of the activation probabilities a neuron must exceed.
        activation_bar_ratio: quantile of the selected neurons' probabilities above which a
            language counts as using a neuron.
        null_permutations: shuffled-label permutations (0: no null rows).
        null_seed: seed of the permutations.
        split_half: also select on two halves of the groups (``split_half_jaccard`` rows).
        reference: a selection to compare with (``jaccard_vs_reference`` rows).
    """

    name = "lape"

    def __init__(self, inputs: LapeInputs | str | Mapping[str, str] | None = None, *,
                 languages: Sequence[str] | None = None, input_sources: Mapping[str, str] | None = None,
                 tokenizer: Any = None, tokens_per_language: int | None = None, seq_len: int = 256,
                 split: Literal["train", "val"] = "val", suite_seed: int = 0, batch_size: int = 8,
                 n_groups: int = 16, padding_side: Literal["left", "right"] = "right", pad_id: int | None = None,
                 top_rate: float = 0.01, filter_rate: float = 0.95, activation_bar_ratio: float = 0.95,
                 null_permutations: int = 8, null_seed: int = 0, split_half: bool = True,
                 reference: LapeResult | None = None) -> None:
        self.inputs = _inputs(inputs, languages=languages, input_sources=input_sources, tokenizer=tokenizer,
                              tokens_per_language=tokens_per_language, seq_len=seq_len, split=split,
                              suite_seed=suite_seed)
        self.languages = self.inputs.languages
        if pad_id is None:
            pad = getattr(tokenizer, "pad_token_id", None)
            pad_id = 0 if pad is None else pad
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
        return run_probes(model, [self], adapter=adapter, device=device)


def _inputs(inputs: Any, *, languages: Sequence[str] | None, input_sources: Mapping[str, str] | None,
            tokenizer: Any, **options: Any) -> LapeInputs:
    """The probe's :class:`LapeInputs` from given inputs or from sources (see :class:`LapeProbe`)."""
    if isinstance(inputs, LapeInputs):
        if input_sources:
            raise TypeError("give either LapeInputs or sources (inputs / input_sources), not both")
        if languages is None and options["tokens_per_language"] is None:
            return inputs
        return resolve_inputs(inputs, languages=languages or inputs.languages, tokenizer=tokenizer, **options)
    if not languages:
        raise InputError("languages are needed to read LAPE inputs from sources")
    languages = list(languages)
    sources = dict(input_sources or {})
    unknown = [lang for lang in sources if lang not in languages]
    if unknown:
        raise InputError(f"an input source is given for {unknown[0]!r} (input_{unknown[0]}), which is not one of "
                         f"the languages {', '.join(languages)}")
    default = None if isinstance(inputs, Mapping) else inputs
    if sources or isinstance(inputs, Mapping):
        sources = {**(inputs if isinstance(inputs, Mapping) else {}), **sources}
    missing = [lang for lang in languages if lang not in sources and default is None]
    if missing:
        raise InputError(f"no LAPE inputs for {', '.join(missing)}: give inputs=SOURCE (suite, a directory, "
                         "a .jsonl file, tokens:STORE_DIR) or a source per language (input_<language>=SOURCE)")
    source = {lang: sources.get(lang, default) for lang in languages} if sources else default
    return resolve_inputs(source, languages=languages, tokenizer=tokenizer, **options)


def _mask_digest(res: LapeResult) -> str:
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
    # the permutations' range: the null band the figures and the report compare counts with
    per_perm = pd.concat([r.language_counts() for r in null.results], ignore_index=True)
    for lang, g in per_perm.groupby("language", sort=False):
        rows.append(_row(lang, None, "null_n_neurons_lo", g["n_neurons"].min(), n))
        rows.append(_row(lang, None, "null_n_neurons_hi", g["n_neurons"].max(), n))
    for rec in null.mean_counts().itertuples(index=False):
        rows.append(_row(rec.language, rec.layer, "null_n_neurons", rec.n_neurons, n))
    summary = null.summary().drop(columns=["permutation", "activation_bar"]).mean()
    for metric, value in summary.items():
        rows.append(_row(None, None, "null_" + metric, value, n))
    return rows


# --------------------------------------------------------------------------- over a series
def lape_over_series(series: CheckpointSeries | str | os.PathLike, inputs: Any, *, languages: Sequence[str],
                     tokens_per_language: int | None = None, tokenizer: Any = None, seq_len: int = 256,
                     split: Literal["train", "val"] = "val", batch_size: int = 8, n_groups: int = 16,
                     padding_side: Literal["left", "right"] = "right", top_rate: float = 0.01,
                     filter_rate: float = 0.95, activation_bar_ratio: float = 0.95, null_permutations: int = 8,
                     null_seed: int = 0, split_half: bool = True, reference: str | LapeResult | None = "first",
                     device: str | torch.device | None = None, out_dir: str | Path | None = None,
                     on_checkpoint: Callable[[CheckpointInfo, LapeResult, pd.DataFrame], None] | None = None,
                     progress: bool = False) -> pd.DataFrame:
    """:class:`LapeProbe` on every checkpoint of ``series`` (a :class:`CheckpointSeries` or a run
    directory): the table of :data:`lensprobe.table.SWEEP_COLUMNS` (LAPE rows only).

    A thin call of :func:`lensprobe.sweep.run_sweep`: in memory, or resumable under ``out_dir``.
    ``inputs``: see :func:`lensprobe.lape.inputs.resolve_inputs`. ``reference="first"`` compares
    every later checkpoint's sets with the first checkpoint's (``jaccard_vs_reference`` rows; use
    a step-0 checkpoint first for the initialisation baseline): the first checkpoint is swept
    alone, then the rest with its selection as the reference (a resumed sweep recomputes the
    first checkpoint in memory when it was already done). Pass a :class:`LapeResult` to fix the
    reference, None for none. ``on_checkpoint(info, result, rows)`` is called after each computed
    checkpoint (e.g. to save its masks). ``progress``: the sweep's bar over the checkpoints (stderr).
    """
    if reference not in (None, "first") and not isinstance(reference, LapeResult):
        raise ValueError(f"reference must be 'first', None or a LapeResult, got {reference!r}")
    if not isinstance(series, CheckpointSeries):
        series = CheckpointSeries(series)
    if tokenizer is None:  # the series' own: checkpoints with another tokenizer are skipped (series.broken)
        series.exclude_foreign_tokenizers()
    tokenizer = series.tokenizer(tokenizer, required=False)
    probe = LapeProbe(inputs, languages=languages, tokenizer=tokenizer, tokens_per_language=tokens_per_language,
                      seq_len=seq_len, split=split, batch_size=batch_size, n_groups=n_groups,
                      padding_side=padding_side, top_rate=top_rate, filter_rate=filter_rate,
                      activation_bar_ratio=activation_bar_ratio, null_permutations=null_permutations,
                      null_seed=null_seed, split_half=split_half,
                      reference=reference if isinstance(reference, LapeResult) else None)

    def done(info: CheckpointInfo, rows: pd.DataFrame) -> None:
        if on_checkpoint is not None:
            on_checkpoint(info, probe.result, rows)

    sweep = dict(tokenizer=tokenizer, device=device or "cpu", rank=0, world_size=1, fail_fast=True,
                 log_rows=False, progress=progress, log=None)
    parts = [series]
    if reference == "first" and len(series) > 1:
        parts = [series[:1], series[1:]]
    tables = []
    for i, part in enumerate(parts):
        res = run_sweep(part, [probe], out_dir=out_dir, on_checkpoint=done, **sweep)
        tables.append(res.table)
        if i == 0 and len(parts) > 1:
            if not res.computed:  # resumed: its rows are on disk; the reference is recomputed in memory
                run_sweep(part, [probe], out_dir=None, **sweep)
            probe.reference = probe.result
    if out_dir is None:
        frames = [t for t in tables if len(t)]
        return sort_table(pd.concat(frames, ignore_index=True)) if frames else empty_table()
    table = read_sweep(out_dir)
    mine = (table["run"] == series.run) & table["checkpoint"].isin([c.name for c in series]) \
        & (table["probe"] == probe.name)
    return table[mine].reset_index(drop=True)
