"""The checkpoints of one training run as an ordered series: discovery, ordering, duplicates,
tokenizer checks, loss-log joins, and iteration with ONE resident model (docs/checkpoints.md)."""
from __future__ import annotations

import concurrent.futures
import fnmatch
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence

import torch

from lensprobe.engine.adapters import load_model

from .errors import ArchitectureMismatchError, CheckpointError, CheckpointWarning, TokenizerMismatchError
from .hashing import describe_nonfinite, nonfinite_tensors, scan_weights, state_dict_hash
from .info import CheckpointInfo, inspect_checkpoint, read_meta
from .loading import (architecture, diff_keys, load_first_model, load_state_dict_in_place, materialize,
                      read_state_dict, verify_lens_after_load)
from .logs import load_loss_log, load_val_log
from .names import parse_checkpoint_name
from .tokenizer import TOKENIZER_VOCAB_FILES, has_tokenizer, load_tokenizer_from, tokenizer_hash

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CheckpointSeries"]


def _check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"dtype must be a torch.dtype or its name (e.g. 'float32'), got {dtype!r}")


class CheckpointSeries:
    """The checkpoints of one run, ordered by step.

    ``CheckpointSeries(run_dir)`` discovers sub-directories named like checkpoints (see
    :func:`parse_checkpoint_name`); other sub-directories holding a ``config.json`` are included
    only when their metadata gives a step (else ignored with a warning). A ``run_dir`` that is
    itself a model directory becomes a one-element series. Hidden directories (in-progress atomic
    writes) are never discovered.

    Options (keyword-only, shared by every constructor):

    ``hash_weights`` (True): hash every checkpoint's weights now and flag duplicates; with False,
    hashes are computed lazily (:meth:`hash_weights`, :meth:`duplicates`, :meth:`iter_models`).
    ``step_priority`` ("metadata"): which wins when a checkpoint's name and its metadata
    (``checkpoint.json`` step, else ``trainer_state.json`` global_step) disagree; the metadata is
    written by the trainer next to the weights, names can be mislabeled. Either way a
    :class:`CheckpointWarning` names both values.
    ``log_dir`` (the run directory): where ``loss.jsonl`` / ``val.jsonl`` are read from.
    ``loss_window`` (10): ``train_loss_smoothed`` is the mean train loss over the logged steps
    in ``(step - loss_window, step]``.

    Broken checkpoints (missing or corrupt weights, unreadable config or metadata) are listed in
    :attr:`broken` with a reason and are not part of ``len``/iteration.
    """

    def __init__(self, run_dir: str | Path, *, hash_weights: bool = True,
                 step_priority: Literal["metadata", "name"] = "metadata",
                 log_dir: str | Path | None = None, loss_window: int = 10,
                 run: str | None = None) -> None:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run directory {run_dir} does not exist or is not a directory")
        candidates = _discover(run_dir)
        if not candidates:
            raise CheckpointError(
                f"no checkpoints found in {run_dir}: expected sub-directories named checkpoint-N, "
                "step-N, stepN, stepN-tokens4B, step-N-2BT, or a model directory (config.json)")
        self._setup(candidates, run_dir=run_dir, run_name=run, log_dir=log_dir or run_dir,
                    hash_weights=hash_weights, step_priority=step_priority, loss_window=loss_window,
                    keep_order=False, default_run=run_dir.resolve().name)

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], steps: Sequence[int | None] | None = None, *,
                   names: Sequence[str] | None = None, run: str | None = None,
                   hash_weights: bool = True, step_priority: Literal["metadata", "name"] = "metadata",
                   log_dir: str | Path | None = None, loss_window: int = 10) -> "CheckpointSeries":
        """A series from explicit checkpoint directories.

        ``steps`` (same length as ``paths``) overrides names and metadata. Without steps, a step
        comes from metadata or the directory name; the series is sorted by step when every
        checkpoint has one, and kept in the given order when none has (mixing raises).
        Loss logs are read only from ``log_dir`` when given.
        """
        if isinstance(paths, (str, Path)):
            raise TypeError("paths must be a sequence of checkpoint directories, not one path")
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("paths is empty")
        steps = list(steps) if steps is not None else [None] * len(paths)
        names = list(names) if names is not None else [p.name for p in paths]
        if len(steps) != len(paths) or len(names) != len(paths):
            raise ValueError(f"steps/names must have one entry per path ({len(paths)})")
        for s in steps:
            if s is not None:
                _check_int("steps[i]", s, minimum=0)
        candidates = [CheckpointInfo(name=n, path=p, step=s) for n, p, s in zip(names, paths, steps)]
        obj = cls.__new__(cls)
        obj._setup(candidates, run_dir=None, run_name=run, log_dir=log_dir, hash_weights=hash_weights,
                   step_priority=step_priority, loss_window=loss_window, keep_order=True,
                   default_run=_common_parent_name(paths))
        return obj

    @classmethod
    def from_hub(cls, repo_id: str, revisions: Sequence[str] | str | None = None, *,
                 cache_dir: str | Path | None = None, local_files_only: bool = False,
                 token: str | bool | None = None, hash_weights: bool = True,
                 step_priority: Literal["metadata", "name"] = "metadata",
                 loss_window: int = 10) -> "CheckpointSeries":
        """A series from revisions (branches/tags) of a Hub repository, e.g. Pythia's ``step1000``.

        Each revision's config, safetensors weights and tokenizer files are downloaded (or found
        in the cache with ``local_files_only=True``) with ``huggingface_hub.snapshot_download``;
        expect the disk cost of every listed revision. Steps and tokens are parsed from the
        revision names like directory names. ``revisions=None`` lists the repository's branches
        and keeps those named like checkpoints; a string is a glob pattern over those branches
        (``"step*000"``; the command line's ``--hub REPO --revisions PATTERN``). A revision that
        fails to download is reported in :attr:`broken`.
        """
        from huggingface_hub import list_repo_refs, snapshot_download

        if revisions is None or isinstance(revisions, str):
            pattern = revisions or "*"
            refs = list_repo_refs(repo_id, token=token)
            revisions = [b.name for b in refs.branches
                         if parse_checkpoint_name(b.name) and fnmatch.fnmatchcase(b.name, pattern)]
            if not revisions:
                raise CheckpointError(f"{repo_id}: no branch is named like a checkpoint (e.g. step1000)"
                                      + (f" and matches {pattern!r}" if pattern != "*" else ""))
        candidates: list[CheckpointInfo] = []
        failed: list[CheckpointInfo] = []
        for rev in revisions:
            try:
                local = snapshot_download(
                    repo_id, revision=rev, cache_dir=None if cache_dir is None else str(cache_dir),
                    local_files_only=local_files_only, token=token,
                    allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"])
            except Exception as exc:  # network / missing revision: report, do not fail the series
                parsed = parse_checkpoint_name(rev)
                failed.append(CheckpointInfo(name=rev, path=Path(f"hf://{repo_id}@{rev}"), revision=rev,
                                             step=parsed.step if parsed else None, status="broken",
                                             reason=f"{repo_id}@{rev}: download failed ({exc})"))
                continue
            candidates.append(CheckpointInfo(name=rev, path=Path(local), revision=rev))
        obj = cls.__new__(cls)
        obj._setup(candidates, run_dir=None, run_name=repo_id, log_dir=None, hash_weights=hash_weights,
                   step_priority=step_priority, loss_window=loss_window, keep_order=True,
                   extra_broken=failed)
        return obj

    # -- setup ------------------------------------------------------------------------------

    def _setup(self, candidates: list[CheckpointInfo], *, run_dir: Path | None, run_name: str | None,
               log_dir: str | Path | None, hash_weights: bool, step_priority: str, loss_window: int,
               keep_order: bool, extra_broken: Sequence[CheckpointInfo] = (),
               default_run: str = "series") -> None:
        _check_choice("step_priority", step_priority, ("metadata", "name"))
        _check_int("loss_window", loss_window, minimum=1)
        if not isinstance(hash_weights, bool):
            raise ValueError(f"hash_weights must be a bool, got {hash_weights!r}")
        self.run_dir = run_dir
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.loss_window = loss_window
        self._loss_df: Any = None
        self._val_df: Any = None
        for info in candidates:
            inspect_checkpoint(info, step_priority=step_priority)
        good = [c for c in candidates if c.ok]
        broken = [c for c in candidates if not c.ok] + list(extra_broken)
        good = _order(good, keep_order=keep_order)
        meta_runs = {str(c.meta["run"]) for c in good if c.meta.get("run")}
        self.run = run_name if run_name is not None else (
            meta_runs.pop() if len(meta_runs) == 1 else default_run)
        self._inherit_tokenizer(good)
        self._all: list[CheckpointInfo] = good + broken
        self._items: list[CheckpointInfo] = good
        self._join_logs()
        steps = [c.step for c in good if c.step is not None]
        dup_steps = sorted({s for s in steps if steps.count(s) > 1})
        if dup_steps:
            names = {s: [c.name for c in good if c.step == s] for s in dup_steps}
            warnings.warn(f"series {self.run}: several checkpoints claim the same step: {names}",
                          CheckpointWarning, stacklevel=3)
        if broken:
            warnings.warn(f"series {self.run}: {len(broken)} broken checkpoint(s) skipped: "
                          + "; ".join(c.reason or c.name for c in broken), CheckpointWarning,
                          stacklevel=3)
        if hash_weights:
            self.hash_weights()

    def _inherit_tokenizer(self, good: list[CheckpointInfo]) -> None:
        run_tok: Path | None = None
        if self.run_dir is not None:
            for cand in (self.run_dir, self.run_dir / "tokenizer"):
                if cand.is_dir() and has_tokenizer(cand):
                    run_tok = cand
                    break
        if run_tok is None:
            run_tok = next((c.tokenizer_path for c in good if c.tokenizer_path is not None), None)
        self.tokenizer_path = run_tok
        if run_tok is None:
            return
        run_hash = tokenizer_hash(run_tok)
        for c in good:
            if c.tokenizer_path is None:
                c.tokenizer_path, c.tokenizer_hash, c.tokenizer_inherited = run_tok, run_hash, True

    def reload_logs(self) -> None:
        """Read ``loss.jsonl`` / ``val.jsonl`` again and re-join them (a running training appends
        rows after a checkpoint appears); token counts taken from the loss log are updated too."""
        for info in self._items:
            info.train_loss, info.train_loss_smoothed = math.nan, math.nan
            info.train_loss_by_language, info.val_loss, info.val_bpb = {}, {}, {}
            if info.tokens_source == "loss_log":
                info.tokens, info.tokens_source = None, None
        self._loss_df = self._val_df = None
        self._join_logs()

    def _join_logs(self) -> None:
        if self.log_dir is None:
            return
        loss_path, val_path = self.log_dir / "loss.jsonl", self.log_dir / "val.jsonl"
        if loss_path.is_file():
            self._loss_df = load_loss_log(loss_path)
        if val_path.is_file():
            self._val_df = load_val_log(val_path)
        for info in self._items:
            if info.step is None:
                continue
            df = self._loss_df
            if df is not None and len(df):
                at = df[df["step"] == info.step]
                if len(at):
                    row = at.iloc[-1]
                    info.train_loss = float(row["loss"]) if "loss" in row and row["loss"] == row["loss"] else math.nan
                    info.train_loss_by_language = {
                        lang: float(row[f"loss_{lang}"]) for lang in df.attrs.get("languages", [])
                        if row[f"loss_{lang}"] == row[f"loss_{lang}"]}
                    if info.tokens is None and "tokens" in row and row["tokens"] == row["tokens"]:
                        info.tokens, info.tokens_source = int(row["tokens"]), "loss_log"
                window = df[(df["step"] > info.step - self.loss_window) & (df["step"] <= info.step)]
                if len(window) and "loss" in window:
                    info.train_loss_smoothed = float(window["loss"].mean())
            vdf = self._val_df
            if vdf is not None and len(vdf):
                for _, row in vdf[vdf["step"] == info.step].iterrows():
                    lang = str(row["language"])
                    if "loss" in row and row["loss"] == row["loss"]:
                        info.val_loss[lang] = float(row["loss"])
                    if "bpb" in row and row["bpb"] == row["bpb"]:
                        info.val_bpb[lang] = float(row["bpb"])

    # -- sequence protocol --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[CheckpointInfo]:
        return iter(self._items)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._subset(self._items[index])
        return self._items[index]

    def __repr__(self) -> str:
        steps = self.steps
        span = f"steps {steps[0]}..{steps[-1]}" if steps and None not in steps else f"{len(self)} checkpoints"
        return (f"CheckpointSeries(run={self.run!r}, {len(self)} checkpoints, {span}, "
                f"{len(self.broken)} broken)")

    @property
    def steps(self) -> list[int | None]:
        """Steps of the usable checkpoints, in series order."""
        return [c.step for c in self._items]

    @property
    def broken(self) -> list[CheckpointInfo]:
        """Checkpoints that could not be used, each with ``path`` and ``reason``."""
        return [c for c in self._all if c.status == "broken"]

    def by_step(self, step: int) -> CheckpointInfo:
        """The (first) usable checkpoint at ``step``; KeyError naming the known steps otherwise."""
        for c in self._items:
            if c.step == step:
                return c
        raise KeyError(f"series {self.run}: no checkpoint at step {step}; steps are {self.steps}")

    def _subset(self, items: list[CheckpointInfo]) -> "CheckpointSeries":
        obj = self.__class__.__new__(self.__class__)
        obj.__dict__.update(self.__dict__)
        obj._items = list(items)
        keep = {id(c) for c in items}
        obj._all = list(items) + [c for c in self._all if c.status == "broken" and id(c) not in keep]
        return obj

    def select(self, *, steps: Iterable[int] | None = None, every: int | None = None,
               max_count: int | None = None) -> "CheckpointSeries":
        """A sub-series: exactly ``steps`` (KeyError for a missing one), and/or steps that are
        multiples of ``every``, then at most ``max_count`` checkpoints evenly spaced by position
        (first and last always kept). Broken checkpoints stay reported."""
        items = list(self._items)
        if steps is not None:
            wanted = list(steps)
            for s in wanted:
                _check_int("steps[i]", s, minimum=0)
            have = {c.step for c in items}
            missing = [s for s in wanted if s not in have]
            if missing:
                raise KeyError(f"series {self.run}: no checkpoint at step(s) {missing}; steps are {self.steps}")
            wanted_set = set(wanted)
            items = [c for c in items if c.step in wanted_set]
        if every is not None:
            _check_int("every", every, minimum=1)
            items = [c for c in items if c.step is not None and c.step % every == 0]
        if max_count is not None:
            _check_int("max_count", max_count, minimum=1)
            if len(items) > max_count:
                if max_count == 1:
                    idx = [len(items) - 1]
                else:
                    idx = sorted({round(i * (len(items) - 1) / (max_count - 1)) for i in range(max_count)})
                items = [items[i] for i in idx]
        return self._subset(items)

    # -- hashes, duplicates, tokenizers --------------------------------------------------------

    def hash_weights(self) -> list[list[CheckpointInfo]]:
        """Compute missing weight hashes and mark duplicates. A checkpoint whose files cannot be
        read, or whose floating tensors hold NaN or inf values, is marked broken (the reason names
        the tensor).

        Returns :meth:`duplicates`.
        """
        newly_broken = []
        for c in self._items:
            if c.weight_hash is None:
                try:
                    scan = scan_weights(c.weight_files)
                except (CheckpointError, OSError) as exc:
                    c.status, c.reason = "broken", str(exc)
                    newly_broken.append(c)
                    continue
                c.weight_hash = scan.hash
                if scan.nonfinite:
                    c.status, c.reason = "broken", _nonfinite_reason(c, describe_nonfinite(scan.nonfinite, scan.sizes))
                    newly_broken.append(c)
        if newly_broken:
            self._items = [c for c in self._items if c.ok]
            warnings.warn(f"series {self.run}: broken checkpoint(s) skipped: "
                          + "; ".join(str(c.reason) for c in newly_broken), CheckpointWarning, stacklevel=2)
        return self._mark_duplicates()

    def _mark_duplicates(self, *, warn: bool = True) -> list[list[CheckpointInfo]]:
        groups: dict[str, list[CheckpointInfo]] = {}
        for c in self._items:
            if c.weight_hash is not None:
                groups.setdefault(c.weight_hash, []).append(c)
        dups = [g for g in groups.values() if len(g) > 1]
        fresh = []
        for g in dups:
            for c in g[1:]:
                if c.status != "duplicate":
                    fresh.append(c)
                c.status, c.duplicate_of = "duplicate", g[0].name
        if fresh and warn:
            warnings.warn(
                f"series {self.run}: checkpoints with identical weights under different names: "
                + "; ".join(" = ".join(c.name for c in g) for g in dups
                            if any(c in fresh for c in g)), CheckpointWarning, stacklevel=3)
        return dups

    def duplicates(self) -> list[list[CheckpointInfo]]:
        """Groups (in series order) of checkpoints whose weights hash equal; hashes what is missing."""
        if any(c.weight_hash is None for c in self._items):
            return self.hash_weights()
        return self._mark_duplicates()

    def check_tokenizers(self, *, warn_only: bool = False) -> bool:
        """Check that every checkpoint uses the same tokenizer (file hash, and the ``tokenizer_hash``
        recorded in ``checkpoint.json`` when present).

        Raises :class:`TokenizerMismatchError` naming the differing checkpoints (or only warns
        with ``warn_only=True``); returns True when they all agree. Checkpoints without any
        tokenizer (and no run-level tokenizer to inherit) are reported too.
        """
        if not isinstance(warn_only, bool):
            raise ValueError(f"warn_only must be a bool, got {warn_only!r}")
        problems = []
        for label, key in (("tokenizer files", lambda c: c.tokenizer_hash),
                           ("checkpoint.json tokenizer_hash", lambda c: c.meta.get("tokenizer_hash"))):
            groups: dict[Any, list[str]] = {}
            for c in self._items:
                value = key(c)
                if value is None and label != "tokenizer files":
                    continue
                groups.setdefault(value, []).append(c.name)
            if len(groups) > 1:
                parts = [f"{'(none)' if h is None else str(h)[:12]}: {', '.join(names)}"
                         for h, names in groups.items()]
                problems.append(f"{label} differ -> " + " | ".join(parts))
        if not problems:
            return True
        msg = f"series {self.run}: tokenizer differs across checkpoints: " + "; ".join(problems)
        if warn_only:
            warnings.warn(msg, CheckpointWarning, stacklevel=2)
            return False
        raise TokenizerMismatchError(msg)

    def exclude_foreign_tokenizers(self) -> list[CheckpointInfo]:
        """Mark broken (so skip) every checkpoint whose tokenizer differs from the one most of the
        series shares, and return them; the reason names both tokenizers.

        "Differs" is what :meth:`check_tokenizers` compares: the tokenizer files' identity
        (:func:`tokenizer_hash`), and the ``tokenizer_hash`` recorded in ``checkpoint.json``
        against the other recorded ones. Ties go to the earliest checkpoint's tokenizer.
        Checkpoints without tokenizer files (and no run-level tokenizer) are kept: they have no
        tokenizer of their own to differ. Afterwards :meth:`tokenizer` loads the shared one.
        """
        foreign: dict[int, tuple[CheckpointInfo, str]] = {}
        for label, key in (("its tokenizer files", lambda c: c.tokenizer_hash),
                           ("the tokenizer_hash in its checkpoint.json", lambda c: c.meta.get("tokenizer_hash"))):
            counts: dict[Any, int] = {}
            for c in self._items:
                value = key(c)
                if value is not None:
                    counts[value] = counts.get(value, 0) + 1
            if len(counts) < 2:
                continue
            shared = max(counts, key=lambda v: counts[v])  # first-seen wins ties (dicts keep order)
            for c in self._items:
                value = key(c)
                if value is not None and value != shared and id(c) not in foreign:
                    foreign[id(c)] = (c, f"checkpoint {c.name} ({c.path}): tokenizer mismatch: {label} "
                                         f"({str(value)[:12]}) differ from the tokenizer {counts[shared]} other "
                                         f"checkpoint(s) of series {self.run} share ({str(shared)[:12]}); skipped "
                                         "(pass a tokenizer, e.g. --tokenizer DIR, to use one for every checkpoint)")
        for c, reason in foreign.values():
            self._mark_broken(c, reason, warn=False)
        if foreign:
            warnings.warn(f"series {self.run}: {len(foreign)} checkpoint(s) with another tokenizer skipped: "
                          + "; ".join(r for _, r in foreign.values()), CheckpointWarning, stacklevel=2)
        return [c for c, _ in foreign.values()]

    def tokenizer(self, override: Any = None, *, required: bool = True) -> Any:
        """The series' tokenizer: the one place a tokenizer for a series is resolved.

        ``override`` wins: a tokenizer object is returned as is; a path is loaded with
        :func:`load_tokenizer_from` (a directory, or a ``tokenizer.json`` file). Otherwise the
        tokenizer files of the first usable checkpoint that has them are loaded, else the
        run-level tokenizer (``run_dir`` or ``run_dir/tokenizer``, see :attr:`tokenizer_path`).
        A fresh tokenizer is loaded on every call.

        When nothing provides a tokenizer, raises :class:`CheckpointError` naming the series and
        where it looked, or returns None with ``required=False`` (probes that read token ids only,
        like LAPE on a token store, need none). Tokenizer files that exist but cannot be loaded
        always raise :class:`CheckpointError` naming the directory.
        """
        if not isinstance(required, bool):
            raise ValueError(f"required must be a bool, got {required!r}")
        if override is not None:
            return load_tokenizer_from(override) if isinstance(override, (str, os.PathLike)) else override
        path = next((c.tokenizer_path for c in self._items if c.tokenizer_path), self.tokenizer_path)
        if path is None:
            if not required:
                return None
            where = [str(self.run_dir), str(self.run_dir / "tokenizer")] if self.run_dir is not None else []
            where += [str(c.path) for c in self._items[:3]] + (["..."] if len(self._items) > 3 else [])
            raise CheckpointError(
                f"series {self.run}: no tokenizer files ({', '.join(TOKENIZER_VOCAB_FILES[:3])}, ...) in "
                f"{', '.join(where) or 'any checkpoint'}; pass a tokenizer (object or directory)")
        return load_tokenizer_from(path)

    def load_tokenizer(self) -> Any:
        """Same as :meth:`tokenizer` with no override (kept for existing callers)."""
        return self.tokenizer()

    # -- tables -------------------------------------------------------------------------------

    def loss_log(self) -> "pd.DataFrame":
        """The run's ``loss.jsonl`` as a DataFrame (empty when there is none); see :func:`load_loss_log`."""
        import pandas as pd

        if self._loss_df is None:
            return pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64")})
        return self._loss_df.copy()

    def val_log(self) -> "pd.DataFrame":
        """The run's ``val.jsonl`` as a DataFrame (empty when there is none)."""
        import pandas as pd

        if self._val_df is None:
            return pd.DataFrame({"step": pd.Series(dtype="int64"), "language": pd.Series(dtype=object),
                                 "loss": pd.Series(dtype="float64")})
        return self._val_df.copy()

    def to_dataframe(self) -> "pd.DataFrame":
        """One row per checkpoint (usable ones in series order, then broken ones)."""
        import pandas as pd

        rows = [c.to_row() for c in self._all]
        df = pd.DataFrame.from_records(rows)
        if df.empty:
            df = pd.DataFrame(columns=list(CheckpointInfo(name="", path=Path()).to_row()))
        df.insert(0, "run", self.run)
        return df

    # -- models -------------------------------------------------------------------------------

    def load(self, index: int = 0, *, dtype: torch.dtype | str = torch.float32, device: str = "cpu",
             check_lens: bool = True) -> Any:
        """Load one checkpoint with :func:`lensprobe.engine.adapters.load_model` (a fresh model and tokenizer)."""
        info = self._items[index]
        return load_model(str(info.path), dtype=_as_dtype(dtype), device=str(device), check_lens=check_lens)

    def iter_models(self, *, dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu",
                    prefetch: bool = True, check_lens: bool | Literal["first", "every"] = "first",
                    check_tokenizers: bool = True,
                    on_arch_change: Literal["error", "rebuild"] = "error",
                    skip_duplicates: bool = False,
                    claim: Callable[[CheckpointInfo], bool] | None = None
                    ) -> Iterator[tuple[CheckpointInfo, torch.nn.Module]]:
        """Yield ``(checkpoint, model)`` for every usable checkpoint with ONE resident model.

        The first checkpoint is loaded with :func:`lensprobe.engine.adapters.load_model` (building the
        architecture; the logit lens is verified when ``check_lens`` is True/"first"/"every");
        every later one is loaded into the same parameters with :func:`load_state_dict_in_place`
        (strict keys, tied embeddings re-tied; "every" re-verifies the lens each time). On CPU a
        parameter adopts the read tensor as its storage when the dtype matches (no copy), else
        values are cast and copied. The model object, its modules and Parameter objects are the
        same at every step (hooks registered once keep working): copy what you need before
        advancing.

        ``prefetch``: read the next checkpoint's tensors into memory (in ``dtype``; and hash them
        if needed) in a background thread while the caller works on the current one; costs one
        extra state dict of host memory. Without it, tensors are memory-mapped and read lazily.
        ``on_arch_change``: a checkpoint whose config differs from the resident one in anything
        but volatile keys raises :class:`ArchitectureMismatchError` ("error", the default: within
        one run the architecture is constant, so a difference means a foreign directory) or
        rebuilds the model with a warning ("rebuild"). Checkpoints whose files cannot be read
        are marked broken, warned about and skipped; tensors that do not fit the model raise
        :class:`StateDictMismatchError`. ``skip_duplicates`` skips checkpoints whose weights equal
        an earlier one's. ``check_tokenizers`` runs :meth:`check_tokenizers` first.

        ``claim(checkpoint)``, when given, is called in the calling thread before a checkpoint is
        read; False skips it unread (a sweep uses it to take its work locks). With ``prefetch``
        the next checkpoint is claimed when the current one is yielded, without it only once the
        caller asks for the next one.
        """
        dtype = _as_dtype(dtype)
        device = str(device)
        for name, value in (("prefetch", prefetch), ("check_tokenizers", check_tokenizers),
                            ("skip_duplicates", skip_duplicates)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {value!r}")
        _check_choice("check_lens", check_lens, (True, False, "first", "every"))
        _check_choice("on_arch_change", on_arch_change, ("error", "rebuild"))
        if claim is not None and not callable(claim):
            raise ValueError(f"claim must be callable, got {claim!r}")
        return self._iter_models(dtype=dtype, device=device, prefetch=prefetch, check_lens=check_lens,
                                 check_tokenizers=check_tokenizers, on_arch_change=on_arch_change,
                                 skip_duplicates=skip_duplicates, claim=claim)

    def _iter_models(self, *, dtype: torch.dtype, device: str, prefetch: bool, check_lens: Any,
                     check_tokenizers: bool, on_arch_change: str, skip_duplicates: bool,
                     claim: Callable[[CheckpointInfo], bool] | None
                     ) -> Iterator[tuple[CheckpointInfo, torch.nn.Module]]:
        if check_tokenizers:
            self.check_tokenizers()
        todo = [c for c in self._items if not (skip_duplicates and c.status == "duplicate")]
        seen_hashes: dict[str, CheckpointInfo] = {c.weight_hash: c for c in self._items
                                                  if c.weight_hash is not None and c.status == "ok"}

        def read(info: CheckpointInfo) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
            state = read_state_dict(info.weight_files)  # memory-mapped: nothing read yet
            digest = info.weight_hash
            if digest is None:  # not hashed yet (hash_weights=False): hash and check the values in one read
                digest = state_dict_hash(state, str(info.path))
                bad, sizes = nonfinite_tensors(state)
                if bad:
                    raise CheckpointError(_nonfinite_reason(info, describe_nonfinite(bad, sizes)))
            if prefetch:  # read the bytes now, in the background, into the model's dtype
                state = materialize(state, dtype)
            return state, architecture(info.path), digest

        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lensprobe-prefetch") \
            if prefetch else None
        pending: dict[int, concurrent.futures.Future] = {}
        model: torch.nn.Module | None = None
        resident_arch: dict[str, Any] | None = None
        def claimed(start: int) -> int | None:
            """The first index from ``start`` on whose checkpoint is wanted and claimed."""
            for j in range(start, len(todo)):
                if skip_duplicates and todo[j].status == "duplicate":
                    continue
                if claim is None or claim(todo[j]):
                    return j
            return None

        try:
            i = claimed(0)
            while i is not None:
                info = todo[i]
                error: CheckpointError | None = None
                try:
                    state, arch, digest = pending.pop(i).result() if i in pending else read(info)
                except CheckpointError as exc:
                    error = exc
                # the next checkpoint: with prefetch claimed and read now, in the background;
                # without, claimed only when the caller asks for it (after working on this one)
                nxt: int | None = -1
                if executor is not None:
                    nxt = claimed(i + 1)
                    if nxt is not None:
                        pending[nxt] = executor.submit(read, todo[nxt])
                if error is not None:
                    self._mark_broken(info, str(error))
                    i = nxt if nxt != -1 else claimed(i + 1)
                    continue
                if info.weight_hash is None:
                    info.weight_hash = digest
                    first = seen_hashes.get(digest)
                    if first is not None and first is not info:
                        info.status, info.duplicate_of = "duplicate", first.name
                        warnings.warn(f"series {self.run}: {info.name} has the same weights as "
                                      f"{first.name}", CheckpointWarning, stacklevel=2)
                        if skip_duplicates:
                            i = nxt if nxt != -1 else claimed(i + 1)
                            continue
                    else:
                        seen_hashes[digest] = info
                where = f"checkpoint {info.name} ({info.path})"
                if model is not None and arch != resident_arch:
                    diff = diff_keys(resident_arch or {}, arch)
                    if on_arch_change == "error":
                        raise ArchitectureMismatchError(
                            f"{where}: config differs from the resident model's in {diff[:8]}; "
                            "pass on_arch_change='rebuild' to load it as a new model")
                    warnings.warn(f"{where}: architecture changed ({diff[:8]}); rebuilding the model",
                                  CheckpointWarning, stacklevel=2)
                    model = None
                if model is None:
                    del state
                    loaded = load_first_model(info.path, dtype=dtype, device=device,
                                         check_lens=check_lens in (True, "first", "every"))
                    model, resident_arch = loaded.model, arch
                else:
                    # on CPU, tensors of the right dtype (prefetched copies, or private memory maps
                    # of the files, as from_pretrained uses) become the parameters' storage without
                    # a copy; otherwise they are cast/copied into the existing parameters
                    load_state_dict_in_place(model, state, where=where, share=device == "cpu")
                    del state
                    if check_lens == "every":
                        verify_lens_after_load(model, where)
                yield info, model
                i = nxt if nxt != -1 else claimed(i + 1)
        finally:
            for fut in pending.values():
                fut.cancel()
            if executor is not None:
                executor.shutdown(wait=True)

    def _mark_broken(self, info: CheckpointInfo, reason: str, *, warn: bool = True) -> None:
        info.status, info.reason = "broken", reason
        self._items = [c for c in self._items if c is not info]
        if not any(c is info for c in self._all):
            self._all.append(info)
        if warn:
            warnings.warn(f"series {self.run}: skipping broken checkpoint: {reason}", CheckpointWarning,
                          stacklevel=3)


def _nonfinite_reason(info: CheckpointInfo, what: str) -> str:
    return f"checkpoint {info.name} ({info.path}): non-finite weights: {what}"


# ----------------------------------------------------------------------------------------------
# discovery helpers


def _discover(run_dir: Path) -> list[CheckpointInfo]:
    named: list[CheckpointInfo] = []
    ignored: list[str] = []
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if parse_checkpoint_name(sub.name) is not None:
            named.append(CheckpointInfo(name=sub.name, path=sub))
        elif (sub / "config.json").is_file():
            has_step = False
            try:
                meta = read_meta(sub)
                has_step = meta.get("step") is not None or \
                    (meta.get("trainer_state") or {}).get("global_step") is not None
            except CheckpointError:
                pass
            if has_step:
                named.append(CheckpointInfo(name=sub.name, path=sub))
            else:
                ignored.append(sub.name)
    if ignored:
        warnings.warn(f"{run_dir}: ignoring model-like sub-directories without a step in their name "
                      f"or metadata: {ignored}", CheckpointWarning, stacklevel=3)
    if named:
        return named
    if (run_dir / "config.json").is_file():
        return [CheckpointInfo(name=run_dir.name, path=run_dir)]
    return []


def _order(items: list[CheckpointInfo], *, keep_order: bool) -> list[CheckpointInfo]:
    known = [c for c in items if c.step is not None]
    if len(known) == len(items):
        return sorted(items, key=lambda c: (c.step, c.name))  # stable
    if not known:
        return items
    unknown = [c.name for c in items if c.step is None]
    raise CheckpointError(
        f"cannot order the series: no step for {unknown} (name it checkpoint-N / stepN, add "
        "checkpoint.json with a 'step', or pass steps=...)")


def _common_parent_name(paths: Sequence[Path]) -> str:
    parents = {p.resolve().parent for p in paths}
    return parents.pop().name if len(parents) == 1 else "series"
