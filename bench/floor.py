"""The floor: how close a .brew cold start gets to a bare interpreter, with the numpy-free serving runtime.

Fresh-process cold starts, side by side in one run (round-robin: each repeat runs every candidate once, in a
shuffled order, so load on the shared machine hits them alike), medians of ``--repeats`` (default 9), for each preset whose .brew (or
pickle, compiled on the spot) is in the model cache:

- ``floor``: ``python -c pass`` — the interpreter alone;
- ``import numpy``: ``python -c "import numpy"``;
- ``API``: ``load_predictor(.brew)`` + ``predict_proba`` on the study's payload as a list (no numpy);
- ``API, today's path``: the same with numpy imported and the row given as a numpy array (the serving path before
  issue #12: numpy in the reader, the app and the handler) — the reference for the peak-RSS target;
- ``Lambda handler``: ``import coldbrew.aws`` (Lambda's init: model loaded, apig-wsgi imported) + the first
  invocation with an HTTP API event built in the process;
- ``Lambda handler, numpy imported first``: the same after ``import numpy`` (what today's init paid);
- ``serve``: ``coldbrew serve MODEL --port 0`` spawned → first ``200`` from ``POST /predict`` (waitress, one app
  thread); beside it ``import waitress.server``, the server stack's own import cost, for reference.

Every child but ``serve`` runs the same harness: it reports ``time.time()`` minus the parent's spawn timestamp
once its work is done (interpreter start-up included, teardown excluded), its peak RSS (``VmHWM``) and whether
numpy is in ``sys.modules``. ``serve`` is timed by the parent (spawn → 200 received); its RSS is the ``VmHWM`` of
the server's processes after that request. The model file is read into the page cache before every run.

    python bench/floor.py [--presets tiny,140mb,420mb,1090mb] [--repeats 9] [--before DIR] [--serve-before DIR]

``--before DIR``: also run the API and Lambda rows on another checkout (the code before the numpy-free runtime,
e.g. ``git archive 7bf9ad9 | tar -x -C DIR`` with its kernel built in place); its API row is then the reference
for the peak-RSS ratios. ``--serve-before DIR``: also time ``coldbrew serve`` from another checkout (the
gunicorn + gevent server, before waitress: ``git archive 7926afc``, kernel built in place), beside today's, with
``import gunicorn.app.base, gevent`` for reference.

Writes bench/results/floor.md and floor.json. Targets (issue #12): API <= 1.3x the floor, Lambda handler
<= 1.6x, serve <= 2.5x, peak RSS of the API path <= 0.5x today's .brew path.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
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
    ("floor", "`python -c pass` (floor)", "pass", None),
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
        "# The floor: .brew cold starts beside a bare interpreter",
        "",
        f"Generated by `python bench/floor.py --repeats {repeats}{before}` on {time.strftime('%Y-%m-%d %H:%M')} — "
        f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs: read ratios, not absolutes), "
        f"Python {platform.python_version()}. Medians of {repeats} fresh processes per row, all rows of a preset "
        "measured round-robin (in a shuffled order each round) in the same window.",
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
            ("api", "Python API ≤ 1.3× floor", 1.3),
            ("lambda", "Lambda handler ≤ 1.6× floor", 1.6),
            ("serve", "`coldbrew serve` ≤ 2.5× floor", 2.5),
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
            f"## {r['preset']} (`{r['file']}`, {r['size_bytes'] / 1e6:,.1f} MB)",
            "",
            f"| path | spawn → done (median) | × floor | target | peak RSS | × {REFERENCE[reference]} | anonymous RSS "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--repeats", type=int, default=9)
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
    results, skipped = [], []
    for preset in args.presets.split(","):
        r = bench_preset(preset, args.repeats, args.before, args.serve_before)
        (results.append(r) if r else skipped.append(preset))
        if r is None:
            log(f"{preset}: not in the model cache, skipped")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, skipped, args.repeats))
    args.out.with_suffix(".json").write_text(
        json.dumps({"repeats": args.repeats, "skipped": skipped, "presets": results}, indent=1) + "\n"
    )
    log(f"wrote {args.out} and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
