"""What a test needs from this machine, checked instead of assumed (Linux /proc).

Imported as ``from machine import ...``: pytest puts tests/ on sys.path (no __init__.py, default import mode).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

MEMORY_FILESYSTEMS = {"tmpfs", "ramfs", "devtmpfs", "overlay-tmpfs"}


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` lives on, from /proc/self/mounts (longest matching mount point)."""
    path = Path(os.path.realpath(path))
    best, fstype = "", "unknown"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1].replace("\\040", " ")
        if (path == Path(mount) or Path(mount) in path.parents) and len(mount) >= len(best):
            best, fstype = mount, fields[2]
    return fstype


def disk_backed_dir(preferred: Path) -> Path:
    """``preferred`` if it is on a disk-backed filesystem (page-cache eviction is possible there), else a fresh
    directory under /var/tmp or the system temp dir if one of those is; else skips the test, naming what it needs.
    """
    if filesystem_type(preferred) not in MEMORY_FILESYSTEMS:
        return preferred
    for base in ("/var/tmp", tempfile.gettempdir()):
        if os.access(base, os.W_OK) and filesystem_type(Path(base)) not in MEMORY_FILESYSTEMS:
            return Path(tempfile.mkdtemp(prefix="coldbrew-disk-", dir=base))
    pytest.skip(
        f"page-cache eviction needs a disk-backed directory; {preferred} and /var/tmp are "
        f"{filesystem_type(preferred)} (in memory)"
    )


def process_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``, from /proc (no ``ps`` needed)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            members.append(int(entry.name))
    return members


def listening_tcp(pids: list[int]) -> list[tuple[str, int]]:
    """(local address, port) of every listening TCP socket the processes ``pids`` hold, from /proc (no ``ss``)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            if width == 4:
                text = ".".join(str(b) for b in raw[::-1])
            else:  # four little-endian 32-bit words
                words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
                text = ":".join(b"".join(words)[i : i + 2].hex() for i in range(0, 16, 2))
            found.append((text, int(port, 16)))
    return found
