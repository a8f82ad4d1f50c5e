"""The floor: the deployed zip against the Lambda floor, and the venv rows beside a bare interpreter.

**The Lambda floor (issue #25).** What a user deploys, run the way Lambda runs it:

- ``coldbrew package MODEL --setup zip-snapstart`` for the tiny and 140mb ``.brew`` models (x86_64, bytecode for
  python3.12), each ``function.zip`` unzipped into a clean directory and hosted by the lab in
  ``python3.12 -S -B -m awslambdaric`` with only that directory, a byte-compiled awslambdaric and the standard
  library on its path (``coldbrew.deploy.smoke``'s clean interpreter); one environment at a time, the lab's Init
  Duration (spawn → the runtime client's first ``/next``) and the first invocation's Duration (``POST /predict``
  through the HTTP API front door) recorded per start;
- beside them, in the same setup: a no-op handler ``def handler(e, c): return {}`` (**the Lambda floor**), and,
  for scale, a function whose handler imports numpy and one that imports ``sklearn.ensemble`` (the wheels for
  python3.12 vendored by pip, cached under the coldbrew cache);
- the same directories as bare python3.12 processes (import the handler, call it once; spawn → done and CPU
  time) beside ``python3.12 -c pass`` and ``python3.12 -S -B -c pass``;
- arm64 as a relative figure: the ``--arch arm64`` zip, the no-op handler and ``python -S -c pass`` run by
  Debian's arm64 python3.11 under ``qemu-aarch64-static`` (``--arm64-root``, default
  ``$COLDBREW_ARM64_PYTHON_ROOT``, made by ``.ci/arm64-python``; skipped without it).

Targets: for the tiny and 140mb zips, Init + first Duration ≤ 1.2× the no-op handler's, and the bare import + first
invoke ≤ 2.0× ``python3.12 -c pass`` (medians of ``--repeats``, default 15, isolated starts).

**The venv rows (issue #12)**, labelled as what they are: fresh processes in this development venv (site-packages,
the editable install's finder), round-robin (each repeat runs every candidate once, in a shuffled order):

- ``floor``: ``python -c pass`` in the venv — the venv floor;
- ``import numpy``: ``python -c "import numpy"``;
- ``API``: ``load_predictor(.brew)`` + ``predict_proba`` on the study's payload as a list (no numpy);
- ``API, today's path``: the same with numpy imported and the row given as a numpy array (the serving path before
  issue #12: numpy in the reader, the app and the handler) — the reference for the peak-RSS target;
- ``Lambda handler``: ``import coldbrew.aws`` (Lambda's init: model loaded) + the first invocation with an HTTP
  API event built in the process;
- ``Lambda handler, numpy imported first``: the same after ``import numpy`` (what the init paid before #12);
- ``serve``: ``coldbrew serve MODEL --port 0`` spawned → first ``200`` from ``POST /predict`` (waitress, one app
  thread); beside it ``import waitress.server``, the server stack's own import cost, for reference.

Every venv child but ``serve`` runs the same harness: it reports ``time.time()`` minus the parent's spawn timestamp
once its work is done (interpreter start-up included, teardown excluded), its peak RSS (``VmHWM``) and whether
numpy is in ``sys.modules``. ``serve`` is timed by the parent (spawn → 200 received); its RSS is the ``VmHWM`` of
the server's processes after that request. The model file is read into the page cache before every run.

    python bench/floor.py [--presets tiny,140mb] [--repeats 15] [--venv-presets LIST] [--arm64-root DIR]
                          [--before DIR] [--serve-before DIR]

``--venv-presets`` (default: ``--presets``; ``''`` skips the venv rows). ``--before DIR``: also run the venv API and
Lambda rows on another checkout (the code before the numpy-free runtime, e.g. ``git archive 7bf9ad9 | tar -x -C
DIR`` with its kernel built in place); its API row is then the reference for the peak-RSS ratios.
``--serve-before DIR``: also time ``coldbrew serve`` from another checkout (the gunicorn + gevent server, before
waitress: ``git archive 7926afc``, kernel built in place), with ``import gunicorn.app.base, gevent`` for reference.

Writes bench/results/floor.md and floor.json. Venv targets (issue #12): API <= 1.3x the venv floor, Lambda
handler <= 1.6x, serve <= 2.5x, peak RSS of the API path <= 0.5x today's .brew path.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "floor.md"
ROW = [[34, 261799, 11, 0, 0, 56]]  # the study's payload, in the model's column order
PAYLOAD = {"age": 34, "fnlwgt": 261799, "education_num": 11, "capital_gain": 0, "capital_loss": 0, "hours_per_week": 56}
PRESETS = ("tiny", "140mb", "420mb", "1090mb")
TRAIN_TIME = {"420mb": "~11 min", "1090mb": "~33 min"}  # docs/presets.md, on this machine

EVENT = {
    "version": "2.0",
    "routeKey": "POST /predict",
    "rawPath": "/predict",
    "rawQueryString": "",
    "headers": {"content-type": "application/json"},
    "isBase64Encoded": False,
    "requestContext": {
        "http": {
            "method": "POST",
            "path": "/predict",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "bench",
        },
        "stage": "$default",
    },
}

# (key, label, body, target ratio to the floor or None). The body runs with ``path`` bound to the model file.
CANDIDATES = [
    ("floor", "`python -c pass` in the venv (the venv floor)", "pass", None),
    ("numpy", '`python -c "import numpy"`', "import numpy", None),
    ("stack", '`python -c "import waitress.server"` (serve\'s stack, for reference)', "import waitress.server", None),
    (
        "api",
        ".brew via the Python API (lists, no numpy)",
        "from coldbrew.engine import load_predictor\np = load_predictor(path)\np.predict_proba(ROW)",
        1.3,
    ),
    (
        "api_today",
        ".brew via the Python API, today's path (numpy imported, numpy row)",
        "import numpy as np\nfrom coldbrew.engine import load_predictor\np = load_predictor(path)\n"
        "p.predict_proba(np.array(ROW, dtype=np.float64))",
        None,
    ),
    (
        "lambda",
        ".brew via the Lambda handler (init + first invoke)",
        "import os\nos.environ['MODEL_SOURCE'] = 'DISK'\nos.environ['MODEL_URI'] = path\nimport coldbrew.aws\n"
        "r = coldbrew.aws.handler(EVENT, None)\nassert r['statusCode'] == 200, r",
        1.6,
    ),
    (
        "lambda_numpy",
        ".brew via the Lambda handler, numpy imported first (today's cost)",
        "import numpy\nimport os\nos.environ['MODEL_SOURCE'] = 'DISK'\nos.environ['MODEL_URI'] = path\n"
        "import coldbrew.aws\nr = coldbrew.aws.handler(EVENT, None)\nassert r['statusCode'] == 200, r",
        None,
    ),
]
SERVE = ("serve", "`coldbrew serve` spawn → first 200 (waitress)", 2.5)
SERVE_BEFORE = [  # rows run only with --serve-before: the server before waitress, and its stack's import
    ("stack_before", '`python -c "import gunicorn.app.base, gevent"` (the stack before, for reference)'),
    ("serve_before", "`coldbrew serve` spawn → first 200, before (gunicorn master + one gevent worker)"),
]

CHILD = """import sys, time
spawn, path = float(sys.argv[1]), sys.argv[2]
ROW = {row}
EVENT = {event}
{body}
done = time.time() - spawn
status = dict(l.split(':', 1) for l in open('/proc/self/status'))
kb = lambda key: int(status[key].split()[0]) / 1024
sys.stdout.write('\\n{{"seconds": %r, "rss_mb": %r, "anon_mb": %r, "numpy": %s}}\\n' % (
    done, kb('VmHWM'), kb('RssAnon'), 'true' if 'numpy' in sys.modules else 'false'))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "COLDBREW_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def warm_cache(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(16 << 20):
            pass


