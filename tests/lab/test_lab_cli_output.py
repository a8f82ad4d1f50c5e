"""`coldbrew lab` from the command line: what goes to stdout and stderr, `--env` and `--log` (docs/lab.md).

docs/lab.md: the lab prints its URL first on stdout; the functions' stdout/stderr go to the lab's stderr unless
`--function-output FILE`; `--env KEY=VALUE` is a function environment variable; `--log FILE` is a JSON-lines event log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

HANDLERS = Path(__file__).parents[1] / "handlers"

pytestmark = pytest.mark.integration


def _start_lab(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coldbrew",
            "lab",
            "--handler",
            "stdio.handler",
            "--task-root",
            str(HANDLERS),
            "--memory-mb",
            "256",
            "--quiet",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGINT (Ctrl-C), then the rest of stdout and stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("extra", [[], ["--snapshot"]], ids=["processes", "snapshot"])
def test_url_is_the_first_stdout_line_and_function_output_goes_to_stderr(extra):
    """With --snapshot the template's import-time output used to come first on stdout, before the URL."""
    proc = _start_lab(*extra)
    try:
        first = proc.stdout.readline()
        assert first.startswith("coldbrew lab: http://127.0.0.1:"), first
        url = first.split()[2]
        with urllib.request.urlopen(url + "/?var=HOME", timeout=30) as response:
            assert response.status == 200
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0
    assert "STDIO-" not in first + out, first + out
    for marker in ("STDIO-IMPORT-STDOUT", "STDIO-IMPORT-STDERR", "STDIO-INVOKE-STDOUT", "STDIO-INVOKE-STDERR"):
        assert marker in err, (marker, err)


def test_env_reaches_the_function_and_log_records_the_events(tmp_path):
    log = tmp_path / "events.jsonl"
    output = tmp_path / "functions.log"
    proc = _start_lab(
        "--env", "GREETING=hello=world", "--env", "EMPTY=", "--log", str(log), "--function-output", str(output)
    )
    try:
        url = proc.stdout.readline().split()[2]
        answers = {}
        for var in ("GREETING", "EMPTY"):
            with urllib.request.urlopen(f"{url}/?var={var}", timeout=30) as response:
                answers[var] = json.load(response)["value"]
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0
    assert answers == {"GREETING": "hello=world", "EMPTY": ""}
    events = [json.loads(line) for line in log.read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "lab_start" and names[-1] == "lab_stop", names
    invokes = [e for e in events if e["event"] == "invoke"]
    assert [(e["outcome"], e["cold"]) for e in invokes] == [("ok", True), ("ok", False)]
    assert names.count("env_start") == 1 and names.count("env_ready") == 1
    # --function-output took the functions' output: neither the lab's stderr nor stdout has it
    assert "STDIO-INVOKE-STDOUT" in output.read_text() and "STDIO-" not in err


def test_env_without_equals_is_a_one_line_error():
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "lab", "--handler", "stdio.handler", "--env", "NOEQUALS"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (1, 2)
    lines = result.stderr.strip().splitlines()
    assert "NOEQUALS" in lines[-1] and "Traceback" not in result.stderr
