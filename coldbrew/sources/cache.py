"""The S3 download cache: a private directory, and a digest recorded beside each cached file.

A cached model is loaded without another download, so whoever can write the cache directory decides what is
served (a pickle there runs code). The directory must therefore be the user's own and writable by nobody else
(:func:`ensure_private_dir`, the check ssh makes of ``~/.ssh``), and a cached file is trusted only while the
digest recorded when it was downloaded and checked still matches its bytes (:func:`read_record`).
Standard library only.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from coldbrew.errors import SourceError

RECORD_SUFFIX = ".digest.json"


def _describe_owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _unsafe(st: os.stat_result, uid: int, *, sticky_ok: bool) -> str | None:
    """Why a directory with this stat is unsafe for ``uid`` to trust, or None."""
    if st.st_uid not in (uid, 0):
        return f"is owned by {_describe_owner(st.st_uid)}, not by you ({_describe_owner(uid)}) or root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def ensure_private_dir(path: Path, uri: str) -> None:
    """Create ``path`` (mode 0700) or check it: a directory the user owns that no one else can write.

    Its parents up to the system's temp directory (which is the platform's, e.g. Lambda's /tmp, and trusted as
    every program trusts it) must be owned by the user or root and not writable by others unless sticky, so that
    nobody else can swap the directory. SourceError naming the problem otherwise.
    """
    import tempfile

    uid = os.geteuid()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        link = os.lstat(path)
        st = os.stat(path)
    except OSError as e:
        raise SourceError(f"{uri}: cache dir {path} is not usable: {e.strerror}") from None
    hint = "; use a directory of your own (set TMPDIR, or pass cache_dir)"
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (uid, 0):
        raise SourceError(f"{uri}: cache dir {path} is a symlink owned by {_describe_owner(link.st_uid)}{hint}")
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{uri}: cache dir {path} is not a directory")
    if st.st_uid != uid:
        raise SourceError(
            f"{uri}: cache dir {path} is owned by {_describe_owner(st.st_uid)}, not by you "
            f"({_describe_owner(uid)}){hint}"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SourceError(
            f"{uri}: cache dir {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
            f"; run chmod go-w {path}, or use another directory"
        )
    system_tmp = Path(os.path.realpath(tempfile.gettempdir()))
    for parent in Path(os.path.realpath(path)).parents:
        if parent == system_tmp or parent in system_tmp.parents:
            break
        try:
            problem = _unsafe(os.stat(parent), uid, sticky_ok=True)
        except OSError:
            continue
        if problem:
            raise SourceError(f"{uri}: cache dir {path} is inside {parent}, which {problem}{hint}")


def record_path(final: Path) -> Path:
    """Where the digest of cached file ``final`` is recorded."""
    return final.with_name(final.name + RECORD_SUFFIX)


def read_record(final: Path) -> dict | None:
    """The record written when ``final`` was downloaded, or None if it is missing or unreadable."""
    try:
        record = json.loads(record_path(final).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
        return None
    return record


def write_record(final: Path, record: dict) -> None:
    """Write ``record`` beside ``final`` atomically (temp file, rename)."""
    target = record_path(final)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, target)