def run_child(body: str, path: Path, pythonpath: Path | None = None) -> dict:
    event = dict(EVENT, body=json.dumps(PAYLOAD))
    code = CHILD.format(row=ROW, event=repr(event), body=body)
    warm_cache(path)
    spawn = time.time()
    env = child_env()
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", code, repr(spawn), str(path)],
        capture_output=True,
        text=True,
        cwd=pythonpath or ROOT,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(f"child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


LOAD_TIME = """import statistics, sys, time
from coldbrew.engine import load_predictor
load_predictor(sys.argv[1])
times = []
for _ in range(200):
    t = time.perf_counter()
    load_predictor(sys.argv[1])
    times.append(time.perf_counter() - t)
print(statistics.median(times) * 1e3)
"""


def load_ms(path: Path, pythonpath: Path | None = None) -> float:
    """Median milliseconds of ``load_predictor`` in a warm process (imports done, file in the page cache)."""
    env = child_env()
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", LOAD_TIME, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=pythonpath or ROOT,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def touched_pages(path: Path) -> int:
    """Distinct 4 KB pages of the file one prediction of the study's row reads (the nodes on its tree paths)."""
    import struct

    from coldbrew.format import BrewFile

    f = BrewFile(path)
    nodes = f.buffers["nodes"].cast("B")
    offsets = f.buffers["tree_offsets"].tolist()
    start = f._payload_offset + f.header["arrays"]["nodes"]["offset"]
    x = [struct.unpack("<f", struct.pack("<f", v))[0] for v in ROW[0]]  # the float32 cast
    pages = set()
    for t in range(len(offsets) - 1):
        root, i = offsets[t], 0
        while True:
            value, feature, right = struct.unpack_from("<dii", nodes, (root + i) * 16)
            pages.add((start + (root + i) * 16) // 4096)
            if feature < 0:
                break
            i = i + 1 if x[feature] <= value else right
    return len(pages)


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":")) / 1024


def _children(pid: int) -> list[int]:
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            kids += [int(c) for c in fh.read().split()]
    return kids


