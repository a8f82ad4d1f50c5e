"""Binary wheels for the Lambda target: fetched once by pip into coldbrew's cache, unpacked file by file.

A zip whose model needs numpy (a ``softmax`` output: scikit-learn's multiclass GradientBoosting and
HistGradientBoosting, XGBoost's ``multi:softmax``) ships numpy built for the target: the manylinux wheel of the
version installed here (the one whose answers the smoke test compares with), for the Lambda runtime's CPython and
the target architecture. Why vendored rather than recomputed in C (docs/deploy.md, "Softmax models"): numpy's
float64 ``exp`` is Intel SVML's on x86_64 CPUs with AVX-512 and libm's elsewhere, and its float32 ``exp`` is its
own polynomial on x86_64, so only numpy itself gives numpy's bits on every CPU Lambda may run.

Nothing here imports the other deploy modules: :mod:`coldbrew.deploy.zipbuild` and :mod:`coldbrew.deploy.smoke`
both use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from coldbrew.errors import ColdbrewError

# Lambda's python3.12 runtime is Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels load there, and so do
# manylinux2014 (2.17) ones; pip takes the newest tag that has a wheel.
RUNTIME_GLIBC = (2, 34)
PLATFORM_TAGS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}
# Shared libraries a manylinux wheel may need from the system and Lambda's Python runtimes have: PEP 599's C++
# runtime, and zlib (the runtime's own Python links it for its zlib module).
SYSTEM_LIBRARIES = frozenset({"libstdc++.so.6", "libgcc_s.so.1", "libz.so.1"})
# Parts of a wheel that serving never imports: test suites and type stubs.
SKIPPED_PARTS = frozenset({"tests", "__pycache__"})
SKIPPED_SUFFIXES = (".pyi",)
# Distributions a model may need at run time that are not pure Python, and why.
NUMPY_REASON = "softmax probabilities: numpy's own exp (SVML on AVX-512 x86_64, libm on arm64)"


class WheelError(ColdbrewError):
    """A wheel for the target could not be had (offline, no such build)."""


def cache_root() -> Path:
    """coldbrew's cache directory: ``$COLDBREW_CACHE`` or ``$XDG_CACHE_HOME/coldbrew`` (not created)."""
    if os.environ.get("COLDBREW_CACHE"):
        return Path(os.environ["COLDBREW_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coldbrew"


def fetch_wheel(name: str, version: str, arch: str, python: tuple[int, int]) -> Path:
    """The wheel of ``name==version`` for CPython ``python`` on Linux ``arch``, downloaded once into the cache.

    Raises:
        WheelError: pip could not fetch it (offline, no wheel for that Python or platform).
    """
    tag = f"cp{python[0]}{python[1]}"
    folder = cache_root() / "wheels" / f"{name}-{version}-{tag}-{arch}"
    found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{folder.name}.", dir=folder.parent) as tmp:
        pip = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", f"{python[0]}.{python[1]}",
            "--abi", tag, *(arg for platform in PLATFORM_TAGS[arch] for arg in ("--platform", platform)),
            "--dest", tmp, f"{name}=={version}",
        ]  # fmt: skip
        try:
            done = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WheelError(f"pip could not fetch {name} {version} for {tag} {arch}: {exc}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = [line for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line]
            why = (lines or ["no wheel downloaded"])[-1][:200]
            raise WheelError(f"pip could not fetch {name} {version} for {tag} {arch}: {why}")
        try:
            os.replace(tmp, folder)
        except OSError:  # another build finished first
            if not folder.is_dir():
                raise
        else:
            os.mkdir(tmp)  # TemporaryDirectory removes what it made
    return sorted(folder.glob("*.whl"))[0]


def unpack(wheel: Path, dest: Path) -> list[tuple[Path, str]]:
    """Unpack ``wheel``'s importable files (no ``*.dist-info``, tests or stubs) under ``dest``.

    Returns (path on disk, path inside the zip) per file. A member escaping ``dest`` is refused.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    found = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            posix = PurePosixPath(info.filename)
            if info.is_dir() or posix.parts[0].endswith(".dist-info") or posix.suffix in SKIPPED_SUFFIXES:
                continue
            if SKIPPED_PARTS.intersection(posix.parts):
                continue
            target = (root / info.filename).resolve()
            if root not in target.parents:
                raise WheelError(f"{wheel.name}: member {info.filename!r} would land outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            found.append((target, str(posix)))
    return found


def top_levels(files: list[tuple[Path, str]]) -> set[str]:
    """The top-level names (``numpy``, ``numpy.libs``) a wheel's files occupy inside the zip."""
    return {arcname.split("/", 1)[0] for _, arcname in files}
