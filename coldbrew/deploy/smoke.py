"""The zip smoke test: unzip ``function.zip`` into a clean directory and run its handler the way Lambda does.

Lambda's managed Python runtime starts ``/var/lang/bin/python`` with the function's code in ``/var/task``
(``LAMBDA_TASK_ROOT``, first on ``sys.path``), its own runtime client in ``/var/runtime``, the standard library,
and nothing else — no site-packages of the machine that built the zip. Here:

- ``x86_64`` on an x86_64 machine: the lab (:mod:`coldbrew.lab`) hosts the handler named by the SAM template
  (``_HANDLER``) in a real ``python -S -B -m awslambdaric`` process whose only import path is the unzipped
  directory, a runtime directory holding ``awslambdaric`` and its dependencies, byte-compiled (like
  ``/var/runtime``), and the standard library; the environment is the template's (``MODEL_SOURCE``,
  ``MODEL_URI`` with ``/var/task`` mapped to the unzipped directory) plus what Lambda defines. One batch
  ``POST /predict`` goes through the lab's HTTP API front door. The interpreter is the runtime's version
  (``python3.12``, the one that byte-compiled the zip) when the zip ships bytecode, with ``awslambdaric``'s
  wheels for that version installed once into the cache (:func:`target_runtime`), so the run imports the shipped
  ``.pyc`` files; otherwise, or when that runtime client cannot be had, this interpreter with
  ``awslambdaric`` copied from this environment (:func:`copy_runtime`), and the check says which ran.
- ``arm64``: every shared object's ELF machine and glibc symbol versions are checked; when
  ``qemu-aarch64-static`` and an arm64 Python root (``COLDBREW_ARM64_PYTHON_ROOT``, made by
  ``.ci/arm64-python``) are present, the stdlib-only runner :mod:`coldbrew.deploy.lambda_invoke` imports the
  handler from the unzipped directory under emulation and invokes it with an HTTP API event built in-process.
  That Python is Debian's 3.11: it does not use the zip's ``cpython-312`` bytecode and compiles the sources in
  memory (``-B``).

Either way the answer must equal, bit for bit, the predictions the packaging process computes with the model's
own predictor (``load_predictor``): every float compared by its exact bits, every label by value.
"""

from __future__ import annotations

import compileall
import json
import math
import os
import platform
import py_compile
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from coldbrew.deploy import bytecode, crossbuild, wheels
from coldbrew.deploy.wheels import cache_root
from coldbrew.errors import ColdbrewError

TASK_ROOT = "/var/task"
# The runtime client Lambda's managed runtime provides (in /var/runtime); copied with its dependencies.
RUNTIME_DISTRIBUTIONS = ("awslambdaric",)
ARM64_ROOT_ENV = "COLDBREW_ARM64_PYTHON_ROOT"
QEMU = {"arm64": "qemu-aarch64-static", "x86_64": "qemu-x86_64-static"}
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
RUNNER = Path(__file__).with_name("lambda_invoke.py")
# -S: no site-packages (and no user site); -B: /var/task is read-only on Lambda, write no bytecode into it (the
# zip's own __pycache__ is still read).
CLEAN_FLAGS = ("-S", "-B")
PIP_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
SMOKE_ROWS = 6


class SmokeError(ColdbrewError):
    """The smoke test could not be set up (not: the function failed it, which is a failed check)."""


