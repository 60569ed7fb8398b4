"""Schedules, analysis snapshots, resume state and the run's JSONL logs.

* :func:`snapshot_steps` - when to write analysis checkpoints (Pythia-like by default).
* :class:`LRSchedule` - linear warmup then cosine (or constant); a pure function of the step.
* :func:`write_checkpoint` - ``<out>/checkpoint-<step>/``: a standard HF directory plus
  ``checkpoint.json``, written to a hidden temporary directory and renamed.
* :func:`save_resume_state` / :func:`latest_resume_state` - ``<out>/resume/state-<step>/``
  (accelerate state + ``trainer.json``), also atomic; the last ``keep`` are kept.
* :func:`truncate_log` - drop log lines beyond a resumed step (and a torn last line).
* :func:`own_run_dir` / :func:`release_run_dir` - the training's lock on its run directory
  (``.pretrain.lock``); taking it removes the hidden temporaries a killed run left behind
  (docs/pretrain.md, "Temporaries after a kill").
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lensprobe.files import (FileLock, LockUnavailable, atomic_directory, atomic_write_json, atomic_write_text,
                             remove_stale_temporaries)

from .config import ConfigError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_RE = re.compile(r"^state-(\d+)$")
RUN_LOCK = ".pretrain.lock"
#: what the training writes atomically in its run directory (and ``resume/``): the names of the
#: temporaries a kill can leave (``.<name>.<random>.tmp``, ``.<name>.old``)
RUN_TEMPORARIES = (r"checkpoint-\d+", "tokenizer", "tokens", r"run\.json", r"config\.yaml", r"loss\.jsonl",
                   r"val\.jsonl")
RESUME_TEMPORARIES = (r"state-\d+",)


# ---------------------------------------------------------------------------------- schedules
def snapshot_steps(total_steps: int, *, schedule: str = "pythia", every: int = 100, log_max: int = 512,
                   extra: list[int] | tuple[int, ...] = ()) -> list[int]:
    """Sorted optimizer steps at which analysis snapshots are written (0 and the final step included).

    ``pythia``: 0, 1, 2, 4, ..., ``log_max`` then every ``every`` steps; ``every``: 0, K, 2K, ...;
    ``list``: only ``extra`` (plus 0 and the final step).
    """
    steps = {0, total_steps}
    if schedule == "pythia":
        k = 1
        while k <= min(log_max, total_steps):
            steps.add(k)
            k *= 2
        steps.update(range(every, total_steps + 1, every))
    elif schedule == "every":
        steps.update(range(every, total_steps + 1, every))
    elif schedule != "list":
        raise ValueError(f"snapshots.schedule: unknown schedule {schedule!r}")
    steps.update(s for s in extra if 0 <= s <= total_steps)
    return sorted(steps)


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate at an optimizer step (0-based): linear warmup, then cosine to ``lr*min_ratio`` or constant."""

    lr: float
    total_steps: int
    warmup: int = 0
    kind: str = "cosine"
    min_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.lr
        span = max(1, self.total_steps - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        low = self.lr * self.min_ratio
        return low + 0.5 * (self.lr - low) * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------- snapshots
def list_checkpoints(out: str | Path) -> dict[int, Path]:
    """Complete analysis snapshots of a run directory, by step (hidden temporaries are skipped)."""
    out = Path(out)
    found = {}
    for p in out.iterdir() if out.is_dir() else []:
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def write_checkpoint(out: str | Path, step: int, *, save_model: Callable[[Path], None], tokenizer: Any,
                     info: dict[str, Any]) -> Path:
    """Write ``<out>/checkpoint-<step>/`` atomically: ``save_model(tmp_dir)`` writes config + safetensors."""
    path = Path(out) / f"checkpoint-{step}"
    with atomic_directory(path, overwrite=True) as tmp:
        save_model(tmp)
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "checkpoint.json", {"step": int(step), **info})
    return path


# ---------------------------------------------------------------------------------- resume state
def list_resume_states(out: str | Path) -> dict[int, Path]:
    root = Path(out) / "resume"
    found = {}
    for p in root.iterdir() if root.is_dir() else []:
        m = STATE_RE.match(p.name)
        if m and (p / "trainer.json").is_file():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def latest_resume_state(out: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete resume state and its ``trainer.json``, or ``None``."""
    states = list_resume_states(out)
    if not states:
        return None
    path = states[max(states)]
    return path, json.loads((path / "trainer.json").read_text())


def prune_resume_states(out: str | Path, keep: int) -> None:
    states = list_resume_states(out)
    for step in sorted(states)[:-keep]:
        shutil.rmtree(states[step], ignore_errors=True)


# ---------------------------------------------------------------------------------- logs
def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL log; a torn (partially written) last line is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def truncate_log(path: str | Path, *, max_step: int) -> int:
    """Keep the lines with ``step <= max_step`` (atomically rewritten); returns how many are kept."""
    path = Path(path)
    if not path.exists():
        return 0
    rows = [r for r in read_log(path) if int(r["step"]) <= max_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def append_log(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


# ---------------------------------------------------------------------------------- the run's lock
_RUN_LOCKS: dict[Path, FileLock] = {}


class RunDirectoryBusy(ConfigError):
    """Another live training writes the run directory (the CLI's exit status 2, like a bad config)."""


def own_run_dir(out: str | Path, *, log: Callable[[str], Any] | None = None) -> list[Path]:
    """Take the run directory's lock (main process only), then remove what killed runs left.

    The lock (``flock`` on ``<out>/.pretrain.lock``) is released by the kernel when its holder
    dies, so holding it proves that no other live training writes here: the hidden temporaries
    of :data:`RUN_TEMPORARIES` (in ``out``) and :data:`RESUME_TEMPORARIES` (in ``out/resume``)
    are then stale, and removed. Raises :class:`RunDirectoryBusy` naming the holder when another
    process trains into ``out``. Where the file system has no ``flock`` nothing is removed.
    Released by :func:`release_run_dir` (or by the next call for ``out`` in this process, after
    an exception ended a training). Returns the removed paths.
    """
    out = Path(out)
    key = out.resolve()
    earlier = _RUN_LOCKS.pop(key, None)
    if earlier is not None:  # this process's own earlier training, ended by an exception
        earlier.release()
    lock = FileLock(out / RUN_LOCK, purpose="pretrain")
    try:
        got = lock.acquire(blocking=False)
    except LockUnavailable as exc:
        if log:
            log(f"{exc}: leftovers of interrupted runs (hidden .*.tmp folders) are not removed")
        return []
    if not got:
        raise RunDirectoryBusy(f"{out}: another training is writing this run directory "
                               f"({lock.describe_holder()}); wait for it or stop it")
    _RUN_LOCKS[key] = lock
    removed = remove_stale_temporaries(out, RUN_TEMPORARIES) + \
        remove_stale_temporaries(out / "resume", RESUME_TEMPORARIES)
    if removed and log:
        log(f"removed {len(removed)} temporary folder(s)/file(s) left by an interrupted run: "
            + ", ".join(str(p.relative_to(out)) for p in removed[:6]) + (", ..." if len(removed) > 6 else ""))
    return removed


def release_run_dir(out: str | Path) -> None:
    """Release :func:`own_run_dir`'s lock (removing the lock file)."""
    lock = _RUN_LOCKS.pop(Path(out).resolve(), None)
    if lock is not None:
        lock.release()
