"""The lab's CPU model: limits charged as Lambda charges them, on a machine whose cores are shared.

On Lambda every execution environment has its own CPU share; in the lab every environment shares this
machine's cores. Two mechanisms keep the lab's limits and numbers those of Lambda (docs/lab.md, "The CPU
model"):

- ``ChargedClock``: an environment's init and invoke limits, and the durations it reports, count its wall
  time *minus the time its main thread spent runnable but waiting for a core* (the run-queue delay,
  field 2 of ``/proc/PID/schedstat``, in ns). CPU time, I/O waits and sleeps are charged; waiting for a core
  that another process holds is not. A ``time.sleep(11)`` init, or 11 s of CPU, still reaches a 10 s limit.
- ``CpuGate``: environment starts are admitted while the inits already running want less than this
  machine's cores (each init's demand: the share of the last interval it was running or runnable, from
  the same schedstat counters). A cold start beyond that waits, unstarted and with no clock running, in a
  FIFO queue: it is delayed, never failed, and its wait is recorded apart (``MachineWait``).

``MachineWait`` adds up one request's machine wait (queued for admission plus run-queue delay of its init
and invocation): the ``x-lab-queue-ms`` header, REPORT's ``Machine Wait``, ``/_lab/stats``' ``queue_ms``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable

from coldbrew.errors import ColdbrewError

ADMIT_POLL_S = 0.05  # how often queued starts look at the running inits' demand
FRESH_S = 0.1  # an init admitted less than this long ago counts as wanting a whole core


def read_schedstat(pid: int) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one) of ``pid``'s main thread; None if it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as fh:
            fields = fh.read().split()
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def _state(pid: int) -> bytes | None:
    """The process's state letter (``R`` running or runnable, ``S`` asleep, ``T`` stopped...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3]
    except (OSError, ValueError):
        return None


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ChargedClock:
    """Wall time minus run-queue delay of one process, from ``start()`` on.

    ``pid`` None (no process to read: an in-process runtime, or one already gone) charges wall time."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.pid: int | None = None
        self._wait0 = 0
        self._wait = 0  # last read run-queue delay (ns), kept once the process is gone
        self._run0 = 0
        self._run = 0  # last read time on a CPU (ns): the charged time is never less

    def start(self, pid: int | None, idle_since: float | None = None) -> None:
        """Count from now, the run-queue delay of ``pid`` from its current value.

        The kernel adds a wait to the counter when the waiting thread gets a core, so a wait already under way
        now would be counted whole. ``idle_since``: when the process last went idle (asked for its next event,
        then was frozen); if it is runnable now, it has been waiting since about then, and that part is left
        out (an overestimate of it charges more, never less)."""
        self.started = time.monotonic()
        self.pid = pid
        stat = read_schedstat(pid) if pid else None
        self._wait0 = self._wait = stat[1] if stat else 0
        self._run0 = self._run = stat[0] if stat else 0
        if pid and idle_since is not None and _state(pid) == b"R":
            self._wait0 += int(max(0.0, self.started - idle_since) * 1e9)

    def follow(self, pid: int | None) -> None:
        """Keep the start time; count ``pid``'s whole run-queue delay (a process started since)."""
        self.pid, self._wait0, self._wait, self._run0, self._run = pid, 0, 0, 0, 0

    def wait_s(self) -> float:
        """Seconds the process spent waiting for a core since ``start()``."""
        if self.pid:
            stat = read_schedstat(self.pid)
            if stat is not None:
                self._run, self._wait = stat
        return max(0, self._wait - self._wait0) / 1e9

    def charged_s(self) -> float:
        """Wall seconds since ``start()`` minus the run-queue delay: what Lambda's clock would show.

        The delay is read before the wall clock (and at ``start()`` after it), so a lab thread preempted between
        the two reads can only overcharge, never deduct a wait outside the window."""
        wait = self.wait_s()
        return max((self._run - self._run0) / 1e9, time.monotonic() - self.started - wait)


