"""`coldbrew package`: a deployable AWS Lambda build context plus SAM template for one model.

Three setups (docs/deploy.md):

- ``image-disk``: the study's DOCKER_DISK, a container image with the model copied in.
- ``image-s3``: the study's DOCKER_S3, the same image without the model, which is read from S3.
- ``zip-snapstart``: ``function.zip`` built here, without Docker (:mod:`coldbrew.deploy.zipbuild`: the serving
  code, pure-Python dependencies, the kernel cross-built for the target, the model unless it is read from S3),
  with SnapStart; smoke-tested before it is handed over (:mod:`coldbrew.deploy.smoke`).

Nothing here needs Docker or an AWS account: the output is checked statically (tests run cfn-lint,
samtranslator and dockerfile-parse on it) and the README lists the exact build and deploy commands.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from coldbrew.deploy import render as tpl
from coldbrew.deploy.plan import Plan
from coldbrew.errors import ColdbrewError
from coldbrew.sizes import check_lambda_memory, check_lambda_timeout, parse_megabytes
from coldbrew.sources.config import parse_s3_uri

if TYPE_CHECKING:
    from typing_extensions import Unpack

SETUPS = ("image-disk", "image-s3", "zip-snapstart")
# Default "none": the endpoint is a public prediction API, like the study's; its costly doors are closed
# (no /_warm route) and its rate is capped (stage throttling). "iam" makes every HTTP caller sign with SigV4.
AUTH_MODES = ("none", "iam")
ARCHES = tuple(tpl.DOCKER_PLATFORMS)
DEFAULT_MEMORY_MB = 4500  # the study's setting
DEFAULT_TIMEOUT_S = 30

# What serving needs at run time is read from coldbrew's own metadata (the packaged checkout's pyproject.toml):
# its dependencies, plus these extras by model format — unpickling needs the exact scikit-learn that wrote the
# pickle, and what it requires in turn. The [s3] extra (boto3) is not added: every Lambda Python runtime and base
# image ships it, and bundling botocore would add ~25 MB to the zip.
FORMAT_EXTRAS = {"brew": (), "pickle": ("sklearn",)}
# Files of the coldbrew checkout that make it pip-installable; anything else at the root is left out.
SOURCE_ROOT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md", "LICENSE", "LICENSE.txt")
SOURCE_IGNORE = ("__pycache__", "*.pyc", "*.pyo", "*.so", "*.pyd", "*.o", "*.egg-info", "build", ".pytest_cache")
NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".pyx", ".rs")


@dataclass
class PackageResult:
    """What `package` wrote."""

    plan: Plan
    out_dir: Path
    files: list[tuple[str, int]]  # (path relative to out_dir, bytes); coldbrew-src counted as one row
    requirements: list[str]
    size_parts: dict[str, int | None] = field(default_factory=dict)  # estimated unzipped bytes per part
    warnings: list[str] = field(default_factory=list)
    checks: list = field(default_factory=list)  # zip-snapstart: coldbrew.deploy.smoke.Check rows, in order
    manifest: object | None = None  # zip-snapstart: the coldbrew.deploy.zipbuild.ZipManifest of function.zip

    @property
    def failed(self) -> bool:
        """True when a check of the built artifact failed (the files are written; the command exits non-zero)."""
        return any(check.failed for check in self.checks)

    @property
    def estimated_bytes(self) -> int | None:
        """Estimated unzipped function size (None if a dependency is not installed here to measure)."""
        sizes = [v for v in self.size_parts.values() if v is not None]
        return sum(sizes) if len(sizes) == len(self.size_parts) else None


def detect_format(path: Path | None, name: str, override: str = "auto") -> str:
    """``brew`` for .brew files (by suffix, or magic bytes when the file is local), else ``pickle``."""
    if path is not None:
        from coldbrew.format import MAGIC

        with open(path, "rb") as fh:
            is_brew = fh.read(len(MAGIC)) == MAGIC
        if (name.endswith(".brew") or override == "brew") and not is_brew:
            # Every serving door refuses such a file; packaging it would ship a function that cannot start.
            raise ColdbrewError(
                f"{name} is not a .brew file (no .brew magic bytes; a pickle named .brew?): compile it with "
                "`coldbrew compile MODEL -o MODEL.brew`, or name a pickle .pkl and use an image setup"
            )
        if override != "auto":
            return override
        return "brew" if is_brew else "pickle"
    if override != "auto":
        return override
    return "brew" if name.endswith(".brew") else "pickle"


def serving_distributions(model_format: str, pyproject: Path | None = None) -> list[str]:
    """Distribution names a function serving ``model_format`` needs, from coldbrew's metadata, dependencies included.

    Args:
        model_format: ``"brew"`` or ``"pickle"``.
        pyproject: coldbrew's ``pyproject.toml`` (default: the source checkout being packaged).

    Returns:
        Names in discovery order: coldbrew's ``dependencies`` and the format's extras (``FORMAT_EXTRAS``), then,
        transitively, what those distributions require as installed here (their own extras and non-matching
        environment markers left out). ``coldbrew`` itself is not listed: it is installed from its source.

    Raises:
        ColdbrewError: the pyproject has no such extra, or a required distribution is not installed here.
    """
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    path = pyproject or source_root() / "pyproject.toml"
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    extras_table: dict[str, list[str]] = project.get("optional-dependencies", {})
    names: list[str] = []
    seen: set[str] = set()

    def extra(name: str) -> None:
        if name not in extras_table:
            raise ColdbrewError(f"{path}: coldbrew has no [{name}] extra")
        for line in extras_table[name]:
            require(Requirement(line))

    def require(req: Requirement) -> None:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            return
        if canonicalize_name(req.name) == "coldbrew":
            for name in sorted(req.extras):
                extra(name)
            return
        key = canonicalize_name(req.name)
        if key in seen:
            return
        seen.add(key)
        names.append(req.name)
        try:
            below = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            raise ColdbrewError(f"{req.name} is not installed here, so its version cannot be pinned") from None
        for line in below:
            require(Requirement(line))

    for line in project.get("dependencies", []):
        require(Requirement(line))
    for name in FORMAT_EXTRAS[model_format]:
        extra(name)
    return names


def pinned_requirements(model_format: str, pyproject: Path | None = None) -> list[str]:
    """``name==version`` lines for :func:`serving_distributions`, pinned to the versions installed here.

    Raises:
        ColdbrewError: a serving distribution is not installed here.
    """
    return [f"{name}=={metadata.version(name)}" for name in serving_distributions(model_format, pyproject)]


def installed_size(dist_name: str) -> int | None:
    """Bytes the installed distribution occupies (its RECORD), or None if it is not installed."""
    try:
        files = metadata.distribution(dist_name).files or []
    except metadata.PackageNotFoundError:
        return None
    total = 0
    for f in files:
        try:
            total += Path(str(f.locate())).stat().st_size
        except OSError:
            pass
    return total


def source_root() -> Path:
    """The coldbrew checkout this module runs from (must hold pyproject.toml naming coldbrew)."""
    import coldbrew

    root = Path(coldbrew.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or not re.search(r'(?m)^name\s*=\s*"coldbrew"', pyproject.read_text()):
        raise ColdbrewError(f"coldbrew package needs a coldbrew source checkout; none found at {root}")
    return root


def has_native_sources(package_dir: Path) -> bool:
    """True if the package contains sources that must be compiled (C, C++, Cython, Rust)."""
    return any(p.suffix in NATIVE_SUFFIXES for p in package_dir.rglob("*") if "__pycache__" not in p.parts)


def copy_source(root: Path, dest: Path) -> int:
    """Copy the installable parts of the checkout at ``root`` to ``dest``; returns bytes copied."""
    dest.mkdir(parents=True)
    for name in SOURCE_ROOT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    shutil.copytree(root / "coldbrew", dest / "coldbrew", ignore=shutil.ignore_patterns(*SOURCE_IGNORE))
    return tree_size(dest)


def tree_size(path: Path) -> int:
    """Total bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class PlanOptions(TypedDict, total=False):
    """The keyword options of :func:`make_plan` (defaults there), which :func:`package` passes on."""

    s3_uri: str | None
    memory: int | str
    timeout: int | float | str
    arch: str
    model_format: str
    warm_route: bool
    auth: str
    cors: list[str] | tuple[str, ...] | None


