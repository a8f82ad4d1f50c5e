"""The lab: Lambda's scaling and cold starts on one machine, with the real runtime client.

May import: the base modules (errors, durations) and the standard library (plus awslambdaric in child processes). None of the serving code
(format, engine, sources, app, runtimes): it hosts any handler.

Modules: httpserver, runtime_api (one Runtime API per environment), environment, proctree (an
environment's processes), launchers, boot and snapshot (how processes start), scheduler, events and
front_door (each AWS front door), stats, staging, config, lab; hosting is the handler that wraps a plain
WSGI/ASGI app (apig-wsgi or Mangum, imported only in the environment's process).
``Lab`` and ``LabConfig`` are imported lazily so the snapshot template stays light.
"""

from __future__ import annotations

__all__ = ["Lab", "LabConfig"]


def __getattr__(name: str):
    if name == "Lab":
        from coldbrew.lab.lab import Lab

        return Lab
    if name == "LabConfig":
        from coldbrew.lab.config import LabConfig

        return LabConfig
    raise AttributeError(name)
