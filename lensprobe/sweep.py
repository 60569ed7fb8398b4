"""Run every probe over every checkpoint: the one path of every per-checkpoint computation.

One model stays resident; each checkpoint's weights are swapped in place while the next one is
read in the background (:meth:`lensprobe.checkpoints.CheckpointSeries.iter_models`). Hook probes
with equal inputs share forward passes (:func:`lensprobe.engine.hooks.run_probes`); model probes
(generation + execution, :class:`lensprobe.engine.protocol.ModelProbe`) drive the model themselves.
The result is the long table of :data:`lensprobe.table.SWEEP_COLUMNS`.

On disk (``out_dir``): one atomic file per (run, checkpoint, probe configuration) under
``OUT/results/`` (:mod:`lensprobe.results`), keyed by the weight hash and the configuration, so a
re-run skips what is done, a sweep with other probes adds to the directory, a killed sweep loses
only the unit it was computing, and two sweeps at once share the work through one lock per unit.
The rows from the run's logs (losses) are refreshed from the logs on every run. Sharding: rank r
of W takes checkpoints i with i % W == r (``accelerate launch`` sets both). What survives a kill,
what concurrent sweeps may do and when a sweep counts as failed: docs/sweep.md.

In memory (``out_dir=None``): nothing is written, nothing resumed; the table comes back in the
result, equal to the one :func:`read_sweep` would read. The convenience functions
(:func:`lensprobe.working_language`, :func:`lensprobe.lape_over_series`,
:func:`lensprobe.evaluate_checkpoints`) are thin calls of :func:`run_sweep`, and of
:func:`probe_model` for one model that is not part of a series.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from lensprobe.checkpoints import CheckpointError, CheckpointInfo, CheckpointSeries
from lensprobe.engine.adapters import LoadedModel, get_adapter
from lensprobe.engine.hooks import run_probes
from lensprobe.engine.protocol import ModelProbe, Probe
from lensprobe.files import FileLock, LockUnavailable, remove_stale_temporaries
from lensprobe.results import (LOG_PROBE, RESULTS_DIR, commit_lock, commit_unit, log_path, migrate_legacy,
                               read_sweep, record_sweep, restamp, stored_key, unit_key, unit_path, work_lock,
                               write_unit)
from lensprobe.table import CHECKPOINT_COLUMNS, SWEEP_COLUMNS, empty_table, sort_table, stamp_rows, to_table

__all__ = ["run_sweep", "probe_model", "read_sweep", "SweepResult", "NonFiniteActivationsError",
           "CHECKPOINT_COLUMNS", "SWEEP_COLUMNS"]

AnyProbe = Probe | ModelProbe


class NonFiniteActivationsError(CheckpointError):
    """The model produced NaN or inf activations or logits at real tokens while probes ran."""


@dataclass
class SweepResult:
    """What a sweep did, per checkpoint: ``computed`` (at least one probe computed), ``skipped``
    (every probe already done), ``failed`` (a probe raised or met non-finite activations: name and
    reason, re-tried next time) and ``broken`` (not processed at all: unreadable, truncated or
    missing weights, non-finite weights, another tokenizer: name and reason).

    ``out_dir`` is None for a sweep in memory, whose table is ``table``. :attr:`ok` is False when
    anything was failed or broken (the CLI's exit status 1).
    """

    out_dir: Path | None
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.broken

    def problems(self) -> list[tuple[str, str]]:
        """Every checkpoint that was not (fully) processed, with why: failed ones, then broken ones."""
        return [(n, f"failed: {r}") for n, r in self.failed] + [(n, f"skipped: {r}") for n, r in self.broken]

    def to_dataframe(self) -> pd.DataFrame:
        """The sweep table: the one computed in memory, or every file under ``out_dir`` (all ranks')."""
        if self.out_dir is None:
            return empty_table() if self.table is None else self.table.copy()
        return read_sweep(self.out_dir)


def _log_rows(info: CheckpointInfo) -> list[dict[str, Any]]:
    """Rows from the run's logs at this checkpoint (no compute): train and validation losses."""
    rows = []
    if info.train_loss is not None and not math.isnan(info.train_loss):
        rows.append(dict(probe=LOG_PROBE, language=None, identifier=None, layer=None, metric="train_loss",
                         value=info.train_loss, n=None))
    for lang, loss in (info.train_loss_by_language or {}).items():
        rows.append(dict(probe=LOG_PROBE, language=lang, identifier=None, layer=None, metric="train_loss",
                         value=loss, n=None))
    for lang, loss in (info.val_loss or {}).items():
        rows.append(dict(probe=LOG_PROBE, language=lang, identifier=None, layer=None, metric="val_loss",
                         value=loss, n=None))
    for lang, bpb in (info.val_bpb or {}).items():
        rows.append(dict(probe=LOG_PROBE, language=lang, identifier=None, layer=None, metric="val_bpb",
                         value=bpb, n=None))
    return rows


def _shard() -> tuple[int, int]:
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", 1))
    return rank, world


def _check_probes(probes: Sequence[AnyProbe]) -> list[AnyProbe]:
    probes = list(probes)
    if not probes:
        raise ValueError("a sweep needs at least one probe")
    for p in probes:
        if not isinstance(p, (Probe, ModelProbe)):
            raise TypeError(f"{p!r} is not a lensprobe Probe or ModelProbe")
        if p.name == LOG_PROBE:
            raise ValueError(f"probe name {LOG_PROBE!r} is reserved for the rows of the run's logs")
    names = [p.name for p in probes]
    if len(set(zip(names, [p.config_hash() for p in probes]))) != len(probes):
        raise ValueError(f"duplicate probes in {names}")
    return probes


# --------------------------------------------------------------------------- one checkpoint
class _Collect(Probe):
    """A hook probe as :func:`run_probes` sees it, keeping its own rows apart (two configurations
    of one probe write rows with the same ``probe`` name)."""

    def __init__(self, inner: Probe):
        self.inner = inner
        self.name = inner.name
        self.rows: list[dict[str, Any]] = []

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def input_key(self) -> str | None:
        return self.inner.input_key()

    def batches(self, tokenizer: Any) -> Any:
        return self.inner.batches(tokenizer)

    def hook_points(self, adapter: Any) -> Any:
        return self.inner.hook_points(adapter)

    def needs_logits(self) -> bool:
        return self.inner.needs_logits()

    def start(self, model: torch.nn.Module, adapter: Any) -> None:
        self.rows = []
        self.inner.start(model, adapter)

    def on_activation(self, point: str, output: torch.Tensor, batch: Any) -> None:
        self.inner.on_activation(point, output, batch)

    def on_batch_end(self, batch: Any, logits: torch.Tensor | None = None) -> None:
        self.inner.on_batch_end(batch, logits)

    def finalize(self) -> list[dict[str, Any]]:
        self.rows = self.inner.finalize()
        return self.rows

    def __getattr__(self, name: str) -> Any:  # anything else a probe exposes
        return getattr(self.__dict__["inner"], name)


class _FiniteWatch:
    """Forward hooks on every block and the unembedding that note the first non-finite output at
    a real token (padding positions, marked by the forward call's ``attention_mask``, are left
    out): one reduction per block output, small beside the block itself."""

    def __init__(self, model: torch.nn.Module):
        self.first: str | None = None
        self._mask: torch.Tensor | None = None
        self._handles: list[Any] = []
        try:
            adapter = get_adapter(model)
        except Exception:  # noqa: BLE001 - an architecture without an adapter: nothing to watch
            return
        self._handles.append(model.register_forward_pre_hook(self._pre, with_kwargs=True))
        for i, block in enumerate(adapter.blocks, 1):
            self._handles.append(block.register_forward_hook(self._hook(f"block {i}")))
        self._handles.append(adapter.unembed.register_forward_hook(self._hook("the logits")))

    def _pre(self, _module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        self._mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None

    def _hook(self, label: str) -> Callable[..., None]:
        def check(_module: Any, _args: Any, output: Any) -> None:
            if self.first is not None:
                return
            t = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or not t.numel():
                return
            with torch.no_grad():
                if t.dim() == 3:  # per position: a NaN or inf anywhere makes its sum non-finite
                    bad = ~torch.isfinite(t.sum(dim=-1, dtype=torch.float32))
                    if self._mask is not None and tuple(self._mask.shape) == tuple(bad.shape):
                        bad &= self._mask.to(bad.device).bool()
                    hit = bool(bad.any())
                else:
                    hit = not bool(torch.isfinite(t.sum(dtype=torch.float32)))
            if hit:
                self.first = label
        return check

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@dataclass
class _Outcome:
    rows: list[list[dict[str, Any]]]      # per probe, in the order given
    errors: list[str | None]              # per probe: why it failed, or None
    warnings: list[str] = field(default_factory=list)


def _nonfinite_message(names: Sequence[str], where: str) -> str:
    return (f"probe(s) {', '.join(sorted(set(names)))}: the model produced non-finite activations (first in "
            f"{where}) at real tokens; rows not written (a float16 overflow? try --dtype float32 or bfloat16)")


def _run_group(model: torch.nn.Module, probes: Sequence[AnyProbe], tokenizer: Any,
               device: str | torch.device | None) -> list[list[dict[str, Any]]]:
    """Rows per probe: hook probes in one shared pass, model probes one by one."""
    hooks = [_Collect(p) for p in probes if isinstance(p, Probe)]
    if hooks:
        run_probes(model, hooks, tokenizer=tokenizer, device=device)
    it = iter(hooks)
    out = []
    for p in probes:
        if isinstance(p, Probe):
            out.append(list(next(it).rows))
        else:
            with torch.inference_mode():
                out.append(list(p.run(model, tokenizer)))
    return out


def _compute(model: torch.nn.Module, probes: Sequence[AnyProbe], tokenizer: Any, device: str | torch.device | None,
             *, fail_fast: bool) -> _Outcome:
    """Every probe's rows for one model, and per probe why it failed. Hook probes share passes;
    when that shared pass fails, each probe is re-run alone so one failure costs no other's rows.
    A probe during whose run the model produced non-finite activations fails."""
    n = len(probes)
    outcome = _Outcome([[] for _ in range(n)], [None] * n)
    hook_idx = [i for i, p in enumerate(probes) if isinstance(p, Probe)]
    groups: list[list[int]] = ([hook_idx] if hook_idx else []) + [[i] for i, p in enumerate(probes)
                                                                   if not isinstance(p, Probe)]
    while groups:
        idx = groups.pop(0)
        members = [probes[i] for i in idx]
        watch = _FiniteWatch(model)
        try:
            rows = _run_group(model, members, tokenizer, device)
        except Exception as exc:  # noqa: BLE001 - recorded per probe, re-tried on the next run
            if fail_fast:
                raise
            if len(idx) > 1:  # find out which probe it was
                groups[:0] = [[i] for i in idx]
                continue
            outcome.errors[idx[0]] = f"probe {members[0].name}: {type(exc).__name__}: {exc}"
            continue
        finally:
            watch.close()
        if watch.first is not None:
            message = _nonfinite_message([p.name for p in members], watch.first)
            if fail_fast:
                raise NonFiniteActivationsError(message)
            for i in idx:
                outcome.errors[i] = message
            continue
        for i, r in zip(idx, rows):
            outcome.rows[i] = r
            inf = sorted({str(row.get("metric")) for row in r
                          if isinstance(row.get("value"), (int, float)) and math.isinf(row["value"])})
            if inf:
                outcome.warnings.append(f"probe {probes[i].name}: infinite value(s) in metric(s) {', '.join(inf)}")
    return outcome


def probe_model(model: torch.nn.Module | LoadedModel, probes: Sequence[AnyProbe], *, tokenizer: Any = None,
                device: str | torch.device | None = None, run: str | None = None, checkpoint: str | None = None,
                step: int | None = None, tokens: int | None = None) -> pd.DataFrame:
    """The sweep's computation for one model that is not part of a series: the table of
    :data:`SWEEP_COLUMNS` with the given checkpoint columns (None by default).

    ``model``: an ``nn.Module`` or a :class:`~lensprobe.engine.adapters.LoadedModel` (whose
    tokenizer is used unless ``tokenizer`` is given). ``device`` defaults to the model's. A probe
    that raises raises here; non-finite activations raise :class:`NonFiniteActivationsError`.
    """
    probes = _check_probes(probes)
    if isinstance(model, LoadedModel):
        tokenizer = model.tokenizer if tokenizer is None else tokenizer
        model = model.model
    outcome = _compute(model, probes, tokenizer, device, fail_fast=True)
    rows = [r for per_probe in outcome.rows for r in per_probe]
    return sort_table(to_table(stamp_rows(rows, run=run, checkpoint=checkpoint, step=step, tokens=tokens)))


# --------------------------------------------------------------------------- the sweep on disk
class _Units:
    """The sweep's units on disk: which are done, which this process holds the lock of."""

    def __init__(self, out_dir: Path, run: str, probes: Sequence[AnyProbe], log: Callable[[str], Any] | None):
        self.out_dir, self.run, self.probes, self.log = out_dir, run, list(probes), log
        self.hashes = [p.config_hash() for p in self.probes]
        self.held: dict[tuple[str, int], FileLock] = {}
        self.deferred: dict[str, set[int]] = {}
        self.locking = True

    def path(self, info: CheckpointInfo, i: int) -> Path:
        return unit_path(self.out_dir, self.run, info.name, self.probes[i].name, self.hashes[i])

    def done(self, info: CheckpointInfo, i: int) -> bool:
        return stored_key(self.path(info, i)) == unit_key(info.weight_hash, self.hashes[i])

    def missing(self, info: CheckpointInfo) -> list[int]:
        return [i for i in range(len(self.probes)) if not self.done(info, i)]

    def claim(self, info: CheckpointInfo, *, blocking: bool) -> list[int]:
        """Lock the missing units of ``info`` that no other process holds; the ones another holds
        are deferred (non-blocking) or waited for (blocking). Returns the units to compute."""
        mine = []
        for i in self.missing(info):
            if not self.locking:
                mine.append(i)
                continue
            lock = work_lock(self.out_dir, self.run, info.name, self.probes[i].name, self.hashes[i])
            try:
                got = lock.acquire(blocking=False)
                if not got and blocking:
                    if self.log:
                        self.log(f"sweep: waiting for {info.name} / {self.probes[i].name} "
                                 f"(computed by {lock.describe_holder()})")
                    got = lock.acquire(blocking=True)
            except LockUnavailable as exc:
                if self.log:
                    self.log(f"sweep: {exc}; sweeping without locks (concurrent sweeps may compute a unit twice)")
                self.locking = False
                mine.append(i)
                continue
            if not got:
                self.deferred.setdefault(info.name, set()).add(i)
                continue
            if self.done(info, i):  # finished by another process while we were looking
                lock.release()
                continue
            self.held[(info.name, i)] = lock
            mine.append(i)
        return mine

    def release(self, name: str, i: int | None = None) -> None:
        for key in [k for k in self.held if k[0] == name and (i is None or k[1] == i)]:
            self.held.pop(key).release()

    def release_all(self) -> None:
        for lock in self.held.values():
            lock.release()
        self.held.clear()

    def commit(self, info: CheckpointInfo, i: int, df: pd.DataFrame) -> None:
        p = self.probes[i]
        keep = [h for q, h in zip(self.probes, self.hashes) if q.name == p.name]
        commit_unit(self.out_dir, run=self.run, checkpoint=info.name, probe=p.name, keep=keep, df=df,
                    write=dict(path=self.path(info, i), config_hash=self.hashes[i],
                               key=unit_key(info.weight_hash, self.hashes[i]), step=info.step, tokens=info.tokens,
                               extra={"weight_hash": info.weight_hash, "config": p.config(), "path": str(info.path)}))
        self.release(info.name, i)

    def settle(self, info: CheckpointInfo) -> None:
        """For a checkpoint found done: remove what a kill may have left of replaced configurations,
        and give the files the checkpoint's current step and tokens."""
        for name in dict.fromkeys(p.name for p in self.probes):
            keep = [h for q, h in zip(self.probes, self.hashes) if q.name == name]
            commit_unit(self.out_dir, run=self.run, checkpoint=info.name, probe=name, keep=keep)
        for i in range(len(self.probes)):
            path = self.path(info, i)
            with commit_lock(self.out_dir, self.run, info.name, self.probes[i].name):
                if path.exists():
                    restamp(path, step=info.step, tokens=info.tokens)
            lock = work_lock(self.out_dir, self.run, info.name, self.probes[i].name, self.hashes[i])
            if self.locking and lock.path.exists():  # left by a killed sweep: free now, so remove it
                with contextlib.suppress(LockUnavailable):
                    if lock.acquire(blocking=False):
                        lock.release()


def _refresh_logs(out_dir: Path, series: CheckpointSeries, infos: Sequence[CheckpointInfo]) -> int:
    """Rewrite each checkpoint's rows from the run's logs where the logs changed since (a
    validation row written after the sweep saw the checkpoint); returns how many changed."""
    series.reload_logs()
    changed = 0
    for info in infos:
        if not info.ok:
            continue
        df = to_table(stamp_rows(_log_rows(info), run=series.run, checkpoint=info.name, step=info.step,
                                 tokens=info.tokens))
        path = log_path(out_dir, series.run, info.name)
        with commit_lock(out_dir, series.run, info.name, LOG_PROBE):
            remove_stale_temporaries(out_dir / RESULTS_DIR, [re.escape(path.name)])
            if path.exists():
                try:
                    old = pd.read_parquet(path)
                except Exception:  # noqa: BLE001 - unreadable: rewrite it
                    old = None
                if old is not None and sort_table(to_table(old)).equals(sort_table(df)):
                    continue
            elif not len(df):
                continue
            write_unit(path, df, run=series.run, checkpoint=info.name, probe=LOG_PROBE, config_hash=None, key=None,
                       step=info.step, tokens=info.tokens)
            changed += 1
    return changed


def run_sweep(series: CheckpointSeries | str | os.PathLike, probes: Sequence[AnyProbe], *,
              out_dir: str | Path | None = None, tokenizer: Any = None, device: str | torch.device = "cpu",
              dtype: torch.dtype | str = torch.float32, rank: int | None = None, world_size: int | None = None,
              progress: bool = True, prefetch: bool = True, fail_fast: bool = False, log_rows: bool = True,
              on_checkpoint: Callable[[CheckpointInfo, pd.DataFrame], None] | None = None,
              log: Callable[[str], Any] | None = print) -> SweepResult:
    """Run ``probes`` over every checkpoint of ``series`` (a :class:`CheckpointSeries` or a run dir).

    With ``out_dir``, units already done (same weights, same probe configuration) are skipped,
    units another process is computing are waited for instead of computed twice, and
    ``rank``/``world_size`` default to the launcher's ``RANK``/``WORLD_SIZE``. With
    ``out_dir=None`` the sweep runs in memory over every checkpoint (unless ``rank``/``world_size``
    are given) and the result holds the table. A probe that raises, or during which the model
    produces non-finite activations, is recorded in ``failed`` (and re-tried next time) unless
    ``fail_fast``; the checkpoint's other probes are kept.

    ``tokenizer``: an object or a path, used for every checkpoint; by default the series' own
    (:meth:`CheckpointSeries.tokenizer`), and a checkpoint with another tokenizer than most of the
    series is skipped and reported in ``broken`` (probes that read token ids need none).
    Checkpoints that cannot be processed (unreadable, non-finite weights) are in ``broken`` too.
    ``log_rows``: add the rows of the run's logs (``probe="log"``: train and validation losses),
    re-read from the logs on every run. ``on_checkpoint(info, table)`` is called after each
    computed checkpoint with its rows. Returns a :class:`SweepResult`; its
    :meth:`~SweepResult.to_dataframe` is the table.
    """
    probes = _check_probes(probes)
    if not isinstance(series, CheckpointSeries):
        series = CheckpointSeries(series)
    in_memory = out_dir is None
    env_rank, env_world = (0, 1) if in_memory else _shard()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    result = SweepResult(None if in_memory else Path(out_dir))
    t0 = time.perf_counter()
    if tokenizer is None:  # the series' own: checkpoints with another one are skipped (tokens mean other things)
        series.exclude_foreign_tokenizers()
    mine = [c for i, c in enumerate(series) if i % world_size == rank]
    units: _Units | None = None
    todo = mine
    if result.out_dir is not None:
        (result.out_dir / RESULTS_DIR).mkdir(parents=True, exist_ok=True)
        migrate_legacy(result.out_dir, log=log)
        if rank == 0:
            record_sweep(result.out_dir, run=series.run, probes=[{"name": p.name, "config": p.config(),
                                                                  "hash": p.config_hash()} for p in probes],
                         checkpoints=[c.name for c in series], world_size=world_size,
                         run_dir=None if series.run_dir is None else str(series.run_dir))
        series.hash_weights()  # also marks checkpoints with non-finite weights broken
        mine = [c for c in mine if c.ok]
        units = _Units(result.out_dir, series.run, probes, log)
        todo = []
        for info in mine:
            if units.missing(info):
                todo.append(info)
            else:
                result.skipped.append(info.name)
                units.settle(info)
    names = [p.name for p in probes]
    if log:
        log(f"sweep {series.run}: {len(mine)} checkpoints on rank {rank}/{world_size}, "
            f"{len(result.skipped)} already done, {len(todo)} to run; probes: {', '.join(names)}")
    frames: list[pd.DataFrame] = []
    if todo:
        tok = series.tokenizer(tokenizer, required=False)
        if tok is None and log:
            log(f"sweep {series.run}: no tokenizer; probes that tokenize text will fail")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="ckpt", desc=f"sweep {series.run}", dynamic_ncols=True)
        dev = None if str(device) == "auto" else device
        passes = [(todo, False)]
        try:
            while passes:
                batch, blocking = passes.pop(0)
                wanted = {c.name for c in batch}
                claimed: dict[str, list[int]] = {}

                def claim(info: CheckpointInfo) -> bool:
                    if info.name not in wanted:
                        return False
                    if units is None:
                        claimed[info.name] = list(range(len(probes)))
                    else:
                        claimed[info.name] = units.claim(info, blocking=blocking)
                    return bool(claimed[info.name])

                # waiting for others' units: one checkpoint at a time, holding no other lock
                for info, model in series.iter_models(dtype=dtype, device=device, prefetch=prefetch and not blocking,
                                                      check_tokenizers=False, claim=claim):
                    _process(info, model, probes, claimed.pop(info.name, []), tok, dev, series, units, result,
                             frames, fail_fast=fail_fast, log_rows=log_rows, on_checkpoint=on_checkpoint, log=log)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(step=info.step)
                if units is not None:
                    for name in claimed:  # claimed but not yielded: broken while being read
                        units.release(name)
                    if units.deferred:
                        waiting = [c for c in batch if c.name in units.deferred and c.ok]
                        units.deferred = {}
                        if waiting:
                            passes.append((waiting, True))
        finally:
            if units is not None:
                units.release_all()
            if bar is not None:
                bar.close()
    if result.out_dir is not None and log_rows:
        _refresh_logs(result.out_dir, series, mine)
    _finish(result, series, todo)
    if in_memory:
        result.table = sort_table(pd.concat(frames, ignore_index=True)) if frames else empty_table()
    result.seconds = time.perf_counter() - t0
    return result


def _process(info: CheckpointInfo, model: torch.nn.Module, probes: Sequence[AnyProbe], todo: list[int], tok: Any,
             device: Any, series: CheckpointSeries, units: _Units | None, result: SweepResult,
             frames: list[pd.DataFrame], *, fail_fast: bool, log_rows: bool,
             on_checkpoint: Callable[[CheckpointInfo, pd.DataFrame], None] | None,
             log: Callable[[str], Any] | None) -> None:
    """Compute the units ``todo`` of one loaded checkpoint, write (or collect) them, record the outcome."""
    for i in todo:  # probes that depend on the checkpoint itself (the tuned lens' translators): docs/tuned-lens.md
        bind = getattr(probes[i], "bind_checkpoint", None)
        if callable(bind):
            bind(info, series=series, out_dir=result.out_dir)
    try:
        outcome = _compute(model, [probes[i] for i in todo], tok, device, fail_fast=fail_fast)
    except NonFiniteActivationsError as exc:
        if units is not None:
            units.release(info.name)
        raise NonFiniteActivationsError(f"checkpoint {info.name} ({info.path}): {exc}") from None
    except BaseException as exc:
        if units is not None:
            units.release(info.name)
        exc.add_note(f"while sweeping checkpoint {info.name} ({info.path})")
        raise
    for message in outcome.warnings:
        if log:
            log(f"sweep: checkpoint {info.name}: {message}")
    errors = [e for e in outcome.errors if e]
    tables = []
    for i, rows, error in zip(todo, outcome.rows, outcome.errors):
        if error:
            if units is not None:
                units.release(info.name, i)
            continue
        df = to_table(stamp_rows(rows, run=series.run, checkpoint=info.name, step=info.step, tokens=info.tokens))
        tables.append(df)
        if units is not None:
            units.commit(info, i, df)
    if errors:
        reason = "; ".join(errors)
        result.failed.append((info.name, reason))
        if log:
            log(f"sweep: checkpoint {info.name} ({info.path}) failed: {reason}")
    logs = to_table(stamp_rows(_log_rows(info), run=series.run, checkpoint=info.name, step=info.step,
                               tokens=info.tokens)) if log_rows else empty_table()
    df = sort_table(pd.concat(tables + [logs], ignore_index=True))
    if units is None:
        frames.append(df)  # with the log rows of every usable checkpoint, failed or not, as on disk
    if not tables:
        return
    result.computed.append(info.name)
    if on_checkpoint is not None:
        on_checkpoint(info, df)


def _finish(result: SweepResult, series: CheckpointSeries, todo: Sequence[CheckpointInfo]) -> None:
    """Broken checkpoints (found at discovery, hashing or reading) and units another process
    was to compute but did not (it died: re-run to compute them)."""
    result.broken = [(c.name, c.reason or "broken") for c in series.broken]
    result.computed = list(dict.fromkeys(result.computed))
    result.failed = list(dict.fromkeys(result.failed))
    failed = {n for n, _ in result.failed}
    handled = set(result.computed) | set(result.skipped) | failed | {n for n, _ in result.broken}
    for info in todo:
        if info.name not in handled:
            result.skipped.append(info.name)  # done by another process meanwhile
