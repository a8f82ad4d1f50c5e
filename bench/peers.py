"""coldbrew's .brew engine against every peer that reads the same models: one harness, one run, one table.

Runtimes: coldbrew (C kernel, numpy in/out; single rows also as lists), the library itself (LightGBM's Booster,
XGBoost's scikit-learn wrapper, scikit-learn), pylignum 0.3 (interpreter, and compiled to a shared library with
the system C compiler), lleaves (LLVM-compiled, LightGBM only), tl2cgen (gcc-compiled), ONNX Runtime (onnxmltools
/ skl2onnx conversions) and treelite's GTIL interpreter. Models (bench/peer_models.py, trained once on the study's
census data and cached): LightGBM 500 x 63 leaves, XGBoost 2,000 x depth 8, a RandomForest 100 x depth 12 and the
study's 140mb scikit-learn GradientBoosting (1,261 fully grown trees).

Figures, per (model, runtime), each measured in fresh processes with the model files in the page cache, in
--repeats rounds that interleave the runtimes (and 1 and 2 threads), each figure the median over the rounds:
- batch: ns per tree x row over 10,000 test rows with 5% of the values NaN (the scikit-learn models refuse NaN:
  no NaN for them), median of 5 per process, single-threaded; and with 2 threads where the runtime has them
  (second table);
- single row: p50 and p99 over 400 calls, a different row each call;
- fresh process -> imports + load + first prediction of the study's payload row (median of 3 processes, rounds
  interleave the runtimes), and that process's peak RSS (VmHWM);
- exactness of P(class 1) on the batch against the library's own predict: bit-exact (np.array_equal) or the
  largest absolute difference.

Compiled peers (pylignum compiled, lleaves, tl2cgen) are compiled once, before the measurements, and loaded from
their shared libraries; their compile time is reported but not counted in the fresh-process figure. A peer that
cannot be installed, cannot read a model or fails is listed with the reason. coldbrew's own modules are
byte-compiled first (`compileall`), as `pip install` does for every peer and the Lambda zip does for coldbrew: a
checkout run under PYTHONDONTWRITEBYTECODE would otherwise compile them in every fresh process (~25 ms).

The page names the CPU and whether it has AVX-512 (F and VL) or AVX2: coldbrew's bit vectors for batches of small
trees need one of them.

    python bench/peers.py [--repeats 3] [--models lgbm,xgb,forest,gbm140] [--runtimes coldbrew,pylignum,...]

Writes bench/results/peers.md and peers.json. The machine is shared (2 cores, other jobs running): every figure
is a median over repeats with the runtimes interleaved; compare ratios within this run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
peer_models = importlib.import_module("peer_models")  # the sibling script that trains and caches the models

RESULTS = ROOT / "bench" / "results"
ROW = [34.0, 261799.0, 11.0, 0.0, 0.0, 56.0]  # the study's payload

# Each snippet defines predict(X) -> P(class 1) for float64 rows X, reading `path` (the runtime's model file) and
# THREADS. The libraries' own predictions are the reference.
LOADERS = {
    "coldbrew": """
from coldbrew.engine.brew import BrewPredictor
m = BrewPredictor(path, threads=THREADS)
predict = lambda X: m.predict_proba(X)[:, 1]
predict_list = lambda rows: m.predict_proba(rows)
""",
    "library:lgbm": """
import lightgbm
b = lightgbm.Booster(model_file=path)
predict = lambda X: b.predict(X, num_threads=THREADS)
""",
    "library:xgb": """
import xgboost
m = xgboost.XGBClassifier(n_jobs=THREADS); m.load_model(path)
predict = lambda X: m.predict_proba(X)[:, 1]
""",
    "library:sklearn": """
import pickle
with open(path, 'rb') as fh: m = pickle.load(fh)
if hasattr(m, 'n_jobs'): m.n_jobs = THREADS  # a forest's threads add its trees in the order they finish
predict = lambda X: m.predict_proba(X)[:, 1]
""",
    "pylignum": """
import lignum
m = lignum.load(path)
predict = lambda X: m.predict(X, n_jobs=THREADS)
""",
    "pylignum-compiled": """
