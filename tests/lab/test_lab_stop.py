"""Stopping the lab stops everything it started, at any load, in seconds, with one line (issues 23 and 24).

Before: SIGTERM to a lab with 100 environments starting printed "Task was destroyed but it is pending" and
"Event loop is closed" tracebacks, started new environments after the signal and took about 30 s; a fork-and-exit
chain with a cleared environment survived the lab's stop. Each test here stops what it starts whatever the
parent's signal dispositions (SIGTERM, then SIGKILL of the lab's whole session).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from labtools import HANDLERS
from proctools import alive, descendants, survivors

from coldbrew.lab import Lab, LabConfig
from coldbrew.lab.cgroups import LabCgroup


def _cgroups_allowed() -> bool:
    probe = LabCgroup.create(uuid.uuid4().hex)
    if probe is not None:
        probe.close()
    return probe is not None


CGROUPS = _cgroups_allowed()  # this machine lets the lab make cgroups


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _kill_chain(text: str) -> None:
    for _ in range(200):  # a chain forks on: stop its members until none is left
        pids = _processes_naming(text)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _get(url: str, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.integration
@pytest.mark.skipif(not CGROUPS, reason="this machine does not let the lab make cgroups")
@pytest.mark.parametrize("how", ["lab stop", "idle reaping"])
def test_a_fork_and_exit_chain_with_a_cleared_environment_dies_with_its_environment(tmp_path, how):
    chain_dir = tmp_path / "chain"
    chain_dir.mkdir()
    lab = Lab(
        LabConfig(
            handler="forkchain.handler",
            task_root=HANDLERS,
            memory_mb=256,
            report=False,
            function_output=tmp_path / "out.log",
            idle_timeout="3s" if how == "idle reaping" else "10m",
        )
    ).start()
    try:
        assert lab.cgroup is not None
        status, body = _get(f"{lab.url}/?dir={chain_dir}")
        assert status == 200, body
        deadline = time.monotonic() + 10
        while not _processes_naming(str(chain_dir)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _processes_naming(str(chain_dir)), "the chain did not start"
        if how == "idle reaping":
            deadline = time.monotonic() + 15
            while lab.stats()["environments"]["total"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not lab.stats()["environments"]["total"]
        else:
            lab.stop()
            assert not lab.cgroup.path.exists()  # the lab's cgroups are gone with it
        time.sleep(0.3)
        assert not _processes_naming(str(chain_dir))
    finally:
        lab.stop()
        _kill_chain(str(chain_dir))


@pytest.mark.integration
@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "process-tree"])
def test_stopping_a_lab_with_100_environments_starting_takes_seconds_and_starts_nothing_after(tmp_path, cgroups):
    if cgroups and not CGROUPS:
        pytest.skip("this machine does not let the lab make cgroups")
    already = descendants(os.getpid())  # what the session started before (SeaweedFS, other fixtures' servers)
    log = tmp_path / "events.jsonl"
    lab = Lab(
        LabConfig(
            handler="slow_init.handler",
            task_root=HANDLERS,
            memory_mb=256,
            report=False,
            log=log,
            function_output=tmp_path / "out.log",
            env={"SLOW_INIT_S": "60"},
            cgroups=cgroups,
        )
    ).start()
    try:
        for _ in range(100):
            threading.Thread(target=_get, args=(lab.url + "/", 60), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            envs = lab.stats()["environments"]
            if envs["total"] == 100 and envs["starting"] >= 10:
                break
            time.sleep(0.1)
        assert envs["total"] == 100 and envs["starting"] >= 10, envs
        pids = {e["pid"] for e in lab.stats()["envs"] if e["pid"]} | (descendants(os.getpid()) - already)
        started = time.monotonic()
        lab.stop()
        took = time.monotonic() - started
        assert took < 10, took
        events = [json.loads(line) for line in log.read_text().splitlines()]
        stop_at = next(i for i, e in enumerate(events) if e["event"] == "lab_stopping")
        assert events[stop_at]["environments"] + events[stop_at]["queued"] == 100
        assert not [e for e in events[stop_at:] if e["event"] == "env_start"]  # nothing started after the signal
        assert not survivors(pids - {os.getpid()})
    finally:
        lab.stop()


@pytest.mark.integration
def test_sigterm_stops_coldbrew_lab_with_100_starting_environments_in_seconds_with_one_line(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coldbrew",
            "lab",
            "--handler",
            "slow_init.handler",
            "--task-root",
            str(HANDLERS),
            "--memory-mb",
            "256",
            "--env",
            "SLOW_INIT_S=60",
            "--function-output",
            str(tmp_path / "out.log"),
            "--no-report",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: the finally below can kill whatever is left
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("coldbrew lab: http://127.0.0.1:"), line
        url = line.split()[2]
        for _ in range(100):
            threading.Thread(target=_get, args=(url + "/", 60), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            envs = json.loads(_get(url + "/_lab/stats")[1])["environments"]
            if envs["total"] == 100 and envs["starting"] >= 10:
                break
            time.sleep(0.1)
        assert envs["total"] == 100 and envs["starting"] >= 10, envs
        children = descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
        assert took < 10, took
        assert proc.returncode == 0
        assert out == "coldbrew lab: stopped\n", out  # one line after its address
        assert err == "", err[-3000:]  # no traceback, no "Task was destroyed", no "Event loop is closed"
        assert not survivors(children)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
