"""The CPU model's parts (coldbrew.lab.cpu): charged clocks, the admission gate, the machine wait, and the
report's latency with and without it. The lab-level acceptance is tests/lab/test_lab_heavy_app.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from coldbrew.experiment.results import request_record
from coldbrew.lab.cpu import ChargedClock, CpuGate, GateClosed, MachineWait, net_of_wait, read_schedstat

BURN = (
    "import time\nend = time.process_time() + float(__import__('sys').argv[1])\nwhile time.process_time() < end: pass"
)


def _burner(seconds: float, cpu: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BURN, str(seconds)], preexec_fn=lambda: os.sched_setaffinity(0, {cpu})
    )


def test_read_schedstat_follows_a_process_and_is_none_for_a_gone_one():
    first = read_schedstat(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    second = read_schedstat(os.getpid())
    assert first is not None and second is not None and second[0] - first[0] >= 40_000_000
    assert read_schedstat(2**22 + 1) is None


@pytest.mark.integration
def test_the_charged_clock_leaves_out_waiting_for_a_core():
    """Three CPU-bound processes on one core: each runs about a third of the time; its charged clock counts that
    running (about its CPU time), not the two thirds it waited."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    procs = [_burner(5, cpu) for _ in range(3)]
    try:
        time.sleep(0.3)
        clock = ChargedClock()
        clock.start(procs[0].pid)
        cpu_before = read_schedstat(procs[0].pid)[0]
        time.sleep(1.5)
        charged = clock.charged_s()
        ran = (read_schedstat(procs[0].pid)[0] - cpu_before) / 1e9
        wall = time.monotonic() - clock.started
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert clock.wait_s() > 0.5 * wall  # most of it was waiting for the core
    assert abs(charged - ran) < 0.1 * wall, (charged, ran, wall)


def test_the_gate_admits_about_one_start_per_core_and_closes_with_an_error():
    async def scenario():
        gate = CpuGate(cores=2)
        first, second = await gate.admit(), await gate.admit()  # two fresh starts: two cores wanted
        third = asyncio.get_running_loop().create_task(gate.admit())
        await asyncio.sleep(0.2)
        assert not third.done() and gate.queued == 1 and gate.starting == 2
        gate.release(first)  # an init finished: its core is free
        key = await asyncio.wait_for(third, 1)
        retry_order = []
        late = asyncio.get_running_loop().create_task(gate.admit())
        retry = asyncio.get_running_loop().create_task(gate.admit(first=True))
        late.add_done_callback(lambda _: retry_order.append("late"))
        retry.add_done_callback(lambda _: retry_order.append("retry"))
        await asyncio.sleep(0.1)
        gate.release(second)
        await asyncio.sleep(0.1)
        assert retry_order == ["retry"]  # a retried init (part of a running invocation) goes first
        gate.close()
        with pytest.raises(GateClosed):
            await late
        with pytest.raises(GateClosed):
            await gate.admit()
        gate.release(key)

    asyncio.run(scenario())


@pytest.mark.integration
def test_an_init_that_sleeps_holds_no_core():
    """Once measured, a sleeping init wants ~0 cores: the next start is admitted without waiting for it."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])

    async def scenario():
        gate = CpuGate(cores=1)
        key = await gate.admit()
        gate.started(key, sleeper.pid)
        await asyncio.sleep(0.5)  # python's own start-up is over: asleep now
        return await asyncio.wait_for(gate.admit(), 5)

    try:
        assert asyncio.run(scenario()) is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_integration_timeout_does_not_count_the_machine_wait():
    async def scenario():
        wait = MachineWait()
        wait.queue_started()
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0.5, "answer"))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        loop.call_later(0.4, wait.queue_ended)  # 0.4 s queued for a core: the 0.3 s limit runs from there
        answer = await net_of_wait(task, 0.3, wait)
        stuck = loop.create_task(asyncio.sleep(5))
        with pytest.raises(TimeoutError):
            await net_of_wait(stuck, 0.2, MachineWait())
        stuck.cancel()
        return answer, wait.total_s()

    answer, waited = asyncio.run(scenario())
    assert answer == "answer" and 0.39 <= waited < 0.6


def test_report_shows_latency_with_and_without_the_machine_wait(tmp_path, capsys):
    from coldbrew.cli import main

    def record(t, latency, queue, init=None):
        headers = {"x-lab-queue-ms": str(queue)}
        if init is not None:
            headers["x-lab-init-ms"] = str(init)
        return json.dumps(request_record(t, latency, 200, headers, None))

    lines = [
        record(1.7e9, 9000, 7500, init=1400),
        record(1.7e9 + 1, 12000, 10400, init=1500),
        record(1.7e9 + 2, 6000, 4300, init=1600),
        record(1.7e9 + 3, 20, 1),
    ]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["report", str(tmp_path / "requests.jsonl"), "--format", "json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)
    cold = group["machine_wait"]["cold"]
    assert cold["with"]["n"] == 3 and cold["with"]["p50"] == 9000
    assert cold["without"]["p50"] == 1600 and cold["without"]["max"] == 1700  # 9000-7500, 12000-10400, 6000-4300
    assert group["machine_wait"]["all"]["without"]["n"] == 4
    assert main(["report", str(tmp_path / "requests.jsonl")]) == 0
    out = capsys.readouterr().out
    section = out.split("Latency with and without the lab's machine wait")[1]
    assert "would hold on AWS" in section.split("\n")[0]
    rows = section.split("\n\n")[1].splitlines()
    assert rows[0].split()[-11:] == ["requests", "n", "p50", "net", "p50", "p95", "net", "p95", "max", "net", "max"]
    assert rows[2].split()[-8:-4] == ["cold", "3", "9,000", "1,600"]