def run_serve(path: Path, root: Path = ROOT) -> dict:
    import urllib.request

    warm_cache(path)
    env = child_env()
    env["PYTHONPATH"] = str(root)
    spawned = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbrew", "serve", str(path), "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=root,
        env=env,
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("coldbrew: serving on "):
                url = line.split("serving on ", 1)[1].strip()
                break
        if url is None:
            raise RuntimeError(f"coldbrew serve exited with {proc.wait()} before listening")
        req = urllib.request.Request(
            url.rstrip("/") + "/predict",
            data=json.dumps(PAYLOAD).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as response:
            response.read()
            status = response.status
        seconds = time.perf_counter() - spawned
        if status != 200:
            raise RuntimeError(f"coldbrew serve answered {status}")
        pids = [proc.pid, *_children(proc.pid)]
        numpy = False
        for pid in pids:
            with open(f"/proc/{pid}/maps") as fh:
                numpy = numpy or any("/numpy/" in line for line in fh)
        return {
            "seconds": seconds,
            "rss_mb": sum(_status_mb(p, "VmHWM") for p in pids),
            "anon_mb": sum(_status_mb(p, "RssAnon") for p in pids),
            "numpy": numpy,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_brew(preset: str) -> Path | None:
    """The cached .brew of a preset (compiled from its cached pickle if needed; tiny is trained if missing)."""
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import PRESETS as RECIPES
    from coldbrew.experiment.train import compile_study_model, train

    brew, pkl = cache_path(RECIPES[preset], "brew"), cache_path(RECIPES[preset], "pickle")
    if brew.exists():
        return brew
    if not pkl.exists():
        if preset != "tiny":
            return None
        log("training the tiny preset")
        train(RECIPES["tiny"], pkl, progress=False)
    log(f"compiling {pkl.name}")
    compile_study_model(pkl, brew, progress=False)
    return brew


BEFORE = [  # (key, label, body of CANDIDATES to rerun on the --before checkout)
    ("api_before", ".brew via the Python API, code before the numpy-free runtime (study row as a list)", "api"),
    ("lambda_before", ".brew via the Lambda handler, code before the numpy-free runtime", "lambda"),
]


def bench_preset(
    preset: str, repeats: int, before: Path | None = None, serve_before: Path | None = None
) -> dict | None:
    path = find_brew(preset)
    if path is None:
        return None
    log(f"{preset}: {path.name} ({path.stat().st_size / 1e6:,.1f} MB), {repeats} rounds")
    runs: dict[str, list[dict]] = {key: [] for key, *_ in CANDIDATES}
    runs["serve"] = []
    bodies = {key: body for key, _, body, _ in CANDIDATES}
    for key, _, _ in BEFORE if before else ():
        runs[key] = []
    jobs: list[tuple[str, Callable[[], dict]]] = [
        (key, functools.partial(run_child, body, path)) for key, _, body, _ in CANDIDATES
    ]
    jobs += [(key, functools.partial(run_child, bodies[source], path, before)) for key, _, source in BEFORE if before]
    jobs.append(("serve", functools.partial(run_serve, path)))
    if serve_before:
        runs["stack_before"], runs["serve_before"] = [], []
        jobs.append(("stack_before", functools.partial(run_child, "import gunicorn.app.base, gevent", path)))
        jobs.append(("serve_before", functools.partial(run_serve, path, serve_before)))
    order = random.Random(0)
    for i in range(repeats):
        order.shuffle(jobs)  # no row always runs first (right after the previous round's server stopped)
        for key, job in jobs:
            runs[key].append(job())
        log(f"  round {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]['seconds'] * 1e3:.0f} ms" for k, v in runs.items()))
    summary = {}
    for key, results in runs.items():
        summary[key] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "rss_mb": statistics.median(r["rss_mb"] for r in results),
            "anon_mb": statistics.median(r["anon_mb"] for r in results),
            "numpy": any(r["numpy"] for r in results),
            "all_seconds": [r["seconds"] for r in results],
        }
    load = {"now": load_ms(path), "before": load_ms(path, before) if before else None}
    return {
        "preset": preset,
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "results": summary,
        "before": before is not None,
        "load_ms": load,
        "touched_pages": touched_pages(path),
    }


REFERENCE = {"api_before": "the API path before", "api_today": "today's .brew path"}


