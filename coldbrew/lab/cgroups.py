"""Environments in cgroups (v2), where the machine allows it: each environment's processes are killed as one group.

A handler's processes can leave the process tree (double fork), the session (``setsid``) and clear their
environment (the lab's marker variables), but not their cgroup: a process forked in a cgroup is born in it, and
only a process allowed to write the hierarchy's ``cgroup.procs`` files can move it out. The lab makes one cgroup
for itself below its own (``coldbrew-lab-PID-ID``) and one per environment below that; the runtime joins its
environment's cgroup before any function code runs (``coldbrew.lab.boot``, the snapshot template's fork, the
isolated interpreter's ``preexec_fn``), and stopping writes ``1`` to ``cgroup.kill``, which the kernel applies to
every process in the group, forks racing with it included.

Needs a cgroup v2 hierarchy the lab may write (root, or a delegated subtree) and ``cgroup.kill`` (Linux 5.14).
Elsewhere ``LabCgroup.create`` returns None and the lab falls back to the process-tree kill
(coldbrew.lab.proctree; docs/lab.md says what can escape it). This module is also imported by
coldbrew.lab.boot, in every environment: standard library only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CGROUP_VAR = "COLDBREW_LAB_CGROUP"  # the environment's cgroup directory, for the runtime to join
PREFIX = "coldbrew-lab-"


def join(path: str | os.PathLike, pid: int = 0) -> bool:
    """Move ``pid`` (0: this process) into cgroup ``path``; False if that is not allowed."""
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as fh:
            fh.write(str(pid or os.getpid()))
        return True
    except OSError:
        return False


def hierarchy() -> Path | None:
    """The directory of this process's own cgroup in the cgroup v2 hierarchy, or None without one."""
    mount = None
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                before, _, after = line.partition(" - ")
                if after.split(" ", 1)[0] == "cgroup2":
                    mount = before.split()[4]
                    break
        with open("/proc/self/cgroup") as fh:
            own = next((line.strip()[3:] for line in fh if line.startswith("0::")), None)
    except OSError:
        return None
    if mount is None or own is None:
        return None
    path = Path(mount) / own.lstrip("/")
    return path if path.is_dir() else None


def _write(path: Path, name: str, value: str) -> bool:
    try:
        (path / name).write_text(value)
        return True
    except OSError:
        return False


def populated(path: Path) -> bool:
    """True while any live process is in ``path`` or below it."""
    try:
        return "populated 1" in (path / "cgroup.events").read_text()
    except OSError:
        return False


def kill(path: Path) -> bool:
    """SIGKILL every process in cgroup ``path`` and below it (atomically with respect to forks)."""
    return _write(path, "cgroup.kill", "1")


def remove(path: Path, wait_s: float = 0.0) -> bool:
    """Remove cgroup ``path`` and its children once empty (waiting up to ``wait_s`` for the dying)."""
    deadline = time.monotonic() + wait_s
    while populated(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        children = [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return False
    for child in children:
        remove(child)
    try:
        path.rmdir()
        return True
    except OSError:
        return False


def _sweep_stale(parent: Path) -> None:
    """Kill and remove the cgroups of labs that died without stopping (SIGKILLed: their setsid'd processes
    outlived them in their cgroups)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        owner = entry.name[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            kill(entry)
            remove(entry, wait_s=0.5)


class LabCgroup:
    """The lab's cgroup and one child per environment."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, lab_id: str) -> LabCgroup | None:
        """Make the lab's cgroup below this process's own; None where the machine does not allow it."""
        parent = hierarchy()
        if parent is None or not os.access(parent / "cgroup.procs", os.W_OK):
            return None
        _sweep_stale(parent)
        path = parent / f"{PREFIX}{os.getpid()}-{lab_id[:12]}"
        try:
            path.mkdir()
        except OSError:
            return None
        if not (path / "cgroup.kill").exists() or not os.access(path / "cgroup.procs", os.W_OK):
            remove(path)
            return None
        return cls(path)

    def environment(self, env_id: str) -> Path | None:
        """A new cgroup for one environment (None if it cannot be made)."""
        path = self.path / env_id
        try:
            path.mkdir(exist_ok=True)
        except OSError:
            return None
        return path

    def kill(self) -> None:
        """Kill every process of every environment."""
        kill(self.path)

    def close(self) -> None:
        """Kill everything left and remove the lab's cgroups."""
        kill(self.path)
        remove(self.path, wait_s=2.0)
