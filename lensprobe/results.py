"""A sweep's results on disk: one parquet file per (run, checkpoint, probe configuration).

Layout of ``OUT/results/`` (docs/sweep.md, "Results on disk")::

    <run>__<checkpoint>__<probe>-<config hash>.parquet   a *unit*: one probe configuration's rows
    <run>__<checkpoint>__log.parquet                      the run's logs at the checkpoint (losses)
    .<run>__<checkpoint>__<probe>-<config hash>.lock      held while a process computes that unit
    .<run>__<checkpoint>__<probe>.lock                    held while a unit of that probe is committed

Each file is written atomically and records, in its parquet metadata (``lensprobe_unit``), what
it holds: run, checkpoint, probe, configuration and its hash, the weight hash, step and tokens,
and its *key* (weight hash + configuration hash): a unit whose stored key equals the one a sweep
would compute is done. Units of different probes, or of configurations whose rows do not
overlap (e.g. working-language probes on two suites), add up; a configuration whose rows overlap
an earlier configuration's rows of the same probe at the same checkpoint replaces it when
committed (:func:`commit_unit`), so a table never holds two values for one row.

Directories written before this layout (``<run>__<checkpoint>.parquet``, every probe of a
checkpoint in one file) are read as they are; :func:`migrate_legacy` splits them into units
(nothing is recomputed) and a sweep into such a directory does it first.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lensprobe.files import FileLock, atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from lensprobe.table import sort_table, to_table

__all__ = ["RESULTS_DIR", "LOG_PROBE", "FORMAT", "UnitInfo", "unit_key", "unit_path", "log_path", "work_lock",
           "commit_lock", "read_unit_info", "write_unit", "commit_unit", "read_sweep", "migrate_legacy",
           "record_sweep", "ROW_KEY"]

RESULTS_DIR = "results"
#: the ``probe`` of the rows joined from the run's logs (train and validation losses)
LOG_PROBE = "log"
#: the layout version recorded in every unit and in ``sweep.json``
FORMAT = 2
#: what identifies a row within one checkpoint (two configurations writing the same key overlap)
ROW_KEY: tuple[str, ...] = ("probe", "language", "identifier", "layer", "metric")
_META = b"lensprobe_unit"
_UNIT_NAME = re.compile(r"__(?:.+-[0-9a-f]{16}|log)\.parquet$")
_LEGACY_KEY = b"lensprobe_key"


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _stem(run: str, checkpoint: str) -> str:
    return f"{safe_name(run)}__{safe_name(checkpoint)}"


def unit_key(weight_hash: str | None, config_hash: str) -> str:
    """What a unit's rows depend on: the checkpoint's weights and the probe's configuration."""
    blob = json.dumps({"weights": weight_hash, "probe": config_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def unit_path(out_dir: Path, run: str, checkpoint: str, probe: str, config_hash: str) -> Path:
    return out_dir / RESULTS_DIR / f"{_stem(run, checkpoint)}__{safe_name(probe)}-{config_hash}.parquet"


def log_path(out_dir: Path, run: str, checkpoint: str) -> Path:
    return out_dir / RESULTS_DIR / f"{_stem(run, checkpoint)}__{LOG_PROBE}.parquet"


def work_lock(out_dir: Path, run: str, checkpoint: str, probe: str, config_hash: str) -> FileLock:
    """The lock a process holds while it computes one unit (so a second process does not)."""
    name = f".{_stem(run, checkpoint)}__{safe_name(probe)}-{config_hash}.lock"
    return FileLock(out_dir / RESULTS_DIR / name, run=run, checkpoint=checkpoint, probe=probe)


def commit_lock(out_dir: Path, run: str, checkpoint: str, probe: str) -> FileLock:
    """The lock held while a unit of ``probe`` at ``checkpoint`` is written and what it replaces removed."""
    return FileLock(out_dir / RESULTS_DIR / f".{_stem(run, checkpoint)}__{safe_name(probe)}.lock")


@dataclass(frozen=True)
class UnitInfo:
    """What a result file says about itself (its parquet metadata)."""

    path: Path
    run: str | None
    checkpoint: str | None
    probe: str | None
    config_hash: str | None
    key: str | None
    step: int | None = None
    tokens: int | None = None
    legacy: bool = False
    probes: tuple[str, ...] = ()   # a legacy file: the probes it holds


def read_unit_info(path: Path) -> UnitInfo | None:
    """The metadata of a result file; None when it is missing or not a lensprobe result."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    if _META in meta:
        try:
            m = json.loads(meta[_META])
        except ValueError:
            return None
        return UnitInfo(path, m.get("run"), m.get("checkpoint"), m.get("probe"), m.get("config_hash"), m.get("key"),
                        m.get("step"), m.get("tokens"))
    if _LEGACY_KEY in meta:
        try:
            extra = json.loads(meta.get(b"lensprobe_meta", b"{}"))
        except ValueError:
            extra = {}
        return UnitInfo(path, None, None, None, None, meta[_LEGACY_KEY].decode() or None, legacy=True,
                        probes=tuple((extra.get("probes") or {}).keys()))
    return None


def stored_key(path: Path) -> str | None:
    info = read_unit_info(path) if path.exists() else None
    return None if info is None or info.legacy else info.key


def write_unit(path: Path, df: pd.DataFrame, *, run: str, checkpoint: str, probe: str, config_hash: str | None,
               key: str | None, step: int | None, tokens: int | None, extra: dict[str, Any] | None = None) -> None:
    """Write one result file atomically with its metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_META] = json.dumps({"format": FORMAT, "run": run, "checkpoint": checkpoint, "probe": probe,
                              "config_hash": config_hash, "key": key, "step": step, "tokens": tokens,
                              **(extra or {})}, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def _row_keys(df: pd.DataFrame) -> set[tuple]:
    cols = df[list(ROW_KEY)].astype(object).where(df[list(ROW_KEY)].notna(), None)
    return set(map(tuple, cols.itertuples(index=False, name=None)))


def siblings(out_dir: Path, run: str, checkpoint: str, probe: str) -> list[Path]:
    """The unit files of ``probe`` at ``checkpoint`` (every configuration)."""
    prefix = f"{_stem(run, checkpoint)}__{safe_name(probe)}-"
    return sorted(p for p in (out_dir / RESULTS_DIR).glob(f"{glob_escape(prefix)}*.parquet")
                  if p.name[len(prefix):-len(".parquet")].isalnum())


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def commit_unit(out_dir: Path, *, run: str, checkpoint: str, probe: str, keep: Iterable[str],
                df: pd.DataFrame | None = None, write: dict[str, Any] | None = None) -> list[Path]:
    """Under the probe's commit lock: write a unit (``write``: the keyword arguments of
    :func:`write_unit` and ``df``), then remove the units of other configurations of ``probe`` at
    ``checkpoint`` whose rows overlap it (configurations in ``keep``, the sweep's own, stay).

    With ``df=None`` (a unit found done) only the overlap is settled, which a kill between a
    write and its removals can leave behind. Returns the removed paths.
    """
    keep = set(keep)
    removed: list[Path] = []
    with commit_lock(out_dir, run, checkpoint, probe):
        # nobody else writes this probe's files at this checkpoint now: a killed writer's temporaries are stale
        remove_stale_temporaries(out_dir / RESULTS_DIR,
                                 [re.escape(f"{_stem(run, checkpoint)}__{safe_name(probe)}-") + r"[0-9a-f]{16}\.parquet"])
        if df is not None and write is not None:
            write_unit(write.pop("path"), df, run=run, checkpoint=checkpoint, probe=probe, **write)
        ours: set[tuple] = set()
        others: list[Path] = []
        for path in siblings(out_dir, run, checkpoint, probe):
            info = read_unit_info(path)
            if info is None or info.legacy or (info.run, info.checkpoint, info.probe) != (run, checkpoint, probe):
                continue
            if info.config_hash in keep:
                frame = _read_rows(path)
                if frame is not None:
                    ours |= _row_keys(frame)
            else:
                others.append(path)
        for path in others:
            theirs = _read_rows(path)
            if theirs is not None and ours & _row_keys(theirs):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _read_rows(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowException):  # removed meanwhile, or not a table
        return None


def restamp(path: Path, *, step: int | None, tokens: int | None) -> bool:
    """Give an existing result file the checkpoint's current step and tokens (the tokens may come
    from a loss log written after the file); True when it changed."""
    info = read_unit_info(path)
    if info is None or info.legacy or (info.step, info.tokens) == (step, tokens):
        return False
    meta = json.loads(pq.read_schema(path).metadata[_META])
    df = pd.read_parquet(path)
    df["step"], df["tokens"] = step, tokens
    meta.update(step=step, tokens=tokens)
    extra = {k: v for k, v in meta.items() if k not in ("format", "run", "checkpoint", "probe", "config_hash", "key",
                                                         "step", "tokens")}
    write_unit(path, to_table(df), run=meta["run"], checkpoint=meta["checkpoint"], probe=meta["probe"],
               config_hash=meta.get("config_hash"), key=meta.get("key"), step=step, tokens=tokens, extra=extra)
    return True


def _result_files(results: Path) -> list[Path]:
    return sorted(p for p in results.glob("*.parquet") if not p.name.startswith("."))


def read_sweep(out_dir: str | Path) -> pd.DataFrame:
    """The sweep table of ``out_dir``: every result file under ``OUT/results`` concatenated, in
    table order (:data:`lensprobe.table.SWEEP_COLUMNS`; files of the earlier layout included,
    less the rows a newer unit holds)."""
    results = Path(out_dir) / RESULTS_DIR
    files = _result_files(results)
    if not files:
        raise FileNotFoundError(f"{results}: no sweep results (run `lensprobe sweep` first)")
    frames, legacy, covered = [], [], set()
    for path in files:
        info = read_unit_info(path)
        df = _read_rows(path)
        if df is None:
            continue
        if info is not None and info.legacy:
            legacy.append(df)
            continue
        frames.append(df)
        if info is not None:
            covered.add((info.run, info.checkpoint, info.probe))
    for df in legacy:
        if len(df) and covered:
            probe_of = df["probe"].astype(object)
            drop = [(r, c, p) in covered for r, c, p in zip(df["run"].astype(object), df["checkpoint"].astype(object),
                                                              probe_of)]
            df = df[[not d for d in drop]]
        frames.append(df)
    frames = [f for f in frames if len(f)] or frames[:1]
    return sort_table(to_table(pd.concat(frames, ignore_index=True)))


def migrate_legacy(out_dir: Path, *, log: Any = None) -> int:
    """Split every file of the earlier layout under ``OUT/results`` into units (same rows, keys
    that match what a sweep with the same probes computes) and remove it; returns how many."""
    results = out_dir / RESULTS_DIR
    done = 0
    for path in _result_files(results):
        if _UNIT_NAME.search(path.name):  # this layout's names: no need to open the file
            continue
        info = read_unit_info(path)
        if info is None or not info.legacy:
            continue
        df = _read_rows(path)
        if df is None:
            continue
        try:
            extra = json.loads(pq.read_schema(path).metadata.get(b"lensprobe_meta", b"{}"))
        except ValueError:
            extra = {}
        if not len(df):
            path.unlink(missing_ok=True)  # nothing to keep (a checkpoint whose probes wrote no rows)
            continue
        run, checkpoint = str(df["run"].iloc[0]), str(df["checkpoint"].iloc[0])
        step = None if pd.isna(df["step"].iloc[0]) else int(df["step"].iloc[0])
        tokens = None if pd.isna(df["tokens"].iloc[0]) else int(df["tokens"].iloc[0])
        weight_hash = extra.get("weight_hash")
        for name, config in (extra.get("probes") or {}).items():
            config_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
            target = unit_path(out_dir, run, checkpoint, name, config_hash)
            if not target.exists():
                write_unit(target, to_table(df[df["probe"] == name]), run=run, checkpoint=checkpoint, probe=name,
                           config_hash=config_hash, key=unit_key(weight_hash, config_hash), step=step, tokens=tokens,
                           extra={"weight_hash": weight_hash, "config": config, "path": extra.get("path"),
                                  "migrated_from": path.name})
        logs = df[df["probe"] == LOG_PROBE]
        target = log_path(out_dir, run, checkpoint)
        if len(logs) and not target.exists():
            write_unit(target, to_table(logs), run=run, checkpoint=checkpoint, probe=LOG_PROBE, config_hash=None,
                       key=None, step=step, tokens=tokens, extra={"migrated_from": path.name})
        path.unlink(missing_ok=True)
        done += 1
    if done and log:
        log(f"{results}: {done} result file(s) of the earlier layout split into one file per probe (nothing recomputed)")
    return done


def record_sweep(out_dir: Path, *, run: str, probes: list[dict[str, Any]], checkpoints: list[str],
                 world_size: int, run_dir: str | None) -> dict[str, Any]:
    """Add this sweep to ``OUT/sweep.json`` (under a lock): every probe configuration any sweep
    used, the runs and their checkpoints, and one entry per distinct (run, probe set)."""
    import time

    path = out_dir / "sweep.json"
    with FileLock(out_dir / RESULTS_DIR / ".sweep.json.lock"):
        remove_stale_temporaries(out_dir, [r"sweep\.json"])
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if not isinstance(old, dict):
            old = {}
        known = [p for p in old.get("probes", []) if isinstance(p, dict) and "hash" in p]
        if old.get("format") != FORMAT and old.get("run"):  # the earlier sweep.json: one sweep
            old_sweeps = [{"run": old["run"], "probes": [p["hash"] for p in known],
                           "checkpoints": old.get("checkpoints", []), "world_size": old.get("world_size", 1)}]
        else:
            old_sweeps = [s for s in old.get("sweeps", []) if isinstance(s, dict)]
        hashes = {p["hash"] for p in known}
        known += [p for p in probes if p["hash"] not in hashes]
        runs = dict(old.get("runs", {})) if isinstance(old.get("runs"), dict) else {}
        if old.get("format") != FORMAT and old.get("run"):
            runs.setdefault(old["run"], {"checkpoints": old.get("checkpoints", [])})
        entry = runs.get(run, {}) if isinstance(runs.get(run), dict) else {}
        seen = list(entry.get("checkpoints", []))
        entry["checkpoints"] = seen + [c for c in checkpoints if c not in seen]
        if run_dir is not None:
            entry["path"] = run_dir
        runs[run] = entry
        this = sorted(p["hash"] for p in probes)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for s in old_sweeps:
            if s.get("run") == run and sorted(s.get("probes", [])) == this:
                s.update(checkpoints=checkpoints, world_size=world_size, last=now, times=int(s.get("times", 1)) + 1)
                break
        else:
            old_sweeps.append({"run": run, "probes": this, "checkpoints": checkpoints, "world_size": world_size,
                               "first": now, "last": now, "times": 1})
        record = {"format": FORMAT, "probes": known, "runs": runs, "sweeps": old_sweeps,
                  # the latest sweep, as the earlier sweep.json had it
                  "run": run, "checkpoints": checkpoints, "world_size": world_size}
        atomic_write_json(path, record)
    return record