# Characters that may not appear in a file name written into generated files: control characters (C0, DEL, C1),
# format controls (bidirectional overrides, zero-width), surrogates (undecodable bytes) and line/paragraph
# separators, which YAML and Markdown read as line breaks.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?")


def refuse_control_characters(text: str, what: str) -> None:
    """Raise a one-line ColdbrewError when ``text`` holds a character no generated file may carry."""
    import unicodedata

    for ch in text:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise ColdbrewError(
                f"{what} {text!r} contains the control character U+{ord(ch):04X}; rename it without control "
                "characters (spaces, #, : and any printable Unicode are fine)"
            )


def parse_timeout(value: int | float | str) -> int:
    """``--timeout``: a duration (``30``, ``30s``, ``2m``, ``15m``) in whole seconds within Lambda's 1 s - 15 min."""
    from coldbrew.durations import parse_duration

    seconds = check_lambda_timeout(parse_duration(value, option="--timeout"))
    if seconds != int(seconds) or seconds < 1:
        raise ColdbrewError(f"--timeout {value!r}: Lambda's timeout is whole seconds, 1 s to 15m (900 s)")
    return int(seconds)


def parse_memory(value: int | str) -> int:
    """``--memory``: whole MB within Lambda's 128-10,240 MB (``4500``, ``4500MB``, ``4G``), the sizes parser's rules."""
    return check_lambda_memory(parse_megabytes(value, option="--memory"))


