"""An environment's runtime process: ``python -m awslambdaric HANDLER``, after two prctl calls.

Run as ``python -m coldbrew.lab.boot PARENT_PID HANDLER``. It asks Linux to SIGKILL this process when
the lab dies (PR_SET_PDEATHSIG), joins the environment's cgroup where the lab made one (coldbrew.lab.cgroups)
and asks Linux to adopt its orphaned descendants (PR_SET_CHILD_SUBREAPER, so the
environment's process tree stays whole even if a handler's child double-forks), then runs awslambdaric's
``__main__`` exactly as ``python -m awslambdaric`` does. Doing this here rather than in a ``preexec_fn``
lets the lab spawn environments from a worker thread without fork()ing its own big process.
"""

from __future__ import annotations

import os
import runpy
import sys

from coldbrew.lab.cgroups import CGROUP_VAR, join
from coldbrew.lab.proctree import die_with_parent_and_keep_orphans


def main() -> None:
    parent = int(sys.argv[1])
    if os.environ.get(CGROUP_VAR):  # the environment's cgroup, before any function code can fork
        join(os.environ[CGROUP_VAR])
    die_with_parent_and_keep_orphans()
    if os.getppid() != parent:  # the lab died before the death signal was armed
        os._exit(1)
    sys.argv = ["awslambdaric", *sys.argv[2:]]
    runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
