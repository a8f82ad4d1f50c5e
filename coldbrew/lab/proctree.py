"""Process trees from /proc: every process an environment started, found and signalled as one.

An environment's runtime runs in its own session, but a handler may start processes that call
``setsid`` (leaving the group) or double-fork (leaving the tree when their parent exits). So the lab
finds an environment's processes two ways: the tree below its runtime process by parent pid (the
runtime is a child subreaper, so orphans of that tree stay below it), and any process whose initial
environment carries the environment's marker variables (inherited through ``fork`` and ``exec``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

LAB_ID_VAR = "COLDBREW_LAB_ID"
ENV_ID_VAR = "COLDBREW_LAB_ENV"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _parents() -> dict[int, int]:
    """pid -> parent pid for every live (non-zombie) process."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != b"Z":
            parents[int(entry.name)] = int(fields[1])
    return parents


def tree(root: int) -> list[int]:
    """``root`` (if alive) and every live process below it."""
    parents = _parents()
    if root not in parents:
        return []
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, frontier = [root], [root]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, ())]
        found += frontier
    return found


def trees(roots) -> set[int]:
    """Every live process in the trees below ``roots`` (one scan of /proc for them all)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    frontier = [r for r in roots if r in parents]
    found = set(frontier)
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, ())]
        found.update(frontier)
    return found


def last_pid() -> int:
    """The most recently created pid on the machine (/proc/loadavg): while it is unchanged, no process
    (or thread) was created anywhere, so a tree found earlier is still complete."""
    try:
        with open("/proc/loadavg", "rb") as fh:
            return int(fh.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return -1


def marked(markers: dict[str, str]) -> list[int]:
    """Live processes (other than this one) whose initial environment holds every ``KEY=VALUE`` of ``markers``."""
    wanted = {f"{k}={v}".encode() for k, v in markers.items()}
    me = os.getpid()
    found = []
    for pid in _parents():
        if pid == me:
            continue
        try:
            entries = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= entries:
            found.append(pid)
    return found


def send(pids, sig: int) -> None:
    """Send ``sig`` to each pid, ignoring processes already gone."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_tree(root: int | None, markers: dict[str, str] | None = None, rounds: int = 20) -> set[int]:
    """SIGSTOP ``root``'s tree (and processes carrying ``markers``), rescanning until no new process
    appears: a stopped process cannot fork, so the set is then complete. Returns the stopped pids."""
    stopped: set[int] = set()
    for _ in range(rounds):
        pids = set(tree(root)) if root else set()
        if markers:
            pids |= set(marked(markers))
        pids.discard(os.getpid())
        new = pids - stopped
        if not new:
            break
        send(new, signal.SIGSTOP)
        stopped |= new
    return stopped


def kill_all(root: int | None, markers: dict[str, str] | None, timeout_s: float = 2.0) -> set[int]:
    """SIGKILL ``root``'s tree and every process carrying ``markers``: stop them all first (so none
    forks or is reparented away meanwhile), then kill, then sweep for stragglers until none is left
    or ``timeout_s`` passes. Returns the pids killed."""
    killed = stop_tree(root, markers)
    send(killed, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while markers and time.monotonic() < deadline:
        rest = set(marked(markers)) - {os.getpid()}
        if not rest:
            break
        send(rest, signal.SIGKILL)
        killed |= rest
        time.sleep(0.005)
    return killed


def kill_lab(roots, markers: dict[str, str] | None, rounds: int = 20) -> set[int]:
    """SIGKILL the trees below ``roots`` and every process carrying ``markers``, all in one sweep: stop
    them (rescanning until none is new), kill them, then kill any marked straggler once more."""
    stopped: set[int] = set()
    me = os.getpid()
    for _ in range(rounds):
        pids = trees(roots)
        if markers:
            pids |= set(marked(markers))
        pids.discard(me)
        new = pids - stopped
        if not new:
            break
        send(new, signal.SIGSTOP)
        stopped |= new
    send(stopped, signal.SIGKILL)
    if markers:
        rest = set(marked(markers)) - {me}
        send(rest, signal.SIGKILL)
        stopped |= rest
    return stopped


def prctl(option: int, value: int) -> None:
    """Linux prctl(2), best effort."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def die_with_parent_and_keep_orphans() -> None:
    """For an environment's runtime process: SIGKILL when the lab dies, and adopt orphaned descendants
    (child subreaper) so the environment's tree stays whole."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
