"""Claims in README.md and docs/ that are prose, not commands, checked against what the code does.

Each test reads the claim from the page (so a changed page is checked again) and measures the behaviour with
something other than the code that produces it where it can.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9_.-]+", req)[0])


@pytest.mark.integration
def test_readme_durations_are_accepted_by_every_duration_option():
    """README: every duration option takes the grammar it shows (`--run-time` rejected 500ms and 1.5s before)."""
    sentence = re.search(r"Go-style[^(]*\((.*?)\)", _text(README), re.DOTALL)
    assert sentence, "README states the duration grammar"
    examples = re.findall(r"`([^`]+)`", sentence[1])
    assert {"500ms", "1.5s", "1h30m"} <= set(examples)
    from coldbrew.lab import LabConfig

    for example in examples:
        LabConfig(timeout=example, idle_timeout=example, init_timeout=example)  # raises ConfigError if refused
        # loadtest parses --run-time before it looks for the host: an unreachable host means the duration parsed
        # (a load test shorter than locust's 1 s resolution may still be refused as a value, not as grammar).
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "coldbrew",
                "loadtest",
                "--host",
                "http://127.0.0.1:9",
                "--run-time",
                example,
                "--out",
                "/nonexistent-never-written",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert "cannot reach" in result.stderr or "must be at least 1s" in result.stderr, (example, result.stderr)


def _expanded_extras(project: dict) -> dict[str, set[str]]:
    """Each extra's requirement names, with ``coldbrew[a,b]`` self-references expanded."""
    raw = project["optional-dependencies"]

    def expand(name: str, seen: frozenset = frozenset()) -> set[str]:
        names = set()
        for req in raw.get(name, []):
            self_ref = re.fullmatch(r"coldbrew\[([^\]]+)\].*", req.strip())
            if self_ref:
                for sub in self_ref[1].split(","):
                    if sub.strip() not in seen:
                        names |= expand(sub.strip(), seen | {name})
            else:
                names.add(_requirement_name(req))
        return names

    return {name: expand(name) for name in raw}


IMPORTED_AS = {"lignum": ["pylignum"]}  # import name -> distribution, where they differ and it may be absent


def test_readme_names_the_extras_the_bench_scripts_need():
    """README, "Measured results": the extras it names provide every package a bench/ script imports beyond the
    core dependencies (brew_vs_pickle.py's skl2onnx and onnxruntime were in no documented install)."""
    project = tomllib.loads(_text(REPO / "pyproject.toml"))["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = _expanded_extras(project)
    readme = _text(README)
    paragraph = readme[readme.index("## Measured results") :].split("\n## ")[0]
    named = set(re.findall(r"\[([a-z0-9,]+)\]", paragraph))
    provided = core | {req for group in named for name in group.split(",") for req in extras.get(name, set())}
    dists = packages_distributions()
    checked = 0
    for script in sorted((REPO / "bench").glob("*.py")):
        modules = set()
        for node in ast.walk(ast.parse(_text(script))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
        third_party = modules - set(sys.stdlib_module_names) - {"coldbrew", "__future__"}

        def provided_by(names: set[str], module: str) -> bool:
            # by the installed distribution's name, or by the module's own (xgboost is installed as xgboost-cpu)
            # (pylignum imports as lignum: named here, since in a venv without the peers nothing maps it)
            distributions = dists.get(module, []) or IMPORTED_AS.get(module, [])
            return bool({_norm(d) for d in distributions} & names) or _norm(module) in names

        checked += any(not provided_by(core, m) for m in third_party)
        missing = sorted(m for m in third_party if not provided_by(provided, m))
        assert not missing, f"bench/{script.name} imports {missing}; the README's install names only {named}"
    assert checked >= 1  # brew_vs_pickle.py compares with ONNX Runtime


@pytest.mark.integration
def test_architecture_names_every_package_the_lambda_path_imports(tiny_brew):
    """docs/architecture.md: `import coldbrew.aws` with a .brew loads these packages and the standard library."""
    # What the import adds to the interpreter's start-up modules (site hooks of this machine load their own).
    code = (
        "import sys, json; before = set(sys.modules); import coldbrew.aws; "
        "added = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(json.dumps(sorted(added - set(sys.stdlib_module_names))))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MODEL_URI": str(tiny_brew), "MODEL_SOURCE": "DISK"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1])) - {"coldbrew"}
    page = _text(DOCS / "architecture.md")
    claim = re.search(r"`import coldbrew\.aws` with a\s+`\.brew` model loads (.*?), nothing else", page, re.DOTALL)
    assert claim
    named = {name for name in loaded if re.search(rf"\b{name.replace('_', '[-_]')}\b", claim[1])}
    assert named == loaded, f"loaded {sorted(loaded)}; the page names {sorted(named)}"


