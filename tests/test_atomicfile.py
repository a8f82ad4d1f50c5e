"""The one atomic-write helper behind .brew files, trained models and S3 downloads."""

import os
from pathlib import Path

import pytest

from coldbrew.atomicfile import atomic_write, remove_stale_parts


def test_a_clean_exit_replaces_the_target_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "model.pkl"
    with atomic_write(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["model.pkl"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.pkl"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target, fsync=True) as fh:
            fh.write(b"half a model")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pkl"]


def test_readers_never_see_the_partial_file(tmp_path):
    target = tmp_path / "m.bin"
    with atomic_write(target) as fh:
        fh.write(b"x" * 10)
        assert not target.exists()
    assert target.stat().st_size == 10


def _unused_pid() -> int:
    """A pid no process has (counting down from the kernel's maximum)."""
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) - 1
    while pid > 1:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1
    pytest.skip("no free pid")


def test_stale_parts_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead_pid = _unused_pid()
    stale = tmp_path / f".abc-1-m.brew.{dead_pid}.deadbeef.part"
    live = tmp_path / f".abc-2-m.brew.{os.getpid()}.cafef00d.part"
    other = tmp_path / f".xyz-1-m.brew.{dead_pid}.deadbeef.part"
    for p in (stale, live, other):
        p.write_bytes(b"")
    remove_stale_parts(tmp_path, "abc-")
    assert not stale.exists() and live.exists() and other.exists()
