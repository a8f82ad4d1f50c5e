"""A Lambda deployment zip built here, without Docker: the serving code, its pure-Python dependencies, the kernel
cross-built for the target architecture, and the model — plus a manifest of what went in.

The zip holds only what the handler imports on Lambda: ``coldbrew``'s serving layers (format, engine, sources,
app, runtimes; never the lab, the experiment, deployment, converters or the CLI), the pure-Python distributions
named (copied from this environment, so they are the versions the tests ran), the target's
``_kernel.abi3.so`` and the model — plus, when an interpreter of the Lambda runtime's Python version is found here
(:mod:`coldbrew.deploy.bytecode`), every ``.py`` byte-compiled by it into ``__pycache__`` (unchecked-hash pycs:
``/var/task`` is read-only on Lambda, so without them every cold start compiles the code). Entries are sorted
and time-stamped at 1980-01-01 so the same inputs give the same bytes. Lambda refuses a function whose unzipped
size exceeds 250 MB; the builder refuses first, pointing to the S3 and image setups.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

import coldbrew
from coldbrew.deploy import bytecode, crossbuild, wheels
from coldbrew.deploy.render import RUNTIME
from coldbrew.errors import ColdbrewError

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
SERVING_PARTS = (
    "__init__.py",
    "aws.py",
    "errors.py",
    "jsonlite.py",
    "records.py",
    "format",
    "engine",
    "sources",
    "app",
    "runtimes",
)
SKIPPED_SUFFIXES = (".c", ".so", ".pyc", ".pyd")
SKIPPED_FILES = frozenset({"runtimes/local.py"})  # `coldbrew serve`'s server: not what Lambda runs
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
DEFAULT_RUNTIME = RUNTIME  # the SAM template's Lambda runtime, python3.12


class ZipBuildError(ColdbrewError):
    """The function zip cannot be built as asked (too big, a dependency with native code, a missing part)."""


@dataclass
class ZipEntry:
    """One file in the zip: its path inside, size in bytes and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass
class Bytecode:
    """The zip's bytecode: for which Python (None: none shipped, and ``note`` says why)."""

    included: bool = False
    runtime: str = DEFAULT_RUNTIME
    python: str | None = None  # "3.12.1": the interpreter that compiled it
    cache_tag: str | None = None  # "cpython-312": the pycs' names, __pycache__/NAME.cpython-312.pyc
    invalidation: str | None = None  # "unchecked-hash" (PEP 552): used whatever the source's time stamp
    modules: int = 0  # .py files with a .pyc beside them
    interpreter: str | None = None  # its path on the machine that built the zip
    note: str = ""

    def summary(self) -> str:
        """One line for the package output."""
        if not self.included:
            return self.note
        return (
            f"{self.modules} modules as __pycache__/*.{self.cache_tag}.pyc for {self.runtime} (Python {self.python} "
            f"at {self.interpreter}, {self.invalidation})"
        )


@dataclass
class ZipManifest:
    """What ``function.zip`` holds and for which target; written beside it as ``manifest.json``."""

    arch: str
    coldbrew_version: str
    model: str | None  # path inside the zip; None when the function reads its model from S3
    target: str = ""  # the platform the native parts were built and checked for
    handler: str = "coldbrew.aws.handler"
    entries: list[ZipEntry] = field(default_factory=list)
    dependencies: dict[str, str] = field(default_factory=dict)
    # native distributions vendored as the target's wheels: name -> {"wheel": file name, "why": what needs it}
    native: dict[str, dict[str, str]] = field(default_factory=dict)
    bytecode: Bytecode = field(default_factory=Bytecode)

    @property
    def unzipped_bytes(self) -> int:
        """The size Lambda counts against its 250 MB limit."""
        return sum(e.size for e in self.entries)

    def to_json(self) -> str:
        """The manifest as indented JSON, sizes included."""
        data = asdict(self)
        data["unzipped_bytes"] = self.unzipped_bytes
        return json.dumps(data, indent=2) + "\n"