def render(results: list[dict], skipped: list[str], repeats: int) -> str:
    before = " --before DIR" if any(r["before"] for r in results) else ""
    if any("serve_before" in r["results"] for r in results):
        before += " --serve-before DIR2"
    lines = [
        "## The venv floor: the development environment, not the deployed artifact",
        "",
        f"These rows (issue #12's) run in this checkout's development venv, Python {platform.python_version()} "
        "with its site-packages (an editable install's finder included), so their floor is `python -c pass` "
        "**in that venv**, which already pays 10–17 ms of site processing the deployed zip never runs: their "
        "ratios are against the venv floor, not the Lambda floor above. Medians of "
        f"{repeats} fresh processes per row, all rows of a preset measured round-robin (in a shuffled order each "
        f"round) in the same window{(' (options:' + before + ')') if before else ''}.",
        "",
    ]
    if skipped:
        lines += [
            "Skipped (no model in the cache when this ran; `coldbrew train --preset NAME` takes "
            + ", ".join(f"{p}: {TRAIN_TIME.get(p, '?')}" for p in skipped)
            + " here): "
            + ", ".join(skipped)
            + ".",
            "",
        ]
    if results:
        lines += [
            "| target (issue #12) | " + " | ".join(r["preset"] for r in results) + " |",
            "|---|" + "---|" * len(results),
        ]
        for key, label, target in (
            ("api", "Python API ≤ 1.3× the venv floor", 1.3),
            ("lambda", "Lambda handler ≤ 1.6× the venv floor", 1.6),
            ("serve", "`coldbrew serve` ≤ 2.5× the venv floor", 2.5),
        ):
            cells = []
            for r in results:
                ratio = r["results"][key]["seconds"] / r["results"]["floor"]["seconds"]
                cells.append(f"{ratio:.2f}× {'met' if ratio <= target else '**not met**'}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        cells = []
        for r in results:
            ref = r["results"]["api_before" if "api_before" in r["results"] else "api_today"]
            ratio = r["results"]["api"]["rss_mb"] / ref["rss_mb"]
            anon = r["results"]["api"]["anon_mb"] / ref["anon_mb"]
            cells.append(f"{ratio:.2f}× {'met' if ratio <= 0.5 else '**not met**'} (anonymous {anon:.2f}×)")
        lines += ["| peak RSS ≤ 0.5× the .brew path before | " + " | ".join(cells) + " |", ""]
    labels = {key: (label, target) for key, label, _, target in CANDIDATES}
    labels[SERVE[0]] = (SERVE[1], SERVE[2])
    for key, label in SERVE_BEFORE:
        labels[key] = (label, None)
    for key, label, _ in BEFORE:
        labels[key] = (label, None)
    for r in results:
        res = r["results"]
        floor = res["floor"]["seconds"]
        reference = "api_before" if "api_before" in res else "api_today"
        today_rss, today_anon = res[reference]["rss_mb"], res[reference]["anon_mb"]
        lines += [
            f"### venv rows: {r['preset']} (`{r['file']}`, {r['size_bytes'] / 1e6:,.1f} MB)",
            "",
            f"| path | spawn → done (median) | × venv floor | target | peak RSS | × {REFERENCE[reference]} | anonymous RSS "
            f"| × {REFERENCE[reference]} | numpy loaded |",
            "|---|---:|---:|---|---:|---:|---:|---:|---|",
        ]
        for key, (label, target) in labels.items():
            if key not in res:
                continue
            v = res[key]
            ratio = v["seconds"] / floor
            verdict = "" if target is None else f"≤ {target}× {'met' if ratio <= target else '**not met**'}"
            rss_ratio = v["rss_mb"] / today_rss
            lines.append(
                f"| {label} | {v['seconds'] * 1e3:,.1f} ms | {ratio:.2f}× | {verdict} | {v['rss_mb']:,.1f} MB | "
                f"{rss_ratio:.2f}× | {v['anon_mb']:,.1f} MB | {v['anon_mb'] / today_anon:.2f}× | "
                f"{'yes' if v['numpy'] else 'no'} |"
            )
        api_rss, api_anon = res["api"]["rss_mb"] / today_rss, res["api"]["anon_mb"] / today_anon
        lines += [
            "",
            f"Peak RSS target (API path ≤ 0.5× {REFERENCE[reference]}): {api_rss:.2f}× — "
            f"{'met' if api_rss <= 0.5 else '**not met**'}; anonymous memory (the process's own, without "
            f"the model file's pages): {api_anon:.2f}×. The floor's own peak RSS is "
            f"{res['floor']['rss_mb'] / today_rss:.2f}× {REFERENCE[reference]}.",
            "",
        ]
        touched_mb = r["touched_pages"] * 4096 / 2**20
        mapped_mb = res["api"]["rss_mb"] - res["floor"]["rss_mb"]
        if r["size_bytes"] > 1 << 20:
            lines += [
                f"One prediction reads {r['touched_pages']:,} distinct 4 KB pages of the model "
                f"({touched_mb:.1f} MB); the API path's peak RSS is {mapped_mb:.1f} MB above the floor's, because "
                "the kernel maps the page cache's large folios whole.",
                "",
            ]
        serve, stack = res["serve"]["seconds"] / floor, res["stack"]["seconds"] / floor
        text = f"`coldbrew serve` (waitress): {serve:.2f}×, of which importing waitress alone is {stack:.2f}×"
        if "serve_before" in res:
            text += (
                f"; before (gunicorn + gevent) {res['serve_before']['seconds'] / floor:.2f}×, of which importing "
                f"that stack alone is {res['stack_before']['seconds'] / floor:.2f}×"
            )
        lines += [text + ".", ""]
        load = r["load_ms"]
        lines += [
            f"`load_predictor` in a warm process (median of 200): {load['now']:.3f} ms"
            + (f" (before: {load['before']:.3f} ms)" if load["before"] is not None else "")
            + ".",
            "",
        ]
    lines += [
        "Method: every child but `serve` runs the same harness (`python -c` with the row's code between a spawn "
        "timestamp from the parent and a report of `time.time() - spawn`, `VmHWM` and whether numpy is in "
        "`sys.modules`), so the floor carries exactly the harness's own overhead. The Lambda rows build an HTTP API "
        "(payload 2.0) event for `POST /predict` in the child and call `coldbrew.aws.handler` once. `serve` is timed "
        "by the parent from `Popen` to the first `200` of `POST /predict` (waitress, one app thread; the 'before' row: "
        "gunicorn master + one gevent worker); its RSS is the `VmHWM` of the server's processes (for gunicorn master + "
        "worker, shared pages counted twice) and its numpy column looks for numpy's files in their `/proc/PID/maps`. Before every run the parent reads the model file, so it is in the page cache. "
        "Peak RSS (`VmHWM`) counts the model file's pages the process mapped: a first prediction on the 140mb model "
        "walks a root-to-leaf path in each of its 1,261 trees, and the kernel maps the page cache's large folios "
        "whole, so nearly the whole 31 MB file shows up in RSS on both paths (it is shared, clean page cache, not "
        "the process's own memory); anonymous RSS (`RssAnon` after the work, for serve summed over its "
        "processes) is the process's own memory. Before the run the script byte-compiles `coldbrew/` (`compileall`), "
        "as `pip install` does, so no row pays for compiling coldbrew's sources. "
        "'Today's path' is the same code with numpy imported and a numpy row, which is what the reader, the app and "
        "the handler paid before the numpy-free runtime. The 'before' rows (with `--before DIR`) run the same "
        "children on a copy of the code before that change (`mkdir DIR && git archive 7bf9ad9 | tar -x -C DIR && "
        "(cd DIR && python setup.py -q build_ext --inplace)`; the script compiles its bytecode) and are then the reference "
        "for the RSS ratios. The serve 'before' rows (with `--serve-before DIR2`) run `coldbrew serve` from a copy of "
        "the code before waitress (`git archive 7926afc`, built the same way).",
        "",
    ]
    return "\n".join(lines)


# ================================================================ the Lambda floor (issue #25)
# The deployed artifact, run the way Lambda runs it: the built function.zip unzipped into a clean directory, the
# runtime's Python (python3.12 -S -B), awslambdaric byte-compiled beside it, the standard library and nothing else;
# hosted by the lab (one environment at a time) whose Init Duration and invocation Duration are Lambda's.
NOOP_HANDLER = "def handler(event, context):\n    return {}\n"
SCALE_HANDLERS = {  # key -> (what the handler imports at init, the distributions a zip of it vendors)
    "numpy": ("import numpy\n", ("numpy",)),
    "sklearn": ("import sklearn.ensemble\n", ("scikit-learn",)),
}
LAMBDA_ROWS = [  # (key, label) in table order
    ("noop", "no-op handler `def handler(e, c): return {}` (**the Lambda floor**)"),
    ("zip-tiny", "tiny `.brew` zip, `coldbrew.aws.handler`"),
    ("zip-140mb", "140mb `.brew` zip, `coldbrew.aws.handler`"),
    ("numpy", "a zip whose handler imports numpy (for scale)"),
    ("sklearn", "a zip whose handler imports `sklearn.ensemble` (for scale)"),
]
BARE_ROWS = [  # (key, label): python3.12 processes timed by the harness, spawn -> done
    ("pass", "`python3.12 -c pass`"),
    ("pass-S", "`python3.12 -S -B -c pass` (the flags the zip runs with)"),
    ("json-S", '`python3.12 -S -B -c "import json"` (json and the `re`/`enum` it brings: what serving needs first)'),
    ("noop", "no-op handler: import + one call"),
    ("zip-tiny", "tiny `.brew` zip: `import coldbrew.aws` + first invoke"),
    ("zip-140mb", "140mb `.brew` zip: `import coldbrew.aws` + first invoke"),
    ("numpy", "numpy handler: import + one call"),
    ("sklearn", "scikit-learn handler: import + one call"),
]
ZIP_INVOKE = "import coldbrew.aws\nr = coldbrew.aws.handler(EVENT, None)\nassert r['statusCode'] == 200, r\n"
HANDLER_INVOKE = "import handler\nhandler.handler(EVENT, None)\n"


def _pip_target(python, arch: str, requirements: list[str], dest: Path) -> None:
    """Install wheels of ``requirements`` for ``python``'s version and ``arch`` into ``dest`` (once; cached)."""
    from coldbrew.deploy import bytecode
    from coldbrew.deploy.smoke import PIP_PLATFORMS

    if dest.is_dir():
        return
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(partial), "--only-binary=:all:", "--implementation", "cp",
         "--python-version", f"{python.version[0]}.{python.version[1]}", "--platform", PIP_PLATFORMS[arch],
         # Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels run there too
         "--platform", PIP_PLATFORMS[arch].replace("manylinux2014", "manylinux_2_28"),
         *requirements],
        check=True,
    )  # fmt: skip
    bytecode.compile_tree(python, partial)
    os.replace(partial, dest)


