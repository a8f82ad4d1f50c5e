"""The zip smoke test: the harness itself (with stdlib-only handlers built here) and the whole flow on the real handler.

The harness runs a function the way Lambda does: unzipped into a clean directory, a clean interpreter whose only
import path is that directory, the runtime client and the standard library, the template's handler and
environment. Its tests use tiny handlers whose answers the test knows; the flow on coldbrew's own handler waits
for the numpy-free serving runtime (issue 12 §1), until then an expected failure.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import sys
import zipfile
from pathlib import Path

import pytest

from coldbrew.deploy import bytecode, smoke
from coldbrew.deploy import package as pkg

RUNTIME_PYTHON, NO_RUNTIME_PYTHON = bytecode.find_python(pkg.tpl.RUNTIME)
HOST_IS_X86 = smoke.HOST_ARCH.get(platform.machine().lower()) == "x86_64"
EMULATOR, NO_EMULATOR = smoke.emulator("arm64")
needs_x86 = pytest.mark.skipif(not HOST_IS_X86, reason="the lab runs x86_64 zips on an x86_64 machine")
needs_qemu = pytest.mark.skipif(EMULATOR is None, reason=f"no emulated arm64 run: {NO_EMULATOR}")

# A handler that answers like coldbrew's /predict (the sum of each row as its prediction) and, beside each
# answer, what the clean interpreter could see: whether numpy or this checkout's coldbrew is importable, whether
# any site-packages is on sys.path, and whether MODEL_URI names the model inside the unzipped directory.
PROBE = """
import importlib.util, json, os, sys

