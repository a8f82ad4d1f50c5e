"""The Lambda handler's init and first invocation import only what serving a .brew model needs (issue #25).

In a fresh ``python -S`` process (no site-packages: nothing imported before the handler but the interpreter's own
start-up, and nothing on the path but this checkout, as in the zip), ``import coldbrew.aws`` (Lambda's init, the
model loaded) and one invocation with an HTTP API event: every module that appeared in ``sys.modules`` must be on
the allow-list below. JSON is needed, but not the ``json`` package: its C scanner and encoder (``_json``) are what
parse and write, and json's ``re``, ``enum``, ``functools`` and ``collections`` are 12 ms of a 11 ms bare start
(coldbrew.jsonlite); the ``.brew`` reader needs ``math`` and ``array`` (imported without ``collections``:
coldbrew.engine.buffers), and ``mmap`` for a file above 64 KiB (a smaller one is read: the tiny model here imports no mmap); ``struct`` (the preamble is
read with ``int.from_bytes``), ``typing``, ``pathlib``, ``importlib.util``, ``logging``, ``urllib``, ``base64``,
``contextlib``, ``dataclasses``, ``wsgiref`` and apig-wsgi are not: each cost milliseconds of the cold start
(bench/results/floor.md). Also: ``base64`` is imported only by an event whose body is base64, ``urllib.parse``
only by an event with query parameters to re-encode (REST, ALB), ``coldbrew.app.openapi`` only by the first
``GET /openapi.json`` (the document is built then), and a 404 imports nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import apig_wsgi
import pytest

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"

#: Modules the handler may add to a bare interpreter besides its own: JSON's C core and what the .brew reader needs.
ALLOWED = {
    # the standard library's C JSON scanner and encoder (coldbrew.jsonlite drives them: no json, re, enum,
    # functools or collections; a refused request imports json for its message)
    "_json",
    # the .brew reader (mmap: files above 64 KiB) and the C kernel's buffers (array, imported without collections)
    "mmap", "math", "array",
    # `from __future__ import annotations`, a few hundred bytes; gc, built into the interpreter (coldbrew.aws pauses it)
    "__future__", "gc",
    # the C accessor of NamedTuple fields (coldbrew.records), built into the interpreter; itertools too (format.spec)
    "_collections", "itertools",
}  # fmt: skip
#: coldbrew's modules on the serving path of a .brew model.
SERVING = {
    "coldbrew", "coldbrew.errors", "coldbrew.records", "coldbrew.jsonlite", "coldbrew.aws",
    "coldbrew.runtimes", "coldbrew.runtimes.aws_lambda", "coldbrew.runtimes.lambda_http",
    "coldbrew.app", "coldbrew.app.wsgi", "coldbrew.app.contract", "coldbrew.app.validation",
    "coldbrew.app.startup",
    "coldbrew.sources", "coldbrew.sources.config", "coldbrew.sources.fetch",
    "coldbrew.engine", "coldbrew.engine.buffers", "coldbrew.engine.inputs", "coldbrew.engine.brew", "coldbrew.engine._kernel",
    "coldbrew.engine.members",
    "coldbrew.format", "coldbrew.format.reader", "coldbrew.format.spec",
    # a model with an input stage (format version 3) also imports these two (standard library only)
    "coldbrew.format.stage", "coldbrew.engine.stage",
}  # fmt: skip

# ``os`` first: every interpreter started without -S has it (site imports it), Lambda's runtime client too.
CHILD = """
import os, sys
before = set(sys.modules)
import coldbrew.aws
after_init = set(sys.modules)
response = coldbrew.aws.handler({event!r}, None)
after_invoke = set(sys.modules)
collecting = __import__("gc").isenabled()  # coldbrew.aws pauses the collector for its init only
sys.stdout.write("\\n" + repr((response["statusCode"], sorted(after_init - before), sorted(after_invoke - before), collecting)))
"""


def run_handler(model: Path, event: dict) -> tuple[int, set[str], set[str]]:
    """(status, modules new after init, modules new after the first invocation) in a fresh ``python -S``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "COLDBREW_", "PYTHON"))}
    # This checkout, then where apig-wsgi is installed (the zip vendors it beside coldbrew): findable, not imported.
    path = [str(REPO), str(Path(apig_wsgi.__file__).parents[1])]
    env.update(MODEL_SOURCE="DISK", MODEL_URI=str(model), PYTHONPATH=os.pathsep.join(path))
    out = subprocess.run(
        [sys.executable, "-S", "-c", CHILD.format(event=event)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    status, init, invoke, collecting = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's repr
    assert collecting, "the garbage collector must be on again after the init"
    return status, set(init), set(invoke)


def _brought_by(module: str) -> set[str]:
    """The modules ``import MODULE`` adds to a bare ``python -S`` (for a handler that needs it on some events)."""
    code = f"import os, sys; before = set(sys.modules); import {module}; print(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(eval(out.stdout))  # noqa: S307 - our own child's repr


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.integration
def test_init_and_first_invocation_import_only_the_allow_list(tiny_brew):
    status, init, invoke = run_handler(tiny_brew, _event("http-v2-predict.json"))
    assert status == 200
    assert "coldbrew.engine._kernel" in invoke, "the C kernel must be built for the numpy-free path"
    assert tiny_brew.stat().st_size <= 64 * 1024 and not {"mmap", "struct"} & invoke, "a small file is read, not mapped"
    assert init <= invoke
    assert sorted(invoke - ALLOWED - SERVING) == []


@pytest.mark.integration
@pytest.mark.parametrize(
    "name, status",
    [("rest-v1-predict.json", 200), ("alb-multivalue-root.json", 200), ("http-v2-unknown-route.json", 404)],
)
def test_every_front_door_stays_on_the_allow_list(tiny_brew, name, status):
    """REST (multi-value headers), ALB with query parameters (which do need urllib.parse) and a 404."""
    got, _, invoke = run_handler(tiny_brew, _event(name))
    assert got == status
    extra = _brought_by("urllib.parse") if "alb-multivalue" in name else set()
    assert sorted(invoke - ALLOWED - SERVING - extra) == []


@pytest.mark.integration
def test_base64_is_imported_only_for_a_base64_body(tiny_brew):
    _, _, plain = run_handler(tiny_brew, _event("http-v2-predict.json"))
    status, _, encoded = run_handler(tiny_brew, _event("http-v2-predict-base64.json"))
    assert status == 200
    assert "base64" not in plain and "base64" in encoded
