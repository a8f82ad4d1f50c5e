"""The layer rule, read from the source with ``ast`` (imports inside functions count too).

Base modules (``coldbrew/errors.py``, ``durations.py``, ``sizes.py``, ``pairs.py``, ``atomicfile.py``) import only the standard
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
    "coldbrew.sizes",
    "coldbrew.pairs",
    "coldbrew.atomicfile",
    "coldbrew.records",
    "coldbrew.jsonlite",
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


# ------------------------------------------------------------------------------ no circles inside a package


def import_circles(package: str, files: dict[str, Path] | None = None) -> list[list[str]]:
    """The import circles among ``coldbrew.<package>``'s modules (imports inside functions count), each sorted.

    An edge is a module importing another module of the same package; importing one's own enclosing package
    (``coldbrew.engine`` from ``coldbrew.engine.brew``) is not one, as Python imports it first anyway. A circle
    is a strongly connected component of more than one module (Tarjan's algorithm).
    """
    prefix = f"coldbrew.{package}"
    files = files if files is not None else {m: p for m, p in modules() if m == prefix or m.startswith(prefix + ".")}
    graph = {
        module: {
            dst
            for dst in coldbrew_imports(module, path) | _local_imports(module, path, files)
            if dst in files and dst != module and not module.startswith(dst + ".")
        }
        for module, path in files.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def _local_imports(module: str, path: Path, files: dict[str, Path]) -> set[str]:
    """``coldbrew_imports`` for modules outside the installed tree (the checker's own test): names in ``files``."""
    if path.is_relative_to(ROOT):
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names & set(files)


def packages() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules([str(ROOT)]) if info.ispkg)


@pytest.mark.parametrize("package", packages())
def test_no_import_circle_inside_a_package(package):
    assert import_circles(package) == []


def test_the_circle_check_sees_a_lazy_circle(tmp_path):
    """Not vacuous: a circle closed by an import inside a function is found; a one-way import is not a circle."""
    (tmp_path / "a.py").write_text("import coldbrew.fake.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from coldbrew.fake.c import g\n")
    (tmp_path / "c.py").write_text("def g():\n    from coldbrew.fake import a\n")
    (tmp_path / "d.py").write_text("from coldbrew.fake import a\n")
    files = {f"coldbrew.fake.{n}": tmp_path / f"{n}.py" for n in "abcd"}
    assert import_circles("fake", files) == [["coldbrew.fake.a", "coldbrew.fake.b", "coldbrew.fake.c"]]