import lignum
m = lignum.load(path, compiled=LIB)
predict = lambda X: m.predict(X, n_jobs=THREADS)
""",
    "lleaves": """
import lleaves
m = lleaves.Model(model_file=path)
m.compile(cache=LIB)
predict = lambda X: m.predict(X, n_jobs=THREADS)
""",
    "tl2cgen": """
import tl2cgen
p = tl2cgen.Predictor(LIB, nthread=THREADS)
_one = lambda X: p.predict(tl2cgen.DMatrix(X, dtype='float64'))
predict = lambda X: _one(X).reshape(len(X), -1)[:, -1]
""",
    "onnxruntime": """
import onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = THREADS; so.inter_op_num_threads = 1
s = ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])
name = s.get_inputs()[0].name
def predict(X):
    out = s.run(None, {name: X.astype(np.float32)})[1]
    return np.array([r[1] for r in out]) if isinstance(out, list) else out[:, 1]
""",
    "gtil": """
import treelite
tm = treelite.Model.deserialize(path)
def predict(X):
    out = treelite.gtil.predict(tm, X, nthread=THREADS)
    return out.reshape(len(X), -1)[:, -1]
""",
}

CHILD = """import sys, time, json
spawn = float(sys.argv[1])
import numpy as np
path, LIB, THREADS, mode, rows_path, out_path = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
{body}
first = np.asarray(predict(np.array([{row}], dtype=np.float64)))
done = time.time() - spawn
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
res = {{"first_s": done, "rss_mb": int(hwm) / 1024}}
if mode == "warm":
    X = np.load(rows_path)
    P = np.asarray(predict(X))
    batch = []
    for _ in range(5):
        t = time.perf_counter(); predict(X); batch.append(time.perf_counter() - t)
    lat = []
    for i in range(400):
        r = X[i % len(X): i % len(X) + 1]
        t = time.perf_counter(); predict(r); lat.append(time.perf_counter() - t)
    lat.sort()
    res.update(batch_s=sorted(batch)[2], p50_s=lat[len(lat) // 2], p99_s=lat[int(len(lat) * 0.99)])
    if "predict_list" in dir():
        L = X[:400].tolist(); ll = []
        for i in range(400):
            t = time.perf_counter(); predict_list([L[i]]); ll.append(time.perf_counter() - t)
        ll.sort(); res["p50_list_s"] = ll[len(ll) // 2]
    np.save(out_path, P)
print("RESULT " + json.dumps(res))
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def warm_cache(*paths: Path) -> None:
    for path in paths:
        if path and Path(path).is_file():
            with open(path, "rb") as fh:
                while fh.read(16 << 20):
                    pass


def run_child(loader: str, path: Path, lib: str, threads: int, mode: str, rows: Path, out: Path) -> dict:
    code = CHILD.format(body=LOADERS[loader], row=ROW)
    warm_cache(path, Path(lib) if lib else None)
    env = dict(ENV, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, "-c", code, repr(time.time()), str(path), lib, str(threads), mode, str(rows), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=1800,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1][:300])
    return json.loads(lines[-1][len("RESULT ") :])


# ----------------------------------------------------------------------------------------------- artifacts
def artifacts(name: str, info: dict, work: Path) -> tuple[dict[str, tuple[str, Path, str]], dict[str, str]]:
    """runtime -> (loader, model path, shared library or ""), and runtime -> why it is not measured."""
    lib_path, brew = Path(info["lib"]), Path(info["brew"])
    runs: dict[str, tuple[str, Path, str]] = {"coldbrew": ("coldbrew", brew, "")}
    skipped: dict[str, str] = {}
    compile_s: dict[str, float] = {}
    lib_loader = {"lgbm": "library:lgbm", "xgb": "library:xgb"}.get(name, "library:sklearn")
    runs["library"] = (lib_loader, lib_path, "")
    sk = name in ("forest", "gbm140")

    def attempt(runtime: str, make) -> None:
        started = time.perf_counter()
        try:
            made = make()
        except Exception as exc:  # noqa: BLE001 - any peer failure is listed with its reason, never fatal
            skipped[runtime] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
            )
            return
        if isinstance(made, str):
            skipped[runtime] = made
            return
        compile_s[runtime] = time.perf_counter() - started
        runs[runtime] = made

    if sk:
        skipped["pylignum"] = skipped["pylignum-compiled"] = "reads LightGBM, XGBoost and CatBoost files only"
        skipped["lleaves"] = "reads LightGBM files only"
    else:
        import lignum

        def pylignum_compiled():
            so = work / f"{name}-lignum.so"
            if not so.exists():
                lignum.load(str(lib_path)).compile(library=str(so))
            return ("pylignum-compiled", lib_path, str(so))

        attempt("pylignum", lambda: ("pylignum", lib_path, ""))
        attempt("pylignum-compiled", pylignum_compiled)
        if name == "lgbm":

            def lleaves_compiled():
                import lleaves

                so = work / f"{name}-lleaves.so"
                if not so.exists():
                    lleaves.Model(model_file=str(lib_path)).compile(cache=str(so))
                return ("lleaves", lib_path, str(so))

            attempt("lleaves", lleaves_compiled)
        else:
            skipped["lleaves"] = "reads LightGBM files only"

    def treelite_model():
        import treelite

        if name == "lgbm":
            return treelite.frontend.load_lightgbm_model(str(lib_path))
        if name == "xgb":
            return treelite.frontend.load_xgboost_model(str(lib_path))
        import pickle

        with open(lib_path, "rb") as fh:
            est = pickle.load(fh)
        return treelite.sklearn.import_model(est)

    def gtil():
        tm = treelite_model()
        out = work / f"{name}.treelite"
        tm.serialize(str(out))
        return ("gtil", out, "")

    def tl2cgen_lib():
        if name == "gbm140":
            return "not built: gcc on 1,261 fully grown trees (2.7 M nodes) exceeds this bench's compile budget"
        import tl2cgen

        so = work / f"{name}-tl2cgen.so"
        if not so.exists():
            tl2cgen.export_lib(treelite_model(), toolchain="gcc", libpath=str(so), params={"parallel_comp": 8})
        return ("tl2cgen", lib_path, str(so))

    def onnx_model():
        out = work / f"{name}.onnx"
        if not out.exists():
            if name == "lgbm":
                import lightgbm
                import onnxmltools
                from onnxmltools.convert.common.data_types import FloatTensorType

                m = lightgbm.Booster(model_file=str(lib_path))
                onx = onnxmltools.convert_lightgbm(m, initial_types=[("X", FloatTensorType([None, 6]))], zipmap=False)
            elif name == "xgb":
                import onnxmltools
                import xgboost
                from onnxmltools.convert.common.data_types import FloatTensorType

                m = xgboost.XGBClassifier()
                m.load_model(str(lib_path))
                onx = onnxmltools.convert_xgboost(m, initial_types=[("X", FloatTensorType([None, 6]))])
            else:
                import pickle

                from skl2onnx import to_onnx

                with open(lib_path, "rb") as fh:
                    est = pickle.load(fh)
                onx = to_onnx(est, np.zeros((1, 6), dtype=np.float32), options={"zipmap": False})
            out.write_bytes(onx.SerializeToString())
        return ("onnxruntime", out, "")

    attempt("tl2cgen", tl2cgen_lib)
    attempt("onnxruntime", onnx_model)
    attempt("gtil", gtil)
    info["compile_s"] = compile_s
    return runs, skipped


# ------------------------------------------------------------------------------------------------ measuring
def measure(models: dict, names: list[str], repeats: int, work: Path, only: set[str] | None = None) -> dict:
    _, _, holes, clean = peer_models.data()
    results: dict = {}
    for name in names:
        info = models[name]
        log(f"{name}: preparing peers")
        runs, skipped = artifacts(name, info, work)
        if only:  # --runtimes: the others are listed as not measured in this run (the library is the reference)
            for rt in [rt for rt in runs if rt not in only | {"library"}]:
                del runs[rt]
                skipped[rt] = "not in this run's --runtimes"
        rows = work / f"{name}-rows.npy"
        X = holes if info["nan"] else clean
        np.save(rows, X)
        res: dict = {"label": info["label"], "trees": info["trees"], "skipped": skipped, "runtimes": {}}
        res["compile_s"] = info.get("compile_s", {})
        res["sizes"] = {rt: Path(p).stat().st_size for rt, (_, p, _) in runs.items()}
        failed: dict[str, str] = {}
        rounds: dict[str, list[dict]] = {}
        for i in range(repeats):  # interleaved rounds: the machine's slow phases fall on every runtime alike
            # each runtime's 1- and 2-thread runs back to back: run apart, a heavy peer's run just before the
            # 2-thread one took coldbrew's XGBoost speed-up from 1.98x to 1.13-1.61x in the same session
            for rt, (loader, path, lib) in runs.items():
                for threads in (1, 2):
                    if rt in failed:
                        continue
                    log(f"{name}: {rt} warm, {threads} thread(s), round {i + 1} of {repeats}")
                    try:
                        out = work / f"{name}-{rt}-{threads}.npy"
                        got = run_child(loader, path, lib, threads, "warm", rows, out)
                        rounds.setdefault(f"{rt}/{threads}", []).append(got)
                    except Exception as exc:  # noqa: BLE001 - a failing peer is listed with its reason
                        failed[rt] = str(exc)
        warm = {
            key: {fig: statistics.median(r[fig] for r in runs_) for fig in runs_[0]} for key, runs_ in rounds.items()
        }
        cold: dict[str, list[dict]] = {rt: [] for rt in runs if rt not in failed}
        for _ in range(repeats):  # interleaved rounds
            for rt in cold:
                loader, path, lib = runs[rt]
                cold[rt].append(run_child(loader, path, lib, 1, "cold", rows, work / "unused.npy"))
        reference = np.load(work / f"{name}-library-1.npy")
        for rt in cold:
            w1, w2 = warm.get(f"{rt}/1"), warm.get(f"{rt}/2")
            P = np.load(work / f"{name}-{rt}-1.npy")
            exact = bool(np.array_equal(P, reference) and P.dtype == reference.dtype)
            diff = float(np.max(np.abs(P.astype(np.float64) - reference.astype(np.float64))))
            res["runtimes"][rt] = {
                "batch_ns": w1["batch_s"] / (len(X) * info["trees"]) * 1e9,
                "batch_ns_2threads": w2["batch_s"] / (len(X) * info["trees"]) * 1e9 if w2 else None,
                "p50_us": w1["p50_s"] * 1e6,
                "p99_us": w1["p99_s"] * 1e6,
                "p50_list_us": w1["p50_list_s"] * 1e6 if "p50_list_s" in w1 else None,
                "first_ms": statistics.median(c["first_s"] for c in cold[rt]) * 1e3,
                "rss_mb": statistics.median(c["rss_mb"] for c in cold[rt]),
                "exact": exact,
                "max_abs_diff": diff,
                "dtype": P.dtype.str,
            }
        res["failed"] = failed
        results[name] = res
    return results


# -------------------------------------------------------------------------------------------------- report
def cpu() -> dict:
    """The CPU's model name and its vector extensions that coldbrew's batches use (Linux's /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "avx512": None, "avx2": None}
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in text.splitlines()[:40]) if v.strip()
    )
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name", platform.machine()),
        "avx512": {"avx512f", "avx512vl"} <= flags,
        "avx2": "avx2" in flags,
    }


def cpu_text(info: dict) -> str:
    if info.get("avx512") is None:
        return f"{info['model']} (vector extensions unknown)"
    if info["avx512"]:
        return f"{info['model']}, with AVX-512 and AVX2 (coldbrew's bit vectors: AVX2, bytes where they fit)"
    if info.get("avx2"):
        return f"{info['model']}, with AVX2 and no AVX-512 (coldbrew's bit vectors: AVX2, bytes where they fit)"
    return f"{info['model']}, without AVX2 (coldbrew's batches walk)"


def render(results: dict, args) -> str:
    out = [
        "# coldbrew vs its peers: one run of `python bench/peers.py`",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()} {cpu_text(args.cpu)}, "
        f"{os.cpu_count()} cores shared with other jobs (load average at start "
        f"{args.load[0]:.1f}); Python {platform.python_version()}. Medians: batch of 5 runs, single row over 400 "
        f"calls (a different row each call), each then over {args.repeats} rounds of processes that interleave the "
        f"runtimes; fresh process over {args.repeats} processes, interleaved too. "
        "Batch: 10,000 census rows, 5% NaN (scikit-learn models: no NaN, they refuse it). Single-threaded unless "
        "stated. The machine was loaded: compare ratios within this run, not absolute numbers across runs. "
        "coldbrew's modules byte-compiled first, as an install does.",
        "",
    ]
    all_models = ("lgbm", "xgb", "forest", "gbm140")
    partial_runtimes = any("--runtimes" in why for res in results.values() for why in res["skipped"].values())
    if partial_runtimes:
        out += [
            f"A partial run: models {', '.join(res['label'] for res in results.values())} only, and only the "
            "runtimes listed with figures (`--models`, `--runtimes`); the last full run is this file in git history.",
            "",
        ]
    elif set(results) != set(all_models):
        out += [
            f"A partial run: models {', '.join(res['label'] for res in results.values())} only (`--models`), every "
            "runtime; the other models' last figures are this file in git history.",
            "",
        ]
    for res in results.values():
        rts = res["runtimes"]
        out += [f"## {res['label']}", ""]
        out += [
            "| runtime | batch, ns per tree·row | single row p50 | p99 | fresh process → first prediction | "
            "peak RSS | exact vs library | model file |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for rt, r in rts.items():
            single = f"{r['p50_us']:,.1f} µs"
            if r.get("p50_list_us"):
                single += f" (lists: {r['p50_list_us']:,.1f})"
            if r["exact"]:
                exact = "bit-exact"
            elif r["max_abs_diff"] == 0:  # equal values, another dtype (float64 where XGBoost answers float32)
                exact = f"same values, dtype {r['dtype']}"
            else:
                exact = f"no (max diff {r['max_abs_diff']:.2g})"
            name_rt = f"**{rt}**" if rt == "coldbrew" else rt
            out.append(
                f"| {name_rt} | {r['batch_ns']:,.1f} | {single} | {r['p99_us']:,.1f} µs | {r['first_ms']:,.0f} ms | "
                f"{r['rss_mb']:,.0f} MB | {exact} | {res['sizes'].get(rt, 0) / 1e6:,.1f} MB |"
            )
        for rt, why in {**res["skipped"], **res.get("failed", {})}.items():
            out.append(f"| {rt} | — | — | — | — | — | not measured: {why} | |")
        if res.get("compile_s"):
            made = ", ".join(f"{rt} {s:,.0f} s" for rt, s in res["compile_s"].items() if s > 0.5)
            if made:
                out += ["", f"Preparation (not counted above): {made}."]
        out.append("")
    out += ["## With threads: batch ns per tree·row, 1 vs 2 threads", ""]
    out += ["| model | runtime | 1 thread | 2 threads | speed-up |", "|---|---|---|---|---|"]
    for res in results.values():
        for rt, r in res["runtimes"].items():
            if r["batch_ns_2threads"]:
                out.append(
                    f"| {res['label']} | {rt} | {r['batch_ns']:,.1f} | {r['batch_ns_2threads']:,.1f} | "
                    f"{r['batch_ns'] / r['batch_ns_2threads']:.2f}x |"
                )
    out += ["", "## Where coldbrew is behind, and why", "", *verdicts(results), "", WHY, ""]
    return "\n".join(out)


WHY = """Why, where it is behind:

- **Compiled peers** (pylignum compiled, lleaves, tl2cgen) turn each tree into machine code: a split is a compare
  against an immediate threshold and a jump, the tree's shape is in the instruction stream, and nothing is loaded
  but the input. coldbrew stays data-only (no compiler, nothing generated per model): each level loads a node
  record and then the input it names. Since #20's second round a batch walks the row form (docs/format.md section
  7): 8-byte nodes, the rows copied once per block of ~48 KiB (float64 models binned: each value replaced by its
  rank among the model's thresholds, exactly), each tree walked by 16 rows interleaved with a conditional move per
  level, in lock-step for even-depth trees (XGBoost, forests) and refilled in bursts of 4 steps for leaf-wise ones
  (LightGBM), and a float32 model's leaves holding their own values. Batches of small trees do not walk at all:
  models whose trees have at most 64 leaves (LightGBM 500 x 63) run QuickScorer bit vectors, each row's exit leaf
  the lowest bit left. Binned models whose features have at most 255 thresholds (LightGBM) compare bytes, 32 rows
  to an AVX2 instruction: each row's bin as a signed byte, each tree's vectors as eight octants of leaves, a split
  listed under the octants its left subtree reaches (most reach one), the octants shuffled into 64-bit vectors
  64 rows at a time, trees 64 at a time so their vectors stay in the first-level cache. Other small trees keep
  each row's vector as two 32-bit halves, 8 rows to a register, so most splits clear one half only (the AVX-512
  tables, one 16-row compare per split over slot-sorted splits, measured 2x slower on Zen 4). Deeper trees
  of at most 12 levels (XGBoost's depth 8, 256 leaves; the forest's depth 12) walk a perfect-tree copy in heap
  order: a level is a compare and an add-with-carry, ~4 instructions against ~8 for the general walk, and with AVX2
  the top 4 levels are tested for 16 rows at once (below). That took the batch from ~25 (LightGBM) and ~23 (XGBoost) ns/tree-row in #20's first round to the figures above. What is left
  where a compiled peer is still ahead is the loads: per level a node's threshold and slot, then the value it
  names, against the compiled code's compare with an immediate. Tried on Zen 3 and measured no faster than the
  general walk: 8 walks interleaved instead of 16, every lane's leaf read unrolled, and AVX2 gathers (8 walks to a
  vector, 2-8 vectors in flight: 1.45x slower, a gather costing more than the loads it replaces).
