"""sklearn pickle vs ONNX Runtime vs .brew: cold start, latency, throughput, memory, size — one run, one table.

For each preset whose pickle is in the model cache (tiny is trained if missing), the script compiles the
.brew and converts to ONNX (skl2onnx, cached beside the pickle), then measures in fresh processes:

- cold start: process spawn -> import + load + first prediction done, file in the page cache (median of N);
- the same with the model file evicted from the page cache first (posix_fadvise DONTNEED), plus .brew with
  eager read-ahead (MADV_WILLNEED);
- peak RSS of that process;
- warm single-row latency (median of 300 calls) and a 10,000-row batch (median of 3) in one process each;
- bit-exactness against sklearn on the 10,000 rows (np.array_equal; ONNX: max abs diff and NaN count).

    python bench/brew_vs_pickle.py [--presets tiny,140mb,420mb,1090mb] [--repeats 5]

Writes bench/results/brew_vs_pickle.md. The machine is shared: compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "brew_vs_pickle.md"
ROW = [[34, 261799, 11, 0, 0, 56]]  # the study's payload

# Child programs. argv: spawn time (time.time()), model path. Each prints one JSON line.
LOAD = {
    "floor": "import numpy",
    "sklearn": "import pickle, numpy as np\nm = pickle.load(open(path, 'rb'))\n"
    "m.predict_proba(np.array(ROW, dtype=np.float32))",
    "onnx": "import numpy as np, onnxruntime as ort\ns = ort.InferenceSession(path, providers=['CPUExecutionProvider'])\n"
    "s.run(None, {'input': np.array(ROW, dtype=np.float32)})",
    "brew": "import numpy as np\nfrom coldbrew.engine import load_predictor\np = load_predictor(path)\n"
    "p.predict_proba(np.array(ROW, dtype=np.float64))",
    "brew-eager": "import numpy as np\nfrom coldbrew.engine import load_predictor\np = load_predictor(path, eager=True)\n"
    "p.predict_proba(np.array(ROW, dtype=np.float64))",
}
# Peak RSS from /proc's VmHWM: ru_maxrss would include the parent's size inherited through fork.
CHILD = """import sys, time
spawn, path = float(sys.argv[1]), sys.argv[2]
ROW = {row}
{body}
done = time.time() - spawn
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print('{{"seconds": %r, "rss_mb": %r}}' % (done, int(hwm) / 1024))
"""

WARM = """import sys, time, json, warnings, numpy as np
warnings.filterwarnings('ignore')
path, rows_path, out_path, engine = sys.argv[1:5]
X = np.load(rows_path)
one = X[:1].copy()
if engine == 'sklearn':
    import pickle
    m = pickle.load(open(path, 'rb'))
    f = m.predict_proba
    g = lambda A: f(A)
elif engine == 'onnx':
    import onnxruntime as ort
    s = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    g = lambda A: s.run(None, {'input': A.astype(np.float32)})[1]
else:
    from coldbrew.engine import load_predictor
    p = load_predictor(path)
    g = p.predict_proba
for _ in range(20):
    g(one)
lat = []
for _ in range(300):
    t = time.perf_counter(); g(one); lat.append(time.perf_counter() - t)
batch = []
for _ in range(3):
    t = time.perf_counter(); P = g(X); batch.append(time.perf_counter() - t)