async def charged_wait(awaitables: set, limit_s: float, charged: Callable[[], float]) -> bool:
    """Wait for the first of ``awaitables`` until ``charged()`` reaches ``limit_s``; True if one finished.

    The charged clock runs at most as fast as the wall clock, so sleeping for what is left of the limit
    never oversleeps it; on waking, time spent waiting for a core has extended the deadline, so it sleeps
    again for the rest."""
    while True:
        remaining = limit_s - charged()
        if remaining <= 0:
            return any(getattr(a, "done", lambda: False)() for a in awaitables)
        done, _ = await asyncio.wait(awaitables, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        if done:
            return True


class MachineWait:
    """One request's time waiting for this machine: queued for admission, and waiting for a core in its
    environment's init and invocation (the clocks are added while they run)."""

    def __init__(self) -> None:
        self.queued_s = 0.0  # finished admission waits
        self.ran_s = 0.0  # finished run-queue delays
        self._queued_since: float | None = None
        self._clock: ChargedClock | None = None

    def queue_started(self) -> None:
        self._queued_since = time.monotonic()

    def queue_ended(self) -> None:
        if self._queued_since is not None:
            self.queued_s += time.monotonic() - self._queued_since
            self._queued_since = None

    def watch(self, clock: ChargedClock) -> None:
        """Count ``clock``'s run-queue delay from now until ``unwatch()``."""
        self._clock = clock

    def unwatch(self) -> None:
        if self._clock is not None:
            self.ran_s += self._clock.wait_s()
            self._clock = None

    def total_s(self) -> float:
        total = self.queued_s + self.ran_s
        if self._queued_since is not None:
            total += time.monotonic() - self._queued_since
        if self._clock is not None:
            total += self._clock.wait_s()
        return total


class GateClosed(ColdbrewError):
    """The lab is stopping: no environment starts any more."""


class CpuGate:
    """Admission of environment starts: at most about ``cores`` CPU-bound inits run at once.

    A start is admitted while the inits running want less than ``cores - 0.5`` cores: each running init
    counts its demand over the last poll (running or runnable share of the interval, from schedstat), or a
    whole core in its first ``FRESH_S`` (before it can be measured). An init that sleeps or waits on I/O
    wants ~0 and does not hold a core, so slow-but-idle inits never queue each other. Retries of a timed-out
    init (part of a running invocation) go first."""

    def __init__(self, cores: int):
        self.cores = cores
        self._queue: collections.deque[asyncio.Future] = collections.deque()
        self._running: dict[object, list] = {}  # key -> [pid or None, admitted at, last total ns, last t, demand]
        self._poller: asyncio.Task | None = None
        self.closed = False
        self.admitted = 0  # starts admitted so far

    @property
    def queued(self) -> int:
        return sum(1 for f in self._queue if not f.done())

    @property
    def starting(self) -> int:
        return len(self._running)

    def demand(self) -> float:
        """Cores the running inits want now (sampled at the last poll)."""
        now = time.monotonic()
        total = 0.0
        for pid, admitted, _, _, demand in self._running.values():
            total += 1.0 if pid is None or now - admitted < FRESH_S else demand
        return total

    def _sample(self) -> None:
        now = time.monotonic()
        for row in self._running.values():
            pid = row[0]
            stat = read_schedstat(pid) if pid else None
            if stat is None:
                continue
            busy = stat[0] + stat[1]
            if row[2] is not None and now > row[3]:
                row[4] = min(1.0, max(0.0, (busy - row[2]) / 1e9 / (now - row[3])))
            row[2], row[3] = busy, now

    def _has_room(self) -> bool:
        return self.demand() <= self.cores - 0.5

    def _admit_ready(self) -> None:
        while self._queue and (self._queue[0].done() or self._has_room()):
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                # counted as a whole core until its process exists and has been measured
                self._running[waiter] = [None, time.monotonic(), None, 0.0, 1.0]
                self.admitted += 1

    async def _poll(self) -> None:
        while self._queue:
            await asyncio.sleep(ADMIT_POLL_S)
            self._sample()
            self._admit_ready()
        self._poller = None

    async def admit(self, first: bool = False) -> object:
        """Wait for a slot; returns the key to ``started``/``release`` it. Raises GateClosed when stopping."""
        if self.closed:
            raise GateClosed()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if first:
            self._queue.appendleft(waiter)
        else:
            self._queue.append(waiter)
        self._admit_ready()
        if not waiter.done() and self._poller is None:
            self._poller = loop.create_task(self._poll())
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter)
            else:
                waiter.cancel()
            raise
        if self.closed:
            self.release(waiter)
            raise GateClosed()
        return waiter

    def started(self, key: object, pid: int | None) -> None:
        """The admitted start has a process: measure its demand from now."""
        row = self._running.get(key)
        if row is not None:
            row[0], row[1] = pid, time.monotonic()

    def release(self, key: object) -> None:
        """The init finished (ready, failed or gone): its core is free."""
        if self._running.pop(key, None) is not None:
            self._admit_ready()

    def close(self) -> None:
        """No more admissions: every queued start gets GateClosed."""
        self.closed = True
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(GateClosed())
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None


async def net_of_wait(task: asyncio.Future, timeout_s: float | None, wait: MachineWait):
    """``task``'s result, or TimeoutError once ``timeout_s`` of wall time *net of the request's machine wait*
    has passed (a front door's integration timeout as it runs on AWS); ``task`` is never cancelled here."""
    started = time.monotonic()
    while True:
        remaining = None if timeout_s is None else timeout_s - (time.monotonic() - started - wait.total_s())
        if remaining is not None and remaining <= 0:
            raise TimeoutError()
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if done:
            return task.result()
