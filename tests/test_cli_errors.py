"""The CLI's promise to a newcomer: every mistake a user can make gives one line with a next step, no traceback,
and a non-zero status where it is an error; and one option grammar (durations, sizes, Lambda's limits, -o).

The real CLI each time: ``coldbrew.cli.main`` in this process where nothing is started, a child process (marked
integration) where the command starts a server or where the process's own streams and signals are the point.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from coldbrew.cli import main

REPO = Path(__file__).resolve().parents[1]
HANDLERS = REPO / "tests" / "handlers"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _status(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit:
        return int(exit.code or 0)


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"coldbrew {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------------ missing extras


def test_lab_without_the_lab_extra_fails_at_start_naming_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "awslambdaric", None)  # as `import awslambdaric` fails without the extra
    assert _status(["lab", "--handler", "echo.handler", "--task-root", str(HANDLERS), "--port", "0"]) == 1
    err = _one_line_error(capsys, "lab")
    assert "needs awslambdaric" in err and "pip install 'coldbrew[lab]'" in err


def test_lab_asgi_without_mangum_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mangum", None)
    assert _status(["lab", "--asgi", "service:app", "--task-root", str(HANDLERS)]) == 1
    assert "needs mangum" in _one_line_error(capsys, "lab")


# ---------------------------------------------------------------------------- a library's file, not compiled


@pytest.fixture(scope="module")
def library_files(tmp_path_factory) -> dict[str, Path]:
    """An XGBoost JSON and a LightGBM text model file, saved by the libraries themselves."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    folder = tmp_path_factory.mktemp("library-files")
    files = {}
    xgb = pytest.importorskip("xgboost")
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=y), num_boost_round=2)
    booster.save_model(str(folder / "model.json"))
    files["xgboost"] = folder / "model.json"
    lgb = pytest.importorskip("lightgbm")
    model = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=y), num_boost_round=2)
    model.save_model(str(folder / "model.txt"))
    files["lightgbm"] = folder / "model.txt"
    return files


@pytest.mark.parametrize("command", ["serve", "lab"])
@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_library_model_file_is_sent_to_compile_not_to_allow_pickle(command, library, library_files, capsys):
    path = library_files[library]
    assert _status([command, str(path), "--port", "0"]) == 1
    err = _one_line_error(capsys, command)
    assert "allow-pickle" not in err
    assert f"coldbrew compile {path} -o model.brew" in err
    assert {"xgboost": "XGBoost", "lightgbm": "LightGBM"}[library] in err


# ------------------------------------------------------------------------------------ S3 without credentials


def test_lab_on_s3_without_credentials_fails_at_start(monkeypatch, tmp_path, capsys):
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # not on EC2: no instance role either
    assert _status(["lab", "s3://bucket/model.brew", "--port", "0"]) == 1
    err = _one_line_error(capsys, "lab")
    assert "no AWS credentials" in err and "aws configure" in err


# ------------------------------------------------------------------------------------------ one grammar


def test_package_takes_durations_and_sizes_within_lambdas_limits(tiny_brew, tmp_path, capsys):
    from samtranslator.yaml_helper import yaml_parse

    out = tmp_path / "build"
    argv = ["package", str(tiny_brew), "--setup", "image-disk", "-o", str(out), "--timeout", "2m", "--memory", "1G"]
    assert _status(argv) == 0
    parameters = yaml_parse((out / "template.yaml").read_text())["Parameters"]
    assert parameters["Timeout"]["Default"] == 120 and parameters["MemorySize"]["Default"] == 1024


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--timeout", "16m"], "at most 15m"),
        (["--timeout", "1.5s"], "whole number of seconds"),
        (["--timeout", "soon"], "not a duration"),
        (["--memory", "64"], "128 to 10,240 MB"),
        (["--memory", "11G"], "128 to 10,240 MB"),
        (["--memory", "1.5k"], "not a whole number of MB"),
    ],
)
def test_package_refuses_what_lambda_refuses(argv, message, tiny_brew, tmp_path, capsys):
    out = tmp_path / "build"
    assert _status(["package", str(tiny_brew), "--setup", "image-disk", "-o", str(out), *argv]) == 2
    assert message in _one_line_error(capsys, "package")
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--timeout", "16m"], "at most 15m"),
        (["--memory-mb", "100"], "128 to 10,240 MB"),
        (["--idle-timeout", "0s"], "must be more than 0"),
    ],
)
def test_lab_refuses_what_lambda_refuses(argv, message, capsys):
    assert _status(["lab", "--handler", "echo.handler", "--task-root", str(HANDLERS), *argv]) == 2
    assert message in _one_line_error(capsys, "lab")


