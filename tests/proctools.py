"""Process helpers for tests that check nothing outlives a lab, a load test or a bench (Linux /proc).

Imported as ``from proctools import ...``: pytest puts tests/ on sys.path (no __init__.py, default
import mode).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


def _state_and_parent(pid: str | int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc/PID/stat, or None when the process is gone."""
    try:
        # The command name (field 2) may hold spaces and parentheses: split after its closing one.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    info = _state_and_parent(pid)
    return info is not None and info[0] != "Z"


def descendants(root: int) -> set[int]:
    """Every live (non-zombie) process below ``root``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _state_and_parent(entry.name)
            if info is not None and info[0] != "Z":
                parents[int(entry.name)] = info[1]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def survivors(pids: Iterable[int], timeout_s: float = 5.0) -> list[int]:
    """The ``pids`` still alive after waiting up to ``timeout_s`` for them all to exit."""
    pids = list(pids)
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def terminate(proc, timeout_s: float = 10.0) -> None:
    """SIGTERM ``proc`` (a ``subprocess.Popen``) and wait for it; SIGKILL if it is still alive after ``timeout_s``."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
