"""The working-language probe (Babel Tower, Eq.1): which language's identifier the lens sees.

For every suite prompt (ending where a target-language identifier is written) the probe decodes the
last prompt position after every block with the logit lens and classifies the top-1 token as the
target identifier's set, the Python (reference) identifier's set, or other; it also keeps the
log-probability mass of both sets.  Eq.1 of the paper::

    p_l = n_l / sum_k n_k        (l, k in {target, python})

where ``n_l`` counts top-1 tokens in language ``l``'s set over the intermediate layers
``1 .. L - exclude_last``.  The probability-mass variant replaces counts by summed ``P(set)``.

Like the paper, the shares count by default only prompts on which the model generates the target
identifier (its final layer ranks a target token first): ``prompts="generated"``.  The unfiltered
variant, ``prompts="all"``, writes the same metrics with the suffix ``_all_prompts``; both can be
computed in one pass (``prompts=("generated", "all")``).  Every share row's ``n`` is the number of
prompts it rests on; a share with no prompt kept is NaN.  See ``docs/suites.md``.

``lens="tuned"`` reads the same prompts through a tuned lens (per-checkpoint translators,
:mod:`lensprobe.engine.tuned_series`): every metric name then ends in :data:`TUNED_SUFFIX`
(``eq1_python_share_tuned_lens``) and the held-out KL per layer is added
(``heldout_kl_logit_lens``, ``heldout_kl_tuned_lens``), so both lenses sit side by side in one
sweep table and the paper's logit-lens metrics are never replaced. See ``docs/tuned-lens.md``.

Rows use :data:`lensprobe.table.ROW_COLUMNS`; the metric names are listed in :data:`METRICS`.
:func:`working_language` runs the probe over a series (or on one model) through the sweep.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lensprobe.checkpoints import CheckpointSeries
from lensprobe.engine.adapters.registry import text_config
from lensprobe.engine.hooks import block_hook_points, point_layer
from lensprobe.engine.lens import readout, resolve_lens
from lensprobe.engine.tuned_lens import TunedLens
from lensprobe.engine.protocol import Batch, Probe
from lensprobe.probes.registry import register_probe
from lensprobe.suites import Suite, SuiteItem, TokenSets, encode_text, load_suite
from lensprobe.sweep import probe_model, run_sweep

__all__ = ["WorkingLanguageProbe", "working_language", "default_exclude_last", "context_length", "metric_name", "METRICS",
           "PROMPT_METRICS", "OTHER_METRICS", "PROMPTS", "ALL_PROMPTS_SUFFIX", "GROUP_SUFFIX", "TARGET", "PYTHON",
           "OTHER", "TUNED_SUFFIX", "KL_METRICS"]

#: added to the lens' ranks to report 1-based ranks (lensprobe.engine.lens ranks are 0-based)
_RANK_OFFSET = 1.0

#: top-1 classes
TARGET, PYTHON, OTHER = 0, 1, 2

#: the prompt sets a share can rest on: the paper's rule (only prompts whose final layer's top-1 is a
#: target token, i.e. the model generates the identifier) and every prompt
PROMPTS: tuple[str, ...] = ("generated", "all")

#: appended to the name of every metric of :data:`PROMPT_METRICS` computed over all prompts
ALL_PROMPTS_SUFFIX = "_all_prompts"

#: metrics computed over the kept prompts (``n`` = prompts kept) -> meaning; with ``prompts="all"``
#: their names end in :data:`ALL_PROMPTS_SUFFIX`
PROMPT_METRICS: dict[str, str] = {
    "share_target_top1": "per layer: share of kept prompts whose lens top-1 token is in the target-language set",
    "share_python_top1": "per layer: share of kept prompts whose lens top-1 token is in the Python set",
    "share_other_top1": "per layer: share of kept prompts whose lens top-1 token is in neither set",
    "logp_target": "per layer: mean log P(target set) over kept prompts",
    "logp_python": "per layer: mean log P(Python set) over kept prompts",
    "eq1_target_share": "Eq.1 share of the target language: n_target / (n_target + n_python), layers 1..L-exclude_last",
    "eq1_python_share": "Eq.1 share of Python: n_python / (n_target + n_python), layers 1..L-exclude_last",
    "eq1_mass_target_share": "probability-mass Eq.1: sum P(target set) / (sum P(target) + sum P(python))",
    "eq1_mass_python_share": "probability-mass Eq.1: sum P(python set) / (sum P(target) + sum P(python))",
    "eq1_counted": "n_target + n_python: (prompt, layer) cells, over kept prompts, whose top-1 is in either set",
}

#: metrics that do not depend on the prompt set -> meaning
OTHER_METRICS: dict[str, str] = {
    "final_accuracy": "share of all prompts whose final layer's top-1 token is in the target set",
    "final_target_rank": "median over all prompts of the best 1-based rank of a target-set token at the final layer",
    "n_prompts": "prompts rendered (identifier rows) / prompts of included identifiers (group and suite rows)",
    "n_kept": "prompts that generate the target identifier (final top-1 in the target set); with prompts='generated'",
    "excluded_collision": "1 for an identifier not probed: its target and Python token sets share a token (or one is empty)",
    "n_excluded_collisions": "suite row: number of identifiers excluded for colliding token sets",
    "n_identifiers": "suite row: number of identifiers probed",
    "exclude_last": "suite row: the number of final layers left out of Eq.1",
}

#: appended to every metric name written through the tuned lens (``lens="tuned"``)
TUNED_SUFFIX = "_tuned_lens"

#: written with ``lens="tuned"`` only: the lens' held-out KL per layer (``n`` = tokens)
KL_METRICS: dict[str, str] = {
    "heldout_kl_logit_lens": "per layer: mean KL(final || layer) of the logit lens on the held-out rows, nats/token",
    "heldout_kl_tuned_lens": "per layer: mean KL(final || layer) of the tuned lens on the held-out rows, nats/token",
}

_LOGIT_METRICS: dict[str, str] = {
    **PROMPT_METRICS,
    **{m + ALL_PROMPTS_SUFFIX: d.replace("kept prompts", "all prompts") + " (every prompt, unfiltered)"
       for m, d in PROMPT_METRICS.items()},
    **OTHER_METRICS,
}

#: every metric name the probe can write -> meaning
METRICS: dict[str, str] = {
    **_LOGIT_METRICS,
    **{m + TUNED_SUFFIX: d + " (through the tuned lens)" for m, d in _LOGIT_METRICS.items()},
    **KL_METRICS,
}

#: identifier of the pooled rows of a group of identifiers ``<group>:...`` (Babel suites: one per split)
GROUP_SUFFIX = ":*"


def metric_name(metric: str, prompts: str = "generated", lens: str = "logit") -> str:
    """The table name of ``metric`` computed over ``prompts`` (``"generated"`` or ``"all"``)
    through ``lens`` (``"logit"`` or ``"tuned"``).

    ``metric_name("eq1_python_share", "all") == "eq1_python_share_all_prompts"``; metrics that do
    not depend on the prompt set keep their name; ``lens="tuned"`` appends :data:`TUNED_SUFFIX`.
    """
    if lens not in ("logit", "tuned"):
        raise ValueError(f"lens must be 'logit' or 'tuned', got {lens!r}")
    if lens == "tuned":
        return metric_name(metric, prompts) + TUNED_SUFFIX
    if prompts not in PROMPTS:
        raise ValueError(f"prompts must be one of {', '.join(PROMPTS)}, got {prompts!r}")
    if metric not in PROMPT_METRICS and metric not in OTHER_METRICS:
        raise KeyError(f"unknown working-language metric {metric!r}; known: {', '.join(PROMPT_METRICS)}, "
                       f"{', '.join(OTHER_METRICS)}")
    return metric + ALL_PROMPTS_SUFFIX if prompts == "all" and metric in PROMPT_METRICS else metric


def _prompt_sets(prompts: Any) -> tuple[str, ...]:
    """``"generated"`` / ``"all"`` / a sequence of them -> a tuple in :data:`PROMPTS` order."""
    values = [prompts] if isinstance(prompts, str) else prompts
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"prompts must be 'generated', 'all' or a sequence of them, got {prompts!r}") from None
    bad = [v for v in values if v not in PROMPTS]
    if bad or not values:
        raise ValueError(f"prompts must be 'generated' (the paper's rule), 'all' or both, got {prompts!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"prompts lists a value twice: {prompts!r}")
    return tuple(p for p in PROMPTS if p in values)


def default_exclude_last(n_layers: int) -> int:
    """Final layers left out of Eq.1: the paper's 5, fewer on small models.

    ``min(5, max(1, (n_layers - 1) // 2))`` — always at least the last layer (whose top-1 is the
    prediction itself), never more than half of the layers, and 5 from 11 layers up.
    """
    if n_layers < 2:
        raise ValueError(f"Eq.1 needs at least 2 layers, the model has {n_layers}")
    return min(5, max(1, (n_layers - 1) // 2))


def context_length(config: Any) -> int | None:
    """The longest input a model was built for (``n_positions`` / ``max_position_embeddings`` of its
    text config), or None when the config names none."""
    if config is None:
        return None
    text = text_config(config)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(text, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass
class _ItemRecord:
    """Per prompt, per layer (index layer-1): top-1 class and both set log-masses."""

    cls: np.ndarray
    logp_target: np.ndarray
    logp_python: np.ndarray
    final_rank: float = math.nan


@register_probe
class WorkingLanguageProbe(Probe):
    """Logit-lens working language (Eq.1) over an identifier suite; metrics in :data:`METRICS`.

    Args:
        suite: a :class:`~lensprobe.suites.Suite`, a suite name (php, go, ...) or a YAML path.
        suites_dir: an extra directory searched for the suite's YAML file.
        seed: rendering seed of the suite.
        limit: prompts per identifier (default: the suite's ``n_prompts``).
        identifiers: restrict to these identifier ids.
        exclude_last: final layers left out of Eq.1 (default :func:`default_exclude_last`).
        prompts: which prompts the shares rest on: ``"generated"`` (default, the paper's rule: only
            prompts whose final layer ranks a target token first, i.e. the model generates the
            identifier), ``"all"`` (every prompt; metric names end in ``_all_prompts``) or both
            (``("generated", "all")``: both metric families from one pass).
        batch_size: prompts per forward pass.
        add_bos: prepend the tokenizer's BOS token to every prompt (never added implicitly).
        padding_side: ``"left"`` or ``"right"``; rows are exact either way (position ids from the mask).
        lens: ``"logit"`` (default: the paper's Eq.1 lens), ``"tuned"`` (translators fitted per
            checkpoint on held-out tokens, warm-started from the previous checkpoint and cached;
            metric names end in ``_tuned_lens``) or a fitted TunedLens of the one model probed.
        lens_tokens: held-out tokens of the tuned lens: a pretrain token store directory (its
            ``val`` split); default the run's own (``<run>/tokens``).
        lens_languages: languages of those tokens (default the suite's language and python).
        lens_steps: optimiser steps per checkpoint's fit.
        lens_rows: fit rows per language (128 tokens each); half as many more are held out for the KL.
        lens_warm_start: start each checkpoint's fit from the previous checkpoint's translators.
        lens_dir: where the translators are cached (default ``<sweep out>/tuned_lens``; in memory
            without an output directory).
        tuned_series: a :class:`~lensprobe.engine.tuned_series.TunedLensSeries` of your own (your
            ids and settings); the other ``lens_*`` options are then ignored.

    Rows per identifier, per group (ids ``<group>:<rest>`` pooled as ``<group>:*``; Babel suites'
    splits) and for the suite (``identifier`` None).
    """

    name = "working_language"

    def __init__(self, suite: Suite | str, *, suites_dir: str | None = None, seed: int = 0, limit: int | None = None,
                 identifiers: Sequence[str] | None = None, exclude_last: int | None = None,
                 prompts: str | Sequence[str] = "generated", batch_size: int = 16, add_bos: bool = False,
                 padding_side: Literal["left", "right"] = "left",
                 lens: Literal["logit", "tuned"] | TunedLens = "logit", lens_tokens: str | None = None,
                 lens_languages: Sequence[str] | None = None, lens_steps: int = 150, lens_rows: int = 32,
                 lens_warm_start: bool = True, lens_dir: str | None = None, tuned_series: Any = None):
        self.suite = load_suite(suite, search_path=[suites_dir] if suites_dir else None)
        self.lens, self._lens_given = resolve_lens(lens, where="lens")
        if isinstance(lens_steps, bool) or not isinstance(lens_steps, int) or lens_steps < 0:
            raise ValueError(f"lens_steps must be an integer >= 0, got {lens_steps!r}")
        if isinstance(lens_rows, bool) or not isinstance(lens_rows, int) or lens_rows < 1:
            raise ValueError(f"lens_rows must be an integer >= 1, got {lens_rows!r}")
        if tuned_series is not None:
            from lensprobe.engine.tuned_series import TunedLensSeries

            if not isinstance(tuned_series, TunedLensSeries):
                raise TypeError(f"tuned_series must be a TunedLensSeries, got {type(tuned_series).__name__}")
        if self.lens == "logit" and (tuned_series is not None or lens_tokens is not None or lens_dir is not None):
            raise ValueError("lens_tokens / lens_dir / tuned_series are for lens='tuned'; this probe reads the "
                             "logit lens")
        self.lens_tokens = lens_tokens
        self.lens_languages = list(dict.fromkeys(lens_languages if lens_languages is not None
                                                 else (self.suite.language, "python")))
        self.lens_steps = lens_steps
        self.lens_rows = lens_rows
        self.lens_warm_start = bool(lens_warm_start)
        self.lens_dir = lens_dir
        self.tuned_series = tuned_series
        self._bound: dict[str, Any] = {}
        self._tuned: TunedLens | None = None
        self._kl: pd.DataFrame | None = None
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if exclude_last is not None and (isinstance(exclude_last, bool) or not isinstance(exclude_last, int)
                                         or exclude_last < 0):
            raise ValueError(f"exclude_last must be a non-negative int or None, got {exclude_last!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.seed = seed
        self.limit = limit
        self.identifiers = None if identifiers is None else list(identifiers)
        self.exclude_last = exclude_last
        self.prompts: tuple[str, ...] = _prompt_sets(prompts)
        self.batch_size = batch_size
        self.add_bos = bool(add_bos)
        self.padding_side = padding_side
        self.items: list[SuiteItem] = self.suite.render(seed=seed, limit=limit, identifiers=self.identifiers)
        self.token_sets: dict[str, TokenSets] | None = None
        self._adapter: Any = None
        self._n_layers: int | None = None
        self._context: int | None = None
        self._records: dict[int, _ItemRecord] = {}
        self._seen_sets: dict[str, TokenSets] = {}
        self._seen_excluded: tuple[str, ...] | None = None

    # -- protocol ------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        out = {"name": self.name, "suite": self.suite.name, "suite_digest": self.suite.digest(), "seed": self.seed,
               "limit": self.limit, "identifiers": self.identifiers, "exclude_last": self.exclude_last,
               "prompts": list(self.prompts), "add_bos": self.add_bos}
        if self.lens == "tuned":  # the logit lens' configuration (and so its results' keys) is unchanged
            if self._lens_given is not None:
                lens = {"weight_hash": self._lens_given.weight_hash_,
                        "translators": hashlib.blake2b(self._lens_given.weight_.numpy().tobytes()
                                                       + self._lens_given.bias_.numpy().tobytes(),
                                                       digest_size=8).hexdigest()}
            elif self.tuned_series is not None:
                lens = self.tuned_series.describe()
            else:
                lens = {"tokens": self.lens_tokens or "run", "languages": self.lens_languages,
                        "steps": self.lens_steps, "rows": self.lens_rows, "warm_start": self.lens_warm_start}
            out.update(lens="tuned", tuned_lens=lens)
        return out

    # -- the tuned lens ------------------------------------------------------------------------
    def bind_checkpoint(self, info: Any, *, series: Any = None, out_dir: Any = None) -> None:
        """Called by the sweep before it runs the probe on a checkpoint: which checkpoint (run,
        name, step, weight hash) and where the sweep writes (the tuned lens' cache and tokens)."""
        self._bound = {"run": getattr(series, "run", None), "checkpoint": getattr(info, "name", None),
                       "step": getattr(info, "step", None), "weight_hash": getattr(info, "weight_hash", None),
                       "run_dir": getattr(series, "run_dir", None), "out_dir": out_dir}

    def _series(self) -> Any:
        """The :class:`TunedLensSeries` that gives each checkpoint's translators (built once)."""
        if self.tuned_series is None:
            from lensprobe.engine.tuned_series import CACHE_DIR, HeldOutTokens, TunedLensSeries, run_token_store

            store = self.lens_tokens if self.lens_tokens is not None else run_token_store(self._bound.get("run_dir"))
            tokens = HeldOutTokens.from_token_store(store, self.lens_languages, split="val", seq_len=128,
                                                    fit_rows=self.lens_rows, eval_rows=max(1, self.lens_rows // 2))
            cache = self.lens_dir
            if cache is None and self._bound.get("out_dir") is not None:
                cache = os.path.join(self._bound["out_dir"], CACHE_DIR)
            self.tuned_series = TunedLensSeries(tokens, cache_dir=cache, settings={"steps": self.lens_steps},
                                                warm_start=self.lens_warm_start)
        return self.tuned_series

    def _start_lens(self, model: torch.nn.Module) -> None:
        self._tuned, self._kl = None, None
        if self.lens != "tuned":
            return
        if self._lens_given is not None:
            self._lens_given.verify_model(model, weight_hash=self._bound.get("weight_hash"))
            self._tuned = self._lens_given
            return
        b = self._bound
        got = self._series().lens_for(model, run=b.get("run"), checkpoint=b.get("checkpoint"), step=b.get("step"),
                                      weight_hash=b.get("weight_hash"))
        self._tuned, self._kl = got.lens, got.kl

    def input_key(self) -> str:
        return (f"suite:{self.suite.name}:{self.suite.digest()}:seed={self.seed}:limit={self.limit}:"
                f"ids={self.identifiers}:bos={self.add_bos}:bs={self.batch_size}:pad={self.padding_side}")

    def start(self, model: torch.nn.Module, adapter: Any) -> None:
        self._adapter = adapter
        self._n_layers = int(adapter.n_layers)
        self._context = context_length(getattr(adapter, "config", None) or getattr(model, "config", None))
        self._records = {}
        self._seen_sets = {}
        self._seen_excluded = None
        self._start_lens(model)

    def hook_points(self, adapter: Any) -> Mapping[str, torch.nn.Module]:
        return block_hook_points(adapter)

    def included_identifiers(self) -> list[str]:
        """Identifier ids that are probed (token sets computed and not colliding)."""
        if self.token_sets is None:
            raise RuntimeError("token sets are computed from the tokenizer in batches(); call it first")
        return [i for i in self._ordered_ids() if not self.token_sets[i].collision
                and self.token_sets[i].target and self.token_sets[i].reference]

    def _ordered_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for it in self.items:
            seen.setdefault(it.identifier, None)
        return list(seen)

    def encode_prompt(self, tokenizer: Any, prompt: str) -> list[int]:
        """Token ids of a prompt: no special tokens, BOS only when ``add_bos``."""
        ids = encode_text(tokenizer, prompt)
        if self.add_bos:
            bos = getattr(tokenizer, "bos_token_id", None)
            if bos is None:
                raise ValueError("add_bos=True but the tokenizer has no bos_token_id")
            ids = [int(bos)] + ids
        if not ids:
            raise ValueError(f"prompt tokenizes to nothing: {prompt!r}")
        return ids

    def batches(self, tokenizer: Any) -> Iterable[Batch]:
        if tokenizer is None:
            raise ValueError("the working-language probe needs a tokenizer (pass tokenizer=...)")
        all_sets = self.suite.token_sets(tokenizer)
        self.token_sets = {i: all_sets[i] for i in self._ordered_ids()}
        included = set(self.included_identifiers())
        pad = getattr(tokenizer, "pad_token_id", None)
        pad = int(pad) if pad is not None else 0
        rows = [(k, self.encode_prompt(tokenizer, it.prompt)) for k, it in enumerate(self.items)
                if it.identifier in included]
        self._check_context(rows)
        excluded = tuple(i for i in self._ordered_ids() if i not in included)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            width = max(len(ids) for _, ids in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (_, ids) in enumerate(chunk):
                sl = slice(width - len(ids), width) if self.padding_side == "left" else slice(0, len(ids))
                input_ids[r, sl] = torch.tensor(ids, dtype=torch.long)
                mask[r, sl] = 1
            # the token sets travel with the rows: probes sharing this input_key get batches from
            # whichever of them the engine asks, and must not depend on their own batches() call
            meta = []
            for k, _ in chunk:
                ident = self.items[k].identifier
                ts = self.token_sets[ident]
                meta.append({"item": k, "identifier": ident, "target": tuple(sorted(ts.target)),
                             "reference": tuple(sorted(ts.reference)), "excluded": excluded})
            yield Batch(input_ids, mask, meta)

    def _check_context(self, rows: list[tuple[int, list[int]]]) -> None:
        """Refuse prompts longer than the model's context, before any forward pass: positions past
        it do not exist in a learned position table (an opaque ``IndexError``) and were never
        trained with rotary ones. Cutting the prompt instead would change what is measured."""
        if self._context is None:
            return
        too_long = [(k, len(ids)) for k, ids in rows if len(ids) > self._context]
        if not too_long:
            return
        k, n = max(too_long, key=lambda kn: kn[1])
        it = self.items[k]
        where = f"suite {self.suite.name!r}" + (f" ({self.suite.path})" if self.suite.path else "")
        idents = sorted({self.items[j].identifier for j, _ in too_long})
        raise ValueError(
            f"{where}: {len(too_long)} prompt(s) are longer than the model's context of {self._context} tokens; "
            f"the longest: identifier {it.identifier!r}, prompt #{it.index} (template {it.template_id!r}) has {n} "
            f"tokens{' with BOS' if self.add_bos else ''}. Identifiers concerned: {', '.join(idents)}. Use a model "
            "with a longer context, shorten those templates, or leave the identifiers out (identifiers= / "
            "--identifier); prompts are never cut (docs/suites.md)")

    def on_activation(self, point: str, output: torch.Tensor, batch: Batch) -> None:
        layer = point_layer(point)
        L = self._n_layers
        rows = torch.arange(output.shape[0], device=output.device)
        hidden = output[rows, batch.last_index.to(output.device)]
        final = layer == L
        if self._tuned is not None and not final:
            hidden = self._tuned.transform(layer, hidden)
        # distinct sets of this batch: identifier -> (column of target set, column of Python set)
        cols: dict[str, tuple[int, int]] = {}
        union: list[tuple[int, ...]] = []
        for meta in batch.meta:
            ident = meta["identifier"]
            if ident not in cols:
                cols[ident] = (len(union), len(union) + 1)
                union += [meta["target"], meta["reference"]]
                self._seen_sets.setdefault(ident, TokenSets(ident, frozenset(meta["target"]),
                                                            frozenset(meta["reference"])))
            self._seen_excluded = tuple(meta["excluded"])
        target_ids = sorted({t for meta in batch.meta for t in meta["target"]})
        pos = {t: j for j, t in enumerate(target_ids)}
        res = readout(hidden.float(), self._adapter, token_sets=union, top_k=1,
                      token_ids=target_ids if final else None)
        top1 = res.top_tokens[:, 0].tolist()
        set_lp = res.set_logprobs.float().cpu().numpy()
        for r, meta in enumerate(batch.meta):
            k = meta["item"]
            ident = meta["identifier"]
            ti, pi = cols[ident]
            rec = self._records.get(k)
            if rec is None:
                rec = _ItemRecord(np.full(L, -1, dtype=np.int8), np.full(L, np.nan), np.full(L, np.nan))
                self._records[k] = rec
            tok = top1[r]
            rec.cls[layer - 1] = TARGET if tok in meta["target"] else PYTHON if tok in meta["reference"] else OTHER
            rec.logp_target[layer - 1] = set_lp[r, ti]
            rec.logp_python[layer - 1] = set_lp[r, pi]
            if final:
                rec.final_rank = float(res.token_ranks[r, [pos[t] for t in meta["target"]]].min()) + _RANK_OFFSET

    # -- results -------------------------------------------------------------------------------
    def resolved_exclude_last(self) -> int:
        if self._n_layers is None:
            raise RuntimeError("the probe has not seen a model yet")
        e = default_exclude_last(self._n_layers) if self.exclude_last is None else self.exclude_last
        if e >= self._n_layers:
            raise ValueError(f"exclude_last={e} leaves no layer of this {self._n_layers}-layer model for Eq.1")
        return e

    def finalize(self) -> list[dict[str, Any]]:
        if self._n_layers is None:
            raise RuntimeError("finalize() before start(): run the probe with lensprobe.engine.hooks.run_probes")
        if self.token_sets is None:
            # batches came from another probe with the same input_key: take the sets from the rows
            if self._seen_excluded is None:
                raise RuntimeError("the probe saw no batch (every identifier excluded?) and did not tokenize "
                                   "the suite itself; run it on its own")
            self.token_sets = dict(self._seen_sets)
            for ident in self._seen_excluded:
                self.token_sets[ident] = TokenSets(ident, frozenset({-1}), frozenset({-1}))  # marks a collision
        L = self._n_layers
        excl = self.resolved_exclude_last()
        lang = self.suite.language
        out: list[dict[str, Any]] = []

        suffix = TUNED_SUFFIX if self.lens == "tuned" else ""

        def row(ident, layer, metric, value, n):
            out.append({"probe": self.name, "language": lang, "identifier": ident, "layer": layer,
                        "metric": metric + suffix, "value": float(value), "n": int(n)})

        by_ident: dict[str, list[_ItemRecord]] = {}
        for k, it in enumerate(self.items):
            if k in self._records:
                by_ident.setdefault(it.identifier, []).append(self._records[k])
        pooled: list[_ItemRecord] = []
        groups: dict[str, list[_ItemRecord]] = {}
        n_collisions = 0
        included = set(self.included_identifiers())
        for ident in self._ordered_ids():
            if ident not in included:
                n_collisions += 1
                row(ident, None, "excluded_collision", 1.0, 0)
                continue
            recs = by_ident.get(ident, [])
            missing = [r for r in recs if (r.cls < 0).any()]
            if missing:
                raise RuntimeError(f"identifier {ident!r}: some layers were never observed (hook points missing?)")
            pooled.extend(recs)
            if ":" in ident:  # `<group>:<rest>` (Babel suites: `<split>:<target>:<python>`)
                groups.setdefault(ident.split(":", 1)[0], []).extend(recs)
            self._summary_rows(row, ident, recs, excl)
        for group, recs in groups.items():
            self._summary_rows(row, group + GROUP_SUFFIX, recs, excl)
        row(None, None, "n_excluded_collisions", n_collisions, len(self._ordered_ids()))
        row(None, None, "n_identifiers", len(self._ordered_ids()) - n_collisions, len(self._ordered_ids()))
        row(None, None, "exclude_last", excl, L)
        self._summary_rows(row, None, pooled, excl)
        if self._kl is not None:
            for r in self._kl.itertuples():
                for metric, value in (("heldout_kl_logit_lens", r.kl_logit), ("heldout_kl_tuned_lens", r.kl_tuned)):
                    out.append({"probe": self.name, "language": lang, "identifier": None, "layer": int(r.layer),
                                "metric": metric, "value": float(value), "n": int(r.n_tokens)})
        self._bound = {}
        return out

    def _summary_rows(self, row, ident, recs: list[_ItemRecord], excl: int) -> None:
        """The rows of one aggregation level: the prompt-set independent metrics once, then the
        shares per prompt set (``n`` = prompts they rest on; NaN when none is kept)."""
        L = self._n_layers
        n_all = len(recs)
        generated = [r for r in recs if r.cls[L - 1] == TARGET]
        row(ident, None, "n_prompts", n_all, n_all)
        if "generated" in self.prompts:
            row(ident, None, "n_kept", len(generated), n_all)
        row(ident, None, "final_accuracy", len(generated) / n_all if n_all else math.nan, n_all)
        ranks = [r.final_rank for r in recs if not math.isnan(r.final_rank)]
        row(ident, None, "final_target_rank", float(np.median(ranks)) if ranks else math.nan, len(ranks))
        for prompts in self.prompts:
            kept = generated if prompts == "generated" else recs
            self._share_rows(row, ident, kept, excl, suffix="" if prompts == "generated" else ALL_PROMPTS_SUFFIX)

    def _share_rows(self, row, ident, kept: list[_ItemRecord], excl: int, *, suffix: str) -> None:
        L = self._n_layers
        n_kept = len(kept)
        nan = math.nan

        def share(metric, layer, value):
            row(ident, layer, metric + suffix, value if n_kept else nan, n_kept)

        if kept:
            cls = np.stack([r.cls for r in kept])            # [n, L]
            lpt = np.stack([r.logp_target for r in kept])
            lpp = np.stack([r.logp_python for r in kept])
        else:
            cls = np.zeros((0, L), dtype=np.int8)
            lpt = lpp = np.zeros((0, L))
        used = slice(0, L - excl)
        n_t = int((cls[:, used] == TARGET).sum())
        n_p = int((cls[:, used] == PYTHON).sum())
        tot = n_t + n_p
        # NaN also when prompts were kept but no top-1 token fell into either set (0/0)
        share("eq1_target_share", None, n_t / tot if tot else nan)
        share("eq1_python_share", None, n_p / tot if tot else nan)
        row(ident, None, "eq1_counted" + suffix, tot, n_kept)
        m_t = float(np.exp(lpt[:, used]).sum())
        m_p = float(np.exp(lpp[:, used]).sum())
        mass = m_t + m_p
        share("eq1_mass_target_share", None, m_t / mass if mass > 0 else nan)
        share("eq1_mass_python_share", None, m_p / mass if mass > 0 else nan)
        for layer in range(1, L + 1):
            c = cls[:, layer - 1]
            share("share_target_top1", layer, (c == TARGET).mean() if n_kept else nan)
            share("share_python_top1", layer, (c == PYTHON).mean() if n_kept else nan)
            share("share_other_top1", layer, (c == OTHER).mean() if n_kept else nan)
            share("logp_target", layer, lpt[:, layer - 1].mean() if n_kept else nan)
            share("logp_python", layer, lpp[:, layer - 1].mean() if n_kept else nan)


# --------------------------------------------------------------------------- convenience
def working_language(model_or_series: Any, suite: Suite | str | os.PathLike | Sequence[Suite | str | os.PathLike], *,
                     tokenizer: Any = None, seed: int = 0, limit: int | None = None,
                     identifiers: Sequence[str] | None = None, exclude_last: int | None = None,
                     prompts: str | Sequence[str] = "generated", batch_size: int = 16, add_bos: bool = False,
                     device: str | torch.device | None = None, progress: bool = False,
                     lens: Any = "logit", lens_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run :class:`WorkingLanguageProbe` on every checkpoint of a series (a
    :class:`~lensprobe.checkpoints.CheckpointSeries` or a run directory) or on one model.

    A thin call of :func:`lensprobe.sweep.run_sweep` in memory (one model:
    :func:`lensprobe.sweep.probe_model`, whose ``checkpoint`` column is the model's
    ``name_or_path``): the table of :data:`lensprobe.table.SWEEP_COLUMNS`, the probe's rows only.
    ``suite``: a suite, name or path, or a list of them: one probe per suite in the same pass over
    the checkpoints (their rows differ by ``language``, so two suites of one language are refused;
    ``identifiers`` then picks from every suite and each suite must have one of them).
    ``tokenizer``: an object or a path; default the series' tokenizer (a
    :class:`~lensprobe.engine.adapters.LoadedModel`'s own); a plain model needs one.
    ``prompts`` as in :class:`WorkingLanguageProbe`: the paper's rule (``"generated"``) by default.
    ``progress``: the sweep's bar over the checkpoints (stderr; a series only).
    ``lens``: ``"logit"`` (default), ``"tuned"``, a fitted TunedLens, or a list of them (e.g.
    ``["logit", "tuned"]``: both side by side, one probe each, one pass over the checkpoints);
    ``lens_options``: the probe's ``lens_*`` / ``tuned_series`` keywords for the tuned lens (e.g.
    ``{"lens_dir": "out/tuned_lens", "lens_steps": 100}``). See docs/tuned-lens.md.
    """
    lenses = list(lens) if isinstance(lens, (list, tuple)) else [lens]
    if not lenses:
        raise ValueError("lens: give at least one lens")
    names = [resolve_lens(x, where="lens")[0] if not isinstance(x, TunedLens) else "tuned" for x in lenses]
    if len(set(names)) != len(names):
        raise ValueError(f"lens lists the same lens twice: {lenses!r}")
    lens_options = dict(lens_options or {})
    several = not isinstance(suite, (Suite, str, os.PathLike))
    suites = [load_suite(s) for s in suite] if several else [load_suite(suite)]
    if not suites:
        raise ValueError("suite: give at least one suite")
    by_language: dict[str, list[str]] = {}
    for s in suites:
        by_language.setdefault(s.language, []).append(s.path or s.name)
    same = {lang: names for lang, names in by_language.items() if len(names) > 1}
    if same:
        raise ValueError(f"suites of the same language would write the same rows: {same}; run them separately")
    chosen: list[Sequence[str] | None] = [identifiers] * len(suites)
    if identifiers is not None and several:
        wanted = list(identifiers)
        ids = [{spec.id for spec in s.identifiers} for s in suites]
        unknown = [i for i in wanted if not any(i in known for known in ids)]
        if unknown:
            raise KeyError(f"identifiers {unknown} are in none of the suites "
                           f"{', '.join(s.name for s in suites)}")
        chosen = [[i for i in wanted if i in known] for known in ids]
        empty = [s.name for s, c in zip(suites, chosen) if not c]
        if empty:
            raise ValueError(f"suite(s) {', '.join(empty)} have none of the identifiers {wanted}; give identifiers "
                             "of every suite or run the suites separately")
    probes = [WorkingLanguageProbe(s, seed=seed, limit=limit, identifiers=c, exclude_last=exclude_last,
                                   prompts=prompts, batch_size=batch_size, add_bos=add_bos, lens=x,
                                   **(lens_options if name == "tuned" else {}))
              for x, name in zip(lenses, names) for s, c in zip(suites, chosen)]
    if isinstance(model_or_series, (CheckpointSeries, str, os.PathLike)):
        series = model_or_series if isinstance(model_or_series, CheckpointSeries) else CheckpointSeries(model_or_series)
        if tokenizer is None:  # the series' own: checkpoints with another tokenizer are skipped (series.broken)
            series.exclude_foreign_tokenizers()
        return run_sweep(series, probes, tokenizer=series.tokenizer(tokenizer), device=device or "cpu",
                         fail_fast=True, log_rows=False, progress=progress, log=None).to_dataframe()
    if tokenizer is None and getattr(model_or_series, "tokenizer", None) is None:
        raise ValueError("working_language on a single model needs tokenizer=...")
    name = getattr(getattr(model_or_series, "config", None), "name_or_path", None) or None
    return probe_model(model_or_series, probes, tokenizer=tokenizer, device=device, checkpoint=name)
