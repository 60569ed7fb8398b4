"""Run every probe over every checkpoint: the one path of every per-checkpoint computation.

One model stays resident; each checkpoint's weights are swapped in place while the next one is
read in the background (:meth:`lensprobe.checkpoints.CheckpointSeries.iter_models`). Hook probes
with equal inputs share forward passes (:func:`lensprobe.engine.hooks.run_probes`); model probes
(generation + execution, :class:`lensprobe.engine.protocol.ModelProbe`) drive the model themselves.
The result is the long table of :data:`lensprobe.table.SWEEP_COLUMNS`.

On disk (``out_dir``): ``OUT/results/<run>__<checkpoint>.parquet``, one file per checkpoint,
written atomically. Each file records its *key* — a hash of the checkpoint's weight hash and
every probe's configuration — so re-running the same command skips finished checkpoints,
recomputes only what changed, and loses nothing when killed at any moment. Sharding: rank r of W
takes checkpoints i with i % W == r (``accelerate launch`` sets both).

In memory (``out_dir=None``): nothing is written, nothing resumed; the table comes back in the
result, equal to the one :func:`read_sweep` would read. The convenience functions
(:func:`lensprobe.working_language`, :func:`lensprobe.lape_over_series`,
:func:`lensprobe.evaluate_checkpoints`) are thin calls of :func:`run_sweep`, and of
:func:`probe_model` for one model that is not part of a series.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lensprobe.checkpoints import CheckpointInfo, CheckpointSeries
from lensprobe.engine.adapters import LoadedModel
from lensprobe.engine.hooks import run_probes
from lensprobe.engine.protocol import ModelProbe, Probe
from lensprobe.files import atomic_write_bytes, atomic_write_json
from lensprobe.table import CHECKPOINT_COLUMNS, SWEEP_COLUMNS, empty_table, sort_table, stamp_rows, to_table

__all__ = ["run_sweep", "probe_model", "read_sweep", "SweepResult", "CHECKPOINT_COLUMNS", "SWEEP_COLUMNS"]

RESULTS_DIR = "results"
LOG_PROBE = "log"

AnyProbe = Probe | ModelProbe


@dataclass
class SweepResult:
    """What a sweep did: checkpoints computed, skipped (already done) and failed.

    ``out_dir`` is None for a sweep in memory, whose table is ``table``.
    """

    out_dir: Path | None
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    table: pd.DataFrame | None = field(default=None, repr=False)

    def to_dataframe(self) -> pd.DataFrame:
        """The sweep table: the one computed in memory, or every file under ``out_dir`` (all ranks')."""
        if self.out_dir is None:
            return empty_table() if self.table is None else self.table.copy()
        return read_sweep(self.out_dir)


def _key(weight_hash: str | None, probes: Sequence[AnyProbe]) -> str:
    blob = json.dumps({"weights": weight_hash, "probes": sorted(p.config_hash() for p in probes)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _result_path(out_dir: Path, run: str, checkpoint_name: str) -> Path:
    """``OUT/results/<run>__<checkpoint>.parquet``: several runs (seeds) can share one table."""
    return out_dir / RESULTS_DIR / f"{_safe_name(run)}__{_safe_name(checkpoint_name)}.parquet"


def _stored_key(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
        return meta.get(b"lensprobe_key", b"").decode() or None
    except Exception:  # unreadable (e.g. a foreign file): recompute
        return None


def _write_table(path: Path, df: pd.DataFrame, key: str, extra_meta: dict[str, Any]) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"lensprobe_key"] = key.encode()
    meta[b"lensprobe_meta"] = json.dumps(extra_meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_sweep(out_dir: str | Path) -> pd.DataFrame:
    """The sweep table: every checkpoint file under ``OUT/results`` concatenated, in table order."""
    results = Path(out_dir) / RESULTS_DIR
    files = sorted(p for p in results.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{results}: no sweep results (run `lensprobe sweep` first)")
    return sort_table(pd.concat([pd.read_parquet(p) for p in files], ignore_index=True))


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
    names = [p.name for p in probes]
    if len(set(zip(names, [p.config_hash() for p in probes]))) != len(probes):
        raise ValueError(f"duplicate probes in {names}")
    return probes


def _checkpoint_rows(model: torch.nn.Module, probes: Sequence[AnyProbe], tokenizer: Any,
                     device: str | torch.device | None) -> list[dict[str, Any]]:
    """Every probe's rows for one model: hook probes share forward passes, model probes run alone."""
    hook_probes = [p for p in probes if isinstance(p, Probe)]
    rows: list[dict[str, Any]] = []
    if hook_probes:
        rows += run_probes(model, hook_probes, tokenizer=tokenizer, device=device)
    for mp in probes:
        if isinstance(mp, ModelProbe):
            with torch.inference_mode():
                rows += mp.run(model, tokenizer)
    return rows


def probe_model(model: torch.nn.Module | LoadedModel, probes: Sequence[AnyProbe], *, tokenizer: Any = None,
                device: str | torch.device | None = None, run: str | None = None, checkpoint: str | None = None,
                step: int | None = None, tokens: int | None = None) -> pd.DataFrame:
    """The sweep's computation for one model that is not part of a series: the table of
    :data:`SWEEP_COLUMNS` with the given checkpoint columns (None by default).

    ``model``: an ``nn.Module`` or a :class:`~lensprobe.engine.adapters.LoadedModel` (whose
    tokenizer is used unless ``tokenizer`` is given). ``device`` defaults to the model's.
    """
    probes = _check_probes(probes)
    if isinstance(model, LoadedModel):
        tokenizer = model.tokenizer if tokenizer is None else tokenizer
        model = model.model
    rows = _checkpoint_rows(model, probes, tokenizer, device)
    return sort_table(to_table(stamp_rows(rows, run=run, checkpoint=checkpoint, step=step, tokens=tokens)))


def run_sweep(series: CheckpointSeries | str | os.PathLike, probes: Sequence[AnyProbe], *,
              out_dir: str | Path | None = None, tokenizer: Any = None, device: str | torch.device = "cpu",
              dtype: torch.dtype | str = torch.float32, rank: int | None = None, world_size: int | None = None,
              progress: bool = True, prefetch: bool = True, fail_fast: bool = False, log_rows: bool = True,
              on_checkpoint: Callable[[CheckpointInfo, pd.DataFrame], None] | None = None,
              log: Callable[[str], Any] | None = print) -> SweepResult:
    """Run ``probes`` over every checkpoint of ``series`` (a :class:`CheckpointSeries` or a run dir).

    With ``out_dir``, already-finished checkpoints (same weights, same probe configurations) are
    skipped and ``rank``/``world_size`` default to the launcher's ``RANK``/``WORLD_SIZE``. With
    ``out_dir=None`` the sweep runs in memory over every checkpoint (unless ``rank``/``world_size``
    are given) and the result holds the table. A checkpoint whose probes raise is recorded in
    ``failed`` (and re-tried next time) unless ``fail_fast``. ``tokenizer``: an object or a path;
    default the series' (:meth:`CheckpointSeries.tokenizer`; probes that read token ids need none).
    ``log_rows``: add the rows of the run's logs (``probe="log"``: train and validation losses).
    ``on_checkpoint(info, table)`` is called after each computed checkpoint with its rows.
    Returns a :class:`SweepResult`; its :meth:`~SweepResult.to_dataframe` is the table.
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
    mine = [c for i, c in enumerate(series) if i % world_size == rank]
    todo = mine
    if result.out_dir is not None:
        (result.out_dir / RESULTS_DIR).mkdir(parents=True, exist_ok=True)
        if rank == 0:
            atomic_write_json(result.out_dir / "sweep.json", {
                "run": series.run, "probes": [{"name": p.name, "config": p.config(), "hash": p.config_hash()}
                                              for p in probes],
                "checkpoints": [c.name for c in series], "world_size": world_size,
            })
        series.hash_weights()
        todo = []
        for info in mine:
            if _stored_key(_result_path(result.out_dir, series.run, info.name)) == _key(info.weight_hash, probes):
                result.skipped.append(info.name)
            else:
                todo.append(info)
    names = [p.name for p in probes]
    if log:
        log(f"sweep {series.run}: {len(mine)} checkpoints on rank {rank}/{world_size}, "
            f"{len(result.skipped)} already done, {len(todo)} to run; probes: {', '.join(names)}")
    if not todo:
        result.seconds = time.perf_counter() - t0
        if in_memory:
            result.table = empty_table()
        return result
    subset = series.select(steps=[c.step for c in todo]) if all(c.step is not None for c in todo) else series
    todo_names = {c.name for c in todo}
    tok = series.tokenizer(tokenizer, required=False)
    if tok is None and log:
        log(f"sweep {series.run}: no tokenizer; probes that tokenize text will fail")
    frames: list[pd.DataFrame] = []

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="ckpt", desc=f"sweep {series.run}", dynamic_ncols=True)
    try:
        for info, model in subset.iter_models(dtype=dtype, device=device, prefetch=prefetch):
            if info.name not in todo_names:
                continue
            try:
                rows = _checkpoint_rows(model, probes, tok, None if str(device) == "auto" else device)
            except Exception as exc:  # noqa: BLE001 - recorded, re-tried on the next run
                if fail_fast:
                    raise
                result.failed.append((info.name, f"{type(exc).__name__}: {exc}"))
                if log:
                    log(f"sweep: checkpoint {info.name} ({info.path}) failed: {type(exc).__name__}: {exc}")
                continue
            if log_rows:
                rows += _log_rows(info)
            df = to_table(stamp_rows(rows, run=series.run, checkpoint=info.name, step=info.step, tokens=info.tokens))
            if result.out_dir is None:
                frames.append(df)
            else:
                _write_table(_result_path(result.out_dir, series.run, info.name), df, _key(info.weight_hash, probes),
                             {"path": str(info.path), "weight_hash": info.weight_hash,
                              "probes": {p.name: p.config() for p in probes}})
            result.computed.append(info.name)
            if on_checkpoint is not None:
                on_checkpoint(info, df)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rows=len(df), step=info.step)
    finally:
        if bar is not None:
            bar.close()
    if in_memory:
        result.table = sort_table(pd.concat(frames, ignore_index=True)) if frames else empty_table()
    result.seconds = time.perf_counter() - t0
    return result