@dataclass
class Check:
    """One line of the check table: what was checked, ``ok`` / ``FAILED`` / ``skipped``, and the detail."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        """True when this check found a problem (a skipped check is not a failure)."""
        return self.status == "FAILED"


@dataclass
class FunctionSpec:
    """The function as its SAM template defines it: the handler (``_HANDLER``) and its environment variables."""

    handler: str
    env: dict[str, str] = field(default_factory=dict)


def function_spec(template: str | os.PathLike) -> FunctionSpec:
    """Read ``ModelFunction``'s ``Handler`` and literal environment variables from a SAM ``template.yaml``.

    Variables CloudFormation computes (``!Sub`` and friends, e.g. an S3 URI from parameters or a secret) are left
    out; the smoke test only runs functions whose model is inside the zip.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads CloudFormation's short-form tags (``!Ref``, ``!Sub``...) as plain mappings."""

    def intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
        return {suffix: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None}

    Loader.add_multi_constructor("!", intrinsic)
    try:
        doc = yaml.load(Path(template).read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - SafeLoader
        props = doc["Resources"]["ModelFunction"]["Properties"]
        handler = props["Handler"]
        variables = props.get("Environment", {}).get("Variables", {})
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise SmokeError(f"{template}: no ModelFunction handler to smoke-test ({exc})") from None
    return FunctionSpec(str(handler), {k: str(v) for k, v in variables.items() if isinstance(v, (str, int))})


def lambda_env(spec: FunctionSpec, task_root: Path) -> dict[str, str]:
    """The template's variables with ``/var/task`` mapped to ``task_root``, plus ``LAMBDA_TASK_ROOT``/``_HANDLER``."""
    env = {k: v.replace(TASK_ROOT, str(task_root)) if v.startswith(TASK_ROOT) else v for k, v in spec.env.items()}
    env.update({"LAMBDA_TASK_ROOT": str(task_root), "_HANDLER": spec.handler})
    return env


def unzip(zip_path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract ``zip_path`` into the new, empty directory ``dest``; a member escaping it is refused."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            target = (root / name).resolve()
            if target != root and root not in target.parents:
                raise SmokeError(f"{zip_path}: member {name!r} would land outside the directory it unzips into")
        zf.extractall(root)
    return root


def copy_runtime(dest: str | os.PathLike, distributions: tuple[str, ...] = RUNTIME_DISTRIBUTIONS) -> Path:
    """Copy ``awslambdaric`` and what it requires (transitively) from this environment into ``dest``.

    The copy plays Lambda's ``/var/runtime``: the runtime client the managed runtime provides, not part of the zip.

    Raises:
        SmokeError: a runtime distribution is not installed here.
    """
    from packaging.requirements import Requirement

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    todo, seen = list(distributions), set()
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SmokeError(f"{name} is not installed here: pip install 'coldbrew[deploy]' to smoke-test") from None
        for file in dist.files or ():
            parts = Path(str(file)).parts
            if parts[0].endswith(".dist-info") or parts[0] in ("..", "bin") or "__pycache__" in parts:
                continue
            target = dest / Path(str(file))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dist.locate_file(file), target)  # type: ignore[arg-type]
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    # Lambda's /var/runtime ships its bytecode: without it every start here would compile the runtime client.
    compileall.compile_dir(str(dest), quiet=2, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return dest


def target_runtime(python: bytecode.Interpreter, arch: str, distribution: str = RUNTIME_DISTRIBUTIONS[0]) -> Path:
    """A runtime directory (the ``/var/runtime`` of ``python``'s version): ``awslambdaric`` at the version installed
    here, with its dependencies, as wheels for ``python`` and ``arch``, byte-compiled by ``python``.

    Installed once by pip into the cache (``lambda-runtime/``), then reused.

    Raises:
        SmokeError: ``awslambdaric`` is not installed here (its version is what is fetched) or pip failed
            (offline, no wheel for that Python).
    """
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise SmokeError(
            f"{distribution} is not installed here: pip install 'coldbrew[deploy]' to smoke-test"
        ) from None
    arch = crossbuild.target_for(arch).arch
    final = cache_root() / "lambda-runtime" / f"{python.cache_tag}-{arch}-{distribution}-{version}"
    if (final / distribution.replace("-", "_")).is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{final.name}.", dir=final.parent) as tmp:
        partial = Path(tmp) / "runtime"
        pip = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(partial), "--only-binary=:all:", "--implementation", "cp",
            "--python-version", f"{python.version[0]}.{python.version[1]}", "--platform", PIP_PLATFORMS[arch],
            f"{distribution}=={version}",
        ]  # fmt: skip
        try:
            done = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SmokeError(f"pip could not fetch {distribution} {version} for {python.label}: {exc}") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line]
            why = (lines or ["no output"])[-1][:200]
            raise SmokeError(f"pip could not fetch {distribution} {version} for {python.label}: {why}")
        try:
            bytecode.compile_tree(python, partial)
        except bytecode.BytecodeError as exc:
            raise SmokeError(str(exc)) from None
        try:
            os.replace(partial, final)
        except OSError:  # another build finished first
            if not (final / distribution.replace("-", "_")).is_dir():
                raise
    return final


