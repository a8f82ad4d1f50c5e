"""Bytecode for the function's Python: find an interpreter of the Lambda runtime's version and byte-compile with it.

Lambda's ``/var/task`` is read-only, so a function zip without ``.pyc`` files makes every on-demand cold start
compile the code it imports. ``.pyc`` files are only used by an interpreter whose magic number (one per minor
version) matches, so they must come from the runtime's own ``python3.X`` — found here as ``--target-python``, then
this interpreter, ``python3.X`` on ``PATH`` and pyenv's ``versions/3.X.*``. They are written in the standard
``__pycache__/NAME.cpython-3X.pyc`` layout as *unchecked-hash* pycs (PEP 552): the interpreter uses them without
comparing the source's time stamp (which unzipping does not keep) or hash, and the same sources give the same bytes.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from coldbrew.errors import ColdbrewError

INVALIDATION = "unchecked-hash"
PROBE = (
    "import json, sys; print(json.dumps([sys.executable, list(sys.version_info[:3]), "
    "sys.implementation.name, sys.implementation.cache_tag]))"
)
# Reads [source, pyc, name shown in tracebacks] triples on stdin; writes each pyc (unchecked hash, no -O).
COMPILE = """
import json, py_compile, sys
for src, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True, optimize=0,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""
TASK_ROOT = "/var/task"  # where Lambda unzips the function: the file names tracebacks show


class BytecodeError(ColdbrewError):
    """The interpreter asked for cannot make the function's bytecode (wrong version, not Python, compile error)."""


@dataclass(frozen=True)
class Interpreter:
    """A CPython interpreter found here: its real executable, version and bytecode cache tag (``cpython-312``)."""

    path: str
    version: tuple[int, int, int]
    cache_tag: str

    @property
    def minor(self) -> tuple[int, int]:
        """(major, minor): what must equal the runtime's for the bytecode to be used."""
        return self.version[0], self.version[1]

    @property
    def label(self) -> str:
        """``Python 3.12.1``."""
        return "Python " + ".".join(map(str, self.version))


def runtime_version(runtime: str) -> tuple[int, int]:
    """(3, 12) for the Lambda runtime identifier ``python3.12``."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    if not match:
        raise BytecodeError(f"{runtime!r} is not a Lambda Python runtime identifier such as python3.12")
    return int(match[1]), int(match[2])


def probe(python: str | os.PathLike) -> Interpreter | None:
    """What ``python`` is (None when it does not run, or is not CPython)."""
    try:
        out = subprocess.run(
            [str(python), "-I", "-S", "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        executable, version, implementation, cache_tag = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, TypeError):
        return None
    if implementation != "cpython" or not cache_tag or not executable:
        return None
    return Interpreter(str(Path(executable).resolve()), (version[0], version[1], version[2]), cache_tag)


def candidates(version: tuple[int, int]) -> list[str]:
    """Where an interpreter of ``version`` may be, in the order tried: this one, ``PATH``, pyenv (newest first)."""
    found = []
    if sys.version_info[:2] == version:
        found.append(sys.executable)
    name = f"python{version[0]}.{version[1]}"
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    pattern = str(pyenv / "versions" / f"{version[0]}.{version[1]}.*" / "bin" / name)

    def patch(path: str) -> tuple[int, ...]:
        digits = re.findall(r"\d+", Path(path).parent.parent.name)
        return tuple(int(d) for d in digits)

    found += sorted(glob.glob(pattern), key=patch, reverse=True)
    return found


def find_python(runtime: str, explicit: str | os.PathLike | None = None) -> tuple[Interpreter | None, str]:
    """The interpreter to byte-compile for ``runtime`` (``python3.12``), or None and a one-line reason.

    ``explicit`` (``--target-python``) must be CPython of the runtime's minor version; anything else is refused,
    since its bytecode would never be used.

    Raises:
        BytecodeError: ``explicit`` does not run, or is another version.
    """
    version = runtime_version(runtime)
    want = f"{version[0]}.{version[1]}"
    if explicit is not None:
        found = probe(explicit)
        if found is None:
            raise BytecodeError(f"--target-python {explicit}: not a CPython interpreter that runs here")
        if found.minor != version:
            raise BytecodeError(
                f"--target-python {explicit} is {found.label}, but the function runs {runtime}: its bytecode "
                f"would never be used; give a python{want}"
            )
        return found, ""
    for path in candidates(version):
        found = probe(path)
        if found is not None and found.minor == version:
            return found, ""
    return None, (
        f"no python{want} found (this interpreter, PATH, pyenv): built without bytecode, so every cold start "
        f"compiles the code; pass --target-python /path/to/python{want}"
    )


def pyc_name(arcname: str, cache_tag: str) -> str:
    """``pkg/mod.py`` → ``pkg/__pycache__/mod.cpython-312.pyc``."""
    path = PurePosixPath(arcname)
    return str(path.parent / "__pycache__" / f"{path.stem}.{cache_tag}.pyc").removeprefix("./")


def compile_sources(python: Interpreter, sources: list[tuple[Path, str]], work: Path) -> list[tuple[Path, str]]:
    """Byte-compile each (path on disk, path inside the zip) ``.py`` with ``python`` into ``work``.

    Returns the pycs as (path on disk, path inside the zip). The name compiled into each code object is where
    Lambda unzips it (``/var/task/PATH``), so the bytes do not depend on this machine's directories.

    Raises:
        BytecodeError: a source does not compile for ``python`` (it would fail on Lambda too).
    """
    jobs, out = [], []
    for src, arcname in sources:
        target = work / pyc_name(arcname, python.cache_tag)
        target.parent.mkdir(parents=True, exist_ok=True)
        jobs.append([str(src), str(target), f"{TASK_ROOT}/{arcname}"])
        out.append((target, pyc_name(arcname, python.cache_tag)))
    if not jobs:
        return out
    result = subprocess.run(
        [python.path, "-I", "-S", "-c", COMPILE],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise BytecodeError(f"byte-compiling with {python.label} failed: {(lines or ['no output'])[-1][:300]}")
    return out


def compile_tree(python: Interpreter, root: Path) -> None:
    """Byte-compile every ``.py`` under ``root`` in place (unchecked hash), as a runtime directory ships them.

    Raises:
        BytecodeError: ``compileall`` failed.
    """
    with tempfile.TemporaryFile() as log:
        code = subprocess.run(
            [python.path, "-I", "-S", "-m", "compileall", "-q", "--invalidation-mode", INVALIDATION, str(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        ).returncode
        if code != 0:
            log.seek(0)
            lines = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
            raise BytecodeError(f"compileall with {python.label} failed: {(lines or ['no output'])[-1][:300]}")
