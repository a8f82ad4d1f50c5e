"""The layer rule, read from the source with ``ast`` (imports inside functions count too).

Base modules (``coldbrew/errors.py``, ``durations.py``, ``pairs.py``, ``atomicfile.py``) import only the standard
library and each other. The serving layers form a line ``format`` <- ``engine`` <- ``sources`` <- ``app`` <-
``runtimes``: each imports only the base and the layers before it, and none imports the tools (``experiment``,
``deploy``, ``convert``, ``commands``, ``cli``) or the lab. The lab imports none of the serving layers (it hosts
any handler in child processes). docs/architecture.md has the map.
"""

from __future__ import annotations

import ast
import inspect
import pkgutil
from pathlib import Path

import pytest

import coldbrew
import coldbrew.errors

ROOT = Path(coldbrew.__file__).parent
BASE = {
    "coldbrew",
    "coldbrew.errors",
    "coldbrew.durations",
    "coldbrew.pairs",
    "coldbrew.atomicfile",
    "coldbrew.records",
}
SERVING = ["format", "engine", "sources", "app", "runtimes"]
TOOLS = {"experiment", "deploy", "convert", "commands", "cli", "__main__", "lab", "data"}


def room(module: str) -> str:
    """``coldbrew.engine.brew`` -> ``engine``; base modules -> ``base``; ``coldbrew.aws`` -> ``runtimes``."""
    if module in BASE:
        return "base"
    part = module.split(".")[1]
    return "runtimes" if part == "aws" else part


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def coldbrew_imports(module: str, path: Path) -> set[str]:
    """Every ``coldbrew...`` module ``path`` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from coldbrew import app`
    known = {name for name, _ in modules()}
    return {n for n in names if n in known}


def allowed(src: str, dst: str) -> bool:
    if dst == "base" or src == dst:
        return True
    if src == "base":
        return False
    if src in SERVING:
        return dst in SERVING and SERVING.index(dst) < SERVING.index(src)
    if src == "lab":
        return False  # the lab stands alone beside the serving code (base modules only)
    return src in TOOLS  # the tools may use everything


@pytest.mark.parametrize("module, path", modules(), ids=[m for m, _ in modules()])
def test_no_module_imports_a_later_layer(module, path):
    src = room(module)
    bad = sorted(dst for dst in coldbrew_imports(module, path) if not allowed(src, room(dst)))
    assert not bad, f"{module} ({src}) may not import {bad}"


def test_every_package_says_what_it_holds_and_may_import():
    for info in pkgutil.iter_modules([str(ROOT)]):
        if info.ispkg and info.name != "data":
            doc = (ROOT / info.name / "__init__.py").read_text(encoding="utf-8")
            assert ast.get_docstring(ast.parse(doc)), f"coldbrew/{info.name}/__init__.py has no docstring"
            assert "import" in ast.get_docstring(ast.parse(doc)), f"coldbrew.{info.name}: say what it may import"


def test_the_checker_sees_a_violation(tmp_path):
    """The rule is not vacuous: a serving module importing the lab, a lazy import included, is caught."""
    fake = tmp_path / "engine_bad.py"
    fake.write_text("def f():\n    from coldbrew.lab import Lab\n    import coldbrew.app.wsgi\n")
    found = coldbrew_imports("coldbrew.engine.bad", fake)
    assert {"coldbrew.lab", "coldbrew.app.wsgi"} <= found
    assert not allowed("engine", room("coldbrew.lab")) and not allowed("engine", room("coldbrew.app.wsgi"))


def test_every_exception_a_user_can_cause_is_a_coldbrew_error():
    """Exception classes defined in coldbrew's importable modules all derive from ColdbrewError."""
    import importlib

    offenders, checked = [], set()
    for module, _ in modules():
        if module in ("coldbrew.aws", "coldbrew.__main__", "coldbrew.experiment.locustfile"):
            continue  # importing these runs Lambda's init / the CLI / locust's gevent patching
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue  # an optional dependency missing here
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == module and issubclass(cls, BaseException):
                checked.add(cls.__name__)
                if not issubclass(cls, coldbrew.errors.ColdbrewError):
                    offenders.append(f"{module}.{cls.__name__}")
    assert not offenders
    assert {"InitFailure", "Throttled", "WarmRequestError", "MalformedHttpRequest", "InvalidRequest"} <= checked
