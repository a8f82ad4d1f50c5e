"""The kernel cross-built with Zig: right machine, old-enough glibc, one abi3 binary for every Python >= 3.11."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from coldbrew.deploy import crossbuild
from coldbrew.engine import brew

pytestmark = pytest.mark.integration

RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
import _kernel
d = sys.argv[2]
def rd(name, writable=False):
    data = open(f"{d}/{name}", "rb").read()
    return bytearray(data) if writable else data
out = rd("out", True)
n_features, k = int(sys.argv[3]), int(sys.argv[4])
_kernel.predict_raw(rd("nodes"), rd("offsets"), rd("leaf"), rd("X"), out, n_features, k, False)
open(f"{d}/result", "wb").write(bytes(out))
print(sys.version_info[:2], _kernel.__file__)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    root = tmp_path_factory.mktemp("xbuild")
    return {arch: (root / arch, crossbuild.build_kernel(arch, root / arch)) for arch in crossbuild.TARGETS}


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_elf_fits_the_lambda_target(built, arch):
    _, report = built[arch]
    target = crossbuild.TARGETS[arch]
    assert report.machine == target.elf_machine
    assert set(report.needed) <= crossbuild.GLIBC_LIBRARIES
    assert "exp" in report.glibc_versions  # the link function really comes from libm
    assert report.newest_glibc is not None and report.newest_glibc <= (2, 17)
    assert report.problems(target, kernel=True) == []


def test_checker_refuses_a_host_build_with_new_glibc_symbols(tmp_path):
    """A plain host build links exp@GLIBC_2.29 (glibc >= 2.29): unfit for manylinux2014, and the check says so."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a host C compiler (cc) to make a binary with new glibc symbols")
    so = tmp_path / "_kernel.so"
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-O2",
            f"-I{sysconfig.get_paths()['include']}",
            "-o",
            str(so),
            str(crossbuild.KERNEL_SOURCE),
            "-lm",
        ],
        check=True,
    )
    report = crossbuild.inspect_elf(so)
    if report.newest_glibc is None or report.newest_glibc <= (2, 17):
        pytest.skip(f"this machine's glibc links only old symbols ({report.glibc_versions})")
    problems = report.problems(crossbuild.TARGETS["x86_64"])
    assert any("newer than glibc 2.17" in p and "exp@GLIBC_" in p for p in problems)
    assert any("EM_AARCH64" in p for p in report.problems(crossbuild.TARGETS["arm64"]))


def test_checker_refuses_a_kernel_with_its_own_exp(tmp_path):
    """A binary that defines exp and expf itself (as Zig's compiler runtime did once, pulled in by
    __builtin_cpu_supports) would give other last bits than the C library's: the checker names it."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a host C compiler (cc)")
    src = tmp_path / "own.c"
    src.write_text("double exp(double x) { return x; }\nfloat expf(float x) { return x; }\n")
    so = tmp_path / "_kernel.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(src)], check=True)
    report = crossbuild.inspect_elf(so)
    problems = report.problems(crossbuild.TARGETS["x86_64"], kernel=True)
    assert any("does not take exp, expf from the C library" in p for p in problems), problems
    assert not any("exp" in p for p in report.problems(crossbuild.TARGETS["x86_64"]))  # another binary: no rule


def test_not_an_elf_is_a_clean_error(tmp_path):
    bogus = tmp_path / "_kernel.abi3.so"
    bogus.write_bytes(b"#!/bin/sh\necho not elf\n")
    with pytest.raises(crossbuild.CrossBuildError, match="not a readable ELF"):
        crossbuild.inspect_elf(bogus)


def test_unknown_arch_is_refused():
    with pytest.raises(crossbuild.CrossBuildError, match="unknown architecture 'sparc'"):
        crossbuild.target_for("sparc")


@pytest.fixture(scope="module")
def study_like_model(tiny_brew):
    """The tiny study model and rows built from its own thresholds (each, and one float32 step either side)."""
    predictor = brew.BrewPredictor(tiny_brew)
    nodes = predictor._nodes
    rng = np.random.default_rng(0)
    columns = []
    for f in range(predictor.n_features):
        t = nodes["value"][nodes["feature"] == f].astype(np.float32)
        values = np.concatenate(
            [
                t,
                np.nextafter(t, np.float32(np.inf)),
                np.nextafter(t, np.float32(-np.inf)),
                np.array([np.nan, np.inf, -np.inf, 0.0], dtype=np.float32),
            ]
        )
        columns.append(rng.choice(values, size=2000))
    return predictor, np.stack(columns, axis=1)


def _interpreters() -> list[str]:
    found = []
    pyenv = Path.home() / ".pyenv" / "versions"
    for version in ("3.11", "3.12", "3.13"):
        candidates = [
            shutil.which(f"python{version}"),
            *sorted(map(str, pyenv.glob(f"{version}.*/bin/python{version}"))),
        ]
        for exe in filter(None, candidates):
            if subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
                found.append(exe)
                break
    return found


def test_one_abi3_binary_gives_the_host_kernels_bits_on_every_python(built, tmp_path, study_like_model):
    """Rows at thresholds, NaN and infinities through the cross-built x86_64 kernel on 3.11/3.12/3.13."""
    if brew.c_kernel is None:
        pytest.skip("the host C kernel is not built, nothing to compare with")
    predictor, X = study_like_model
    nodes, offsets = predictor._nodes, predictor._offsets
    K = predictor.header["n_outputs"]
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    base = np.empty((X32.shape[0], K), dtype=np.float64)
    base[...] = predictor._base
    expected = base.copy()
    brew.c_kernel.predict_raw(nodes, offsets, np.empty((0, K)), X32, expected, X32.shape[1], K, False)
    for name, arr in {"nodes": nodes, "offsets": offsets, "leaf": np.empty((0, K)), "X": X32, "out": base}.items():
        (tmp_path / name).write_bytes(np.ascontiguousarray(arr).tobytes())
    interpreters = _interpreters()
    assert interpreters, "no python3.11+ interpreter found"
    kernel_dir = built["x86_64"][0]
    for exe in interpreters:
        proc = subprocess.run(
            [exe, "-I", "-c", RUNNER, str(kernel_dir), str(tmp_path), str(X32.shape[1]), str(K)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "_kernel.abi3.so" in proc.stdout
        got = np.frombuffer((tmp_path / "result").read_bytes(), dtype=np.float64).reshape(expected.shape)
        assert np.array_equal(got, expected), f"{exe} differs"
    if len(interpreters) < 3:
        pytest.skip(f"only {len(interpreters)} of python3.11/3.12/3.13 found here: {interpreters}")
