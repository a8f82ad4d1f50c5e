"""Write a file so that readers see the old file or the whole new one, never half of it.

The one helper behind every file coldbrew writes in place (``.brew`` files, trained models, S3 downloads): write a
temp file beside the target, optionally fsync it, give it ordinary permissions, rename it over the target. On any
error (or Ctrl-C) the temp file is removed. Temp names carry the writer's pid (``.NAME.PID.RANDOM.part``) so
:func:`remove_stale_parts` can delete what dead writers left behind. Base layer: standard library only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PART_SUFFIX = ".part"


def file_mode(base: int = 0o666) -> int:
    """``base`` less the process's umask: the mode ``open()`` would give a new file (the temp file starts 0600).

    Read from /proc/self/status where it exists, so the umask is never changed, not even for a moment (another
    thread creating a file meanwhile would get mode ``base``); elsewhere by setting and restoring it.
    """
    try:
        with open("/proc/self/status") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return base & ~umask


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file (opened read+write) beside ``path``; on a clean exit rename it to ``path``.

    Args:
        path: the target; its folder is created if missing.
        fsync: flush the bytes to disk before the rename (for files that must survive a power cut).

    Raises:
        OSError: the folder cannot be created or written; whatever the ``with`` body raises is re-raised
            after the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_parts(folder: Path, prefix: str) -> None:
    """Delete ``folder/.PREFIX*.part`` temp files whose writer process is gone."""
    for part in folder.glob(f".{prefix}*{PART_SUFFIX}"):
        try:
            pid = int(part.name.split(".")[-3])
            os.kill(pid, 0)
        except ProcessLookupError:
            part.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError):
            pass
