"""`coldbrew lab` from the command line: URL on stdout, Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from proctools import alive, descendants, survivors

pytestmark = pytest.mark.integration  # every test here spawns a process or a server

HANDLERS = Path(__file__).parents[1] / "handlers"


def _two_provisioned_echo_environments() -> list[str]:
    """`coldbrew lab` hosting the echo handler in two provisioned environments, without REPORT lines."""
    return [
        sys.executable,
        "-m",
        "coldbrew",
        "lab",
        "--handler",
        "echo.handler",
        "--task-root",
        str(HANDLERS),
        "--provisioned",
        "2",
        "--memory-mb",
        "256",
        "--no-report",
    ]


@pytest.mark.parametrize("extra", [[], ["--snapshot"]], ids=["processes", "snapshot"])
def test_ctrl_c_stops_every_child(extra, tmp_path):
    proc = subprocess.Popen(
        [
            *_two_provisioned_echo_environments(),
            "--function-output",
            str(tmp_path / "out.log"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("coldbrew lab: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "/?sleep=0", timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(url + "/_lab/stats", timeout=10) as response:
            stats = json.load(response)
        env_pids = {e["pid"] for e in stats["envs"]}
        assert len(env_pids) == 2 and all(alive(pid) for pid in env_pids)
        children = descendants(proc.pid)
        assert env_pids <= children
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "stopped" in out
        assert not survivors(children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_killed_lab_takes_its_environments_with_it(tmp_path):
    """Even SIGKILL (no clean shutdown) leaves no orphans: children die with their parent."""
    proc = subprocess.Popen(
        [
            *_two_provisioned_echo_environments(),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("coldbrew lab: http://")
        children = descendants(proc.pid)
        assert len(children) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not survivors(children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_duration_is_a_one_line_error():
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "lab", "--handler", "echo.handler", "--idle-timeout", "ten minutes"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2  # a usage error, as argparse's
    assert result.stderr.startswith("coldbrew lab: error: argument --idle-timeout: 'ten minutes': not a duration")
    assert result.stderr.count("\n") == 1


def test_the_status_line_survives_a_lab_too_busy_to_answer(monkeypatch, capsys):
    """Under load lab.stats() can time out; the CLI skips that beat instead of dying with a traceback."""
    import argparse
    import concurrent.futures

    from coldbrew.commands import lab as lab_command

    class BusyLab:
        url = "http://127.0.0.1:9"

        def __init__(self, config):
            self.config = config

        def start(self):
            return self

        def stop(self):
            pass

        def stats(self):
            raise concurrent.futures.TimeoutError()

    ticks = iter(range(100))

    def one_tick(_seconds):
        if next(ticks) >= 20:
            raise KeyboardInterrupt

    monkeypatch.setattr("coldbrew.lab.Lab", BusyLab)
    monkeypatch.setattr(lab_command.time, "sleep", one_tick)
    parser = argparse.ArgumentParser()
    lab_command.add_arguments(parser)
    assert lab_command.run(parser.parse_args(["--handler", "echo.handler", "--task-root", str(HANDLERS)])) == 0
    out = capsys.readouterr().out
    assert "lab busy" in out and out.rstrip().endswith("coldbrew lab: stopped")