# ---- rows and the answers they must get ----------------------------------------------------------------------------
def _thresholds(model_path: Path) -> dict[int, list[float]]:
    """Finite split thresholds per feature index, from the ``.brew`` file's nodes (empty if they cannot be read)."""
    try:
        from coldbrew.format import BrewFile

        nodes = BrewFile(model_path).arrays["nodes"]
        pairs = list(zip(list(nodes["feature"]), list(nodes["value"]), strict=True))
    except Exception:  # noqa: BLE001 - rows at thresholds are a refinement; plain rows still test the function
        return {}
    found: dict[int, set[float]] = {}
    for feature, value in pairs:
        if int(feature) >= 0 and math.isfinite(float(value)):
            found.setdefault(int(feature), set()).add(float(value))
    return {k: sorted(v) for k, v in found.items()}


def sample_rows(model_path: str | os.PathLike, n: int = SMOKE_ROWS) -> list[dict[str, Any]]:
    """``n`` request rows for the model: numeric features at, just above and just below its split thresholds,
    categorical ones at small category codes, and (last row) ``null`` for every feature that accepts a missing value.
    """
    from coldbrew.app.contract import contract_of
    from coldbrew.engine import load_predictor

    contract = contract_of(load_predictor(model_path))
    thresholds = _thresholds(Path(model_path))
    rows = []
    for r in range(n):
        row: dict[str, Any] = {}
        for j, name in enumerate(contract.features):
            ts = None if contract.types else thresholds.get(j)  # an input stage: thresholds are not per field
            kind = contract.types[j] if contract.types else "number"
            if kind != "number":  # an input stage's string field: known names, an unseen one; or an unread field
                known = list(contract.categories[j] or ())
                pool = known + ([] if contract.closed[j] else ["unseen-name"])
                row[name] = None if kind == "any" or not pool else pool[r % len(pool)]
                if r == n - 1 and contract.nullable[j]:
                    row[name] = None
                continue
            if contract.categorical[j]:
                value: float | None = float((r + j) % 3)
            elif ts:
                t = ts[(r * 7 + j * 3) % len(ts)]
                value = (t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf))[r % 3]
            else:
                value = float(r - 2)
            if r == n - 1 and contract.nullable[j]:
                value = None
            row[name] = value
        rows.append(row)
    return rows


def raw_scores(model_path: str | os.PathLike | None, rows: list[dict[str, Any]]) -> tuple[str, str, list[list[float]]]:
    """The model's raw scores for ``rows`` as (numpy dtype name, memory order, rows of floats): the softmax's input.

    The order is the library's: ``F`` for HistGradientBoosting, whose ``_raw_predict`` allocates its scores with
    ``order="F"`` (numpy sums the rows of such an array in another order), else ``C``.

    Raw scores are sums of leaf values in a fixed order, the same bits on every CPU; only the softmax after them
    depends on the machine's numpy (:func:`reference_softmax`).
    """
    import numpy as np

    from coldbrew.app.contract import contract_of
    from coldbrew.engine import load_predictor

    assert model_path is not None, "raw scores need the local model file"
    predictor = load_predictor(model_path)
    contract = contract_of(predictor)
    X = _rows(contract, rows)
    predict_raw = getattr(predictor, "predict_raw", None)
    if predict_raw is None:
        raise SmokeError(f"{model_path}: its predictor gives no raw scores")
    raw = np.asarray(predict_raw(X if contract.types else np.array(X)))
    order = "F" if getattr(predictor, "header", {}).get("kind") == "hgb_classifier" else "C"
    return raw.dtype.name, order, raw.tolist()