def test_demo_model_cache_is_where_serving_md_says(tmp_path, monkeypatch):
    """docs/serving.md: `coldbrew demo` trains into `$COLDBREW_CACHE/models` (not `$COLDBREW_CACHE` itself)."""
    from coldbrew.experiment import demo

    monkeypatch.setenv("COLDBREW_CACHE", str(tmp_path))
    models = demo.ensure_models(pickle_only=True)
    where = models["pickle"].parent.relative_to(tmp_path)
    page = _text(DOCS / "serving.md")
    section = page[page.index("## `coldbrew demo`") :]
    cited = re.findall(r"`\$COLDBREW_CACHE([^`]*)`", section)
    assert cited and all(c.strip("/") == str(where) for c in cited), (cited, where)


def _markdown_rows(text: str, header_start: str) -> list[list[str]]:
    """The body rows of the first Markdown table whose header line starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _shown(value) -> str:
    return "—" if value is None else f"{int(value):,}"


def test_experiment_md_lists_every_reference_row():
    """docs/experiment.md, "Reference rows": the table is exactly what --with-study appends."""
    from coldbrew.experiment.published import study_reference_rows

    page = _text(DOCS / "experiment.md")
    section = page[page.index("### Reference rows") :]
    documented = _markdown_rows(section, "| setup | model_size | source |")
    keys = ("n", "mean", "p25", "p50", "p75", "p95", "p99", "max")
    actual = [
        [g["setup"], g["model_size"], g["reference"], *(_shown(g[k]) for k in keys)] for g in study_reference_rows()
    ]
    assert documented == actual


@pytest.mark.integration
def test_experiment_md_report_example_prints_the_table_shown(tiny_model):
    """docs/experiment.md: `coldbrew report tests/data --format markdown` gives the rows printed under it."""
    page = _text(DOCS / "experiment.md")
    section = page[page.index("$ coldbrew report tests/data --format markdown") :]
    shown = _markdown_rows(section, "| setup | model_size | n |")
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "report", "tests/data", "--format", "markdown"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    printed = _markdown_rows(result.stdout, "| setup | model_size | n |")
    assert shown == printed


CITED_PATH = re.compile(r"(?<![\w./~$-])((?:[\w.-]+/)+[\w.-]+\.(?:md|py|txt|csv|json|c|j2|toml|gz))(?![\w.])")


@pytest.mark.parametrize(
    "page",
    [
        README,
        *sorted(DOCS.glob("*.md")),
        *sorted((REPO / "coldbrew").rglob("*.py")),
        *sorted((REPO / "tests").rglob("*.py")),
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_cited_repository_files_exist(page):
    """A page or module citing a file of the repository by its path (e.g. `shared/seed-logs/README.md`) finds it."""
    if page == Path(__file__).resolve():
        pytest.skip("this module names a missing path as its example")
    missing = []
    for cited in set(CITED_PATH.findall(_text(page))):
        if any(part in cited for part in ("PREFIX", "NAME", "SETUP", "{", "<", "*")):
            continue
        top = cited.split("/")[0]
        if (
            top in {"docs", "bench", "tests", "coldbrew", "shared", ".ci"}
            and not (REPO / cited).exists()
            and not (page.parent / cited).exists()
        ):
            missing.append(cited)
    assert missing == [], f"{page.relative_to(REPO)} cites files that are not in the repository: {missing}"
