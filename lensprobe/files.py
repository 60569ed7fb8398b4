"""Atomic file and directory writes, and the locks and leftovers that go with them.

* :func:`atomic_write_bytes` / :func:`atomic_directory`: a crash never leaves a partial file or
  directory visible under its final name. New files get mode ``0666 & ~umask`` and new
  directories ``0777 & ~umask``, like ``open()`` and ``mkdir`` would; replacing an existing file
  or directory keeps its mode (docs/sweep.md, "What survives a kill").
* :class:`FileLock`: an exclusive ``flock`` on a lock file naming its holder (pid, host), which
  the kernel releases when the holder dies, so a lock is never stale.
* :func:`remove_stale_temporaries`: the hidden temporaries these writers leave when a process is
  killed (``.<name>.<random>.tmp``, ``.<name>.old``), removed by the next process that owns the
  directory (docs/pretrain.md, "Temporaries after a kill").
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_directory", "iter_jsonl",
           "atomic_write_table", "current_umask", "new_file_mode", "FileLock", "LockUnavailable", "DirectoryBusy",
           "remove_stale_temporaries", "owned_directory", "TEMPORARY_SUFFIX"]

#: what every temporary of this module ends with (``.<name>.<8 random characters>.tmp``)
TEMPORARY_SUFFIX = ".tmp"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # set-and-restore: the only portable way to read it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0666`` less the umask (``mkstemp`` gives ``0600``)."""
    return 0o666 & ~current_umask()


def _mode_for(path: Path, *, directory: bool) -> int:
    """The mode ``open()``/``mkdir`` would give ``path``: its own when it exists, else the default less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return (0o777 if directory else 0o666) & ~current_umask()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path, directory=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary sibling directory; rename it to ``path`` when the block succeeds.

    Readers never see a partially written ``path``. On error the temporary directory is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    mode = _mode_for(path, directory=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent))
    try:
        os.chmod(tmp, mode)  # mkdtemp creates 0700
        yield tmp
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def iter_jsonl(path: str | os.PathLike, *, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file (``.gz`` read transparently).

    A line that is not a JSON object raises ``error`` naming the file and line.
    """
    import gzip

    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise error(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, record


def atomic_write_table(path: str | os.PathLike, df: Any) -> Path:
    """Write a DataFrame atomically as ``.parquet``, ``.csv`` or ``.jsonl``/``.json`` (records)."""
    import io

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue())
    if suffix == ".csv":
        return atomic_write_text(path, df.to_csv(index=False))
    if suffix in (".jsonl", ".json"):
        return atomic_write_text(path, df.to_json(orient="records", lines=True))
    raise ValueError(f"{path}: use a .parquet, .csv or .jsonl file name")


class LockUnavailable(OSError):
    """The file system does not support ``flock`` (some network mounts): nothing can be locked there."""


class FileLock:
    """An exclusive lock on ``path`` held through ``flock``: released by the kernel when the holder
    exits or is killed, so no lock is ever stale and none needs breaking.

    The lock file holds its holder (``{"pid", "host", "since", ...}``) for messages. Releasing
    unlinks the file before unlocking it; an acquirer that locked a file which has meanwhile been
    unlinked (or replaced) notices by comparing inodes and tries again, so two processes never
    both hold ``path``. The descriptor is close-on-exec: child processes (compilers, sandboxes)
    never inherit the lock. Not re-entrant; one holder per object.
    """

    def __init__(self, path: str | os.PathLike, **info: Any) -> None:
        self.path = Path(path)
        self.info = info
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, blocking: bool = False) -> bool:
        """Take the lock; False when another process holds it (``blocking=False``).

        Raises :class:`LockUnavailable` where the file system has no ``flock``.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise LockUnavailable(exc.errno, f"{self.path}: cannot lock ({exc.strerror})") from exc
                raise
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            mine = os.fstat(fd)
            if now is None or (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev):
                os.close(fd)  # the previous holder unlinked it after we opened it: try the new file
                continue
            record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), **self.info}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record, default=str) + "\n").encode(), 0)
            self._fd = fd
            return True

    def release(self) -> None:
        """Unlink the lock file and unlock it (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, as its file says (None when unknown)."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def describe_holder(self) -> str:
        who = self.holder()
        if not who:
            return "another process"
        return f"pid {who.get('pid')} on {who.get('host')}"

    def __enter__(self) -> "FileLock":
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock is released with its object, not at exit
        with contextlib.suppress(Exception):
            self.release()


_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part


def remove_stale_temporaries(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove the hidden temporaries :func:`atomic_write_bytes` and :func:`atomic_directory` leave
    in ``directory`` when killed, for the given ``names`` only (regular expressions of the final
    names, e.g. ``r"checkpoint-\\d+"``): ``.<name>.<random>.tmp`` and ``.<name>.old``.

    Only call it while holding the lock that makes you the directory's only writer (e.g. a
    training run's lock): a temporary is stale because nobody else may be writing it. Returns the
    removed paths.
    """
    directory = Path(directory)
    pattern = re.compile(rf"^\.(?:{'|'.join(f'(?:{n})' for n in names)})\.(?:{_RANDOM}\.tmp|old)$")
    removed = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


class DirectoryBusy(RuntimeError):
    """Another live process owns the directory (holds its lock)."""


@contextlib.contextmanager
def owned_directory(directory: str | os.PathLike, names: Iterable[str], *, what: str) -> Iterator[list[Path]]:
    """Own ``directory`` for the block: take its ``.<what>.lock`` (:class:`DirectoryBusy` naming
    the holder when another live process has it), remove the stale temporaries of ``names``
    (:func:`remove_stale_temporaries`; yielded), release on exit. Where the file system has no
    ``flock`` nothing is locked or removed (nobody could tell a stale temporary from a live one).
    """
    directory = Path(directory)
    lock = FileLock(directory / f".{what}.lock", purpose=what)
    try:
        got = lock.acquire(blocking=False)
    except LockUnavailable:
        yield []
        return
    if not got:
        raise DirectoryBusy(f"{directory}: another process is writing here ({what}: {lock.describe_holder()}); "
                            "wait for it to finish or stop it")
    try:
        yield remove_stale_temporaries(directory, names)
    finally:
        lock.release()