def parse_origins(origins) -> tuple[str, ...]:
    """``--cors``: ``*`` or origins ``https://host[:port]`` (scheme and host, no path), in the order given."""
    found: list[str] = []
    for origin in origins or ():
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ColdbrewError(
                f"--cors {origin!r}: give an origin as a browser sends it (https://app.example.com, "
                "http://localhost:3000, no path) or * for any"
            )
        if origin not in found:
            found.append(origin)
    if "*" in found and len(found) > 1:
        raise ColdbrewError("--cors *: any origin already; drop the other --cors values")
    return tuple(found)


def make_plan(
    model_uri: str,
    setup: str,
    *,
    s3_uri: str | None = None,
    memory: int | str = DEFAULT_MEMORY_MB,
    timeout: int | float | str = DEFAULT_TIMEOUT_S,
    arch: str = "x86_64",
    model_format: str = "auto",
    warm_route: bool = False,
    auth: str = "none",
    cors: list[str] | tuple[str, ...] | None = None,
) -> Plan:
    """Decide where the model lives and how the function reads it; validates the combination.

    ``memory`` is whole MB (``4500`` or ``"4500MB"``), ``timeout`` a duration (``30``, ``"30s"``, ``"2m"``), both
    checked against Lambda's limits; ``cors`` lists the origins the HTTP API allows. A model file name (or S3 key)
    with a control character is refused: every generated file carries it.
    """
    if setup not in SETUPS:
        raise ColdbrewError(f"--setup must be one of {', '.join(SETUPS)}")
    if arch not in ARCHES:
        raise ColdbrewError(f"--arch must be one of {', '.join(ARCHES)}")
    if auth not in AUTH_MODES:
        raise ColdbrewError(f"--auth must be one of {', '.join(AUTH_MODES)}")
    memory = parse_memory(memory)
    timeout = parse_timeout(timeout)
    origins = parse_origins(cors)
    refuse_control_characters(model_uri, "the model file name")
    if s3_uri:
        refuse_control_characters(s3_uri, "--s3-uri")
    if model_uri.startswith("s3://"):
        parse_s3_uri(model_uri)
        if s3_uri and s3_uri != model_uri:
            raise ColdbrewError("MODEL_URI is already an s3:// URI; drop --s3-uri")
        model_path, s3_uri = None, model_uri
    else:
        model_path = Path(model_uri).expanduser().resolve()
        if not model_path.is_file():
            raise ColdbrewError(f"model file not found: {model_uri}")
        if s3_uri:
            parse_s3_uri(s3_uri, setting="--s3-uri")
    model_name = (model_path.name if model_path else (s3_uri or "").rsplit("/", 1)[-1]) or "model"
    if setup == "zip-snapstart" and model_path is not None and not s3_uri:  # before reading or building anything
        model_bytes = model_path.stat().st_size
        if model_bytes >= tpl.ZIP_UNZIPPED_LIMIT:
            raise ColdbrewError(
                f"the model alone is {model_bytes / 1e6:,.0f} MB, over Lambda's 262 MB unzipped limit for zips: "
                "upload it to S3 and pass --s3-uri s3://bucket/key, or use --setup image-s3 or image-disk"
            )
    fmt = detect_format(model_path, model_name, model_format)
    if setup == "zip-snapstart" and fmt != "brew":
        raise ColdbrewError(
            "zip-snapstart serves .brew models only (a pickle needs scikit-learn and scipy, native code over "
            "100 MB): compile it with `coldbrew compile MODEL -o MODEL.brew`, or use --setup image-disk or image-s3"
        )
    if setup == "image-disk":
        if model_path is None:
            raise ColdbrewError("image-disk copies the model into the image: give a local model file, not s3://")
        source = "DISK"
    elif setup == "image-s3":
        if not s3_uri:
            raise ColdbrewError("image-s3 reads the model from S3: give an s3:// MODEL_URI or --s3-uri s3://bucket/key")
        source = "S3"
    else:  # zip-snapstart: inside the zip when local and no S3 location given
        source = "S3" if s3_uri else "DISK"
    uri = f"{tpl.TASK_ROOT}/model/{model_name}" if source == "DISK" else str(s3_uri)
    stem = re.sub(r"[^a-z0-9]+", "-", Path(model_name).stem.lower()).strip("-") or "model"
    return Plan(
        setup=setup,
        name=f"coldbrew-{stem}"[:40].rstrip("-"),
        model_arg=model_uri,
        model_path=model_path,
        model_name=model_name,
        model_format=fmt,
        model_source=source,
        model_uri=uri,
        s3_uri=s3_uri,
        memory=memory,
        timeout=timeout,
        arch=arch,
        native_build=has_native_sources(source_root() / "coldbrew"),
        warm_route=warm_route,
        auth=auth,
        cors=origins,
    )


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ColdbrewError(f"-o {out_dir}: is a file, not a directory; give a new or empty directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise ColdbrewError(f"{out_dir} is not empty (use --force to overwrite the files coldbrew writes there)")
        for sub in ("coldbrew-src", "model"):
            if (out_dir / sub).is_dir():
                shutil.rmtree(out_dir / sub)
    out_dir.mkdir(parents=True, exist_ok=True)


def package(
    model_uri: str,
    setup: str,
    out_dir: Path,
    *,
    force: bool = False,
    smoke: bool = True,
    target_python: str | os.PathLike | None = None,
    **options: Unpack[PlanOptions],
) -> PackageResult:
    """Write the build context, ``template.yaml`` and ``README.md`` for ``setup`` into ``out_dir``.

    ``options`` are :func:`make_plan`'s (``s3_uri``, ``memory``, ``timeout``, ``arch``, ``model_format``,
    ``warm_route``, ``auth``). ``warm_route`` adds ``POST /_warm`` to the HTTP API behind a generated secret; ``auth="iam"`` puts the
    HTTP API behind AWS_IAM authorization (docs/deploy.md, "Deployed doors"). For ``zip-snapstart`` the output is
    ``function.zip`` (built here) and its ``manifest.json``; ``smoke`` runs it from a clean directory first,
    ``target_python`` is the interpreter of the Lambda runtime's version that byte-compiles it
    (:func:`package_zip`).
    """
    plan = make_plan(model_uri, setup, **options)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ColdbrewError(f"-o {out_dir}: is a file, not a directory; give a new or empty directory")
    with _cleaned_on_refusal(out_dir):
        if plan.setup == "zip-snapstart":
            return package_zip(plan, out_dir, force=force, smoke=smoke, target_python=target_python)
        return _package_image(plan, out_dir, force)


@contextlib.contextmanager
def _cleaned_on_refusal(out_dir: Path):
    """Remove what a refused build wrote: ``out_dir`` itself when this run created it, else the entries it added.

    A build that completes but fails a check (the smoke test) keeps its files for inspection: that is not a refusal.
    """
    existed = out_dir.exists()
    before = set(out_dir.iterdir()) if existed else set()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        elif out_dir.is_dir():
            for entry in set(out_dir.iterdir()) - before:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise


def _package_image(plan: Plan, out_dir: Path, force: bool) -> PackageResult:
    """image-disk / image-s3: the Docker build context, template and README."""
    requirements = pinned_requirements(plan.model_format)
    size_parts: dict[str, int | None] = {
        name.split("==")[0]: installed_size(name.split("==")[0]) for name in requirements
    }
    model_bytes = plan.model_path.stat().st_size if plan.model_path and plan.model_in_artifact else 0
    _prepare_out_dir(out_dir, force)
    files: list[tuple[str, int]] = []

    def write(rel: str, text: str) -> None:
        (out_dir / rel).write_text(text)
        files.append((rel, len(text.encode())))

    write("requirements.txt", "\n".join(requirements) + "\n")
    source_bytes = copy_source(source_root(), out_dir / "coldbrew-src")
    size_parts["coldbrew"] = source_bytes
    files.append(("coldbrew-src/", source_bytes))
    if plan.model_in_artifact and plan.model_path is not None:
        (out_dir / "model").mkdir()
        shutil.copyfile(plan.model_path, out_dir / "model" / plan.model_name)
        files.append((f"model/{plan.model_name}", model_bytes))
        size_parts["model"] = model_bytes
    write("Dockerfile", tpl.dockerfile(plan))
    write(".dockerignore", tpl.dockerignore())
    write("template.yaml", tpl.sam_template(plan))
    result = PackageResult(plan, out_dir, files, requirements, size_parts)
    write("README.md", tpl.readme(plan, requirements=requirements, estimate=_estimate_text(result)))
    return result


def zip_dependencies(model_format: str = "brew") -> tuple[list[str], list[str]]:
    """coldbrew's serving dependencies split into (pure Python: vendored into the zip, native: left out).

    Native distributions are built per platform and cannot be copied from this machine into a zip for another;
    the serving path must run without them, which the smoke test proves.
    """
    from coldbrew.deploy import zipbuild

    names = serving_distributions(model_format)
    pure = [n for n in names if zipbuild.is_pure_python(n)]
    return pure, [n for n in names if n not in pure]


NOT_INSPECTED = (
    "the model was not inspected (it is on S3): a model with a softmax output needs numpy, which is vendored only "
    "when the local file is given (MODEL.brew --s3-uri s3://bucket/key)"
)


def model_native_needs(plan: Plan) -> dict[str, str]:
    """Native distributions the zip must vendor for this model (name -> why): numpy for an output computed with numpy (``NUMPY_OUTPUTS``: softmax).

    The zip's C kernel computes every other output without numpy (docs/deploy.md, "Softmax models").
    """
    if plan.model_path is None or plan.model_format != "brew":
        return {}
    from coldbrew.deploy.wheels import NUMPY_REASON
    from coldbrew.format import BrewFile
    from coldbrew.format.spec import NUMPY_OUTPUTS

    output = BrewFile(plan.model_path).header.get("output")  # an unreadable file: ModelFormatError, one line
    return {"numpy": NUMPY_REASON} if output in NUMPY_OUTPUTS else {}


def _zip_parts(manifest) -> dict[str, int | None]:
    """Unzipped bytes per part of the function: coldbrew's code, its kernel, each dependency, the model."""
    parts: dict[str, int | None] = {}
    kernel = "coldbrew/engine/_kernel.abi3.so"
    for entry in manifest.entries:
        if entry.path == manifest.model:
            key = "model"
        elif entry.path == kernel:
            key = "kernel"
        elif entry.path.startswith("coldbrew/"):
            key = "coldbrew"
        else:
            top = entry.path.split("/")[0].removesuffix(".py").removesuffix(".libs")
            key = next((d for d in manifest.dependencies if d.replace("-", "_") == top), top)
        parts[key] = (parts.get(key) or 0) + entry.size
    return parts


def package_zip(
    plan: Plan,
    out_dir: Path,
    *,
    target_python: str | os.PathLike | None = None,
    smoke: bool = True,
    force: bool = False,
) -> PackageResult:
    """zip-snapstart: build ``function.zip`` here, write the SAM template and README, and check the zip.

    The kernel is cross-built for ``plan.arch`` (Zig, manylinux2014); pure-Python dependencies are copied from
    this environment (boto3 is not: Lambda's runtime ships it). Checks, in order: the dependencies left out, the
    size (Lambda's limit is enforced while building; the code beside the model should stay under 2 MB), every
    shared object's ELF machine and glibc symbol versions, and — unless ``smoke`` is False or the model is read
    from S3 — the smoke test (:func:`coldbrew.deploy.smoke.check_zip`): the template's handler run from the
    unzipped files with nothing else on its path, bit-exact with the model's own predictions computed here.
    Every ``.py`` in the zip is byte-compiled for the template's runtime (``target_python``, else an interpreter of
    its version found here; without one the zip ships sources only and the ``bytecode`` check says so), and the
    smoke test runs the handler with that interpreter, so the shipped bytecode is what it imports.

    Raises:
        ColdbrewError: the zip cannot be built (too big, kernel build failed, a dependency missing here,
            ``target_python`` not of the runtime's version).
    """
    from coldbrew.deploy import bytecode, crossbuild, zipbuild
    from coldbrew.deploy import smoke as smoke_mod

    pure, native = zip_dependencies(plan.model_format)
    needs = model_native_needs(plan)
    python, _ = bytecode.find_python(tpl.RUNTIME, target_python)  # a wrong --target-python is refused before building
    _prepare_out_dir(out_dir, force)
    with tempfile.TemporaryDirectory(prefix="coldbrew-kernel-") as tmp:
        crossbuild.build_kernel(plan.arch, tmp)
        manifest = zipbuild.build_function_zip(
            plan.model_path if plan.model_in_artifact else None,
            out_dir,
            plan.arch,
            model_name=f"model/{plan.model_name}",
            dependencies=tuple(pure),
            kernel=Path(tmp) / crossbuild.KERNEL_FILE,
            runtime=tpl.RUNTIME,
            target_python=None if python is None else python.path,
            native=needs,
        )
    files = [(name, (out_dir / name).stat().st_size) for name in ("function.zip", "manifest.json")]
    (out_dir / "template.yaml").write_text(tpl.sam_template(plan))
    result = PackageResult(
        plan,
        out_dir,
        files,
        [f"{d}=={v}" for d, v in manifest.dependencies.items()],
        _zip_parts(manifest),
        manifest=manifest,
    )
    checks = result.checks
    Check = smoke_mod.Check
    pure_deps = {d: v for d, v in manifest.dependencies.items() if d not in manifest.native}
    vendored = ", ".join(f"{d} {v}" for d, v in pure_deps.items()) or "none"
    built = "".join(
        f"; vendored (native, {d} {manifest.dependencies[d]} built for {plan.arch}, {info['wheel']}) for {info['why']}"
        for d, info in manifest.native.items()
    )
    native = [d for d in native if d not in manifest.native]
    left_out = f"; not vendored (native code this model's serving path does not import): {', '.join(native)}"
    left_out = left_out if native else ""
    unknown = "" if plan.model_path is not None else f"; {NOT_INSPECTED}"
    checks.append(
        Check(
            "dependencies",
            "warning" if unknown else "ok",
            f"vendored (pure Python): {vendored}{built}{left_out}; boto3 from the runtime{unknown}",
        )
    )
    pycs = manifest.bytecode
    checks.append(Check("bytecode", "ok" if pycs.included else "warning", pycs.summary()))
    model_bytes = result.size_parts.get("model") or 0
    native_bytes = {d: sum(v or 0 for k, v in result.size_parts.items() if k == d) for d in manifest.native}
    code = manifest.unzipped_bytes - model_bytes - sum(native_bytes.values())
    fits = code <= 2 * 1024 * 1024
    native_text = "".join(f" + {d} {_human(n)} (native, the model needs it)" for d, n in native_bytes.items())
    budget = "model" + "".join(f" + {d}" for d in native_bytes) + " + 2 MB"
    checks.append(
        Check(
            "size",
            "ok" if fits else "warning",
            f"{_human(manifest.unzipped_bytes)} unzipped = model {_human(model_bytes)}{native_text} + code "
            f"{_human(code)} ({'within' if fits else 'over'} {budget}; Lambda's limit 250 MB = "
            f"{zipbuild.LAMBDA_UNZIPPED_LIMIT:,} bytes)",
        )
    )
    if not smoke:
        spec = rows = expected = None
        skip = "--no-smoke"
    elif not plan.model_in_artifact:
        spec = rows = expected = None
        skip = f"the model is read from {plan.s3_uri} at start-up, not from the zip"
    else:
        assert plan.model_path is not None  # model_in_artifact: a local file
        spec = smoke_mod.function_spec(out_dir / "template.yaml")
        rows = smoke_mod.sample_rows(plan.model_path)
        expected = smoke_mod.expected_results(plan.model_path, rows)
        skip = ""
    checks += smoke_mod.check_zip(
        out_dir / "function.zip",
        plan.arch,
        spec=spec,
        rows=rows,
        expected=expected,
        skip_reason=skip,
        python=pycs.interpreter if pycs.included else None,
        native={d: manifest.dependencies[d] for d in manifest.native} or None,
        raw=smoke_mod.raw_scores(plan.model_path, rows) if manifest.native and rows is not None else None,
    )
    (out_dir / "README.md").write_text(
        tpl.readme(
            plan,
            requirements=result.requirements,
            estimate=_human(manifest.unzipped_bytes),
            checks=[(c.name, c.status, c.detail) for c in checks],
            native=list(manifest.native),
        )
    )
    result.files += [(name, (out_dir / name).stat().st_size) for name in ("template.yaml", "README.md")]
    return result


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _estimate_text(result: PackageResult) -> str:
    total = result.estimated_bytes
    return f"~{_human(total)}" if total is not None else "unknown (a dependency is not installed here to measure)"


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> str:
    """Rows as left-aligned columns (the last column unpadded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        indent + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows
    )
