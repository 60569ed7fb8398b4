"""Tuned lenses along a checkpoint series: fitted per checkpoint on held-out tokens, warm-started
from the previous checkpoint's translators, cached on disk and reused.

:class:`HeldOutTokens` are the rows a series' lenses are fitted on (``fit_ids``) and evaluated on
(``eval_ids``, disjoint): the user's ids, or a ``pretrain`` token store's validation split of
several languages (a Babel run's own ``<run>/tokens``).

:class:`TunedLensSeries` gives the lens of one checkpoint (:meth:`TunedLensSeries.lens_for`): it
loads it from the cache when there, else fits it, warm-started (``init=``) from the nearest
earlier checkpoint it holds (in memory, or cached by an earlier run of the same sweep), evaluates
it on ``eval_ids`` and writes it atomically to::

    <cache_dir>/<run>/<weight hash[:16]>-<settings hash>/
        tuned_lens.json, tuned_lens.safetensors, history.csv    (TunedLens.save)
        kl.csv                                                 (TunedLens.evaluate on eval_ids)
        checkpoint.json                                        (run, checkpoint, step, weight hash, init)

The settings hash covers the fit settings (:meth:`TunedLens.get_params`), the token rows' digest
and the warm-start switch: a changed setting or other tokens fit anew, a re-run loads and never
refits. Which checkpoint a lens was warm-started from is recorded, not part of the key (a
resumed sweep reuses what an interrupted one wrote). See docs/tuned-lens.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lensprobe.engine.tuned_lens import CONFIG_FILE, TunedLens, TunedLensError, _unwrap, model_weight_hash
from lensprobe.files import FileLock, atomic_directory, remove_stale_temporaries

__all__ = ["HeldOutTokens", "TunedLensSeries", "SeriesLens", "run_token_store", "CACHE_DIR", "KL_FILE",
           "CHECKPOINT_FILE"]

#: the cache's folder under a sweep's output directory
CACHE_DIR = "tuned_lens"
KL_FILE = "kl.csv"
CHECKPOINT_FILE = "checkpoint.json"
#: bumped when the cache's layout or key changes
CACHE_VERSION = 1


def _digest(*arrays: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(json.dumps(list(a.shape)).encode())
        h.update(a.numpy().astype("<i8").tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class HeldOutTokens:
    """Token rows a series' tuned lenses are fitted on (``fit_ids [N, T]``) and evaluated on
    (``eval_ids [M, T]``, disjoint from the fit rows); ``source`` says where they come from."""

    fit_ids: torch.Tensor
    eval_ids: torch.Tensor
    source: str = "ids"

    def __post_init__(self) -> None:
        for name in ("fit_ids", "eval_ids"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1 \
                    or t.dtype.is_floating_point or t.dtype == torch.bool:
                raise ValueError(f"HeldOutTokens.{name} must be an integer tensor [rows, length] with at least one "
                                 f"row, got {getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")

    @property
    def digest(self) -> str:
        """A digest of both row sets (part of the cache key)."""
        return _digest(self.fit_ids.long(), self.eval_ids.long())

    @classmethod
    def from_streams(cls, streams: Mapping[str, Sequence[int] | np.ndarray], *, seq_len: int = 128,
                     fit_rows: int = 32, eval_rows: int = 16, source: str = "tokens") -> "HeldOutTokens":
        """Cut each language's token stream into ``seq_len`` rows: its first ``fit_rows`` rows fit,
        the next ``eval_rows`` evaluate; the languages' rows alternate. ``fit_rows`` and
        ``eval_rows`` are per language."""
        for name, value in (("seq_len", seq_len), ("fit_rows", fit_rows), ("eval_rows", eval_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not streams:
            raise ValueError("held-out tokens: give at least one language's stream")
        fit, ev = [], []
        need = (fit_rows + eval_rows) * seq_len
        for lang, stream in streams.items():
            arr = np.asarray(stream)
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise ValueError(f"held-out tokens of {lang!r} ({source}): a 1-D integer stream is needed, got "
                                 f"{arr.dtype} {arr.shape}")
            if arr.size < need:
                raise ValueError(f"held-out tokens of {lang!r} ({source}): {arr.size} tokens, {need} needed for "
                                 f"{fit_rows} + {eval_rows} rows of {seq_len}; lower fit_rows/eval_rows/seq_len")
            rows = torch.as_tensor(arr[:need].astype(np.int64)).view(fit_rows + eval_rows, seq_len)
            fit.append(rows[:fit_rows])
            ev.append(rows[fit_rows:])
        # alternate languages row by row: any prefix of the rows mixes them
        fit_ids = torch.stack(fit, 1).reshape(-1, seq_len)
        eval_ids = torch.stack(ev, 1).reshape(-1, seq_len)
        return cls(fit_ids, eval_ids, source)

    @classmethod
    def from_token_store(cls, path: str | os.PathLike, languages: Sequence[str], *, split: str = "val",
                         seq_len: int = 128, fit_rows: int = 32, eval_rows: int = 16) -> "HeldOutTokens":
        """Rows of a ``pretrain`` token store's ``split`` (default the validation tokens, never
        trained on) of each of ``languages``; see :meth:`from_streams`."""
        from pretrain.tokens import TokenStore

        try:
            store = TokenStore(path)
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"token store {path}: {exc}") from exc
        streams = {}
        for lang in dict.fromkeys(languages):
            try:
                streams[lang] = store.tokens(lang, split=split)
            except (KeyError, FileNotFoundError, ValueError) as exc:
                raise ValueError(f"token store {path}: no {split!r} tokens for language {lang!r} "
                                 f"({exc.args[0] if exc.args else exc})") from exc
        return cls.from_streams(streams, seq_len=seq_len, fit_rows=fit_rows, eval_rows=eval_rows,
                                source=f"tokens:{path}:{split}:{'+'.join(streams)}")


@dataclass
class SeriesLens:
    """One checkpoint's lens: the fitted translators, their held-out KL (``TunedLens.evaluate`` on
    ``eval_ids``), where they are cached (None in memory), whether they were fitted now (False:
    loaded) and what they were warm-started from (None: a cold start)."""

    lens: TunedLens
    kl: pd.DataFrame
    path: Path | None
    fitted_now: bool
    init: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass
class _Known:
    run: str | None
    step: int | None
    order: int
    lens: TunedLens


class TunedLensSeries:
    """Tuned lenses of the checkpoints of a series, fitted on ``tokens`` (see the module docstring).

    Args:
        tokens: the fit and evaluation rows (:class:`HeldOutTokens`).
        cache_dir: where lenses are cached (None: in memory only, nothing reused across runs).
        settings: :class:`TunedLens` settings (``steps``, ``lr``, ``batch_size``, ...).
        warm_start: start each fit from the nearest earlier checkpoint's lens (default) or from zero.
        log: called with one line per fitted lens (None: silent).

    Attributes ``fits`` and ``loads`` count what :meth:`lens_for` did.
    """

    def __init__(self, tokens: HeldOutTokens, *, cache_dir: str | os.PathLike | None = None,
                 settings: Mapping[str, Any] | None = None, warm_start: bool = True,
                 log: Callable[[str], Any] | None = None):
        if not isinstance(tokens, HeldOutTokens):
            raise TypeError(f"tokens must be HeldOutTokens, got {type(tokens).__name__}")
        self.tokens = tokens
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.settings = TunedLens(**dict(settings or {})).get_params()  # validates
        self.warm_start = bool(warm_start)
        self.log = log
        key = {"version": CACHE_VERSION, "settings": self.settings, "tokens": tokens.digest,
               "warm_start": self.warm_start}
        self.settings_hash = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
        self.fits = 0
        self.loads = 0
        self._known: list[_Known] = []

    def describe(self) -> dict[str, Any]:
        """What the lenses depend on (for a probe's configuration)."""
        return {"settings": self.settings, "tokens": self.tokens.source, "tokens_digest": self.tokens.digest,
                "warm_start": self.warm_start, "settings_hash": self.settings_hash}

    def path(self, run: str | None, weight_hash: str) -> Path | None:
        """The cache directory of a checkpoint's lens (None without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        from lensprobe.results import safe_name

        return self.cache_dir / safe_name(run or "model") / f"{weight_hash[:16]}-{self.settings_hash}"

    # -- one checkpoint ------------------------------------------------------------------------
    def lens_for(self, model: Any, *, run: str | None = None, checkpoint: str | None = None, step: int | None = None,
                 weight_hash: str | None = None) -> SeriesLens:
        """The lens of ``model`` (a checkpoint of ``run`` at ``step``): loaded from the cache, or
        fitted (warm-started from the nearest earlier checkpoint's lens), evaluated and cached."""
        module, _ = _unwrap(model)
        digest = weight_hash if weight_hash is not None else model_weight_hash(module)
        path = self.path(run, digest)
        if path is None:
            return self._obtain(module, None, digest, run=run, checkpoint=checkpoint, step=step)
        # one writer per cache entry: holding its lock, a killed fit's hidden temporaries are stale
        with FileLock(path.parent / f".{path.name}.lock", purpose="tuned lens", run=run, checkpoint=checkpoint):
            remove_stale_temporaries(path.parent, [re.escape(path.name)])
            return self._obtain(module, path, digest, run=run, checkpoint=checkpoint, step=step)

    def _obtain(self, module: torch.nn.Module, path: Path | None, digest: str, *, run: str | None,
                checkpoint: str | None, step: int | None) -> SeriesLens:
        unusable = False  # a cache entry that cannot be read (e.g. edited by hand) is replaced
        if path is not None and path.exists():
            found = self._load(path, module, digest)
            if found is not None:
                self.loads += 1
                self._remember(run, step, found.lens)
                return found
            unusable = True
        init = self._nearest(run, step) if self.warm_start else None
        t0 = time.perf_counter()
        lens = TunedLens(**self.settings).fit(module, self.tokens.fit_ids, init=init, weight_hash=digest,
                                              description=f"{self.tokens.source} (fit rows)")
        kl = lens.evaluate(module, self.tokens.eval_ids, weight_hash=digest)
        seconds = time.perf_counter() - t0
        self.fits += 1
        record = {"run": run, "checkpoint": checkpoint, "step": step, "weight_hash": digest,
                  "settings_hash": self.settings_hash, "tokens": self.tokens.source,
                  "tokens_digest": self.tokens.digest, "init": lens.init_, "seconds": round(seconds, 3)}
        if path is not None:
            try:
                with atomic_directory(path, overwrite=unusable) as tmp:
                    lens.write_files(tmp)
                    kl.to_csv(tmp / KL_FILE, index=False)
                    (tmp / CHECKPOINT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                                                       encoding="utf-8")
                lens.source_ = str(path)
            except FileExistsError:  # another process cached it meanwhile: use theirs
                found = self._load(path, module, digest)
                if found is not None:
                    self._remember(run, step, found.lens)
                    return found
        if self.log:
            where = f"checkpoint {checkpoint}" if checkpoint else "model"
            start = "cold start" if init is None else f"warm start from {init.source_ or 'the previous checkpoint'}"
            self.log(f"tuned lens: fitted {where} in {seconds:.1f}s ({start}); held-out KL logit/tuned per layer: "
                     + ", ".join(f"{r.layer}: {r.kl_logit:.2f}/{r.kl_tuned:.2f}" for r in kl.itertuples()))
        self._remember(run, step, lens)
        return SeriesLens(lens, kl, path, True, lens.init_, seconds)

    def _load(self, path: Path, module: torch.nn.Module, digest: str) -> SeriesLens | None:
        try:
            lens = TunedLens.load(path)
            lens.verify_model(module, weight_hash=digest)
            kl = pd.read_csv(path / KL_FILE)
            if list(kl["layer"]) != lens.layers_:
                raise ValueError(f"{KL_FILE} does not list layers {lens.layers_}")
        except (TunedLensError, OSError, ValueError, KeyError) as exc:
            if self.log:
                self.log(f"tuned lens: {path} is not usable ({exc}); fitting anew")
            return None
        if lens.get_params() != self.settings:
            return None
        return SeriesLens(lens, kl, path, False, lens.init_)

    def _remember(self, run: str | None, step: int | None, lens: TunedLens) -> None:
        self._known.append(_Known(run, step, len(self._known), lens))

    def _nearest(self, run: str | None, step: int | None) -> TunedLens | None:
        """The lens of the nearest earlier checkpoint of ``run``: in memory, or in the cache (an
        interrupted sweep's). Without a step: the last lens fitted or loaded here."""
        mine = [k for k in self._known if k.run == run]
        if step is None:
            return mine[-1].lens if mine else None
        best: tuple[int, TunedLens | Path] | None = None
        for k in mine:
            if k.step is not None and k.step < step and (best is None or k.step > best[0]):
                best = (k.step, k.lens)
        folder = None if self.cache_dir is None else self.path(run, "0" * 16).parent
        if folder is not None and folder.is_dir():
            for sub in folder.glob(f"*-{self.settings_hash}"):
                try:
                    rec = json.loads((sub / CHECKPOINT_FILE).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                s = rec.get("step")
                if isinstance(s, int) and s < step and (best is None or s > best[0]):
                    best = (s, sub)
        if best is None:
            return None
        if isinstance(best[1], Path):
            try:
                return TunedLens.load(best[1])
            except TunedLensError:
                return None
        return best[1]


def run_token_store(run_dir: str | os.PathLike | None) -> Path:
    """The token store a Babel/pretrain run trained on: ``<run_dir>/tokens`` (its ``val`` split
    was never trained on)."""
    if run_dir is None:
        raise ValueError("the held-out tokens default to the run's own token store (<run>/tokens), but this "
                         "model is not part of a run directory; give lens_tokens=<token store dir> (or a "
                         "TunedLensSeries with your own HeldOutTokens)")
    path = Path(run_dir) / "tokens"
    if not (path / "manifest.json").is_file():
        raise ValueError(f"{path}: no token store here (manifest.json missing), so the run's validation tokens "
                         "cannot be read; give lens_tokens=<token store dir>")
    return path

