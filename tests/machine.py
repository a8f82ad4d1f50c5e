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
    pytest.skip(f"page-cache eviction needs a disk-backed directory; {preferred} and /var/tmp are "
                f"{filesystem_type(preferred)} (in memory)")
