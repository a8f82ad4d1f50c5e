"""The zip setup's size and isolated cold start beside today's venv-based lab environment (issue #12 §4).

For each preset whose .brew is in the model cache (tiny, 140mb):

1. unzipped size per setup: ``zip-snapstart`` x86_64 and arm64 ``function.zip`` (model + code + bytecode, from the
   build manifest) and the image setups' estimated size (``package``'s result), for comparison;
2. isolated cold starts in the lab, one environment at a time, the model's page cache evicted before every start,
   side by side in one run and interleaved (each repeat runs every candidate once, in a shuffled order, after one
   unmeasured warm-up round):

   - ``zip py3.12``: the handler from the unzipped x86_64 ``function.zip`` with the runtime's Python
     (``python3.12 -S -B -m awslambdaric``, PYTHONPATH = unzipped dir + a byte-compiled awslambdaric for 3.12),
     exactly as the smoke test (``coldbrew.deploy.smoke.run_in_lab``) runs it: it imports the shipped
     ``cpython-312`` pycs;
   - ``venv py3.12``: the same python3.12 with ``site``, this checkout's coldbrew, apig-wsgi and that awslambdaric
     on a writable path (bytecode written on the warm-up start, as in a venv): the fair comparison;
   - ``zip py3.11``: the same zip with this interpreter (``-S -B``, awslambdaric copied from here and
     byte-compiled): the shipped 3.12 pycs are not used, so it compiles coldbrew's sources on every start, as
     every zip did before it shipped bytecode (and as the arm64 qemu smoke run does);
   - ``venv py3.11``: the lab's default launcher with this environment's coldbrew on the path (today's lab);

   all with the same .brew, one ``POST /predict`` per start; the lab's init wall and CPU time
   (``x-lab-init-ms``, ``x-lab-init-cpu-ms``) and the client's latency are recorded.

    PYTHONPATH=$PWD python bench/zip_cold_start.py [--presets tiny,140mb] [--repeats 9] [--target-python PATH]

Writes bench/results/zip_cold_start.md and .json. Without a python3.12 here only the two 3.11 candidates run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import coldbrew
from coldbrew.deploy import bytecode, smoke, zipbuild
from coldbrew.deploy import package as pkg
from coldbrew.experiment.isolated import _header_ms, _post, _wait_for_no_environment
from coldbrew.experiment.modelcache import cache_path
from coldbrew.experiment.train import PRESETS as RECIPES
from coldbrew.lab import Lab, LabConfig
from coldbrew.lab.staging import evict_page_cache

RESULTS = Path(__file__).parent / "results"
REAP_AFTER_S = 0.2
CANDIDATES = ("zip py3.12", "venv py3.12", "zip py3.11", "venv py3.11")
HOST = f"{sys.version_info.major}.{sys.version_info.minor}"


def mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:,.1f}"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def sizes(model: Path, work: Path, target_python: str | None) -> dict:
    """Unzipped bytes per setup: zip (both arches, model + code from the manifest) and the image estimates."""
    out: dict = {}
    for arch in ("x86_64", "arm64"):
        plan = pkg.make_plan(str(model), "zip-snapstart", arch=arch)
        result = pkg.package_zip(plan, work / f"zip-{arch}", smoke=False, target_python=target_python)
        m = result.manifest
        model_bytes = result.size_parts.get("model") or 0
        pycs = sum(e.size for e in m.entries if e.path.endswith(".pyc"))
        out[f"zip-snapstart {arch}"] = {
            "total": m.unzipped_bytes,
            "model": model_bytes,
            "code": m.unzipped_bytes - model_bytes,
            "parts": result.size_parts | {"of which bytecode": pycs},
            "zip": str(work / f"zip-{arch}" / "function.zip"),
            "bytecode": m.bytecode.summary(),
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


def venv_path(py: bytecode.Interpreter, runtime: Path, work: Path) -> str:
    """PYTHONPATH of a python3.12 'venv': this checkout, apig-wsgi copied from here, awslambdaric for 3.12."""
    deps = work / "venv312-deps"
    for dep in ("apig-wsgi",):
        for src, rel in zipbuild.distribution_files(dep)[1]:
            (deps / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, deps / rel)
    checkout = Path(coldbrew.__file__).resolve().parent.parent
    return os.pathsep.join([str(checkout), str(deps), str(runtime)])


def cold_starts(
    model: Path, zip_path: Path, repeats: int, work: Path, log, py: bytecode.Interpreter | None
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """``repeats`` interleaved isolated cold starts of each candidate; returns the samples and what ran each."""
    task_root = smoke.unzip(zip_path, work / "task")
    spec = smoke.function_spec(zip_path.parent / "template.yaml")
    manifest = json.loads((zip_path.parent / "manifest.json").read_text())
    zip_model = task_root / manifest["model"]
    common = dict(max_concurrency=1, report=False, init_timeout=60.0, timeout=60.0, idle_timeout=REAP_AFTER_S)
    flags = " ".join(smoke.CLEAN_FLAGS)
    host_runtime = smoke.copy_runtime(work / "runtime")  # byte-compiled, as Lambda's /var/runtime
    configs: dict[str, tuple[LabConfig, Path | None]] = {}
    how: dict[str, str] = {}
    if py is not None:
        runtime = smoke.target_runtime(py, "x86_64")
        configs["zip py3.12"] = (
            LabConfig(
                handler=spec.handler,
                task_root=task_root,
                env=smoke.clean_env(spec, task_root, runtime, py),
                python=[py.path, *smoke.CLEAN_FLAGS],
                function_output=work / "zip312_function.log",
                **common,
            ),
            zip_model,
        )
        how["zip py3.12"] = f"{py.label} {flags}, the zip's {py.cache_tag} pycs"
        env = {"PYTHONPATH": venv_path(py, runtime, work), "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}
        configs["venv py3.12"] = (
            LabConfig(
                model_uri=model,
                source="disk",
                python=[py.path],
                env=env,
                function_output=work / "venv312_function.log",
                **common,
            ),
            None,
        )
        how["venv py3.12"] = f"{py.label} with site, checkout + deps on a writable path (pycs written once)"
    configs["zip py3.11"] = (
        LabConfig(
            handler=spec.handler,
            task_root=task_root,
            env=smoke.clean_env(spec, task_root, host_runtime),
            python=[sys.executable, *smoke.CLEAN_FLAGS],
            function_output=work / "zip311_function.log",
            **common,
        ),
        zip_model,
    )
    how["zip py3.11"] = f"Python {platform.python_version()} {flags}, the zip's pycs unused: compiles the sources"
    configs["venv py3.11"] = (
        LabConfig(model_uri=model, source="disk", function_output=work / "venv311_function.log", **common),
        None,
    )
    how["venv py3.11"] = f"Python {platform.python_version()}, the lab's default launcher (today's lab)"
    body = json.dumps(smoke.sample_rows(model, 1)).encode()
    samples: dict[str, list[dict]] = {k: [] for k in configs}
    labs: dict[str, Lab] = {}
    try:
        for name, (config, _) in configs.items():
            labs[name] = Lab(config)
            labs[name].start()
        targets = {}
        for name, (_, target) in configs.items():  # a venv lab stages the model: evict the file it reads
            staged = labs[name]._staged
            targets[name] = [target] if target else list(staged.evict if staged else [model])
        for n in range(0, repeats + 1):  # round 0: warm-up, not recorded
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
                if n:
                    samples[name].append(s)
                log(
                    f"  {name} {n or 'warm-up'}/{repeats}: {status} {latency:,.0f} ms, init {s['init_ms']} ms, "
                    f"init CPU {s['init_cpu_ms']} ms"
                )
        for lab in labs.values():
            _wait_for_no_environment(lab, 30.0)
    finally:
        for lab in labs.values():
            lab.stop()
    return samples, how


def stats(samples: list[dict], key: str) -> dict:
    values = [s[key] for s in samples if s["status"] == 200 and s[key] is not None]
    return {"n": len(values), "p50": pct(values, 0.5), "p90": pct(values, 0.9)}


def ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,140mb,420mb,1090mb")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--target-python", metavar="PATH", help="the python3.12 (default: found on PATH or in pyenv)")
    args = ap.parse_args()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.time()
    py, why = bytecode.find_python(pkg.tpl.RUNTIME, args.target_python)
    if py is None:
        log(f"only the 3.11 candidates run: {why}")
    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "target_python": None if py is None else {"version": py.label, "path": py.path},
        "repeats": args.repeats,
        "presets": {},
    }
    for preset in args.presets.split(","):
        model = cache_path(RECIPES[preset], "brew")
        if not model.exists():
            log(f"{preset}: {model} not cached, skipped")
            continue
        with tempfile.TemporaryDirectory(prefix="zipbench-") as tmp:
            work = Path(tmp)
            log(f"{preset}: building")
            size = sizes(model, work, None if py is None else py.path)
            log(f"{preset}: cold starts")
            samples, how = cold_starts(
                model, Path(size["zip-snapstart x86_64"]["zip"]), args.repeats, work / "run", log, py
            )
        for v in size.values():
            v.pop("zip", None)
        summ = {
            k: {key: stats(v, key) for key in ("init_ms", "init_cpu_ms", "latency_ms")}
            | {"failures": sum(s["status"] != 200 for s in v), "how": how[k]}
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
    (RESULTS / "zip_cold_start.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (RESULTS / "zip_cold_start.md").write_text(render(report))
    print(render(report))


def _p50(summary: dict, name: str, key: str) -> float | None:
    return summary[name][key]["p50"] if name in summary else None


def render(report: dict) -> str:
    lines = ["# zip-snapstart: unzipped size and isolated cold start vs today's venv environment", ""]
    head = [
        "model",
        "zip py3.12 / venv py3.12 init p50",
        "init CPU p50 ratio",
        "zip py3.12 / venv py3.11 (today's lab) init p50",
        "zip py3.11 (pycs unused) / venv py3.11 init p50",
    ]
    lines += [
        "## Answer: isolated cold starts (lab, one environment at a time, model page cache evicted)",
        "",
        "Ratios of medians; < 1 means the zip starts faster. function.zip ships bytecode for the runtime's Python "
        "(3.12); run by that Python it imports it and starts like a venv whose bytecode was written once. Run by "
        "another Python (the 3.11 column) the pycs are unusable and every cold start compiles coldbrew's sources "
        "again (/var/task is read-only on Lambda), which is what the zip cost before it shipped bytecode.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for preset, p in report["presets"].items():
        s = p["summary"]
        lines.append(
            "| "
            + " | ".join(
                [
                    preset,
                    ratio(_p50(s, "zip py3.12", "init_ms"), _p50(s, "venv py3.12", "init_ms")),
                    ratio(_p50(s, "zip py3.12", "init_cpu_ms"), _p50(s, "venv py3.12", "init_cpu_ms")),
                    ratio(_p50(s, "zip py3.12", "init_ms"), _p50(s, "venv py3.11", "init_ms")),
                    ratio(_p50(s, "zip py3.11", "init_ms"), _p50(s, "venv py3.11", "init_ms")),
                ]
            )
            + " |"
        )
    detail = ["model", "candidate", "init p50 (p90)", "init CPU p50 (p90)", "latency p50", "n, failed", "what ran"]
    lines += [
        "",
        "## Every candidate, ms",
        "",
        "| " + " | ".join(detail) + " |",
        "|" + "---|" * len(detail),
    ]
    for preset, p in report["presets"].items():
        for name in CANDIDATES:
            if name not in p["summary"]:
                continue
            c = p["summary"][name]
            lines.append(
                "| "
                + " | ".join(
                    [
                        preset,
                        name,
                        f"{ms(c['init_ms']['p50'])} ({ms(c['init_ms']['p90'])})",
                        f"{ms(c['init_cpu_ms']['p50'])} ({ms(c['init_cpu_ms']['p90'])})",
                        ms(c["latency_ms"]["p50"]),
                        f"{c['init_ms']['n']}, {c['failures']}",
                        c["how"],
                    ]
                )
                + " |"
            )
    target = report.get("target_python") or {}
    lines += [
        "",
        "- zip: the handler from the unzipped x86_64 function.zip in a clean interpreter (`-S -B -m awslambdaric`, "
        "only the unzipped dir + a byte-compiled runtime client on the path), as the smoke test runs it; with "
        "python3.12 it imports the shipped `cpython-312` pycs (unchecked-hash), with 3.11 it cannot and compiles the "
        "sources on every start. venv py3.12: the same python3.12 with `site`, this checkout's coldbrew, apig-wsgi "
        "and awslambdaric for 3.12 on a writable path (their pycs written on the warm-up start). venv py3.11: the "
        "lab's default launcher with this checkout's coldbrew on the path. Same .brew, one `POST /predict` per "
        "environment, interleaved in a shuffled order per repeat after one unmeasured warm-up round.",
        "- init = the lab's init wall time (`x-lab-init-ms`), init CPU = its CPU time (`x-lab-init-cpu-ms`; it comes "
        "from the kernel's clock ticks, so it moves in 10 ms steps).",
        f"- Machine: {report['machine']} — a shared 2-core box with other jobs running; this interpreter Python "
        f"{report['python']}, the runtime's {target.get('version', 'python3.12: not found')}; {report['repeats']} "
        f"repeats; total runtime {report['runtime_s']} s.",
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
        "Zip sizes are the build manifest's (what Lambda counts against its 250 MB limit; coldbrew's and apig-wsgi's "
        "parts include their bytecode); image sizes are `package`'s estimate from the installed distributions "
        "(image-s3 holds no model).",
        "",
        "Reproduce: `PYTHONPATH=$PWD python bench/zip_cold_start.py --repeats 9`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