# The libraries' softmax, operation for operation: scikit-learn's ``utils.extmath.softmax`` (GradientBoosting and
# HistGradientBoosting ``predict_proba``) and scipy's ``special.softmax`` (XGBoost ``multi:softmax``) both subtract
# the row maximum, take numpy's ``exp`` and divide by numpy's row sum. Run by the target's numpy, under emulation.
SOFTMAX_SCRIPT = """
import json, sys
import numpy as np
dtype, order, rows = json.load(sys.stdin)
x = np.array(rows, dtype=dtype, order=order)
x -= np.max(x, axis=1).reshape((-1, 1))
np.exp(x, out=x)
x /= np.sum(x, axis=1).reshape((-1, 1))
print(json.dumps([[float(v) for v in row] for row in x.tolist()]))
"""


def reference_softmax(
    prefix: list[str], numpy_dir: Path, raw: tuple[str, str, list], workdir: Path
) -> list[list[float]]:
    """The library's softmax of ``raw`` computed by the target architecture's numpy under ``prefix`` (qemu).

    Raises:
        SmokeError: the emulated numpy did not answer.
    """
    script = workdir / "reference_softmax.py"
    script.write_text(SOFTMAX_SCRIPT)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONPATH": str(numpy_dir)}
    try:
        done = subprocess.run(
            [*prefix, "-S", "-B", str(script)],
            input=json.dumps(raw),
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SmokeError(f"the emulated numpy could not compute the reference softmax: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise SmokeError(f"the emulated numpy could not compute the reference softmax: {last}")
    return json.loads(done.stdout)


def _with_probabilities(expected: list[dict[str, Any]], proba: list[list[float]]) -> list[dict[str, Any]]:
    """``expected`` with each row's class probabilities replaced, in class order."""
    return [
        {**row, "probabilities": dict(zip(row["probabilities"], p, strict=True))}
        for row, p in zip(expected, proba, strict=True)
    ]


def swap_native(task_root: Path, native: dict[str, str], arch: str, python: tuple[int, int]) -> str:
    """Replace each vendored native distribution in ``task_root`` by its build for CPython ``python``.

    The zip ships builds for the Lambda runtime's CPython; a smoke run on another version (Debian's python3.11
    under qemu) could not import them. The same version's wheel for that interpreter is unpacked in their place.
    Returns a note for the check's detail.
    """
    notes = []
    for name, version in native.items():
        wheel = wheels.fetch_wheel(name, version, arch, python)
        with tempfile.TemporaryDirectory(prefix="coldbrew-swap-") as tmp:
            files = wheels.unpack(wheel, Path(tmp))
            for top in wheels.top_levels(files):
                shutil.rmtree(task_root / top, ignore_errors=True)
                shutil.move(str(Path(tmp) / top), task_root / top)
        notes.append(f"{name} {version} cp{python[0]}{python[1]} in place of the zip's build")
    return ", ".join(notes)


def _as_list(values: Any) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def expected_results(model_path: str | os.PathLike, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``POST /predict`` must answer for ``rows``: the model's own ``predict``/``predict_proba``, computed here.

    Binary: ``{"prediction": label, "probability": P(second class)}``; multiclass: ``{"prediction": label,
    "probabilities": {label: p}}``; regression: ``{"prediction": value}`` (docs/serving.md).
    """
    from coldbrew.app.contract import contract_of
    from coldbrew.engine import load_predictor

    predictor = load_predictor(model_path)
    contract = contract_of(predictor)
    X = _rows(contract, rows)
    predicted = _as_list(predictor.predict(X))
    if contract.task == "anomaly":
        scores = _as_list(predictor.score_samples(X))  # type: ignore[attr-defined]
        decisions = _as_list(predictor.decision_function(X))  # type: ignore[attr-defined]
        return [
            {"prediction": p, "score": s, "decision": d} for p, s, d in zip(predicted, scores, decisions, strict=True)
        ]
    if contract.task == "ranking":
        return [{"score": v} for v in predicted]
    if contract.task == "regression":
        return [{"prediction": v} for v in predicted]
    label_of = contract.label_of()
    labels = [label_of[c] for c in predicted]
    if not contract.probabilities:
        return [{"prediction": y} for y in labels]
    proba = [_as_list(p) for p in _as_list(predictor.predict_proba(X))]
    if contract.task == "binary":
        return [{"prediction": y, "probability": p[1]} for y, p in zip(labels, proba, strict=True)]
    return [
        {"prediction": y, "probabilities": dict(zip(contract.labels or (), p, strict=True))}
        for y, p in zip(labels, proba, strict=True)
    ]


def _rows(contract, rows: list[dict[str, Any]]) -> list[list]:
    """Request rows as the predictor takes them: floats (NaN = missing), or the raw values for an input stage."""
    if contract.types:
        return [[row[f] for f in contract.features] for row in rows]
    return [[math.nan if row[f] is None else float(row[f]) for f in contract.features] for row in rows]


def _bits(value: Any) -> Any:
    """A comparable form in which floats are their exact bits (``float.hex``; ``-0.0`` and NaN told apart)."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bits(v) for v in value]
    return (type(value).__name__, value)


def first_difference(got: Any, expected: list[dict[str, Any]]) -> str | None:
    """None when ``got`` equals ``expected`` bit for bit, else a one-line description of the first difference."""
    if not isinstance(got, list) or len(got) != len(expected):
        return f"expected a list of {len(expected)} results, got {json.dumps(got)[:200]}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if _bits(g) != _bits(e):
            return f"row {i}: got {json.dumps(g)[:150]}, expected {json.dumps(e)[:150]}"
    return None


# ---- the checks ------------------------------------------------------------------------------------------------------
def elf_checks(task_root: Path, arch: str) -> list[Check]:
    """One check per shared object in the unzipped function: ELF machine and glibc symbol versions fit ``arch``.

    coldbrew's kernel must load on manylinux2014 (glibc 2.17, any Lambda runtime). A vendored wheel's objects
    (outside ``coldbrew/``, e.g. numpy's) are checked against the runtime they were fetched for: glibc up to
    Lambda's python3.12 runtime's (``wheels.RUNTIME_GLIBC``), and besides glibc only libstdc++/libgcc_s and
    libraries shipped in the zip itself (``numpy.libs/``).
    """
    import dataclasses

    target = crossbuild.target_for(arch)
    runtime_target = dataclasses.replace(target, glibc=wheels.RUNTIME_GLIBC)
    shipped = {p.name for p in task_root.rglob("*.so*") if p.is_file()}
    checks = []
    groups: dict[str, list[tuple[str, list[str], str, tuple[int, int]]]] = {}  # vendored: top-level dir -> objects
    for path in sorted(p for p in task_root.rglob("*.so*") if p.is_file() and _is_shared_object(p)):
        rel = path.relative_to(task_root).as_posix()
        vendored = not rel.startswith("coldbrew/")
        want = runtime_target if vendored else target
        try:
            report = crossbuild.inspect_elf(path)
        except crossbuild.CrossBuildError as exc:
            checks.append(Check(f"ELF {rel}", "FAILED", str(exc)))
            continue
        if vendored:
            report.needed = [lib for lib in report.needed if lib not in shipped and lib not in wheels.SYSTEM_LIBRARIES]
        problems = report.problems(want, kernel=not vendored)
        newest = report.newest_glibc or (0, 0)
        if vendored:
            top = rel.split("/", 1)[0].removesuffix(".libs")
            groups.setdefault(top, []).append((rel, problems, report.machine, newest))
            continue
        if report.glibc_versions:
            symbol, (major, minor) = max(report.glibc_versions.items(), key=lambda item: item[1])
            glibc = f"newest glibc symbol {symbol}@GLIBC_{major}.{minor}"
        else:
            glibc = "no versioned glibc symbol"
        need = f"{report.machine}, {glibc} (target glibc {want.glibc[0]}.{want.glibc[1]})"
        checks.append(Check(f"ELF {rel}", "FAILED" if problems else "ok", "; ".join(problems) or need))
    for top, objects in sorted(groups.items()):
        bad = [f"{rel}: {'; '.join(problems)}" for rel, problems, _, _ in objects if problems]
        newest = max(glibc for *_, glibc in objects)
        machine = objects[0][2]
        ok = (
            f"{len(objects)} shared objects, {machine}, newest glibc symbol version {newest[0]}.{newest[1]} "
            f"(target: Lambda {'.'.join(map(str, wheels.RUNTIME_GLIBC))}), needing only glibc, "
            "libstdc++/libgcc_s and libraries in the zip"
        )
        checks.append(Check(f"ELF {top} (vendored)", "FAILED" if bad else "ok", "; ".join(bad)[:400] or ok))
    if not checks:
        checks.append(Check("ELF", "ok", "no shared objects in the zip"))
    return checks


def _is_shared_object(path: Path) -> bool:
    """``*.so`` and versioned ``*.so.N`` files."""
    return path.suffix == ".so" or ".so." in path.name


def _log_tail(log: Path) -> str:
    """The most telling line of the function's output: the last error line, else the last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or [""])[-1][:300]


def clean_env(
    spec: FunctionSpec, task_root: Path, runtime: Path, python: bytecode.Interpreter | None = None
) -> dict[str, str]:
    """The clean interpreter's environment: the template's variables, the import path (the unzipped directory and
    the runtime directory) and ``AWS_EXECUTION_ENV`` naming the interpreter's version, as Lambda sets it."""
    major, minor = python.minor if python else sys.version_info[:2]
    env = lambda_env(spec, task_root)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(task_root), str(runtime)]),
            "LAMBDA_RUNTIME_DIR": str(runtime),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{major}.{minor}",
        }
    )
    return env


