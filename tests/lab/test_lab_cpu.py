"""The lab reports each environment's CPU time next to its wall time (issue 13 §4).

On two shared cores a cold start's wall time measures contention; CPU time is what the function needed.
The handler (tests/handlers/spin.py) burns a known amount of CPU at init and per call, or sleeps.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from coldbrew.experiment.results import request_record
from coldbrew.lab import Lab, LabConfig
from coldbrew.lab.environment import read_cpu_ms

HANDLERS = Path(__file__).parents[1] / "handlers"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def test_read_cpu_ms_follows_this_process_and_is_none_for_a_gone_one():
    before = read_cpu_ms(os.getpid())
    until = os.times().user + 0.2
    while os.times().user < until:
        pass
    after = read_cpu_ms(os.getpid())
    assert after - before >= 200 - 2 * TICK_MS
    assert read_cpu_ms(2**22 + 1) is None  # above pid_max: no such process


def test_request_record_carries_the_lab_timing_headers_and_null_without_them():
    headers = {
        "x-lab-duration-ms": "12.50",
        "x-lab-cpu-ms": "10.00",
        "x-lab-init-ms": "900.00",
        "x-lab-init-cpu-ms": "400.00",
    }
    record = request_record(1.0e9, 950.0, 200, headers, None)
    assert (record["invoke_ms"], record["invoke_cpu_ms"], record["init_ms"], record["init_cpu_ms"]) == (
        12.5,
        10.0,
        900.0,
        400.0,
    )
    bare = request_record(1.0e9, 5.0, 200, {"x-lab-cpu-ms": "garbage"}, None)
    assert [bare[k] for k in ("invoke_ms", "invoke_cpu_ms", "init_ms", "init_cpu_ms")] == [None] * 4


@pytest.mark.integration
def test_cpu_time_beside_wall_time_in_headers_report_lines_stats_and_events(tmp_path, capfd):
    import urllib.request

    log = tmp_path / "events.jsonl"
    config = LabConfig(
        handler="spin.handler",
        task_root=HANDLERS,
        memory_mb=256,
        log=log,
        function_output=tmp_path / "out.log",
        env={"SPIN_INIT_S": "0.4"},
    )
    with Lab(config) as lab:

        def call(query):
            with urllib.request.urlopen(f"{lab.url}/?{query}", timeout=60) as response:
                return dict(response.headers)

        cold = call("cpu=0.3")  # a cold start: init burns 0.4 s of CPU, the call 0.3 s
        sleepy = call("sleep=0.5")  # warm: half a second on the wall, next to no CPU
        stats = lab.stats()
    # the response headers (what the load test's per-request records keep)
    assert float(cold["x-lab-init-cpu-ms"]) >= 400 - 2 * TICK_MS
    assert float(cold["x-lab-init-ms"]) >= float(cold["x-lab-init-cpu-ms"]) - TICK_MS
    assert float(cold["x-lab-cpu-ms"]) >= 300 - 2 * TICK_MS
    # charged time: the sleep counts (less the ~0.1-1 ms the run-queue and wall clocks may disagree by)
    assert float(sleepy["x-lab-duration-ms"]) >= 499
    assert float(sleepy["x-lab-cpu-ms"]) < 100
    assert "x-lab-init-ms" not in {k.lower() for k in sleepy}  # warm: no init to report
    # /_lab/stats
    assert stats["init_cpu_ms"]["count"] == 1 and stats["init_cpu_ms"]["max"] >= 400 - 2 * TICK_MS
    assert stats["cpu_ms"]["count"] == 2 and stats["cpu_ms"]["max"] >= 300 - 2 * TICK_MS
    (env,) = stats["envs"]
    assert env["init_cpu_ms"] >= 400 - 2 * TICK_MS and env["cpu_ms"] >= env["init_cpu_ms"] + 300 - 2 * TICK_MS
    # REPORT lines: Lambda's fields, then the lab's CPU times
    reports = [line for line in capfd.readouterr().err.splitlines() if line.startswith("REPORT")]
    assert len(reports) == 2
    first = dict(part.split(": ", 1) for part in reports[0].split("\t")[1:])
    assert float(first["CPU Time"].removesuffix(" ms")) >= 300 - 2 * TICK_MS
    assert float(first["Init CPU Time"].removesuffix(" ms")) >= 400 - 2 * TICK_MS
    assert (
        re.search(r"\tCPU Time: \d+\.\d\d ms\tMachine Wait: \d+\.\d\d ms$", reports[1])
        and "Init CPU Time" not in reports[1]
    )
    # the event log
    events = [json.loads(line) for line in log.read_text().splitlines()]
    invokes = [e for e in events if e["event"] == "invoke"]
    assert invokes[0]["init_cpu_ms"] >= 400 - 2 * TICK_MS and invokes[1]["init_cpu_ms"] is None
    assert invokes[1]["cpu_ms"] < 100 <= invokes[1]["duration_ms"]


def test_report_puts_init_cpu_beside_init_wall_time_when_the_records_carry_them(tmp_path, capsys):
    from coldbrew.cli import main

    def record(t, latency, env, cold, init=None, cpu=None):
        headers = {"X-Coldbrew-Env": env, "X-Coldbrew-Cold": "1" if cold else "0"}
        if init is not None:
            headers.update({"x-lab-init-ms": str(init), "x-lab-init-cpu-ms": str(cpu)})
        return json.dumps(request_record(t, latency, 200, headers, None))

    lines = [
        record(1.7e9, 3000, "env-1", True, 2900, 400),
        record(1.7e9 + 1, 3500, "env-2", True, 3400, 600),
        record(1.7e9 + 2, 5000, "env-3", True, 4900, 500),
        record(1.7e9 + 3, 20, "env-1", False),
    ]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["report", str(tmp_path / "requests.jsonl"), "--format", "json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)
    assert group["inits"]["wall"]["n"] == 3 and group["inits"]["wall"]["p50"] == 3400
    assert group["inits"]["cpu"]["p50"] == 500 and group["inits"]["cpu"]["max"] == 600
    assert main(["report", str(tmp_path / "requests.jsonl")]) == 0
    out = capsys.readouterr().out
    table = out.split("Inits the requests waited for: wall time vs CPU time")[1].split("\n\n")[1].splitlines()
    assert "inits  wall p50  CPU p50  wall p95  CPU p95  wall max  CPU max" in table[0]
    assert table[2].split()[-7:] == ["3", "3,400", "500", "4,750", "590", "4,900", "600"]
