"""LAPE over every checkpoint of a series, as one long table (``SWEEP_COLUMNS``)."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from lensprobe.lape.inputs import resolve_inputs
from lensprobe.lape.selection import LapeResult
from lensprobe.engine.protocol import SWEEP_COLUMNS

__all__ = ["lape_over_series"]


def _series_tokenizer(series: Any) -> Any:
    tok = getattr(series, "tokenizer", None)
    if callable(tok):
        tok = tok()
    if tok is None and callable(getattr(series, "load_tokenizer", None)):
        try:
            tok = series.load_tokenizer()
        except Exception:  # no tokenizer files: fine for token-id inputs (resolve_inputs says when one is needed)
            tok = None
    return tok


def lape_over_series(series: Any, inputs: Any, *, languages: Sequence[str], tokens_per_language: int | None = None,
                     tokenizer: Any = None, seq_len: int = 256, split: str = "val", batch_size: int = 8,
                     n_groups: int = 16, padding_side: str = "right", top_rate: float = 0.01,
                     filter_rate: float = 0.95, activation_bar_ratio: float = 0.95, null_permutations: int = 8,
                     null_seed: int = 0, split_half: bool = True, reference: str | LapeResult | None = "first",
                     device: Any = None, skip: Iterable[str] = (),
                     on_checkpoint: Callable[[Any, LapeResult, pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Run :class:`~lensprobe.probes.lape.LapeProbe` on every checkpoint of ``series``.

    ``series``: a :class:`lensprobe.checkpoints.CheckpointSeries`, a run directory, or any object
    with ``iter_models()`` yielding ``(ckpt, model)`` (``ckpt.name/.step/.tokens``).
    ``inputs``: see :func:`lensprobe.lape.inputs.resolve_inputs`. ``reference="first"`` compares
    every checkpoint's sets with the first checkpoint's (``jaccard_vs_reference`` rows; use a
    step-0 checkpoint first for the initialisation baseline); pass a :class:`LapeResult` to fix it.
    ``skip``: checkpoint names already done (resume). ``on_checkpoint(ckpt, result, rows)`` is
    called after each checkpoint (e.g. to save masks or append to a file atomically).
    """
    from lensprobe.probes.lape import LapeProbe

    if isinstance(series, (str, os.PathLike)):
        from lensprobe.checkpoints import CheckpointSeries

        series = CheckpointSeries(series)
    if tokenizer is None:
        tokenizer = _series_tokenizer(series)
    lape_inputs = resolve_inputs(inputs, languages=languages, tokenizer=tokenizer, seq_len=seq_len,
                                 tokens_per_language=tokens_per_language, split=split)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    probe = LapeProbe(lape_inputs, batch_size=batch_size, n_groups=n_groups, padding_side=padding_side,
                      pad_id=0 if pad_id is None else int(pad_id), top_rate=top_rate, filter_rate=filter_rate,
                      activation_bar_ratio=activation_bar_ratio, null_permutations=null_permutations,
                      null_seed=null_seed, split_half=split_half,
                      reference=reference if isinstance(reference, LapeResult) else None)
    if reference not in (None, "first") and not isinstance(reference, LapeResult):
        raise ValueError(f"reference must be 'first', None or a LapeResult, got {reference!r}")
    run_name = getattr(series, "run", None) or getattr(series, "name", None)
    skip = set(skip)
    frames = []
    for ckpt, model in series.iter_models():
        name = getattr(ckpt, "name", str(ckpt))
        if name in skip:
            if reference == "first" and probe.reference is None:  # resume: rebuild the reference only
                probe.run(model, device=device)
                probe.reference = probe.result
            continue
        rows = probe.run(model, device=device)
        df = pd.DataFrame(rows)
        df.insert(0, "tokens", getattr(ckpt, "tokens", None))
        df.insert(0, "step", getattr(ckpt, "step", None))
        df.insert(0, "checkpoint", name)
        df.insert(0, "run", run_name)
        df = df[list(SWEEP_COLUMNS)]
        if reference == "first" and probe.reference is None:
            probe.reference = probe.result
        if on_checkpoint is not None:
            on_checkpoint(ckpt, probe.result, df)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=list(SWEEP_COLUMNS))
    return pd.concat(frames, ignore_index=True)