def run_in_lab(
    task_root: Path,
    spec: FunctionSpec,
    rows: list,
    workdir: Path,
    timeout: float = 60.0,
    python: bytecode.Interpreter | None = None,
    runtime: Path | None = None,
) -> tuple[int, Any, str]:
    """Host the handler in the lab with a clean interpreter (``python``, default this one); one ``POST /predict``.

    ``runtime`` is the runtime directory for ``python`` (default: :func:`copy_runtime` from this environment).
    Returns (HTTP status, parsed JSON body or raw text, the function's most telling log line).
    """
    from coldbrew.lab import Lab, LabConfig

    runtime = runtime or copy_runtime(workdir / "runtime")
    log = workdir / "function.log"
    config = LabConfig(
        handler=spec.handler,
        task_root=task_root,
        env=clean_env(spec, task_root, runtime, python),
        python=[python.path if python else sys.executable, *CLEAN_FLAGS],
        max_concurrency=1,
        report=False,
        function_output=log,
        init_timeout=timeout,
        timeout=timeout,
    )
    body = json.dumps(rows).encode()
    with Lab(config) as lab:
        request = urllib.request.Request(
            lab.url + "/predict", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, parsed, _log_tail(log)


def emulator(arch: str) -> tuple[list[str] | None, str]:
    """The command prefix running ``arch``'s Python under qemu, or None and why it cannot."""
    qemu = shutil.which(QEMU.get(arch, ""))
    root = os.environ.get(ARM64_ROOT_ENV) if arch == "arm64" else None
    if arch != "arm64":
        return None, f"no emulated run for {arch}"
    if qemu is None:
        return None, f"{QEMU[arch]} not found (apt-get install qemu-user-static)"
    if not root:
        return None, f"{ARM64_ROOT_ENV} is not set (create the root with .ci/arm64-python DIR)"
    python = Path(root) / "usr" / "bin" / "python3.11"
    if not python.is_file():
        return None, f"{python} not found ({ARM64_ROOT_ENV} must be a root made by .ci/arm64-python)"
    return [qemu, "-L", root, str(python)], ""


def run_emulated(
    prefix: list[str], task_root: Path, spec: FunctionSpec, rows: list, workdir: Path, timeout: float = 120.0
) -> tuple[int, Any, str]:
    """Invoke the handler once under ``prefix`` (qemu + arm64 python) with the stdlib-only runner.

    Returns (status code of the handler's response, parsed body, the most telling output line).
    """
    result_path, log = workdir / "emulated.json", workdir / "emulated.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "coldbrew-smoke",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "4500",
        **lambda_env(spec, task_root),
    }
    runner = workdir / RUNNER.name  # outside the task root, like the runtime's own bootstrap
    shutil.copyfile(RUNNER, runner)
    with log.open("wb") as out:
        try:
            subprocess.run(
                [*prefix, *CLEAN_FLAGS, str(runner), str(task_root), spec.handler, str(result_path)],
                input=json.dumps(rows).encode(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=task_root,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 0, None, f"no answer within {timeout:g} s"
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        return 0, None, _log_tail(log) or "the runner wrote no result"
    if "error" in result:
        return 0, None, result["error"]
    response = result["response"]
    try:
        return int(response["statusCode"]), json.loads(response["body"]), _log_tail(log)
    except (KeyError, TypeError, ValueError):
        return 0, None, f"not an HTTP API response: {json.dumps(response)[:200]}"


def wheels_runtime() -> tuple[int, int]:
    """The Lambda runtime's CPython version the zip's native builds are for (the SAM template's runtime)."""
    from coldbrew.deploy.zipbuild import DEFAULT_RUNTIME, runtime_version

    return runtime_version(DEFAULT_RUNTIME)


def _lab_python(python: str | os.PathLike | None, arch: str) -> tuple[bytecode.Interpreter | None, Path | None, str]:
    """The lab's interpreter and runtime directory for ``python`` (None, None: this one, with :func:`copy_runtime`),
    and a note for the check's detail when ``python`` was asked for but cannot be used."""
    if python is None:
        return None, None, ""
    interpreter = bytecode.probe(python)
    if interpreter is None:
        return None, None, f" (not {python}: it does not run here)"
    if interpreter.minor == sys.version_info[:2]:
        return interpreter, None, ", the zip's bytecode"
    try:
        return interpreter, target_runtime(interpreter, arch), ", the zip's bytecode"
    except SmokeError as exc:
        return None, None, f" (not {interpreter.label}: {exc})"


def _answer_check(
    name: str, status: int, body: Any, note: str, expected: list, how: str, against: str = "load_predictor here"
) -> Check:
    if status != 200:
        detail = f"HTTP {status}" if status else "no response"
        shown = body.get("error") if isinstance(body, dict) else None
        # The body of a 500 says only "internal server error": the function's own last error line says why.
        said = "; ".join(dict.fromkeys(str(part) for part in (shown, note) if part)) or str(body)
        return Check(name, "FAILED", f"{detail}: {said}"[:400])
    difference = first_difference(body, expected)
    if difference:
        return Check(name, "FAILED", f"{how}: {difference}")
    return Check(name, "ok", f"{how}: {len(expected)} rows bit-exact with {against}")


def check_zip(
    zip_path: str | os.PathLike,
    arch: str,
    *,
    spec: FunctionSpec | None = None,
    rows: list[dict[str, Any]] | None = None,
    expected: list[dict[str, Any]] | None = None,
    skip_reason: str = "",
    workdir: str | os.PathLike | None = None,
    python: str | os.PathLike | None = None,
    native: dict[str, str] | None = None,
    raw: tuple[str, str, list] | None = None,
) -> list[Check]:
    """Unzip ``zip_path`` into a clean directory, check its shared objects for ``arch`` and run its handler.

    With ``spec`` (the template's handler and environment), ``rows`` go as one ``POST /predict`` batch and the
    answer must be ``expected`` bit for bit. The run is the lab with a clean interpreter when ``arch`` is this
    machine's, qemu with the stdlib-only runner for arm64 when available (``COLDBREW_ARM64_PYTHON_ROOT``), else a
    ``skipped`` check saying why; without ``spec`` the run is a ``skipped`` check giving ``skip_reason``.
    ``python`` is the interpreter of the runtime's version that byte-compiled the zip: the lab runs the handler
    with it (and ``awslambdaric`` for it, :func:`target_runtime`), so the shipped bytecode is what is imported;
    without it, or when its runtime client cannot be had, the lab uses this interpreter and the check says so.
    ``native`` (name -> version) lists the zip's vendored native distributions (numpy for a softmax model): a run
    by an interpreter of another version than the runtime's swaps in that version's build (:func:`swap_native`,
    said in the detail). ``raw`` (:func:`raw_scores`) marks a softmax model: under emulation its expected
    probabilities are the libraries' softmax computed by the target's own numpy (:func:`reference_softmax`), since
    numpy's ``exp`` differs between CPUs.
    Returns the checks in order: one per shared object, then the run.
    """
    with tempfile.TemporaryDirectory(prefix="coldbrew-smoke-", dir=workdir) as tmp:
        work = Path(tmp)
        task_root = unzip(zip_path, work / "task")
        checks = elf_checks(task_root, arch)
        if spec is None or rows is None or expected is None:
            checks.append(Check("smoke", "skipped", skip_reason or "no handler to run"))
            return checks
        host = HOST_ARCH.get(platform.machine().lower())
        against = "load_predictor here"
        if host == crossbuild.target_for(arch).arch:
            interpreter, runtime, fallback = _lab_python(python, arch)
            minor: tuple[int, int] = interpreter.minor if interpreter else (sys.version_info[0], sys.version_info[1])
            version = ".".join(map(str, minor))
            swapped = ""
            if native and minor != wheels_runtime():
                try:
                    swapped = ", " + swap_native(task_root, native, arch, minor)
                except ColdbrewError as exc:
                    checks.append(Check("smoke", "FAILED", f"could not run the handler: {exc}"))
                    return checks
            how = f"lab, python{version} {' '.join(CLEAN_FLAGS)} -m awslambdaric {spec.handler}{fallback}{swapped}"
            try:
                status, body, note = run_in_lab(task_root, spec, rows, work, python=interpreter, runtime=runtime)
            except ColdbrewError as exc:  # the runtime client is missing here, or the lab could not start
                checks.append(Check("smoke", "FAILED", f"could not run the handler: {exc}"))
                return checks
        else:
            prefix, why = emulator(arch)
            if prefix is None:
                checks.append(Check("smoke", "skipped", f"emulated run skipped: {why}"))
                return checks
            how = f"qemu {arch}, python3.11 -S, {spec.handler} imported from the unzipped dir (3.11: no bytecode used)"
            if native:
                try:
                    how += ", " + swap_native(task_root, native, arch, (3, 11))
                    if raw is not None:
                        expected = _with_probabilities(expected, reference_softmax(prefix, task_root, raw, work))
                        against = f"the library's softmax by {arch} numpy (labels: load_predictor here)"
                except ColdbrewError as exc:
                    checks.append(Check("smoke", "FAILED", f"could not run the handler: {exc}"))
                    return checks
            status, body, note = run_emulated(prefix, task_root, spec, rows, work)
        checks.append(_answer_check("smoke", status, body, note, expected, how, against))
        return checks