def handler(event, context):
    rows = json.loads(event["body"])
    seen = {
        "numpy": importlib.util.find_spec("numpy") is not None,
        "site": any("site-packages" in p or "dist-packages" in p for p in sys.path),
        "model": os.environ["MODEL_URI"] == os.path.join(os.environ["LAMBDA_TASK_ROOT"], "model", "m.brew")
                 and os.path.isfile(os.environ["MODEL_URI"]),
        "handler": os.environ.get("_HANDLER"),
    }
    out = [{"prediction": sum(v for v in r.values() if v is not None), **seen} for r in rows]
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(out)}
"""
NEEDS_NUMPY = "import numpy\n\ndef handler(event, context):\n    return {'statusCode': 200, 'body': '[]'}\n"
SPEC = smoke.FunctionSpec("probe.handler", {"MODEL_SOURCE": "DISK", "MODEL_URI": "/var/task/model/m.brew"})
ROWS = [{"a": 0.1, "b": 0.2}, {"a": -0.0, "b": None}, {"a": 1e300, "b": 3.0}]
SEEN = {"numpy": False, "site": False, "model": True, "handler": "probe.handler"}
EXPECTED = [{"prediction": 0.1 + 0.2, **SEEN}, {"prediction": 0.0, **SEEN}, {"prediction": 1e300 + 3.0, **SEEN}]


def _zip(tmp_path: Path, source: str, extra: dict[str, bytes] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "function.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("probe.py", source)
        zf.writestr("model/m.brew", b"not read by the probe")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _run(checks: list[smoke.Check]) -> smoke.Check:
    assert checks[-1].name == "smoke"
    return checks[-1]


# ---- the harness: fast parts ----------------------------------------------------------------------------------------
def test_bits_tell_apart_what_equality_does_not():
    assert smoke.first_difference([{"p": 0.1 + 0.2}], [{"p": 0.30000000000000004}]) is None
    assert "row 0" in smoke.first_difference([{"p": 0.0}], [{"p": -0.0}])
    assert "row 0" in smoke.first_difference([{"p": 1}], [{"p": 1.0}])  # an int where a float is due
    assert "row 1" in smoke.first_difference([{"p": 1.0}, {"p": 2.0}], [{"p": 1.0}, {"p": math.nextafter(2, 3)}])
    assert "list of 2" in smoke.first_difference({"error": "x"}, [{}, {}])


def test_unzip_refuses_a_member_outside_the_directory(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.py", "x = 1")
    with pytest.raises(smoke.SmokeError, match="outside the directory"):
        smoke.unzip(evil, tmp_path / "task")
    assert not (tmp_path / "escaped.py").exists()


def test_elf_check_refuses_a_shared_object_for_the_other_arch(tmp_path):
    from coldbrew.engine import brew

    if brew.c_kernel is None:
        pytest.skip("no C kernel built here")
    x86_kernel = Path(brew.c_kernel.__file__).read_bytes()
    zip_path = _zip(tmp_path, PROBE, {"coldbrew/engine/_kernel.abi3.so": x86_kernel})
    checks = smoke.check_zip(zip_path, "arm64", skip_reason="not run")
    elf = [c for c in checks if c.name.startswith("ELF")]
    assert len(elf) == 1 and elf[0].failed and "ELF machine is EM_X86_64" in elf[0].detail
    assert _run(checks).status == "skipped" and _run(checks).detail == "not run"


@pytest.mark.skipif(HOST_IS_X86 is False, reason="on an arm64 machine the arm64 zip runs in the lab")
def _path_with_qemu(tmp_path, monkeypatch, present: bool) -> None:
    """PATH without any qemu-aarch64-static, plus (``present``) a stand-in one: the check only looks it up."""
    qemu = smoke.QEMU["arm64"]
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / qemu).exists()]
    if present:
        fake = tmp_path / "fake-bin"
        fake.mkdir()
        (fake / qemu).write_text("#!/bin/sh\nexit 1\n")
        (fake / qemu).chmod(0o755)
        dirs.insert(0, str(fake))
    monkeypatch.setenv("PATH", os.pathsep.join(dirs))


def test_arm64_without_an_emulator_says_why_it_was_skipped(tmp_path, monkeypatch):
    """No qemu on the machine (whatever this one has): skipped, naming the package that provides it."""
    monkeypatch.delenv(smoke.ARM64_ROOT_ENV, raising=False)
    _path_with_qemu(tmp_path, monkeypatch, present=False)
    run = _run(smoke.check_zip(_zip(tmp_path, PROBE), "arm64", spec=SPEC, rows=ROWS, expected=EXPECTED))
    assert run.status == "skipped" and "qemu-aarch64-static not found" in run.detail
    assert "apt-get install qemu-user-static" in run.detail


def test_arm64_without_a_python_root_says_why_it_was_skipped(tmp_path, monkeypatch):
    """qemu present but no arm64 Python root: skipped, naming the variable and the script that makes the root."""
    monkeypatch.delenv(smoke.ARM64_ROOT_ENV, raising=False)
    _path_with_qemu(tmp_path, monkeypatch, present=True)
    run = _run(smoke.check_zip(_zip(tmp_path, PROBE), "arm64", spec=SPEC, rows=ROWS, expected=EXPECTED))
    assert run.status == "skipped" and f"{smoke.ARM64_ROOT_ENV} is not set" in run.detail


def test_function_spec_is_read_from_the_template_and_var_task_is_mapped(tmp_path, tiny_brew):
    plan = pkg.make_plan(str(tiny_brew), "zip-snapstart")
    (tmp_path / "template.yaml").write_text(pkg.tpl.sam_template(plan))
    spec = smoke.function_spec(tmp_path / "template.yaml")
    assert spec.handler == "coldbrew.aws.handler"
    assert spec.env == {"MODEL_SOURCE": "DISK", "MODEL_URI": "/var/task/model/tiny.brew"}
    env = smoke.lambda_env(spec, tmp_path / "task")
    assert env["MODEL_URI"] == f"{tmp_path}/task/model/tiny.brew" and env["LAMBDA_TASK_ROOT"] == f"{tmp_path}/task"
    assert env["_HANDLER"] == "coldbrew.aws.handler"
    # A model on S3: the URI CloudFormation computes from parameters is not a literal the smoke test could use.
    s3 = pkg.make_plan(str(tiny_brew), "zip-snapstart", s3_uri="s3://bucket/tiny.brew")
    (tmp_path / "template.yaml").write_text(pkg.tpl.sam_template(s3))
    assert smoke.function_spec(tmp_path / "template.yaml").env == {"MODEL_SOURCE": "S3"}
    (tmp_path / "broken.yaml").write_text("Resources: {}\n")
    with pytest.raises(smoke.SmokeError, match="no ModelFunction handler"):
        smoke.function_spec(tmp_path / "broken.yaml")


def test_expected_results_are_the_librarys_own_predictions(tiny_model, tiny_brew):
    import joblib
    import numpy as np
    import pandas as pd

    rows = smoke.sample_rows(tiny_brew)
    expected = smoke.expected_results(tiny_brew, rows)
    estimator = joblib.load(tiny_model)
    features = list(rows[0])
    X = pd.DataFrame([[np.nan if row[f] is None else row[f] for f in features] for row in rows], columns=features)
    proba = estimator.predict_proba(X)[:, 1]
    labels = [str(c) for c in estimator.predict(X).tolist()]
    assert [e["probability"] for e in expected] == proba.tolist()
    assert [e["prediction"] for e in expected] == labels
    # the rows sit on the model's split thresholds (and one float32 step either side), where bits differ first
    thresholds = {t for est in estimator.estimators_.ravel() for t in est.tree_.threshold.tolist()}
    assert sum(v in thresholds for row in rows for v in row.values()) >= len(features)


# ---- the harness: real processes ------------------------------------------------------------------------------------
@pytest.mark.integration
@needs_x86
def test_lab_runs_the_handler_with_only_its_directory_the_runtime_and_the_stdlib(tmp_path):
    checks = smoke.check_zip(_zip(tmp_path, PROBE), "x86_64", spec=SPEC, rows=ROWS, expected=EXPECTED)
    assert _run(checks).status == "ok", _run(checks).detail
    # the same answer one ulp off is a failure naming the row: the comparison is bit for bit
    wrong = [*EXPECTED[:2], {**EXPECTED[2], "prediction": math.nextafter(EXPECTED[2]["prediction"], 0)}]
    failed = _run(smoke.check_zip(_zip(tmp_path / "b", PROBE), "x86_64", spec=SPEC, rows=ROWS, expected=wrong))
    assert failed.failed and "row 2" in failed.detail


@pytest.mark.integration
@needs_x86
def test_a_handler_that_needs_site_packages_fails_in_the_clean_interpreter(tmp_path):
    pytest.importorskip("numpy")  # installed here, so only the clean path can hide it
    run = _run(smoke.check_zip(_zip(tmp_path, NEEDS_NUMPY), "x86_64", spec=SPEC, rows=ROWS, expected=EXPECTED))
    assert run.failed and "No module named 'numpy'" in run.detail


@pytest.mark.integration
@needs_qemu
def test_arm64_runs_under_qemu_with_only_its_directory_and_the_stdlib(tmp_path):
    run = _run(smoke.check_zip(_zip(tmp_path, PROBE), "arm64", spec=SPEC, rows=ROWS, expected=EXPECTED))
    assert run.status == "ok" and run.detail.startswith("qemu arm64"), run.detail
    wrong = [*EXPECTED[:1], {**EXPECTED[1], "prediction": -0.0}, EXPECTED[2]]
    failed = _run(smoke.check_zip(_zip(tmp_path / "b", PROBE), "arm64", spec=SPEC, rows=ROWS, expected=wrong))
    assert failed.failed and "row 1" in failed.detail
    missing = _run(smoke.check_zip(_zip(tmp_path / "c", NEEDS_NUMPY), "arm64", spec=SPEC, rows=ROWS, expected=EXPECTED))
    assert missing.failed and "No module named 'numpy'" in missing.detail


@pytest.mark.integration
@needs_x86
@pytest.mark.skipif(RUNTIME_PYTHON is None, reason=NO_RUNTIME_PYTHON)
def test_the_lab_imports_the_shipped_bytecode_with_the_runtimes_python(tmp_path):
    assert RUNTIME_PYTHON is not None
    # probe.py's source fails when it is compiled; its bytecode (from the working source) is what must run
    good = tmp_path / "good" / "probe.py"
    good.parent.mkdir()
    good.write_text(PROBE)
    [(pyc, arcname)] = bytecode.compile_sources(RUNTIME_PYTHON, [(good, "probe.py")], tmp_path / "pyc")
    assert arcname == f"__pycache__/probe.{RUNTIME_PYTHON.cache_tag}.pyc"
    broken = 'raise ImportError("the source was compiled, not the shipped bytecode")\n'
    zip_path = _zip(tmp_path / "z", broken, {arcname: pyc.read_bytes()})
    run = _run(smoke.check_zip(zip_path, "x86_64", spec=SPEC, rows=ROWS, expected=EXPECTED, python=RUNTIME_PYTHON.path))
    assert run.status == "ok", run.detail
    assert f"python{RUNTIME_PYTHON.minor[0]}.{RUNTIME_PYTHON.minor[1]} -S -B" in run.detail and "bytecode" in run.detail
    if RUNTIME_PYTHON.minor != sys.version_info[:2]:  # this interpreter ignores the other version's bytecode
        other = _run(smoke.check_zip(zip_path, "x86_64", spec=SPEC, rows=ROWS, expected=EXPECTED))
        assert other.failed and "the source was compiled" in other.detail


def test_a_runtime_client_that_is_not_installed_here_is_named():
    if RUNTIME_PYTHON is None:
        pytest.skip(NO_RUNTIME_PYTHON)
    with pytest.raises(smoke.SmokeError, match="no-such-runtime-xyz is not installed here: pip install"):
        smoke.target_runtime(RUNTIME_PYTHON, "x86_64", "no-such-runtime-xyz")


# ---- the whole flow on coldbrew's own handler -----------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_package_builds_and_smoke_tests_the_real_handler(tiny_brew, tmp_path, arch):
    if arch == "x86_64" and not HOST_IS_X86:
        pytest.skip("the lab runs x86_64 zips on an x86_64 machine")
    if arch == "arm64" and EMULATOR is None:
        pytest.skip(f"no emulated arm64 run: {NO_EMULATOR}")
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    result = pkg.package(str(tiny_brew), "zip-snapstart", tmp_path / "out", arch=arch)
    written = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert written["arch"] == arch and written["model"] == "model/tiny.brew"
    assert written["unzipped_bytes"] <= tiny_brew.stat().st_size + 2 * 1024 * 1024
    run = _run(result.checks)
    assert run.status == "ok", run.detail
    assert not result.failed, [c for c in result.checks if c.failed]
    pycs = {c.name: c for c in result.checks}["bytecode"]
    if RUNTIME_PYTHON is None:
        assert pycs.status == "warning" and "no python3.12 found" in pycs.detail
    elif arch == "x86_64":  # the run imported the shipped bytecode, with the runtime's Python
        assert written["bytecode"]["included"] and written["bytecode"]["cache_tag"] == RUNTIME_PYTHON.cache_tag
        assert pycs.status == "ok" and RUNTIME_PYTHON.cache_tag in pycs.detail
        assert "python3.12 -S -B" in run.detail and "the zip's bytecode" in run.detail
    else:  # Debian's arm64 python3.11 under qemu: another version, compiles the sources
        assert "no bytecode used" in run.detail


def test_expected_results_match_scikit_learn_for_every_task(families):
    from families import SERVED

    for name in SERVED:
        family = families[name]
        rows = [family.row(i) for i in range(8)]
        got = smoke.expected_results(family.brew, rows)
        assert smoke.first_difference(got, family.expected(family.X[:8])) is None, name
        assert len(smoke.sample_rows(family.brew)) == smoke.SMOKE_ROWS


@pytest.mark.integration
@needs_x86
@pytest.mark.parametrize("name", ["multiclass", "regression", "binary-unlabelled"])
def test_package_smoke_tests_every_task(families, tmp_path, name):
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    result = pkg.package(str(families[name].brew), "zip-snapstart", tmp_path / "out")
    run = _run(result.checks)
    assert run.status == "ok", run.detail


def test_lab_interpreter_option_is_checked(tmp_path):
    from coldbrew.errors import ConfigError
    from coldbrew.lab import LabConfig

    with pytest.raises(ConfigError, match="cannot be combined with snapshot"):
        LabConfig(task_root=tmp_path, python=["python3", "-S"], snapshot=True)
    with pytest.raises(ConfigError, match="non-empty interpreter command"):
        LabConfig(task_root=tmp_path, python=[])


def test_a_missing_runtime_client_is_named(tmp_path):
    with pytest.raises(smoke.SmokeError, match="no-such-runtime-xyz is not installed here: pip install"):
        smoke.copy_runtime(tmp_path / "runtime", ("no-such-runtime-xyz",))
    runtime = smoke.copy_runtime(tmp_path / "runtime2")  # awslambdaric and what it requires, nothing else
    assert (runtime / "awslambdaric" / "bootstrap.py").is_file()
    # byte-compiled, as Lambda's /var/runtime is
    assert Path(importlib.util.cache_from_source(str(runtime / "awslambdaric" / "bootstrap.py"))).is_file()
    assert not [p for p in runtime.iterdir() if p.name in ("numpy", "coldbrew", "boto3")]
