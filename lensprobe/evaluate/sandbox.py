"""Run one untrusted program: fresh directory, own session, resource limits, no network.

Protections, strongest first (what is in force is reported by :func:`sandbox_report`):

* **unprivileged uid** -- when the harness runs as root, every sandboxed program runs (via
  ``setpriv``, after bwrap has set up the namespaces) as a dedicated uid (one per worker slot, ``61000 + k`` by default, claimed with a lock file) so that
  ``RLIMIT_NPROC`` applies (it does not apply to root), files outside the work directory cannot be
  written, and every process left behind can be found and killed by uid;
* **bubblewrap** -- ``bwrap --unshare-net --unshare-pid --unshare-ipc`` (plus ``--unshare-user``
  when not root): a
  read-only view of ``/``, a private ``/tmp``, only the work directory (and, for builds, the
  compiler cache) writable, no network interface but loopback, and a pid namespace whose processes
  all die with the program (``--die-with-parent``); without bwrap, ``unshare -n`` is used as root;
* **rlimits** (set in ``preexec_fn``): CPU seconds, address space, processes/threads, file size,
  open files, no core files;
* **process group** -- each program runs in its own session; on timeout the whole group is killed
  with SIGKILL (``subprocess.run(timeout=...)`` alone leaves grandchildren alive);
* **capped output** -- only the first and last few KiB of stdout+stderr are kept.
"""
from __future__ import annotations

import fcntl
import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