- **pylignum's interpreter** bins the inputs first (`uses_binned`) and compares small integers; coldbrew now bins
  float64 models the same way (ranks, so the comparisons are the library's) and compares float32 values, so its
  nodes are 8 bytes for every family the row form covers.
- **Single row**: one row through every tree is a chain of dependent loads per tree, so its cost is latency: 16
  trees are walked interleaved (lock-step, or refilled as walks end, finished ones looked for every 4 steps),
  on the same 8-byte nodes; LightGBM's ~4,500 steps a row come from the second-level cache (the 500 trees'
  nodes are 0.5 MB, their float64 leaf values another 1 MB of the file's records). Since #20's fifth round a
  binary classifier's row, once the forms are built, is one C call from the list or numpy row to its (1 - p, p)
  (`row_proba`: the general path's cast, checks, walks and link, same bits), where the call paid ~2 µs of Python
  around the walks (LightGBM in process: 6.1 -> 4.4 µs). One output's sum is kept in a register
  over the trees (it was stored and reloaded per tree: LightGBM 16.1 -> 14.7 µs in an in-process A/B). A float64
  numpy row is recognised with the cheapest checks first and a refilled walk prefetches the root of the tree after
  next, a step asks for its right child's line, and the model's buffers are checked once per form rather than
  per call (LightGBM in one process, calls interleaved with pylignum's interpreter: 16.5 -> 12.8 µs against its
  15.3-16.0). In separate processes on a quiet machine the two were within a microsecond of each other (12.8 vs
  12.1 µs in the run before the last two changes); XGBoost's single row is well ahead (31-34 against 54-87 µs).
- **Threads**: the threads take blocks of 1,024 rows in turn from a shared counter, and the helper threads are
  kept between batches (a helper spins 2 ms for the next batch, then sleeps, and ends after 1 s idle; one that has
  not claimed its share when the caller runs out of rows is left out). What a call does on one thread is small:
  the input checked and cast, and since #20's fifth round a binary classifier's (1 - p, p) rows paired in C (a
  Python loop over the rows there was 0.4 ms of a 10,000-row LightGBM batch's 8.3 ms and held its 2-thread
  speed-up under ~1.9x). The 2 cores are shared with other jobs (a Firecracker VM), so the second core is at
  times slower than the first, which no scheduling can make up, and the speed-up moves from run to run: on a Zen 3
  host in #20's fourth round, four full runs gave LightGBM 2.25x, 1.96x, 1.73x and 1.38x and XGBoost 1.74x-2.14x.
  Hand-outs of 2,048 rows, and blocks that shrink as the rows run out (each a share of what is left, down to 128
  rows, so the threads end together), measured no better than 1,024 (in-process A/B on Zen 5: LightGBM 1.77x and
  1.76x, XGBoost 1.90x and 1.94x).
- **XGBoost's batch**: each level of the perfect-tree walk is 4 instructions with 3 loads (the entry's slot and
  threshold, then the row's value). Since #20's fourth round, on CPUs with AVX2 the top 4 levels are not walked:
  each of their 15 splits is tested for a group's 16 rows with two vector compares (the same `!(v <= r)`, NaN
  going right), and each row's entry after them follows from the 15 answers by four vector steps; the rows part
  only below that. 15 tests for 16 rows cost fewer instructions than the 64 steps they replace (in-process A/B on
  Zen 3: 5.2 -> 4.4 ns/tree-row; 3 levels 4.7, 5 slower), and with it coldbrew passed pylignum's compiled code on
  this model. The steps in that walk are VEX-encoded: SSE steps after AVX code measured 2.5x slower. Measured no
  faster before: 12 lanes (rows re-laid 12 to a group: no register spills), integer keys instead of float
  compares, blocks of 256-1,024 rows through chunks of 64-256 KiB of trees, the depth-8 loop unrolled, 2 MiB
  pages for the trees; and this round a "cut form" (each of the model's 532 distinct splits answered once per row
  as a byte, so a step is two loads and an add over 2-byte entries): no faster, its answers alone costing 0.4
  ns/tree-row.
