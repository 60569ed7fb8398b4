"""Mixtures as token budgets per language, turned into a deterministic training schedule.

A mixture is what the paper states: tokens per language ("100M Python tokens", "PHP 5B"); budgets
are read by :func:`lensprobe.token_counts.parse_token_count` and mixture files by
:mod:`lensprobe.mixture_file`.
:class:`MixtureSchedule` cuts each language's budget into windows of ``context + 1`` tokens
(concatenate-and-chunk of the flat token file, documents separated by eos) and interleaves the
languages over global window slots so that the per-language counts are exact at every prefix:
after any ``k`` slots, language ``l`` has ``floor(k·n_l/N)`` or ``ceil(k·n_l/N)`` windows
(``n_l`` its windows, ``N`` the total). The interleave is earliest-deadline-first scheduling of
each language's ``j``-th window inside its interval ``[floor((j-1)N/n_l)+1, ceil(jN/n_l)]`` (unit
jobs with integer windows: EDF meets every deadline whenever any order does, and one always does
— Tijdeman's chairman-assignment theorem); ties go to a seeded order of the languages.

The ``j``-th window of a language is window ``perm_e[j mod W]`` of its file in epoch
``e = j div W`` (``W`` windows per epoch, ``perm_e`` a permutation seeded by (seed, language,
epoch)), so the batch of a step is a pure function of (seed, step, rank). A budget may repeat a
language's tokens at most ``max_epochs`` times.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from lensprobe.token_counts import parse_token_count

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tokens import TokenStore


def interleave(counts: list[int], order: list[int], start: int, stop: int, state: dict | None = None) -> np.ndarray:
    """Language index of slots [start, stop) of the exact-prefix interleave (EDF, see module doc).

    ``state`` carries the scheduler between calls (pass the same dict for consecutive ranges).
    """
    total = sum(counts)
    m = len(counts)
    if state is None:
        state = {}
    if "c" not in state or state.get("t", 0) > start or len(state["c"]) != m:
        state.clear()
        state.update(t=0, c=[0] * m)
    c = state["c"]
    rel = [((c[i]) * total) // counts[i] + 1 if c[i] < counts[i] else None for i in range(m)]
    dl = [-((-(c[i] + 1) * total) // counts[i]) if c[i] < counts[i] else None for i in range(m)]
    out = np.empty(max(0, stop - start), dtype=np.uint8)
    t = state["t"]
    while t < stop:
        slot = t + 1  # 1-based time
        best, best_d = -1, None
        for i in order:
            r = rel[i]
            if r is not None and r <= slot and (best_d is None or dl[i] < best_d):
                best, best_d = i, dl[i]
        if best < 0:  # pragma: no cover - impossible by the theorem in the module docstring
            raise RuntimeError(f"mixture interleave: no window released at slot {slot}")
        c[best] += 1
        if c[best] < counts[best]:
            rel[best] = (c[best] * total) // counts[best] + 1
            dl[best] = -((-(c[best] + 1) * total) // counts[best])
        else:
            rel[best] = dl[best] = None
        if t >= start:
            out[t - start] = best
        t += 1
    state["t"] = t
    return out


_CHUNK = 1 << 16


@dataclass
class MixtureSchedule:
    """Deterministic schedule of ``context + 1``-token windows drawn from ``store`` by ``budgets``."""

    store: "TokenStore"
    budgets: dict[str, int]
    context: int
    seed: int = 0
    max_epochs: float = 4.0
    languages: list[str] = field(init=False)
    windows: dict[str, int] = field(init=False)
    available_tokens: dict[str, int] = field(init=False)
    windows_per_epoch: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 1:
            raise ValueError(f"mixture: context must be a positive int, got {self.context!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"mixture: seed must be an int, got {self.seed!r}")
        if not isinstance(self.max_epochs, (int, float)) or isinstance(self.max_epochs, bool) or self.max_epochs <= 0:
            raise ValueError(f"mixture: max_epochs must be > 0, got {self.max_epochs!r}")
        if not isinstance(self.budgets, Mapping) or not self.budgets:
            raise ValueError("mixture: budgets must be a non-empty mapping language -> tokens")
        budgets: dict[str, int] = {}
        for lang, value in self.budgets.items():
            try:
                budgets[lang] = parse_token_count(value)
            except ValueError as exc:
                raise ValueError(f"mixture: budget for {lang}: {exc}") from exc
        self.budgets = budgets
        store_langs = list(self.store.languages)
        width = self.context + 1
        self.windows, self.available_tokens, self.windows_per_epoch = {}, {}, {}
        for lang, budget in budgets.items():
            if lang not in store_langs:
                raise ValueError(f"mixture: language {lang!r} is not in the token store "
                                 f"{getattr(self.store, 'path', '')} (it has {', '.join(store_langs) or 'none'})")
            available = int(len(self.store.tokens(lang, "train")))
            self.available_tokens[lang] = available
            if budget > self.max_epochs * available:
                raise ValueError(
                    f"mixture: budget for {lang} ({budget:,} tokens) exceeds the repetition cap of "
                    f"{self.max_epochs:g} epochs of the {available:,} available {lang} tokens "
                    f"(at most {int(self.max_epochs * available):,})")
            per_epoch = available // width
            if per_epoch < 1:
                raise ValueError(f"mixture: {lang} has {available:,} tokens, fewer than one window of "
                                 f"context+1 = {width} tokens")
            n = budget // width
            if n < 1:
                raise ValueError(f"mixture: budget for {lang} ({budget:,} tokens) is less than one window "
                                 f"of context+1 = {width} tokens")
            self.windows[lang] = n
            self.windows_per_epoch[lang] = per_epoch
        self.languages = list(budgets)
        tie = np.random.default_rng([self.seed, 0x6D6978]).permutation(len(self.languages))
        self._order = [int(i) for i in tie]
        self._counts = [self.windows[lang] for lang in self.languages]
        self._seq = np.empty(0, dtype=np.uint8)
        self._checkpoints = np.zeros((1, len(self.languages)), dtype=np.int64)  # counts before chunk k
        self._state: dict = {"t": 0, "c": [0] * len(self.languages)}
        self._perms: dict[tuple[str, int], Any] = {}

    # ---------------------------------------------------------------------------------- sizes
    @property
    def n_windows(self) -> int:
        """Total windows (slots) in the schedule."""
        return sum(self._counts)

    def total_steps(self, batch_size: int, world_size: int = 1) -> int:
        """Whole optimizer steps the schedule holds (a last partial global batch is dropped)."""
        self._check_batch(batch_size, 0, world_size)
        return self.n_windows // (batch_size * world_size)

    def epochs(self) -> dict[str, float]:
        """Passes over each language's available training tokens that the schedule makes."""
        width = self.context + 1
        return {lang: self.windows[lang] * width / self.available_tokens[lang] for lang in self.languages}

    def to_dict(self) -> dict[str, Any]:
        return {"budgets": dict(self.budgets), "context": self.context, "seed": self.seed,
                "max_epochs": self.max_epochs, "windows": dict(self.windows), "epochs": self.epochs(),
                "available_tokens": dict(self.available_tokens), "n_windows": self.n_windows}

    # ---------------------------------------------------------------------------------- slots
    def _extend(self, stop: int) -> None:
        stop = min(stop, self.n_windows)
        have = len(self._seq)
        if stop <= have:
            return
        target = min(self.n_windows, -(-stop // _CHUNK) * _CHUNK)
        new = interleave(self._counts, self._order, have, target, self._state)
        self._seq = np.concatenate([self._seq, new])
        m = len(self.languages)
        rows = [self._checkpoints]
        last = self._checkpoints[-1].copy()
        for k in range(len(self._checkpoints), target // _CHUNK + 1):
            chunk = self._seq[(k - 1) * _CHUNK: k * _CHUNK]
            last = last + np.bincount(chunk, minlength=m)
            rows.append(last[None, :].copy())
        self._checkpoints = np.concatenate(rows)

    def _slice(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self.n_windows:
            raise IndexError(f"mixture: window slots [{start}, {stop}) outside [0, {self.n_windows})")
        self._extend(stop)
        return self._seq[start:stop]

    def window_languages(self, start: int, stop: int) -> list[str]:
        """Language of every global window slot in [start, stop)."""
        return [self.languages[i] for i in self._slice(start, stop)]

    def counts_before(self, slot: int) -> dict[str, int]:
        """Windows of each language among the first ``slot`` slots."""
        return dict(zip(self.languages, (int(x) for x in self._counts_before(slot))))

    def _counts_before(self, slot: int) -> np.ndarray:
        if not 0 <= slot <= self.n_windows:
            raise IndexError(f"mixture: slot {slot} outside [0, {self.n_windows}]")
        self._extend(slot)
        k = slot // _CHUNK
        base = self._checkpoints[k]
        return base + np.bincount(self._seq[k * _CHUNK: slot], minlength=len(self.languages))

    # ---------------------------------------------------------------------------------- windows
    def _permutation(self, lang: str, epoch: int):
        key = (lang, epoch)
        perm = self._perms.get(key)
        if perm is None:
            w = self.windows_per_epoch[lang]
            rng = np.random.default_rng([self.seed, zlib.crc32(lang.encode()), epoch])
            if w <= 1 << 24:
                perm = rng.permutation(w).astype(np.int64)
            else:  # an affine bijection q -> (a q + b) mod w keeps memory constant for huge files
                while True:
                    a = int(rng.integers(1, w))
                    if math.gcd(a, w) == 1:
                        break
                perm = (a, int(rng.integers(0, w)))
            if len(self._perms) > 8:
                self._perms.clear()
            self._perms[key] = perm
        return perm

    def window_index(self, lang: str, occurrence: int) -> int:
        """Which window of ``lang``'s file its ``occurrence``-th scheduled window reads."""
        w = self.windows_per_epoch[lang]
        epoch, q = divmod(int(occurrence), w)
        perm = self._permutation(lang, epoch)
        if isinstance(perm, tuple):
            return (perm[0] * q + perm[1]) % w
        return int(perm[q])

    def _check_batch(self, batch_size: int, rank: int, world_size: int) -> None:
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1), ("rank", rank, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"mixture: {name} must be an int >= {low}, got {value!r}")
        if rank >= world_size:
            raise ValueError(f"mixture: rank {rank} must be < world_size {world_size}")

    def batch_slots(self, step: int, *, batch_size: int, rank: int = 0, world_size: int = 1) -> tuple[int, int]:
        """Global slots [start, stop) that ``rank`` reads at ``step``."""
        self._check_batch(batch_size, rank, world_size)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"mixture: step must be a non-negative int, got {step!r}")
        total = self.total_steps(batch_size, world_size)
        if step >= total:
            raise IndexError(f"mixture: step {step} is past the schedule's {total} steps "
                             f"(batch {batch_size} x world {world_size})")
        start = (step * world_size + rank) * batch_size
        return start, start + batch_size

    def batch(self, step: int, *, batch_size: int, rank: int = 0, world_size: int = 1
              ) -> tuple["torch.LongTensor", list[str]]:
        """``[batch_size, context+1]`` int64 tokens of ``rank``'s share of step ``step`` and the
        language of each row. The global batch of step ``s`` is slots
        ``[s·B·W, (s+1)·B·W)``; rank ``r`` takes ``[s·B·W + r·B, s·B·W + (r+1)·B)``."""
        import torch

        start, stop = self.batch_slots(step, batch_size=batch_size, rank=rank, world_size=world_size)
        langs = self._slice(start, stop)
        occurrence = self._counts_before(start).copy()
        width = self.context + 1
        rows = np.empty((batch_size, width), dtype=np.int64)
        names = []
        for row, li in enumerate(langs):
            lang = self.languages[li]
            w = self.window_index(lang, int(occurrence[li]))
            occurrence[li] += 1
            rows[row] = self.store.tokens(lang, "train")[w * width:(w + 1) * width]
            names.append(lang)
        return torch.from_numpy(rows), names

    def tokens_seen(self, step: int, batch_size: int, world_size: int = 1) -> dict[str, int]:
        """Tokens of each language in the first ``step`` optimizer steps (all ranks)."""
        self._check_batch(batch_size, 0, world_size)
        slot = min(int(step) * batch_size * world_size, self.n_windows)
        width = self.context + 1
        return {lang: n * width for lang, n in self.counts_before(slot).items()}


__all__ = ["MixtureSchedule", "interleave"]