def scale_dir(key: str, python, work: Path) -> Path:
    """A function directory whose handler imports numpy / scikit-learn, with those vendored for ``python``."""
    from importlib import metadata

    from coldbrew.deploy.smoke import cache_root

    imports, dists = SCALE_HANDLERS[key]
    pins = [f"{d}=={metadata.version(d)}" for d in dists]
    deps = cache_root() / "floor-deps" / f"{python.cache_tag}-x86_64-{'-'.join(p.replace('==', '-') for p in pins)}"
    log(f"vendoring {', '.join(pins)} for {python.label} (cached in {deps})")
    _pip_target(python, "x86_64", pins, deps)
    task = work / f"task-{key}"
    shutil.copytree(deps, task)
    (task / "handler.py").write_text(imports + "\n\n" + NOOP_HANDLER)
    return task


def noop_dir(work: Path, python=None) -> Path:
    task = work / "task-noop"
    task.mkdir(parents=True, exist_ok=True)
    (task / "handler.py").write_text(NOOP_HANDLER)
    if python is not None:
        from coldbrew.deploy import bytecode

        bytecode.compile_tree(python, task)  # shipped bytecode, like the zips
    return task


def build_zip(model: Path, out: Path, arch: str, python) -> Path:
    """``coldbrew package MODEL --setup zip-snapstart --arch ARCH`` (as a user runs it); the unzipped task root."""
    from coldbrew.deploy import smoke

    cmd = [sys.executable, "-m", "coldbrew", "package", str(model), "--setup", "zip-snapstart", "-o", str(out)]
    cmd += ["--arch", arch, "--no-smoke", "--target-python", python.path]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=child_env())
    return smoke.unzip(out / "function.zip", out / "task")


def lab_starts(functions: dict[str, tuple[Path, str, dict]], python, repeats: int) -> dict[str, list[dict]]:
    """Isolated cold starts in the lab, round-robin in a shuffled order after one unmeasured round.

    ``functions``: key -> (task root, handler, extra environment). Each start: no environment alive, one
    ``POST /predict`` through the HTTP API front door, the lab's init and invocation wall/CPU times recorded.
    """
    from coldbrew.deploy import smoke
    from coldbrew.experiment.isolated import _header_ms, _post, _wait_for_no_environment
    from coldbrew.lab import Lab, LabConfig

    runtime = smoke.target_runtime(python, "x86_64")
    labs: dict[str, Lab] = {}
    samples: dict[str, list[dict]] = {k: [] for k in functions}
    body = json.dumps(PAYLOAD).encode()
    try:
        for key, (task, handler, extra) in functions.items():
            spec = smoke.FunctionSpec(handler, extra)
            config = LabConfig(
                handler=handler,
                task_root=task,
                env=smoke.clean_env(spec, task, runtime, python),
                python=[python.path, *smoke.CLEAN_FLAGS],
                max_concurrency=1,
                report=False,
                init_timeout=60.0,
                timeout=60.0,
                idle_timeout=0.2,
                function_output=os.devnull,
            )
            labs[key] = Lab(config)
            labs[key].start()
        order = random.Random(1)
        for n in range(repeats + 1):  # round 0 warms the page cache and is not recorded
            keys = list(labs)
            order.shuffle(keys)
            for key in keys:
                lab = labs[key]
                _wait_for_no_environment(lab, 30.0)
                status, headers, latency = _post(lab.url + "/predict", body, 120.0)
                sample = {
                    "status": status,
                    "latency_ms": latency,
                    "init_ms": _header_ms(headers, "x-lab-init-ms"),
                    "init_cpu_ms": _header_ms(headers, "x-lab-init-cpu-ms"),
                    "duration_ms": _header_ms(headers, "x-lab-duration-ms"),
                }
                if status != 200 or sample["init_ms"] is None:
                    raise RuntimeError(f"{key}: cold start answered {status} without an init ({headers})")
                if n:
                    samples[key].append(sample)
            if n:
                log(
                    f"  lab round {n}/{repeats}: "
                    + ", ".join(f"{k} {v[-1]['init_ms'] + v[-1]['duration_ms']:.0f} ms" for k, v in samples.items())
                )
    finally:
        for lab in labs.values():
            lab.stop()
    return samples