def _report(capsys, *options: str) -> list[dict]:
    assert _status(["report", str(REPO / "tests" / "data"), "--format", "json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_cold_threshold_takes_a_duration_and_keeps_its_ms_alias(capsys):
    one_second = _report(capsys, "--cold-threshold", "1s")
    assert _report(capsys, "--cold-threshold-ms", "1000") == one_second
    assert _report(capsys, "--cold-threshold-ms", "1s") == one_second
    assert _report(capsys) == one_second  # the study's threshold is the default
    assert _report(capsys, "--cold-threshold", "100ms") != one_second


def test_warm_hold_has_one_default_the_handlers_and_the_templates(tiny_brew):
    import argparse

    from samtranslator.yaml_helper import yaml_parse

    from coldbrew.commands import warm
    from coldbrew.deploy import package as pkg
    from coldbrew.deploy import render
    from coldbrew.runtimes.aws_lambda import parse_hold_ms

    parser = argparse.ArgumentParser()
    warm.add_arguments(parser)
    cli_ms = parser.parse_args(["--concurrency", "1"]).hold * 1000
    template = yaml_parse(render.sam_template(pkg.make_plan(str(tiny_brew), "image-disk")))
    assert cli_ms == parse_hold_ms(None) == template["Parameters"]["WarmHoldMs"]["Default"]


@pytest.mark.parametrize("command", ["loadtest", "bench"])
def test_commands_that_write_take_o_output_and_keep_out(command):
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(f"coldbrew.commands.{command}").add_arguments(parser)
    required = ["--host", "http://127.0.0.1:1"] if command == "loadtest" else []
    for flag in ("-o", "--output", "--out"):
        assert parser.parse_args([*required, flag, "d"]).out == Path("d")


# ------------------------------------------------------------------------------- child processes (integration)


def _closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone, as `| head` leaves it once head has exited."""
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.integration
@pytest.mark.parametrize("command", ["report", "compile"])
def test_output_into_a_closed_pipe_ends_quietly(command, tiny_model, tmp_path):
    argv = {
        "report": ["report", str(REPO / "tests" / "data")],
        "compile": ["compile", str(tiny_model), "-o", str(tmp_path / "m.brew"), "--quiet"],
    }[command]
    stdout = _closed_pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "coldbrew", *argv], stdout=stdout, stderr=subprocess.PIPE, text=True, env=ENV
        )
    finally:
        os.close(stdout)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr  # 128 + SIGPIPE, as a shell reports `cat`


@pytest.mark.integration
def test_lab_on_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "coldbrew", "lab", "--handler", "echo.handler", "--task-root", str(HANDLERS)]
            + ["--port", str(port)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == (
        f"coldbrew lab: error: --port {port}: 127.0.0.1:{port} is already in use; stop what listens there "
        "or choose another port (--port 0: any free one)\n"
    )


@pytest.mark.integration
def test_ctrl_c_stops_the_lab_even_when_started_with_sigint_ignored():
    """A background job of a non-interactive shell (`coldbrew lab &`, nohup) starts with SIGINT ignored."""
    command = [sys.executable, "-m", "coldbrew", "lab", "--handler", "echo.handler", "--task-root", str(HANDLERS)]
    script = "trap '' INT; exec \"$@\""  # the shell's way to start a child with SIGINT ignored
    proc = subprocess.Popen(
        ["sh", "-c", script, "sh", *command, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("coldbrew lab: http://127.0.0.1:"), line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "coldbrew lab: stopped" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.integration
def test_serve_max_body_bytes_takes_a_size(tiny_brew):
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbrew", "serve", str(tiny_brew), "--port", "0", "--max-body-bytes", "1k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = next((line.split()[-1] for line in proc.stdout if line.startswith("coldbrew: serving on ")), None)
        assert url, "coldbrew serve did not start"
        body = json.dumps({"pad": "x" * 1100}).encode()  # 1k = 1024 bytes: this is over
        request = urllib.request.Request(
            url.rstrip("/") + "/predict", data=body, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
