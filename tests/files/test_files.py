"""lensprobe.files: atomic writes respect the umask like open() and mkdir; locks die with their holder;
stale temporaries are recognised by name and removed only under the directory's lock."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from lensprobe.files import (DirectoryBusy, FileLock, atomic_directory, atomic_write_bytes, atomic_write_json,
                             atomic_write_table, current_umask, owned_directory, remove_stale_temporaries)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_and_directories_get_the_modes_open_and_mkdir_give(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    # the reference: what open() and mkdir give under this umask
    with open(tmp_path / "plain", "wb"):
        pass
    (tmp_path / "plain_dir").mkdir()
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "b.json", {"a": 1})
    atomic_write_table(tmp_path / "c.parquet", pd.DataFrame({"a": [1]}))
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "inside").write_text("y")
    for name in ("a.bin", "b.json", "c.parquet"):
        assert _mode(tmp_path / name) == _mode(tmp_path / "plain") == 0o666 & ~mask, name
    assert _mode(tmp_path / "d") == _mode(tmp_path / "plain_dir") == 0o777 & ~mask


def test_replacing_keeps_the_existing_mode_like_open(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "t.json"
    atomic_write_json(target, {"v": 1})
    os.chmod(target, 0o640)
    atomic_write_json(target, {"v": 2})
    assert _mode(target) == 0o640 and '"v": 2' in target.read_text()
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "x").write_text("1")
    os.chmod(tmp_path / "d", 0o750)
    with atomic_directory(tmp_path / "d", overwrite=True) as tmp:
        (tmp / "x").write_text("2")
    assert _mode(tmp_path / "d") == 0o750 and (tmp_path / "d" / "x").read_text() == "2"


HOLDER = textwrap.dedent("""
    import sys, time
    from lensprobe.files import FileLock
    lock = FileLock(sys.argv[1], purpose="test")
    assert lock.acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path):
    path = tmp_path / ".x.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        mine = FileLock(path)
        assert not mine.acquire(blocking=False)
        assert mine.holder()["pid"] == proc.pid and f"pid {proc.pid}" in mine.describe_holder()
        proc.send_signal(signal.SIGKILL)   # no clean-up at all: the kernel releases the lock
        proc.wait()
        t0 = time.monotonic()
        assert mine.acquire(blocking=True) and time.monotonic() - t0 < 5
        assert mine.holder()["pid"] == os.getpid()
        other = FileLock(path)
        assert not other.acquire(blocking=False)
        mine.release()
        assert not path.exists()            # released locks leave no file behind
        assert other.acquire(blocking=False)
        other.release()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stale_temporaries_are_recognised_by_name(tmp_path):
    for name in (".checkpoint-160.ab_c1234.tmp", ".checkpoint-5.old", ".tokens.zz9yx8w7.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / ".run.json.q1w2e3r4.tmp").write_text("{")
    keep = [".other.ab_c1234.tmp", ".checkpoint-160.tmp", "checkpoint-160", ".checkpoint-x.ab_c1234.tmp",
            ".checkpoint-160.ab_c1234.tmp.bak"]
    for name in keep:
        (tmp_path / name).mkdir()
    removed = remove_stale_temporaries(tmp_path, [r"checkpoint-\d+", "tokens", r"run\.json"])
    assert sorted(p.name for p in removed) == [".checkpoint-160.ab_c1234.tmp", ".checkpoint-5.old",
                                               ".run.json.q1w2e3r4.tmp", ".tokens.zz9yx8w7.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_owned_directory_refuses_a_second_live_owner(tmp_path):
    (tmp_path / ".manifest.json.abcdefgh.tmp").write_text("x")
    with owned_directory(tmp_path, [r"manifest\.json"], what="tokenize") as removed:
        assert [p.name for p in removed] == [".manifest.json.abcdefgh.tmp"]
        with pytest.raises(DirectoryBusy, match=f"pid {os.getpid()}"):
            with owned_directory(tmp_path, [r"manifest\.json"], what="tokenize"):
                pass
    assert not (tmp_path / ".tokenize.lock").exists()