BARE_CHILD = """import sys, time
spawn = float(sys.argv[1])
EVENT = {event}
{body}
sys.stdout.write('\\n%r\\n' % (time.time() - spawn))
"""


def bare_run(prefix: list[str], flags: list[str], body: str, env: dict, cwd: Path) -> tuple[float, float]:
    """(seconds from spawn to the end of ``body``, CPU seconds of the whole process) for a fresh
    ``prefix + flags`` process (the harness's own cost in). The CPU time (user + system, from the kernel's
    accounting of the reaped child) is the figure the shared machine's load disturbs least."""
    import resource

    event = dict(EVENT, body=json.dumps(PAYLOAD))
    code = BARE_CHILD.format(event=repr(event), body=body)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawn = time.time()
    out = subprocess.run([*prefix, *flags, "-c", code, repr(spawn)], capture_output=True, text=True, env=env, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise RuntimeError(f"child failed: {out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(out.stdout.strip().splitlines()[-1]), cpu


def bare_starts(jobs: dict[str, tuple[list[str], list[str], str, dict, Path]], repeats: int) -> dict[str, list]:
    """``repeats`` round-robin runs of every job (after one unmeasured round): key -> [(seconds, CPU seconds)]."""
    samples: dict[str, list] = {k: [] for k in jobs}
    order = random.Random(2)
    for n in range(repeats + 1):
        keys = list(jobs)
        order.shuffle(keys)
        for key in keys:
            result = bare_run(*jobs[key])
            if n:
                samples[key].append(result)
    return samples


def _clean(env_extra: dict) -> dict:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC"}
    return base | env_extra


def lambda_floor(presets: list[str], repeats: int, work: Path, arm64_root: str | None) -> dict:
    """Everything the Lambda-floor tables need: lab starts, bare python3.12 starts and the arm64 relative figure."""
    from coldbrew.deploy import bytecode, smoke

    python, why = bytecode.find_python("python3.12")
    if python is None:
        raise SystemExit(f"bench/floor.py needs the runtime's python3.12: {why}")
    tasks: dict[str, Path] = {"noop": noop_dir(work, python)}
    models: dict[str, Path] = {}
    for preset in presets:
        model = find_brew(preset)
        if model is None:
            log(f"{preset}: not in the model cache, no zip row")
            continue
        log(f"{preset}: coldbrew package --setup zip-snapstart")
        models[preset] = model
        tasks[f"zip-{preset}"] = build_zip(model, work / f"zip-{preset}", "x86_64", python)
    for key in SCALE_HANDLERS:
        tasks[key] = scale_dir(key, python, work)
    functions = {}
    for key, task in tasks.items():
        if key.startswith("zip-"):
            spec = smoke.function_spec(task.parent / "template.yaml")
            functions[key] = (task, spec.handler, spec.env)
        else:
            functions[key] = (task, "handler.handler", {})
    log(f"lab: {len(functions)} functions, {repeats} isolated cold starts each")
    lab = lab_starts(functions, python, repeats)
    bare_jobs: dict[str, tuple] = {
        "pass": ([python.path], [], "pass", _clean({}), work),
        "pass-S": ([python.path], list(smoke.CLEAN_FLAGS), "pass", _clean({}), work),
        "json-S": ([python.path], list(smoke.CLEAN_FLAGS), "import json", _clean({}), work),
    }
    for key, task in tasks.items():
        env = _clean({"PYTHONPATH": str(task), "LAMBDA_TASK_ROOT": str(task)})
        if key.startswith("zip-"):
            env.update(smoke.lambda_env(smoke.function_spec(task.parent / "template.yaml"), task))
            bare_jobs[key] = ([python.path], list(smoke.CLEAN_FLAGS), ZIP_INVOKE, env, task)
        else:
            bare_jobs[key] = ([python.path], list(smoke.CLEAN_FLAGS), HANDLER_INVOKE, env, task)
    log(f"bare python3.12: {len(bare_jobs)} rows, {repeats} runs each")
    bare = bare_starts(bare_jobs, repeats)
    arm = arm64_floor(models.get("tiny"), work, arm64_root, repeats)
    return {
        "python": python.label,
        "awslambdaric": metadata_version("awslambdaric"),
        "lab": lab,
        "bare": bare,
        "arm64": arm,
    }


def metadata_version(dist: str) -> str:
    from importlib import metadata

    return metadata.version(dist)


def arm64_floor(model: Path | None, work: Path, root: str | None, repeats: int) -> dict | None:
    """The arm64 zip's handler under qemu-aarch64-static with Debian's arm64 python3.11 (``.ci/arm64-python``),
    beside ``python -c pass`` and a no-op handler under the same emulation: a relative figure only."""
    from coldbrew.deploy import smoke

    qemu = shutil.which("qemu-aarch64-static")
    python = Path(root or "") / "usr" / "bin" / "python3.11"
    if model is None or qemu is None or not root or not python.is_file():
        log("arm64: skipped (needs qemu-aarch64-static, --arm64-root made by .ci/arm64-python, the tiny model)")
        return None
    x86 = bytecode_python()
    task = build_zip(model, work / "zip-tiny-arm64", "arm64", x86)
    noop = work / "task-noop-arm64"
    noop.mkdir()
    (noop / "handler.py").write_text(NOOP_HANDLER)
    prefix = [qemu, "-L", root, str(python)]
    for tree in (task, noop):  # the zip ships cpython-312 pycs; this 3.11 writes its own once, then reads them
        subprocess.run([*prefix, "-S", "-m", "compileall", "-q", str(tree)], check=True, env=_clean({}))
    spec = smoke.function_spec(task.parent / "template.yaml")
    zenv = _clean({"PYTHONPATH": str(task)} | smoke.lambda_env(spec, task))
    jobs = {
        "pass": (prefix, ["-S"], "pass", _clean({}), work),
        "noop": (prefix, ["-S"], HANDLER_INVOKE, _clean({"PYTHONPATH": str(noop)}), noop),
        "zip-tiny": (prefix, ["-S"], ZIP_INVOKE, zenv, task),
    }
    log(f"arm64 under qemu: {len(jobs)} rows, {repeats} runs each")
    return {"python": "Debian python3.11 (arm64) under qemu-aarch64-static", "bare": bare_starts(jobs, repeats)}


def bytecode_python():
    from coldbrew.deploy import bytecode

    python, _ = bytecode.find_python("python3.12")
    return python


def _median(values: list[float]) -> float:
    return statistics.median(values)


def lambda_summary(data: dict) -> dict:
    """Medians (ms) per row: lab init + first invoke (median of the per-start sums), init, duration; bare runs."""
    lab = {}
    for key, samples in data["lab"].items():
        lab[key] = {
            "total_ms": _median([s["init_ms"] + s["duration_ms"] for s in samples]),
            "init_ms": _median([s["init_ms"] for s in samples]),
            "duration_ms": _median([s["duration_ms"] for s in samples]),
            "init_cpu_ms": _median([s["init_cpu_ms"] for s in samples if s["init_cpu_ms"] is not None] or [0.0]),
            "fastest_ms": min(s["init_ms"] + s["duration_ms"] for s in samples),
            "n": len(samples),
        }

    def runs(samples: dict) -> dict:
        return {
            k: {
                "ms": _median([w for w, _ in v]) * 1e3,
                "cpu_ms": _median([c for _, c in v]) * 1e3,
                "fastest_ms": min(w for w, _ in v) * 1e3,
                "n": len(v),
            }
            for k, v in samples.items()
        }

    bare = runs(data["bare"])
    arm = runs(data["arm64"]["bare"]) if data.get("arm64") else None
    return {"lab": lab, "bare": bare, "arm64": arm}


def _verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}× {'met' if ratio <= target else '**not met**'}"


def render_lambda(data: dict, summary: dict, repeats: int) -> list[str]:
    lab, bare, arm = summary["lab"], summary["bare"], summary["arm64"]
    zips = [k for k, _ in LAMBDA_ROWS if k.startswith("zip-") and k in lab]
    noop = lab["noop"]["total_ms"]
    lines = [
        "## The Lambda floor: the built zip beside a no-op handler, as Lambda runs them",
        "",
        f"Each function is a directory unzipped from what a user deploys, run by {data['python']} "
        f"`-S -B -m awslambdaric` (awslambdaric {data['awslambdaric']}, byte-compiled, in its own runtime directory) "
        "with only that directory, the runtime client and the standard library on its path, in the lab, one "
        "environment at a time (`coldbrew.deploy.smoke`'s clean interpreter). Init Duration is the lab's: from the "
        "environment's start to the runtime client's first `/next` (interpreter, runtime client and handler "
        "imports, model load), as Lambda's REPORT line counts it; Duration is the first invocation's (one "
        "`POST /predict` through the HTTP API front door). The no-op handler `def handler(e, c): return {}` in "
        "the same setup is **the Lambda floor**: everything Lambda's runtime costs before a handler does anything. "
        f"Medians of {repeats} isolated cold starts per function, all functions round-robin in a shuffled order "
        "after one unmeasured round; every file is in the page cache (the model's too).",
        "",
        "| target (issue #25) | " + " | ".join(k.removeprefix("zip-") for k in zips) + " |",
        "|---|" + "---|" * len(zips),
        "| zip handler Init + first Duration ≤ 1.2× the no-op handler's (the Lambda floor) | "
        + " | ".join(_verdict(lab[k]["total_ms"] / noop, 1.2) for k in zips)
        + " |",
        "| zip handler import + first invoke ≤ 2.0× `python3.12 -c pass` (bare processes, below) | "
        + " | ".join(_verdict(bare[k]["ms"] / bare["pass"]["ms"], 2.0) for k in zips if k in bare)
        + " |",
        "| for reference, not a target: the same in CPU time (bare processes) | "
        + " | ".join(f"{bare[k]['cpu_ms'] / bare['pass']['cpu_ms']:.2f}×" for k in zips if k in bare)
        + " |",
        '| for reference, not a target: the same against `python3.12 -S -B -c "import json"` | '
        + " | ".join(f"{bare[k]['ms'] / bare['json-S']['ms']:.2f}×" for k in zips if k in bare and "json-S" in bare)
        + " |",
        "",
        "| function (python3.12 under awslambdaric, lab) | Init Duration | first Duration | Init + Duration "
        "| × the Lambda floor | fastest start | fastest × the floor's fastest | Init CPU | starts |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fastest = lab["noop"]["fastest_ms"]
    for key, label in LAMBDA_ROWS:
        if key not in lab:
            continue
        v = lab[key]
        lines.append(
            f"| {label} | {v['init_ms']:,.1f} ms | {v['duration_ms']:,.2f} ms | {v['total_ms']:,.1f} ms | "
            f"{v['total_ms'] / noop:.2f}× | {v['fastest_ms']:,.1f} ms | {v['fastest_ms'] / fastest:.2f}× | "
            f"{v['init_cpu_ms']:,.0f} ms | {v['n']} |"
        )
    lines += [
        "",
        "Init + Duration is the median of each start's sum; the fastest start is the one the shared machine's "
        "load disturbed least. Init CPU is the environment's CPU time at its first `/next`, from the kernel's "
        "clock ticks (10 ms steps).",
    ]
    lines += [
        "",
        "The same functions as bare processes (no runtime client): spawn → the handler imported and called once "
        "with an HTTP API event built in the process (`time.time()` in the child minus the parent's spawn "
        "timestamp), the same directories and flags. This is the comparison with an interpreter that does "
        "nothing, `python3.12 -c pass`:",
        "",
        "| process (python3.12, x86_64) | spawn → done | × `python3.12 -c pass` | × no-op handler | fastest "
        "| fastest × `pass`'s fastest | CPU time | CPU × `python3.12 -c pass` |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in BARE_ROWS:
        if key not in bare:
            continue
        v, ref = bare[key], bare["pass"]
        lines.append(
            f"| {label} | {v['ms']:,.1f} ms | {v['ms'] / ref['ms']:.2f}× | {v['ms'] / bare['noop']['ms']:.2f}× | "
            f"{v['fastest_ms']:,.1f} ms | {v['fastest_ms'] / ref['fastest_ms']:.2f}× | {v['cpu_ms']:,.1f} ms | "
            f"{v['cpu_ms'] / ref['cpu_ms']:.2f}× |"
        )
    lines += [
        "",
        "CPU time is the child's user + system time as the kernel accounts it when the parent reaps it (the whole "
        "process, teardown included): on this shared machine it is the figure other jobs disturb least.",
        "",
    ]
    if arm:
        lines += [
            f"arm64, a relative figure: the arm64 zip (`--arch arm64`, kernel cross-built) run by "
            f"{data['arm64']['python']} as bare processes (`-S`; this 3.11 cannot use the zip's cpython-312 "
            "bytecode, so its own was written once before the runs). Emulation inflates every absolute number; "
            "read the ratios.",
            "",
            "| process (arm64, qemu) | spawn → done | × `python -S -c pass` | × no-op handler |",
            "|---|---:|---:|---:|",
        ]
        for key, label in (("pass", "`python3.11 -S -c pass`"), ("noop", "no-op handler"), ("zip-tiny", "tiny zip")):
            ms = arm[key]["ms"]
            lines.append(f"| {label} | {ms:,.0f} ms | {ms / arm['pass']['ms']:.2f}× | {ms / arm['noop']['ms']:.2f}× |")
        lines.append("")
    else:
        lines += ["arm64: not measured in this run (qemu-aarch64-static or the arm64 Python root missing).", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,140mb", help="the .brew zips measured against the Lambda floor")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--venv-presets", default=None, help="presets of the venv rows (default: --presets; '' skips)")
    parser.add_argument("--arm64-root", default=os.environ.get("COLDBREW_ARM64_PYTHON_ROOT"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--before", type=Path, help="a checkout of the code before the numpy-free runtime")
    parser.add_argument("--serve-before", type=Path, help="a checkout of the code before waitress (gunicorn + gevent)")
    args = parser.parse_args()
    # An installed package has its bytecode compiled (pip does it); a checkout run with PYTHONDONTWRITEBYTECODE
    # would otherwise compile coldbrew's modules in every child.
    for tree in filter(None, [ROOT, args.before, args.serve_before]):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(tree / "coldbrew")], check=True, stdout=subprocess.DEVNULL
        )
    presets = [p for p in args.presets.split(",") if p]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        lam = lambda_floor(presets, args.repeats, Path(tmp), args.arm64_root)
    lam_summary = lambda_summary(lam)
    venv_presets = presets if args.venv_presets is None else [p for p in args.venv_presets.split(",") if p]
    results, skipped = [], []
    for preset in venv_presets:
        r = bench_preset(preset, args.repeats, args.before, args.serve_before)
        (results.append(r) if r else skipped.append(preset))
        if r is None:
            log(f"{preset}: not in the model cache, skipped")
    command = f"python bench/floor.py --presets {args.presets} --repeats {args.repeats}"
    if args.venv_presets is not None:
        command += f" --venv-presets '{args.venv_presets}'"
    head = [
        "# The floor: the deployed zip against the Lambda floor (and the venv rows)",
        "",
        f"Generated by `{command}` (with `COLDBREW_ARM64_PYTHON_ROOT` from `.ci/arm64-python` for the arm64 row) "
        f"on {time.strftime('%Y-%m-%d %H:%M')} — {platform.machine()}, {os.cpu_count()} cores shared with other "
        f"jobs (1-minute load average {load_before:.2f} when the run began, {os.getloadavg()[0]:.2f} when it ended: "
        "read ratios, not absolutes; CPU-time ratios are the ones the load disturbs least).",
        "",
        "Two floors, never mixed: **the Lambda floor** is a no-op handler's Init + first Duration under awslambdaric "
        "in the same clean setup as the zip (what Lambda's REPORT line shows for a function that does nothing); "
        "**`python3.12 -c pass`** is an interpreter that does nothing. The venv rows at the end are the development "
        "environment's, against `python -c pass` in that venv.",
        "",
    ]
    text = "\n".join(head + render_lambda(lam, lam_summary, args.repeats))
    if results or skipped:
        text += "\n" + render(results, skipped, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    payload = {
        "repeats": args.repeats,
        "lambda": {"summary": lam_summary, "samples": lam},
        "venv": {"skipped": skipped, "presets": results},
    }
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    log(f"wrote {args.out} and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
