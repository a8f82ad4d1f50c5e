"""The zip setup's size and isolated cold start beside today's venv-based lab environment (issue #12 §4).

For each preset whose .brew is in the model cache (tiny, 140mb):

1. unzipped size per setup: ``zip-snapstart`` x86_64 and arm64 ``function.zip`` (model + code, from the build
   manifest) and the image setups' estimated size (``package``'s result), for comparison;
2. isolated cold starts in the lab, one environment at a time, the model's page cache evicted before every start,
   side by side in one run and interleaved (each repeat runs both candidates once, in a shuffled order):

   - ``zip``: the handler from the unzipped x86_64 ``function.zip`` in a clean interpreter
     (``python -S -B -m awslambdaric``, PYTHONPATH = unzipped dir + copied runtime client), exactly as the
     smoke test (``coldbrew.deploy.smoke.run_in_lab``) runs it;
   - ``venv``: the lab's default launcher with this environment's coldbrew on the path (today's environment);

   both with the same .brew, one ``POST /predict`` per start; the lab's init wall and CPU time
   (``x-lab-init-ms``, ``x-lab-init-cpu-ms``) and the client's latency are recorded.

    PYTHONPATH=$PWD python bench/zip_cold_start.py [--presets tiny,140mb] [--repeats 9]

Writes bench/results/zip_cold_start.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

from coldbrew.deploy import package as pkg
from coldbrew.deploy import smoke
from coldbrew.experiment.isolated import _header_ms, _post, _wait_for_no_environment
from coldbrew.lab import Lab, LabConfig
from coldbrew.lab.staging import evict_page_cache

MODELS = Path.home() / ".cache" / "coldbrew" / "models"
PRESETS = {"tiny": "gbm-n20-d3.brew", "140mb": "gbm-n1261-dnone.brew"}
RESULTS = Path(__file__).parent / "results"
REAP_AFTER_S = 0.2


def mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:,.1f}"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def sizes(model: Path, work: Path) -> dict:
    """Unzipped bytes per setup: zip (both arches, model + code from the manifest) and the image estimates."""
    out: dict = {}
    for arch in ("x86_64", "arm64"):
        plan = pkg.make_plan(str(model), "zip-snapstart", arch=arch)
        result = pkg.package_zip(plan, work / f"zip-{arch}", smoke=False)
        m = result.manifest
        model_bytes = result.size_parts.get("model") or 0
        out[f"zip-snapstart {arch}"] = {
            "total": m.unzipped_bytes,
            "model": model_bytes,
            "code": m.unzipped_bytes - model_bytes,
            "parts": result.size_parts,
            "zip": str(work / f"zip-{arch}" / "function.zip"),
        }
    for setup in ("image-disk", "image-s3"):
        kw = {"s3_uri": "s3://bucket/model.brew"} if setup == "image-s3" else {}
        result = pkg.package(str(model), setup, work / setup, **kw)
        parts = result.size_parts
        model_bytes = parts.get("model") or 0
        total = result.estimated_bytes
        out[setup] = {
            "total": total,
            "model": model_bytes,
            "code": None if total is None else total - model_bytes,
            "parts": parts,
        }
    return out


def cold_starts(
    model: Path,
    zip_path: Path,
    repeats: int,
    work: Path,
    log,
    compile_runtime: bool = False,
    compile_task: bool = False,
) -> dict[str, list[dict]]:
    """``repeats`` interleaved isolated cold starts of the zip handler and the venv environment."""
    task_root = smoke.unzip(zip_path, work / "task")
    spec = smoke.function_spec(zip_path.parent / "template.yaml")
    runtime = smoke.copy_runtime(work / "runtime")
    if compile_runtime:  # Lambda's /var/runtime ships bytecode; the smoke test's copy has none
        import compileall

        compileall.compile_dir(str(runtime), quiet=1)
    if compile_task:  # what function.zip would hold if it shipped bytecode
        import compileall

        compileall.compile_dir(str(task_root), quiet=1)
    env = smoke.lambda_env(spec, task_root)
    env.update({"PYTHONPATH": os.pathsep.join([str(task_root), str(runtime)]), "LAMBDA_RUNTIME_DIR": str(runtime)})
    manifest = json.loads((zip_path.parent / "manifest.json").read_text())
    zip_model = task_root / manifest["model"]
    common = dict(max_concurrency=1, report=False, init_timeout=60.0, timeout=60.0, idle_timeout=REAP_AFTER_S)
    configs = {
        "zip": (
            LabConfig(
                handler=spec.handler,
                task_root=task_root,
                env=env,
                python=[sys.executable, *smoke.CLEAN_FLAGS],
                function_output=work / "zip_function.log",
                **common,
            ),
            zip_model,
        ),
        "venv": (LabConfig(model_uri=model, source="disk", function_output=work / "venv_function.log", **common), None),
    }
    body = json.dumps(smoke.sample_rows(model, 1)).encode()
    samples: dict[str, list[dict]] = {k: [] for k in configs}
    with Lab(configs["zip"][0]) as zlab, Lab(configs["venv"][0]) as vlab:
        labs = {"zip": zlab, "venv": vlab}
        # the venv lab stages the model: evict the file its environment reads
        staged = vlab._staged.evict if vlab._staged else [model]
        targets = {"zip": [zip_model], "venv": list(staged)}
        for n in range(1, repeats + 1):
            order = list(labs)
            random.shuffle(order)
            for name in order:
                lab = labs[name]
                _wait_for_no_environment(lab, 30.0)
                evict_page_cache(targets[name])
                status, headers, latency = _post(lab.url + "/predict", body, 120.0)
                s = {
                    "status": status,
                    "latency_ms": latency,
                    "init_ms": _header_ms(headers, "x-lab-init-ms"),
                    "init_cpu_ms": _header_ms(headers, "x-lab-init-cpu-ms"),
                }
                samples[name].append(s)
                log(
                    f"  {name} {n}/{repeats}: {status} {latency:,.0f} ms, init {s['init_ms']} ms, "
                    f"init CPU {s['init_cpu_ms']} ms"
                )
        for lab in labs.values():
            _wait_for_no_environment(lab, 30.0)
    return samples


def stats(samples: list[dict], key: str) -> dict:
    values = [s[key] for s in samples if s["status"] == 200 and s[key] is not None]
    return {"n": len(values), "p50": pct(values, 0.5), "p90": pct(values, 0.9)}


def ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,140mb")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument(
        "--compile-task",
        action="store_true",
        help="also byte-compile the unzipped code (as if the zip shipped .pyc); with --compile-runtime "
        "writes zip_cold_start_compiled_all.md/.json",
    )
    ap.add_argument(
        "--compile-runtime",
        action="store_true",
        help="byte-compile the copied runtime client first (as Lambda's /var/runtime); writes "
        "zip_cold_start_compiled_runtime.md/.json",
    )
    args = ap.parse_args()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.time()
    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "presets": {},
    }
    for preset in args.presets.split(","):
        model = MODELS / PRESETS[preset]
        if not model.exists():
            log(f"{preset}: {model} not cached, skipped")
            continue
        with tempfile.TemporaryDirectory(prefix="zipbench-") as tmp:
            work = Path(tmp)
            log(f"{preset}: building")
            size = sizes(model, work)
            log(f"{preset}: cold starts")
            samples = cold_starts(
                model,
                Path(size["zip-snapstart x86_64"]["zip"]),
                args.repeats,
                work / "run",
                log,
                args.compile_runtime,
                args.compile_task,
            )
        for v in size.values():
            v.pop("zip", None)
        summ = {
            k: {key: stats(v, key) for key in ("init_ms", "init_cpu_ms", "latency_ms")}
            | {"failures": sum(s["status"] != 200 for s in v)}
            for k, v in samples.items()
        }
        report["presets"][preset] = {
            "model_bytes": model.stat().st_size,
            "sizes": size,
            "summary": summ,
            "samples": samples,
        }
    report["runtime_s"] = round(time.time() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    report["compile_runtime"] = args.compile_runtime
    report["compile_task"] = args.compile_task
    stem = "zip_cold_start_compiled_runtime" if args.compile_runtime else "zip_cold_start"
    if args.compile_task:
        stem = "zip_cold_start_compiled_all" if args.compile_runtime else "zip_cold_start_compiled_task"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (RESULTS / f"{stem}.md").write_text(render(report))
    print(render(report))


def render(report: dict) -> str:
    lines = ["# zip-snapstart: unzipped size and isolated cold start vs today's venv environment", ""]
    head = [
        "model",
        "zip init p50 / venv init p50",
        "init CPU p50 ratio",
        "zip init p50 (p90)",
        "venv init p50 (p90)",
        "zip init CPU p50 (p90)",
        "venv init CPU p50 (p90)",
        "zip latency p50",
        "venv latency p50",
        "n (zip/venv, failed)",
        "zip x86_64 unzipped MB",
    ]
    lines += [
        "## Answer: isolated cold starts (lab, one environment at a time, model page cache evicted), ms",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for preset, p in report["presets"].items():
        z, v = p["summary"]["zip"], p["summary"]["venv"]
        lines.append(
            "| "
            + " | ".join(
                [
                    preset,
                    ratio(z["init_ms"]["p50"], v["init_ms"]["p50"]),
                    ratio(z["init_cpu_ms"]["p50"], v["init_cpu_ms"]["p50"]),
                    f"{ms(z['init_ms']['p50'])} ({ms(z['init_ms']['p90'])})",
                    f"{ms(v['init_ms']['p50'])} ({ms(v['init_ms']['p90'])})",
                    f"{ms(z['init_cpu_ms']['p50'])} ({ms(z['init_cpu_ms']['p90'])})",
                    f"{ms(v['init_cpu_ms']['p50'])} ({ms(v['init_cpu_ms']['p90'])})",
                    ms(z["latency_ms"]["p50"]),
                    ms(v["latency_ms"]["p50"]),
                    f"{z['init_ms']['n']}/{v['init_ms']['n']}, {z['failures']}/{v['failures']}",
                    mb(p["sizes"]["zip-snapstart x86_64"]["total"]),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "- zip: the handler from the unzipped x86_64 function.zip in a clean interpreter "
        "(`python -S -B -m awslambdaric`, only the unzipped dir + a copied runtime client on the path), "
        "as the smoke test runs it. venv: the lab's default launcher with this checkout's coldbrew on the "
        "path. Same .brew, one `POST /predict` per environment, interleaved in a shuffled order per repeat.",
        "- init = the lab's init wall time (`x-lab-init-ms`), init CPU = its CPU time (`x-lab-init-cpu-ms`); "
        "ratio < 1 means the zip starts faster.",
        f"- Machine: {report['machine']} — a shared 2-core box with other jobs running; Python "
        f"{report['python']}; {report['repeats']} repeats; total runtime {report['runtime_s']} s.",
        "",
        "## Unzipped size per setup, MB",
        "",
        "| model | setup | total | model | code | parts |",
        "|---|---|---|---|---|---|",
    ]
    for preset, p in report["presets"].items():
        for setup, s in p["sizes"].items():
            parts = ", ".join(f"{k} {mb(v)}" for k, v in s["parts"].items())
            kind = "" if setup.startswith("zip") else " (estimate)"
            lines.append(
                f"| {preset} | {setup}{kind} | {mb(s['total'])} | {mb(s['model'])} | {mb(s['code'])} | {parts} |"
            )
    lines += [
        "",
        "Zip sizes are the build manifest's (what Lambda counts against its 250 MB limit); image sizes are "
        "`package`'s estimate from the installed distributions (image-s3 holds no model).",
        "",
        "Reproduce: `PYTHONPATH=$PWD python bench/zip_cold_start.py --repeats 9`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
