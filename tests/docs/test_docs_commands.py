"""The documentation's commands, run: every fenced ``sh``/``shell``/``bash``/``console``/``python`` block.

Each block of README.md and docs/*.md runs as a reader would run it after the quick start, in a fresh temporary
directory holding ``model.pkl`` and ``model.brew`` (the tiny preset, trained and compiled), with ``tests/`` and
``bench/`` linked in from the repository, ``coldbrew`` and ``python`` on ``PATH`` (this checkout) and only loopback
networking:

* a ``coldbrew serve`` or ``coldbrew lab`` command is a server: it starts in the background with ``--port 0``, the
  block waits (deadline) for the URL it prints and goes on with ``$PORT``; the docs' placeholders
  ``localhost:PORT`` and ``localhost:8000`` become that port. Servers are stopped (SIGTERM, then SIGKILL) when the
  block ends;
* ``curl`` fails on an HTTP error status (``--fail-with-body``), so a 415 or 404 fails the block;
* a comment line ``# {...}`` right after a command is output the block must print;
* ``console`` blocks run their ``$ `` lines.

A block that needs what CI has not (AWS, Docker, minutes of time) carries a marker in the Markdown, right before
its fence, and is skipped by name with that reason::

    <!-- docs-test: skip (needs Docker and an AWS account) -->

and a block that needs preparation a reader would do by hand says so the same way (shell, run first)::

    <!-- docs-test: setup mkdir -p runs && cp tests/data/*.txt runs/ -->

(a setup may start a server the block then talks to: ``setup __server coldbrew lab --handler echo.handler``), and
a Python fragment that uses the reader's own data gets it, run before the block in the same interpreter::

    <!-- docs-test: given from sklearn.datasets import make_classification; X, y = make_classification() -->

where ``__s3 BUCKET KEY FILE`` starts a loopback S3 server (SeaweedFS) holding FILE at s3://BUCKET/KEY and exports
the ``AWS_*`` variables that point boto3 at it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = {"sh", "shell", "bash", "console", "python"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>skip|setup|given)\b\s*(?P<arg>.*?)\s*-->\s*$")
SERVER = re.compile(r"^(\s*)(coldbrew (?:serve|lab)\b.*)$")
EXPECTED = re.compile(r"^#\s*(\{.*\}|\[.*\])\s*$")
BLOCK_TIMEOUT_S = 120

pytestmark = pytest.mark.integration


@dataclass
class Block:
    """One fenced block: where it is, its language and text, and the markers before it."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None
    setup: list[str]
    given: list[str]

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def parse_blocks(page: Path) -> tuple[list[Block], list[str]]:
    """Every fenced block of ``page`` with its markers; plus problems (markers not followed by a fence)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, problems, pending, i = [], [], [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        fence = FENCE.match(lines[i])
        if marker:
            pending.append((i + 1, marker["kind"], marker["arg"]))
        elif fence:
            indent, lang = fence[1], fence[2].lower()
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            body = "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end])
            skip = next((arg for _, kind, arg in pending if kind == "skip"), None)
            setup = [arg for _, kind, arg in pending if kind == "setup"]
            given = [arg for _, kind, arg in pending if kind == "given"]
            for at, kind, arg in pending:
                if kind == "skip" and not re.fullmatch(r"\(.+\)", arg):
                    problems.append(f"{page.name}:{at}: a skip marker needs a reason in parentheses")
                if lang not in RUNNABLE:
                    problems.append(f"{page.name}:{at}: marker before a ```{lang} block, which is never run")
                if kind == "given" and lang != "python":
                    problems.append(f"{page.name}:{at}: a given marker is Python, before a ```{lang} block")
            blocks.append(Block(page, i + 1, lang, body, skip.strip("()") if skip else None, setup, given))
            pending, i = [], end
        elif lines[i].strip() and pending:
            problems.extend(f"{page.name}:{at}: marker not directly before a fence" for at, _, _ in pending)
            pending = []
        i += 1
    problems.extend(f"{page.name}:{at}: marker at the end of the page" for at, _, _ in pending)
    return blocks, problems


def runnable_blocks() -> list[Block]:
    return [b for page in PAGES for b in parse_blocks(page)[0] if b.lang in RUNNABLE]


PRELUDE = r"""
set -euo pipefail
__servers=()
__stop_servers() {
  # SIGTERM: a background job of a non-interactive shell starts with SIGINT ignored, so Ctrl-C's signal would not reach it
  for pid in "${__servers[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${__servers[@]}"; do
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap __stop_servers EXIT
__server() {  # a long-running server: background, --port 0, wait for the URL it prints, export PORT
  local log="server-${#__servers[@]}.log"
  setsid "$@" --port 0 >"$log" 2>&1 &
  __servers+=("$!")
  for _ in $(seq 600); do
    if PORT=$(grep -o -m1 -E 'http://127\.0\.0\.1:[0-9]+' "$log" | grep -o -E '[0-9]+$'); then
      export PORT; return 0
    fi
    if ! kill -0 "$!" 2>/dev/null; then echo "server exited: $*" >&2; cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  echo "server printed no URL within 60 s: $*" >&2; cat "$log" >&2; return 1
}
curl() { command curl --fail-with-body --max-time 30 "$@"; }
__s3() {  # a loopback S3 (SeaweedFS) holding FILE as s3://BUCKET/KEY; exports the AWS_* variables that reach it
  local log="s3-${#__servers[@]}.log"
  setsid python -c '
import shlex, sys, time
from coldbrew.lab.s3server import SeaweedS3
s3 = SeaweedS3(sys.argv[4]).start()
try:
    s3.create_bucket(sys.argv[1])
    s3.upload(sys.argv[3], sys.argv[1], sys.argv[2])
    print("".join(f"export {k}={shlex.quote(v)}\n" for k, v in s3.env().items()) + "# s3 ready", flush=True)
    while True:
        time.sleep(3600)
finally:
    s3.stop()
' "$1" "$2" "$3" "$(mktemp -d)" >"$log" 2>&1 &
  __servers+=("$!")
  for _ in $(seq 600); do
    if grep -q '^# s3 ready' "$log"; then eval "$(grep '^export ' "$log")"; return 0; fi
    if ! kill -0 "$!" 2>/dev/null; then echo "S3 server exited" >&2; cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  echo "S3 server not ready within 60 s" >&2; cat "$log" >&2; return 1
}
"""


def shell_script(block: Block) -> tuple[str, list[str]]:
    """The block as a bash script (servers backgrounded, ports substituted) and the output it must print."""
    lines, expected = [], []
    body = block.text
    if block.lang == "console":
        body = "\n".join(line[2:] for line in body.splitlines() if line.startswith("$ "))
    for line in body.splitlines():
        if m := EXPECTED.match(line):
            expected.append(m[1])
            continue
        if m := SERVER.match(line):
            line = f"{m[1]}__server {m[2]}"
        line = re.sub(r"\b(localhost|127\.0\.0\.1):(PORT|8000)\b", r"\1:${PORT}", line)
        lines.append(line)
    return "\n".join(lines), expected


def python_script(block: Block, workdir: Path) -> str:
    (workdir / "docs_block.py").write_text("\n".join([*block.given, block.text, ""]), encoding="utf-8")
    return "python docs_block.py"


@pytest.fixture(scope="module")
def reader_env(tmp_path_factory, tiny_model, tiny_brew) -> tuple[dict[str, str], Path]:
    """A PATH with this checkout's ``coldbrew`` and ``python``; a folder with what the quick start leaves."""
    bin_dir = tmp_path_factory.mktemp("bin")
    # Wrappers that exec this interpreter by its own path, never symlinks to it: a venv's python symlinked from
    # another folder finds no pyvenv.cfg beside it and runs as the base interpreter, without the venv's packages.
    for name, args in (("coldbrew", ' -m coldbrew "$@"'), ("python", ' "$@"'), ("python3", ' "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)}{args}\n")
        (bin_dir / name).chmod(0o755)
    cache = tmp_path_factory.mktemp("cache")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "COLDBREW_CACHE": str(cache),
        "NO_PROXY": "*",
    }
    for key in ("MODEL_URI", "MODEL_SOURCE", "COLDBREW_WARM_SECRET", "AWS_ENDPOINT_URL"):
        env.pop(key, None)
    models = tmp_path_factory.mktemp("reader-models")
    shutil.copy(tiny_model, models / "model.pkl")
    shutil.copy(tiny_brew, models / "model.brew")
    return env, models


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.name)
def test_doc_block_runs(block: Block, reader_env, tmp_path):
    """The block runs to success in a reader's folder (exit 0, no HTTP error, its shown output printed)."""
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    env, models = reader_env
    for name in ("model.pkl", "model.brew"):
        shutil.copy(models / name, tmp_path / name)
    for name in ("tests", "bench"):
        (tmp_path / name).symlink_to(REPO / name)
    if block.lang == "python":
        body, expected = python_script(block, tmp_path), []
    else:
        body, expected = shell_script(block)
    script = "\n".join([PRELUDE, *block.setup, body, ""])
    (tmp_path / "docs_block.sh").write_text(script, encoding="utf-8")
    proc = subprocess.run(
        ["bash", "docs_block.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    logs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("server-*.log"))
    detail = (
        f"{block.name} ({block.lang}):\n{block.text}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n"
        f"{proc.stderr[-3000:]}{logs}"
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {detail}"
    for output in expected:
        assert output in proc.stdout, f"the block should print {output}: {detail}"


def test_markers_sit_on_runnable_blocks():
    """Every docs-test marker is directly before a fence that is run, and every skip says why."""
    problems = [p for page in PAGES for p in parse_blocks(page)[1]]
    assert problems == []


def test_runner_sees_every_page_and_some_blocks():
    """The runner is not vacuous: it finds blocks on the pages that have commands, and runs most of them."""
    blocks = runnable_blocks()
    pages = {b.page.name for b in blocks}
    assert {"README.md", "lab.md", "serving.md", "deploy.md", "experiment.md", "sources.md"} <= pages
    assert sum(b.skip is None for b in blocks) >= 8