np.save(out_path, np.asarray(P, dtype=np.float64))
lat.sort(); batch.sort()
print(json.dumps({"single_ms": lat[len(lat) // 2] * 1e3, "batch_s": batch[1]}))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (clean pages; needs no privileges)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm_cache(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(16 << 20):
            pass


def cold_start(engine: str, path: Path, repeats: int, evicted: bool) -> dict:
    """Median seconds from spawn to first prediction, and median peak RSS, over fresh processes."""
    code = CHILD.format(row=ROW, body=LOAD[engine])
    seconds, rss = [], []
    for _ in range(repeats):
        if evicted:
            evict(path)
        else:
            warm_cache(path)
        spawn = time.time()
        out = subprocess.run(
            [sys.executable, "-c", code, repr(spawn), str(path)], capture_output=True, text=True, cwd=ROOT
        )
        if out.returncode:
            raise RuntimeError(f"{engine} child failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        seconds.append(result["seconds"])
        rss.append(result["rss_mb"])
    return {"seconds": statistics.median(seconds), "rss_mb": statistics.median(rss), "all": seconds}


def warm(engine: str, path: Path, rows: Path, tmp: Path) -> tuple[dict, np.ndarray]:
    out_path = tmp / f"{engine}-proba.npy"
    out = subprocess.run(
        [sys.executable, "-c", WARM, str(path), str(rows), str(out_path), engine],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode:
        raise RuntimeError(f"{engine} warm child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), np.load(out_path)


def find_pickle(preset: str) -> Path | None:
    """The cached pickle for a preset (tiny is trained on the spot; larger ones come from `coldbrew bench` or
    bench/calibrate_presets.py)."""
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import PRESETS, train

    path = cache_path(PRESETS[preset], "pickle")
    if path.exists():
        return path
    if preset == "tiny":
        log("training the tiny preset")
        train(PRESETS["tiny"], path, progress=False)
        return path
    return None


def to_onnx(pkl: Path) -> Path | None:
    onnx_path = pkl.with_suffix(".onnx")
    if onnx_path.exists():
        return onnx_path
    import pickle

    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType

    model = pickle.loads(pkl.read_bytes())
    started = time.perf_counter()
    onx = convert(
        model,
        initial_types=[("input", FloatTensorType([None, model.n_features_in_]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    tmp = onnx_path.with_suffix(".onnx.part")
    tmp.write_bytes(onx.SerializeToString())
    tmp.replace(onnx_path)
    log(f"  ONNX conversion took {time.perf_counter() - started:.1f} s")
    return onnx_path


def bench_preset(preset: str, repeats: int, rows: Path, tmp: Path) -> dict | None:
    from coldbrew.experiment.train import compile_study_model as compile_model

    pkl = find_pickle(preset)
    if pkl is None:
        log(f"{preset}: no pickle in the model cache yet, skipped")
        return None
    log(f"{preset}: {pkl.name} ({pkl.stat().st_size / 1e6:,.1f} MB)")
    brew = pkl.with_suffix(".brew")
    if not brew.exists():
        log("  compiling .brew")
        stats = compile_model(pkl, brew, progress=True)
        log(f"  compiled in {stats['seconds']:.1f} s")
    log("  converting to ONNX (skl2onnx)")
    onnx_path = to_onnx(pkl)
    paths = {"sklearn": pkl, "onnx": onnx_path, "brew": brew, "brew-eager": brew}
    result = {
        "preset": preset,
        "pickle": pkl.name,
        "sizes": {k: paths[k].stat().st_size for k in ("sklearn", "onnx", "brew")},
    }
    result["cold"], result["evicted"] = {}, {}
    log(f"  floor: python -c 'import numpy' x{repeats}")
    result["floor"] = cold_start("floor", rows, repeats, evicted=False)
    for engine in ("sklearn", "onnx", "brew"):
        log(f"  cold start, page cache warm: {engine} x{repeats}")
        result["cold"][engine] = cold_start(engine, paths[engine], repeats, evicted=False)
    for engine in ("sklearn", "onnx", "brew", "brew-eager"):
        log(f"  cold start, file evicted: {engine} x{repeats}")
        result["evicted"][engine] = cold_start(engine, paths[engine], repeats, evicted=True)
    result["warm"], probas = {}, {}
    for engine in ("sklearn", "onnx", "brew"):
        log(f"  warm latency + 10k batch: {engine}")
        result["warm"][engine], probas[engine] = warm(engine, paths[engine], rows, tmp)
    ref = probas["sklearn"]
    result["exact"] = {
        "brew": bool(np.array_equal(probas["brew"], ref)),
        "onnx_max_diff": float(np.nanmax(np.abs(probas["onnx"] - ref))),
        "onnx_nan_rows": int(np.isnan(probas["onnx"]).any(axis=1).sum()),
    }
    log(f"  {json.dumps({k: v['seconds'] for k, v in result['cold'].items()})}")
    return result


def render(results: list[dict], missing: list[str], repeats: int) -> str:
    lines = [
        "# sklearn pickle vs ONNX Runtime vs .brew",
        "",
        f"Generated by `python bench/brew_vs_pickle.py` on {time.strftime('%Y-%m-%d %H:%M')} — "
        f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs: read ratios, not absolutes), "
        f"Python {platform.python_version()}. Medians of {repeats} fresh processes unless stated.",
        "",
        'Floor: a fresh `python -c "import numpy"`, measured the same way within each preset\'s run.',
        "",
    ]
    if missing:
        lines += [f"Not measured (pickle not in the model cache when this ran): {', '.join(missing)}.", ""]
    for r in results:
        c, e, w, s = r["cold"], r["evicted"], r["warm"], r["sizes"]
        ms = lambda x: f"{x * 1e3:,.0f} ms" if x < 10 else f"{x:,.1f} s"  # noqa: E731
        lines += [
            f"## {r['preset']} (`{r['pickle']}`)",
            "",
            "| metric | sklearn pickle | ONNX Runtime | .brew | .brew vs sklearn | .brew vs ONNX |",
            "|---|---|---|---|---|---|",
            f"| file size | {s['sklearn'] / 1e6:,.1f} MB | {s['onnx'] / 1e6:,.1f} MB | {s['brew'] / 1e6:,.1f} MB | "
            f"{s['brew'] / s['sklearn']:.2f}x | {s['brew'] / s['onnx']:.2f}x |",
            f"| spawn → first prediction, file in page cache | {ms(c['sklearn']['seconds'])} | {ms(c['onnx']['seconds'])} | "
            f"{ms(c['brew']['seconds'])} | {c['sklearn']['seconds'] / c['brew']['seconds']:,.1f}x faster | "
            f"{c['onnx']['seconds'] / c['brew']['seconds']:,.1f}x faster |",
            f"| same, file evicted from page cache | {ms(e['sklearn']['seconds'])} | {ms(e['onnx']['seconds'])} | "
            f"{ms(e['brew']['seconds'])} (eager: {ms(e['brew-eager']['seconds'])}) | "
            f"{e['sklearn']['seconds'] / e['brew']['seconds']:,.1f}x faster | {e['onnx']['seconds'] / e['brew']['seconds']:,.1f}x faster |",
            f"| peak RSS after load + 1 prediction | {c['sklearn']['rss_mb']:,.0f} MB | {c['onnx']['rss_mb']:,.0f} MB | "
            f"{c['brew']['rss_mb']:,.0f} MB | {c['brew']['rss_mb'] / c['sklearn']['rss_mb']:.2f}x | "
            f"{c['brew']['rss_mb'] / c['onnx']['rss_mb']:.2f}x |",
            f"| warm single row (median of 300) | {w['sklearn']['single_ms']:.3f} ms | {w['onnx']['single_ms']:.3f} ms | "
            f"{w['brew']['single_ms']:.3f} ms | {w['sklearn']['single_ms'] / w['brew']['single_ms']:,.1f}x faster | "
            f"{w['onnx']['single_ms'] / w['brew']['single_ms']:,.1f}x faster |",
            f"| 10,000-row batch (median of 3) | {ms(w['sklearn']['batch_s'])} | {ms(w['onnx']['batch_s'])} | "
            f"{ms(w['brew']['batch_s'])} | {w['sklearn']['batch_s'] / w['brew']['batch_s']:,.1f}x faster | "
            f"{w['onnx']['batch_s'] / w['brew']['batch_s']:,.1f}x faster |",
            f"| vs sklearn on the 10,000 rows | — | max diff {r['exact']['onnx_max_diff']:.1e}, "
            f"{r['exact']['onnx_nan_rows']} NaN rows | {'bit-identical' if r['exact']['brew'] else 'DIFFERENT'} | | |",
            "",
            f'Floor (`python -c "import numpy"`, same window): {ms(r["floor"]["seconds"])}, '
            f"{r['floor']['rss_mb']:,.0f} MB RSS. .brew spawn → first prediction = "
            f"**{c['brew']['seconds'] / r['floor']['seconds']:.2f}x the floor** (target <= 1.5x).",
            "",
        ]
    lines += [
        "Method: each cold-start process runs `import` + load + `predict_proba` on the study's payload and reports "
        "`time.time()` minus the parent's spawn timestamp (interpreter start-up included, teardown excluded) and "
        "its peak RSS (`VmHWM`). Before each warm-cache run the parent reads the whole file; before each evicted run it calls "
        "`posix_fadvise(POSIX_FADV_DONTNEED)` on it. ONNX models come from skl2onnx (`zipmap=False`, float32 input). "
        "Rows are the first 10,000 of the study's test split.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,140mb,420mb,1090mb")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from coldbrew.experiment.dataset import study_split

    _, X_test, _, _ = study_split()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = tmp / "rows.npy"
        np.save(rows, X_test.to_numpy(dtype=np.float64)[:10_000])
        results, missing = [], []
        for preset in args.presets.split(","):
            r = bench_preset(preset, args.repeats, rows, tmp)
            (results.append(r) if r else missing.append(preset))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, missing, args.repeats))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