def serving_files() -> list[tuple[Path, str]]:
    """``coldbrew``'s serving-path source files as (path on disk, path inside the zip)."""
    root = Path(coldbrew.__file__).resolve().parent
    found = []
    for part in SERVING_PARTS:
        src = root / part
        paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if path.suffix in SKIPPED_SUFFIXES or "__pycache__" in path.parts or rel in SKIPPED_FILES:
                continue
            found.append((path, f"coldbrew/{rel}"))
    return found


def distribution_files(name: str) -> tuple[str, list[tuple[Path, str]]]:
    """A pure-Python distribution's importable files as (path on disk, path inside the zip), and its version."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise ZipBuildError(f"{name} is not installed here; pip install it to vendor it into the zip") from None
    found = []
    for file in dist.files or ():
        posix = PurePosixPath(str(file))
        if posix.parts[0].endswith((".dist-info", ".egg-info")) or posix.parts[0] in ("..", "bin"):
            continue
        if "__pycache__" in posix.parts:
            continue
        if posix.suffix in (".so", ".pyd") or ".so." in posix.name:
            raise ZipBuildError(f"{name} ships native code ({posix}); only pure-Python dependencies are vendored")
        found.append((Path(str(dist.locate_file(file))), str(posix)))
    return dist.version, found


def is_pure_python(name: str) -> bool:
    """True when the installed distribution ``name`` ships no compiled extension (it can be vendored for any arch).

    Raises:
        ZipBuildError: ``name`` is not installed here.
    """
    try:
        distribution_files(name)
    except ZipBuildError as exc:
        if "ships native code" in str(exc):
            return False
        raise
    return True


def _write(zf: zipfile.ZipFile, manifest: ZipManifest, arcname: str, path: Path) -> None:
    """Stream ``path`` into the zip with a fixed time stamp, hashing it on the way."""
    info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    manifest.entries.append(ZipEntry(arcname, size, digest.hexdigest()))


def build_function_zip(
    model: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    arch: str,
    *,
    model_name: str = "model.brew",
    dependencies: tuple[str, ...] = ("apig-wsgi",),
    kernel: str | os.PathLike | None = None,
    limit_bytes: int = LAMBDA_UNZIPPED_LIMIT,
    runtime: str = DEFAULT_RUNTIME,
    target_python: str | os.PathLike | None = None,
    native: dict[str, str] | None = None,
) -> ZipManifest:
    """Write ``out_dir/function.zip`` and ``out_dir/manifest.json`` for ``arch``; returns the manifest.

    ``model`` is None for a function that reads its model from S3 (the zip then holds code only).
    ``kernel`` is a prebuilt ``_kernel.abi3.so`` for the target; without it the kernel is cross-built (and
    checked) here. Raises ``ZipBuildError`` when the unzipped size would exceed ``limit_bytes`` (Lambda's 250 MB)
    or a dependency is not pure Python; nothing is left behind on failure.

    Every ``.py`` is byte-compiled by an interpreter of ``runtime``'s version: ``target_python`` if given (refused
    with ``BytecodeError`` when it is another version), else one found here (:func:`bytecode.find_python`); when
    none is found the zip ships sources only and ``manifest.bytecode.note`` says so.

    ``native`` maps distributions with compiled code the model needs (``{"numpy": why}``) to the reason: each is
    vendored as the manylinux wheel of the version installed here, for ``runtime``'s CPython and ``arch``
    (:mod:`coldbrew.deploy.wheels`), listed in ``manifest.native``.
    """
    target = crossbuild.target_for(arch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = None if model is None else Path(model)
    files = serving_files()
    platform = f"manylinux2014_{'aarch64' if target.arch == 'arm64' else target.arch}"
    manifest = ZipManifest(
        arch=target.arch,
        coldbrew_version=coldbrew.__version__,
        model=None if model is None else model_name,
        target=f"{platform} (glibc >= {target.glibc[0]}.{target.glibc[1]}), CPython >= 3.11 (abi3)",
    )
    python, why = bytecode.find_python(runtime, target_python)  # before the kernel build: refuse a wrong one early
    manifest.bytecode = Bytecode(runtime=runtime, note=why)
    for dep in dependencies:
        version, dep_files = distribution_files(dep)
        manifest.dependencies[dep] = version
        files += dep_files
    unpacked = tempfile.TemporaryDirectory(prefix="coldbrew-wheels-")
    try:
        return _build(manifest, files, native or {}, Path(unpacked.name), out, target, model, model_name, kernel,
                      limit_bytes, runtime, python)  # fmt: skip
    finally:
        unpacked.cleanup()


def runtime_version(runtime: str) -> tuple[int, int]:
    """``"python3.12"`` -> ``(3, 12)``."""
    major, minor = runtime.removeprefix("python").split(".")
    return int(major), int(minor)


def _build(
    manifest: ZipManifest,
    files: list[tuple[Path, str]],
    native: dict[str, str],
    unpacked: Path,
    out: Path,
    target: crossbuild.Target,
    model: Path | None,
    model_name: str,
    kernel: str | os.PathLike | None,
    limit_bytes: int,
    runtime: str,
    python: bytecode.Interpreter | None,
) -> ZipManifest:
    for dep, why in native.items():
        try:
            version = metadata.version(dep)
        except metadata.PackageNotFoundError:
            raise ZipBuildError(f"{dep} is not installed here, so the version to vendor is unknown") from None
        wheel = wheels.fetch_wheel(dep, version, target.arch, runtime_version(runtime))
        files += wheels.unpack(wheel, unpacked / dep)
        manifest.dependencies[dep] = version
        manifest.native[dep] = {"wheel": wheel.name, "why": why}
    if native:
        glibc = ".".join(map(str, wheels.RUNTIME_GLIBC))
        manifest.target += f"; vendored wheels for {runtime}: glibc <= {glibc} (Lambda's {runtime} runtime)"
    if kernel is None:
        crossbuild.build_kernel(target.arch, out / "kernel")
        kernel = out / "kernel" / crossbuild.KERNEL_FILE
    else:
        problems = crossbuild.inspect_elf(Path(kernel)).problems(target, kernel=True)
        if problems:
            raise ZipBuildError(f"{kernel}: unfit for {target.arch}: {'; '.join(problems)}")
    files.append((Path(kernel), f"coldbrew/engine/{crossbuild.KERNEL_FILE}"))
    if model is not None:
        files.append((model, model_name))
    estimate = sum(p.stat().st_size for p, _ in files)
    if estimate > limit_bytes:
        raise ZipBuildError(
            f"the function would be {estimate / 1e6:.1f} MB unzipped, over Lambda's {limit_bytes / 1e6:.0f} MB "
            "zip limit; use --setup image-s3 (model from S3) or image-disk (container images allow 10 GB)"
        )
    final = out / "function.zip"
    partial = out / "function.zip.partial"
    with tempfile.TemporaryDirectory(prefix="coldbrew-pyc-") as pyc_dir:
        if python is not None:
            sources = [(path, arcname) for path, arcname in files if arcname.endswith(".py")]
            files += bytecode.compile_sources(python, sources, Path(pyc_dir))
            manifest.bytecode = Bytecode(
                included=True,
                runtime=runtime,
                python=".".join(map(str, python.version)),
                cache_tag=python.cache_tag,
                invalidation=bytecode.INVALIDATION,
                modules=len(sources),
                interpreter=python.path,
            )
            total = sum(p.stat().st_size for p, _ in files)
            if total > limit_bytes:
                raise ZipBuildError(
                    f"the function would be {total / 1e6:.1f} MB unzipped with its bytecode, over Lambda's "
                    f"{limit_bytes / 1e6:.0f} MB zip limit; use --setup image-s3 (model from S3) or image-disk"
                )
        try:
            with zipfile.ZipFile(partial, "w") as zf:
                for path, arcname in sorted(files, key=lambda item: item[1]):
                    _write(zf, manifest, arcname, path)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
    (out / "manifest.json").write_text(manifest.to_json())
    return manifest