- **Fresh process**: coldbrew memory-maps the file and parses a small JSON header; nothing per tree happens
  before the first prediction (the compact and row forms wait until the walks without them have cost an eighth of
  building them), which is why it stays first there.
"""


def verdicts(results: dict) -> list[str]:
    lines = []
    for res in results.values():
        rts = res["runtimes"]
        me = rts.get("coldbrew")
        if not me:
            continue
        for fig, label in (("batch_ns", "batch"), ("p50_us", "single row p50"), ("first_ms", "first prediction")):
            ahead = [rt for rt, r in rts.items() if rt != "coldbrew" and r[fig] < me[fig]]
            if ahead:
                lines.append(
                    f"- {res['label']}, {label}: behind "
                    + ", ".join(f"{rt} ({rts[rt][fig]:,.1f} vs {me[fig]:,.1f})" for rt in ahead)
                    + "."
                )
    return lines or ["- Nowhere in this run."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="lgbm,xgb,forest,gbm140")
    ap.add_argument("--render", action="store_true", help="only rewrite peers.md from peers.json")
    ap.add_argument("--runtimes", default="", help="measure only these (comma-separated; the library always)")
    args = ap.parse_args()
    args.load = os.getloadavg()
    args.cpu = cpu()
    if args.render:
        saved = json.loads((RESULTS / "peers.json").read_text())
        args.load = saved.pop("_load", args.load)
        args.cpu = saved.pop("_cpu", {"model": "unknown", "avx512": None, "avx2": None})
        (RESULTS / "peers.md").write_text(render(saved, args) + "\n")
        return
    # An installed package has its bytecode compiled (pip does it); a checkout run under PYTHONDONTWRITEBYTECODE
    # would otherwise compile coldbrew's modules in every fresh process.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "coldbrew")], check=True, stdout=subprocess.DEVNULL
    )
    models = peer_models.train()
    names = [n for n in args.models.split(",") if n]
    work = peer_models.folder() / "peers-artifacts"
    work.mkdir(exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for name in names:  # the page is rewritten after each model, so a long run leaves what it measured
        only = {rt for rt in args.runtimes.split(",") if rt} or None
        results.update(measure(models, [name], args.repeats, work, only))
        saved = {**results, "_load": list(args.load), "_cpu": args.cpu}
        (RESULTS / "peers.json").write_text(json.dumps(saved, indent=1, default=str) + "\n")
        (RESULTS / "peers.md").write_text(render(results, args) + "\n")
        log(f"wrote {RESULTS / 'peers.md'} ({', '.join(results)})")


if __name__ == "__main__":
    main()
