"""What vendoring numpy costs a softmax model's zip: size, init and the first request (issue #22).

Two scikit-learn GradientBoosting models of the same shape on the same data (``make_classification``, 2 vs 3
classes, 50 trees per class, depth 3): the binary one's zip needs no numpy (``logistic`` output, libm's exp in the C
kernel), the 3-class one's ships numpy 2.x built for x86_64 (``softmax`` output). For each: the zip and unzipped
sizes from the build, then isolated cold starts in the lab exactly as the smoke test runs the zip (python3.12
``-S -B -m awslambdaric``, only the unzipped directory and the runtime client on the path), interleaved in a
shuffled order: the lab's init time and the first request's latency (numpy is imported by the first
``predict_proba``, after init), then one warm request.

    PYTHONPATH=$PWD python bench/zip_softmax.py [--repeats 9]

Writes bench/results/zip_softmax.md. Needs ziglang (cross-build) and a python3.12 here.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coldbrew.deploy import bytecode, smoke
from coldbrew.deploy import package as pkg
from coldbrew.experiment.isolated import _header_ms, _post, _wait_for_no_environment
from coldbrew.lab import Lab, LabConfig

RESULTS = Path(__file__).parent / "results"


def models(work: Path) -> dict[str, Path]:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    from coldbrew.convert import compile_estimator

    out = {}
    for name, k in (("binary (no numpy)", 2), ("3-class (numpy)", 3)):
        X, y = make_classification(2000, 20, n_informative=10, n_classes=k, random_state=0)
        X = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
        est = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0).fit(X, y)
        path = work / f"gb{k}.brew"
        compile_estimator(est, path, progress=False)
        out[name] = path
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    py, why = bytecode.find_python("python3.12")
    if py is None:
        print(f"needs a python3.12: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="coldbrew-bench-") as tmp:
        work = Path(tmp)
        built: dict[str, dict] = {}
        configs: dict[str, LabConfig] = {}
        runtime = smoke.target_runtime(py, "x86_64")
        for name, model in models(work).items():
            out = work / model.stem
            result = pkg.package(str(model), "zip-snapstart", out, smoke=False)
            manifest = result.manifest
            assert manifest is not None
            built[name] = {
                "zip": (out / "function.zip").stat().st_size,
                "unzipped": manifest.unzipped_bytes,
                "numpy": sum(v or 0 for k, v in result.size_parts.items() if k == "numpy"),
                "model": result.size_parts.get("model") or 0,
                "rows": json.dumps(smoke.sample_rows(model, 1)).encode(),
            }
            task_root = smoke.unzip(out / "function.zip", work / f"task-{model.stem}")
            spec = smoke.function_spec(out / "template.yaml")
            configs[name] = LabConfig(
                handler=spec.handler,
                task_root=task_root,
                env=smoke.clean_env(spec, task_root, runtime, py),
                python=[py.path, *smoke.CLEAN_FLAGS],
                max_concurrency=1,
                report=False,
                init_timeout=60.0,
                timeout=60.0,
                idle_timeout=0.2,
                function_output=work / f"{model.stem}.log",
            )
        samples: dict[str, list[dict]] = {name: [] for name in configs}
        labs = {name: Lab(config) for name, config in configs.items()}
        try:
            for lab in labs.values():
                lab.start()
            for n in range(args.repeats + 1):  # round 0: warm-up, not recorded
                order = list(labs)
                random.shuffle(order)
                for name in order:
                    lab = labs[name]
                    _wait_for_no_environment(lab, 30.0)
                    status, headers, first = _post(lab.url + "/predict", built[name]["rows"], 120.0)
                    status2, _, second = _post(lab.url + "/predict", built[name]["rows"], 120.0)
                    assert status == 200 and status2 == 200, (name, status, status2)
                    if n:
                        samples[name].append(
                            {"init": _header_ms(headers, "x-lab-init-ms"), "first": first, "warm": second}
                        )
                    print(f"  {name} {n or 'warm-up'}: init {_header_ms(headers, 'x-lab-init-ms')} ms, "
                          f"first {first:.0f} ms, warm {second:.1f} ms", flush=True)  # fmt: skip
        finally:
            for lab in labs.values():
                lab.stop()

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name] if s[key] is not None)

    base, soft = "binary (no numpy)", "3-class (numpy)"
    lines = [
        "# A softmax model's zip ships numpy: what it costs",
        "",
        f"Generated by `python bench/zip_softmax.py --repeats {args.repeats}` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"— {platform.machine()}, {py.label}, the lab as the smoke test runs a zip (`-S -B -m awslambdaric`, "
        "only the unzipped directory and the runtime client on the path). The machine was shared with other "
        "work (2 cores): compare the columns of one run, not absolute numbers.",
        "",
        "| model | function.zip | unzipped | of which numpy | init p50 ms | first request p50 ms | warm request p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (base, soft):
        b = built[name]
        lines.append(
            f"| {name} | {b['zip'] / 1e6:.1f} MB | {b['unzipped'] / 1e6:.1f} MB | {b['numpy'] / 1e6:.1f} MB | "
            f"{med(name, 'init'):.0f} | {med(name, 'first'):.0f} | {med(name, 'warm'):.1f} |"
        )
    lines += [
        "",
        f"Ratios (3-class / binary), medians: init {med(soft, 'init') / med(base, 'init'):.2f}x, first request "
        f"{med(soft, 'first') / med(base, 'first'):.2f}x, warm request {med(soft, 'warm') / med(base, 'warm'):.2f}x. "
        "numpy is imported by the first `predict_proba`, so its import shows in the first request, not in init "
        "(and is not in a SnapStart snapshot unless a warm-up asks for probabilities).",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zip_softmax.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
