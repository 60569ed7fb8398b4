"""Run every probe over every checkpoint into one resumable long-format parquet table.

One model stays resident; each checkpoint's weights are swapped in place while the next one is
read in the background (:meth:`lensprobe.checkpoints.CheckpointSeries.iter_models`). Hook probes
with equal inputs share forward passes (:func:`lensprobe.engine.hooks.run_probes`); model probes
(generation + execution, :class:`lensprobe.engine.protocol.ModelProbe`) drive the model themselves.

Results: ``OUT/results/<run>__<checkpoint>.parquet``, one file per checkpoint, written atomically, in
the long format of :data:`SWEEP_COLUMNS`. Each file records its *key* — a hash of the
checkpoint's weight hash and every probe's configuration — so re-running the same command skips
finished checkpoints, recomputes only what changed, and loses nothing when killed at any moment.
Sharding: rank r of W takes checkpoints i with i % W == r (``accelerate launch`` sets both).
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
from typing import Any, Sequence

import pandas as pd
import torch

from lensprobe.files import atomic_write_bytes, atomic_write_json
from lensprobe.engine.protocol import CHECKPOINT_COLUMNS, ROW_COLUMNS, SWEEP_COLUMNS, ModelProbe, Probe

RESULTS_DIR = "results"
LOG_PROBE = "log"


@dataclass
class SweepResult:
    """What a sweep did: checkpoints computed, skipped (already done) and failed."""

    out_dir: Path
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dataframe(self) -> pd.DataFrame:
        """The whole sweep table (all ranks' files)."""
        return read_sweep(self.out_dir)


def _key(weight_hash: str | None, probes: Sequence[Probe | ModelProbe]) -> str:
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
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return meta.get(b"lensprobe_key", b"").decode() or None
    except Exception:  # unreadable (e.g. a foreign file): recompute
        return None


def _write_rows(path: Path, rows: list[dict[str, Any]], key: str, extra_meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    df["layer"] = pd.to_numeric(df["layer"], errors="coerce").astype("Int64")
    df["step"] = pd.to_numeric(df["step"], errors="coerce").astype("Int64")
    df["tokens"] = pd.to_numeric(df["tokens"], errors="coerce").astype("Int64")
    df["n"] = pd.to_numeric(df["n"], errors="coerce").astype("Int64")
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    for col in ("run", "checkpoint", "probe", "language", "identifier", "metric"):
        df[col] = df[col].astype("string")
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"lensprobe_key"] = key.encode()
    meta[b"lensprobe_meta"] = json.dumps(extra_meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_sweep(out_dir: str | Path) -> pd.DataFrame:
    """The sweep table: every checkpoint file under ``OUT/results`` concatenated, sorted by step."""
    results = Path(out_dir) / RESULTS_DIR
    files = sorted(p for p in results.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{results}: no sweep results (run `lensprobe sweep` first)")
    frames = [pd.read_parquet(p) for p in files]
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["step", "checkpoint", "probe", "language", "identifier", "layer", "metric"],
                          na_position="first", kind="stable").reset_index(drop=True)


def _log_rows(info: Any) -> list[dict[str, Any]]:
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


def run_sweep(series: Any, probes: Sequence[Probe | ModelProbe], *, out_dir: str | Path, tokenizer: Any = None,
              device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32,
              rank: int | None = None, world_size: int | None = None, progress: bool = True,
              prefetch: bool = True, fail_fast: bool = False, log: Any = print) -> SweepResult:
    """Run ``probes`` over every checkpoint of ``series`` (a :class:`CheckpointSeries` or a run dir).

    Already-finished checkpoints (same weights, same probe configurations) are skipped. A
    checkpoint whose probes raise is recorded in ``failed`` (and re-tried next time) unless
    ``fail_fast``. Returns a :class:`SweepResult`; read the table with :func:`read_sweep`.
    """
    from lensprobe.checkpoints import CheckpointSeries
    from lensprobe.engine.hooks import run_probes

    if not probes:
        raise ValueError("run_sweep needs at least one probe")
    for p in probes:
        if not isinstance(p, (Probe, ModelProbe)):
            raise TypeError(f"{p!r} is not a lensprobe Probe or ModelProbe")
    names = [p.name for p in probes]
    if len(set(zip(names, [p.config_hash() for p in probes]))) != len(probes):
        raise ValueError(f"duplicate probes in {names}")
    if not isinstance(series, CheckpointSeries):
        series = CheckpointSeries(series)
    env_rank, env_world = _shard()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    out_dir = Path(out_dir)
    (out_dir / RESULTS_DIR).mkdir(parents=True, exist_ok=True)
    result = SweepResult(out_dir)
    t0 = time.perf_counter()

    if rank == 0:
        atomic_write_json(out_dir / "sweep.json", {
            "run": series.run, "probes": [{"name": p.name, "config": p.config(), "hash": p.config_hash()}
                                          for p in probes],
            "checkpoints": [c.name for c in series], "world_size": world_size,
        })
    mine = [c for i, c in enumerate(series) if i % world_size == rank]
    series.hash_weights()
    todo = []
    for info in mine:
        key = _key(info.weight_hash, probes)
        if _stored_key(_result_path(out_dir, series.run, info.name)) == key:
            result.skipped.append(info.name)
        else:
            todo.append(info)
    if log:
        log(f"sweep {series.run}: {len(mine)} checkpoints on rank {rank}/{world_size}, "
            f"{len(result.skipped)} already done, {len(todo)} to run; probes: {', '.join(names)}")
    if not todo:
        result.seconds = time.perf_counter() - t0
        return result
    subset = series.select(steps=[c.step for c in todo]) if all(c.step is not None for c in todo) else series
    todo_names = {c.name for c in todo}
    tok = tokenizer
    if tok is None:  # probes that read token ids only (LAPE on token files) need no tokenizer
        from lensprobe.checkpoints import CheckpointError

        try:
            tok = subset.load_tokenizer()
        except CheckpointError as exc:
            if log:
                log(f"sweep: no tokenizer ({exc}); probes that need one will fail")
    hook_probes = [p for p in probes if isinstance(p, Probe)]
    model_probes = [p for p in probes if isinstance(p, ModelProbe)]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="ckpt", desc=f"sweep {series.run}", dynamic_ncols=True)
    try:
        for info, model in subset.iter_models(dtype=dtype, device=device, prefetch=prefetch):
            if info.name not in todo_names:
                continue
            key = _key(info.weight_hash, probes)
            try:
                rows: list[dict[str, Any]] = []
                if hook_probes:
                    rows += run_probes(model, hook_probes, tokenizer=tok,
                                       device=None if str(device) == "auto" else device)
                for mp in model_probes:
                    with torch.inference_mode():
                        rows += mp.run(model, tok)
            except Exception as exc:  # noqa: BLE001 - recorded, re-tried on the next run
                if fail_fast:
                    raise
                result.failed.append((info.name, f"{type(exc).__name__}: {exc}"))
                if log:
                    log(f"sweep: checkpoint {info.name} ({info.path}) failed: {type(exc).__name__}: {exc}")
                continue
            rows += _log_rows(info)
            stamp = dict(run=series.run, checkpoint=info.name, step=info.step, tokens=info.tokens)
            full = [{**stamp, **{c: r.get(c) for c in ROW_COLUMNS}} for r in rows]
            _write_rows(_result_path(out_dir, series.run, info.name), full, key,
                        {"path": str(info.path), "weight_hash": info.weight_hash,
                         "probes": {p.name: p.config() for p in probes}})
            result.computed.append(info.name)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rows=len(full), step=info.step)
    finally:
        if bar is not None:
            bar.close()
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["run_sweep", "read_sweep", "SweepResult", "CHECKPOINT_COLUMNS", "SWEEP_COLUMNS"]