GiB = 1 << 30
MiB = 1 << 20
UID_BASE = int(os.environ.get("LENSPROBE_SANDBOX_UID_BASE", "61000"))
UID_RANGE = 512
#: Every sandbox uid runs with this gid, so build caches (group-writable) are shared between slots.
SANDBOX_GID = UID_BASE


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command."""

    cpu_seconds: float = 10.0
    address_space: int | None = 4 * GiB  #: RLIMIT_AS; Go and mono reserve much virtual memory
    processes: int = 128  #: RLIMIT_NPROC (threads count too); only effective for a non-root uid
    file_size: int = 64 * MiB
    open_files: int = 256

    def __post_init__(self) -> None:
        if self.cpu_seconds <= 0 or self.processes < 4 or self.file_size <= 0:
            raise ValueError(f"invalid limits: {self}")


@dataclass
class SandboxReport:
    """Which protections are in force on this machine."""

    bubblewrap: bool
    network_isolated: bool
    pid_namespace: bool
    readonly_root: bool
    unprivileged_uid: bool
    process_limit_effective: bool
    rlimits: bool = True
    process_group_kill: bool = True
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        on = lambda b: "yes" if b else "NO"  # noqa: E731
        out = [
            f"sandbox: bubblewrap={on(self.bubblewrap)} network-isolated={on(self.network_isolated)} "
            f"pid-namespace={on(self.pid_namespace)} read-only-root={on(self.readonly_root)} "
            f"unprivileged-uid={on(self.unprivileged_uid)} nproc-limit={on(self.process_limit_effective)} "
            f"rlimits=yes process-group-kill=yes"
        ]
        out += [f"sandbox: note: {n}" for n in self.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    @property
    def mode(self) -> str:
        return "bwrap" if self.bubblewrap else ("unshare" if self.network_isolated else "plain")


def _works(argv: Sequence[str], preexec=None) -> bool:
    try:
        r = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20,
                           preexec_fn=preexec)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def sandbox_report(mode: str = "auto") -> SandboxReport:
    """Probe bubblewrap / unshare / setuid once and say what is in force (cached per mode)."""
    if mode not in ("auto", "bwrap", "unshare", "plain"):
        raise ValueError(f"sandbox mode must be auto, bwrap, unshare or plain, not {mode!r}")
    root = os.geteuid() == 0
    notes: list[str] = []
    bwrap = shutil.which("bwrap")
    probe_uid = UID_BASE + UID_RANGE - 1
    bwrap_ok = False
    if root and not shutil.which("setpriv"):
        raise RuntimeError("running as root needs `setpriv` (util-linux) to drop to the sandbox uid")
    if mode in ("auto", "bwrap") and bwrap:
        argv = [bwrap, *([] if root else ["--unshare-user"]), "--unshare-net", "--unshare-pid", "--unshare-ipc",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--die-with-parent", "--"]
        argv += ["setpriv", f"--reuid={probe_uid}", f"--regid={probe_uid}", "--clear-groups", "--", "true"] if root \
            else ["true"]
        bwrap_ok = _works(argv)
        if not bwrap_ok:
            notes.append("bwrap is installed but cannot create namespaces here")
    elif mode in ("auto", "bwrap"):
        notes.append("bwrap not found (apt-get install bubblewrap)")
    if mode == "bwrap" and not bwrap_ok:
        raise RuntimeError("sandbox mode 'bwrap' requested but bubblewrap does not work here: " + "; ".join(notes))
    unshare_ok = False
    if not bwrap_ok and mode in ("auto", "unshare") and root and shutil.which("unshare"):
        unshare_ok = _works(["unshare", "--net", "true"])
    if mode == "unshare" and not unshare_ok:
        raise RuntimeError("sandbox mode 'unshare' requested but `unshare --net` does not work here (needs root)")
    if not root:
        notes.append("not root: programs run as the current user; RLIMIT_NPROC counts all of its processes")
    if not (bwrap_ok or unshare_ok):
        notes.append("NO network isolation and no read-only root: run only trusted completions here")
    elif not bwrap_ok:
        notes.append("no bwrap: writes are blocked only by the unprivileged uid (world-writable dirs remain)")
    rep = SandboxReport(bubblewrap=bwrap_ok, network_isolated=bwrap_ok or unshare_ok, pid_namespace=bwrap_ok,
                        readonly_root=bwrap_ok, unprivileged_uid=root, process_limit_effective=root,
                        notes=notes)
    return rep


class UidLease:
    """Claims a dedicated uid for a worker slot (a lock file per uid; released on close)."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self._fh = None
        if os.geteuid() != 0:
            self.uid = None
            return
        lockdir = Path("/tmp/lensprobe-sandbox-locks")
        lockdir.mkdir(mode=0o700, exist_ok=True)
        for uid in range(UID_BASE, UID_BASE + UID_RANGE - 1):
            fh = open(lockdir / f"{uid}.lock", "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            self.uid, self._fh = uid, fh
            kill_uid(uid)  # stale processes of a crashed earlier run
            return
        raise RuntimeError(f"no free sandbox uid in {UID_BASE}..{UID_BASE + UID_RANGE - 2}")

    def close(self) -> None:
        if self._fh is not None:
            if self.uid is not None:
                kill_uid(self.uid)
            self._fh.close()
            self._fh = None


def processes_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is ``uid`` (a /proc scan)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except (OSError, ValueError):
            continue
    return pids


def kill_uid(uid: int, *, rounds: int = 5) -> int:
    """SIGKILL every process of the (dedicated, sandbox-only) ``uid``; returns how many were seen."""
    if uid is None or uid == 0 or uid == os.getuid():
        return 0
    total = 0
    for _ in range(rounds):
        pids = processes_of_uid(uid)
        if not pids:
            break
        total += len(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    return total


def _under(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(root)
        return True
    except ValueError:
        return False


def hidden_ancestor(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` that other users may not traverse (None if all may)."""
    path = Path(os.path.abspath(path))
    for anc in [*reversed(path.parents), path]:
        try:
            if not os.stat(anc).st_mode & 0o001:
                return anc
        except OSError:
            return None
    return None


@dataclass
class ExecResult:
    returncode: int | None
    timed_out: bool
    output: str
    seconds: float


class _Tail:
    """Reads a pipe to EOF keeping the first ``head`` and last ``tail`` bytes."""

    def __init__(self, fd, head: int = 2048, tail: int = 6144) -> None:
        self.fd, self.head_n, self.tail_n = fd, head, tail
        self.head = b""
        self.tail = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                if len(self.head) < self.head_n:
                    take = self.head_n - len(self.head)
                    self.head += chunk[:take]
                    chunk = chunk[take:]
                self.tail += chunk
                if len(self.tail) > self.tail_n:
                    cut = len(self.tail) - self.tail_n
                    self.dropped += cut
                    del self.tail[:cut]
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def text(self) -> str:
        self.thread.join(timeout=2)
        mid = f"\n[... {self.dropped} bytes of output dropped ...]\n".encode() if self.dropped else b""
        return (self.head + mid + bytes(self.tail)).decode("utf-8", "replace")


class Sandbox:
    """Runs commands for one worker slot. Use as a context manager (it holds a uid lease)."""

    def __init__(self, *, mode: str = "auto", limits: Limits = Limits()) -> None:
        self.report = sandbox_report(mode)
        self.limits = limits
        self.lease = UidLease()
        self.uid = self.lease.uid

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.lease.close()

    def prepare_dir(self, path: Path) -> None:
        """Give the sandbox uid ownership of a directory it may write."""
        if self.uid is not None:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.uid, SANDBOX_GID, follow_symlinks=False)

    def prepare_shared_dir(self, path: Path) -> None:
        """A directory every sandbox uid may write (group ``SANDBOX_GID``, setgid, mode 2775)."""
        path.mkdir(parents=True, exist_ok=True)
        if self.uid is not None:
            os.chown(path, 0, SANDBOX_GID)
        os.chmod(path, 0o2775)

    def _preexec(self, limits: Limits):
        def fn() -> None:
            os.setsid()
            cpu = max(1, int(limits.cpu_seconds + 0.999))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            if limits.address_space:
                resource.setrlimit(resource.RLIMIT_AS, (limits.address_space, limits.address_space))
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size, limits.file_size))
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.umask(0o002)  # group-writable cache entries (shared gid)
        return fn

    def wrap(self, argv: Sequence[str], workdir: Path, writable: Sequence[Path] = (),
             reveal: Sequence[Path] = ()) -> list[str]:
        """The argv that runs ``argv`` inside the namespaces in force.

        ``reveal``: read-only paths below a directory the sandbox uid may not traverse (e.g. a
        Python under ``/root/.pyenv``): the hidden ancestor is replaced by an empty tmpfs and the
        path is bound into it read-only (bwrap only).
        """
        if self.report.bubblewrap:
            userns = ["--unshare-user"] if self.uid is None else []
            wrap = ["bwrap", *userns, "--unshare-net", "--unshare-pid", "--unshare-ipc",
                    "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                    "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
            hidden: list[str] = []
            for path in reveal:
                anc = hidden_ancestor(Path(path))
                if anc is not None and str(anc) not in hidden and str(anc) != "/tmp":
                    hidden.append(str(anc))
                    wrap += ["--tmpfs", str(anc)]
            made: set[str] = set()
            for path in reveal:
                # under a hidden ancestor, or under /tmp (replaced by the private tmpfs above: a
                # checkout and its venv may live there, e.g. a CI clone)
                path = Path(os.path.abspath(path))
                root = hidden_ancestor(path) or (Path("/tmp") if _under(path, Path("/tmp")) else None)
                if root is None:
                    continue
                # bwrap would create the directories between the tmpfs and the bind as 0700,
                # which the sandbox uid cannot traverse: create them world-traversable first
                for anc in reversed(path.relative_to(root).parents[:-1] if path != root else ()):
                    d = str(root / anc)
                    if d not in made:
                        made.add(d)
                        wrap += ["--perms", "0755", "--dir", d]
                wrap += ["--ro-bind", str(path), str(path)]
            for w in [workdir, *writable]:
                wrap += ["--bind", str(w), str(w)]
            wrap += ["--chdir", str(workdir), "--"]
            if self.uid is not None:  # bwrap runs as root; the program as the slot's uid
                wrap += ["setpriv", f"--reuid={self.uid}", f"--regid={SANDBOX_GID}", "--clear-groups", "--"]
            return wrap + list(argv)
        if self.uid is not None:
            argv = ["setpriv", f"--reuid={self.uid}", f"--regid={SANDBOX_GID}", "--clear-groups", "--", *argv]
        if self.report.network_isolated:
            return ["unshare", "--net", "--", *argv]
        return list(argv)

    def run(self, argv: Sequence[str], *, workdir: Path, timeout: float, env: Mapping[str, str] | None = None,
            writable: Sequence[Path] = (), reveal: Sequence[Path] = (), limits: Limits | None = None) -> ExecResult:
        """Run ``argv`` in ``workdir`` (which must already belong to the sandbox uid)."""
        limits = limits or Limits(cpu_seconds=timeout + 1, address_space=self.limits.address_space,
                                  processes=self.limits.processes, file_size=self.limits.file_size,
                                  open_files=self.limits.open_files)
        base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir),
                    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        base_env.update(env or {})
        read_fd, write_fd = os.pipe()
        start = time.monotonic()
        try:
            proc = subprocess.Popen(self.wrap(argv, workdir, writable, reveal), cwd=str(workdir), env=base_env,
                                    stdin=subprocess.DEVNULL, stdout=write_fd, stderr=write_fd,
                                    preexec_fn=self._preexec(limits), close_fds=True)
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            return ExecResult(None, False, f"cannot start {argv[0]}: {exc}", 0.0)
        os.close(write_fd)
        tail = _Tail(read_fd)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            if self.uid is not None:
                kill_uid(self.uid)
            proc.wait()
        seconds = time.monotonic() - start
        out = tail.text()
        rc = proc.returncode
        if rc is not None and rc in (-signal.SIGXCPU, -signal.SIGKILL) and not timed_out and seconds >= limits.cpu_seconds - 1:
            timed_out = True
        return ExecResult(rc, timed_out, out, seconds)
