"""Load and memory on the lab: the study's load profile against .brew and pickle, plus lab overhead.

    python bench/lab_load.py [--preset 1090mb] [--users 100] [--run-time 60s] [--memory-budget-gb 20]

1. Overhead: p50 of a warm /predict through the lab's front door (HTTP keep-alive, scheduler,
   Runtime API, awslambdaric) minus p50 of calling ``coldbrew.aws.handler`` in this process with
   the same payload-v2 event. Measured in the same run.
2. The study's profile (100 users, spawn 20/s, 60 s, wait 3-5 s, via ``coldbrew loadtest``) against
   the lab serving the preset as ``.brew`` from disk, --max-concurrency = users: failures, cold starts
   (each one's init from the event log), total RSS and PSS of all environments (peak while loaded).
3. The same with the pickle, at the --max-concurrency that fits --memory-budget-gb (from one probe
   environment's Max Memory Used); requests beyond it are throttled (counted by the lab's stats) and counted as failures.

Models come from the model cache (``coldbrew.experiment.modelcache.cache_path``), or --pickle/--brew; a
missing .brew is compiled from the pickle. Results: bench/results/lab_load.md (+ .json); locust runs
go to --work (not committed).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.lab import Lab, LabConfig

# The pickles measured here are the study's, trained by coldbrew itself: the explicit opt-in to unpickling them.
ALLOW_PICKLE = {"COLDBREW_ALLOW_PICKLE": "1"}

RESULTS = Path(__file__).parent / "results"


def resolve_models(args) -> tuple[Path, Path, str]:
    """(pickle, brew, label) from --pickle/--brew or the cache; compiles a missing .brew."""
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import PRESETS

    pickle_path = Path(args.pickle) if args.pickle else cache_path(PRESETS[args.preset], "pickle")
    brew_path = Path(args.brew) if args.brew else cache_path(PRESETS[args.preset], "brew")
    label = args.preset if not args.pickle else pickle_path.stem
    if not pickle_path.exists():
        sys.exit(f"no pickle at {pickle_path}: train it first (coldbrew train --preset {args.preset}) or pass --pickle")
    if not brew_path.exists():
        from coldbrew.experiment.train import compile_study_model as compile_model

        print(f"compiling {pickle_path.name} -> {brew_path}", flush=True)
        compile_model(pickle_path, brew_path, progress=False)
    return pickle_path, brew_path, label


class _Context:
    function_name = "coldbrew-lab"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis():
        return 30_000


def measure_overhead(brew: Path, requests: int) -> dict:
    """p50 ms of a warm request in process vs through the lab, same payload."""
    from coldbrew.lab.front_door import build_event
    from coldbrew.lab.httpserver import Request

    body = json.dumps(STUDY_PAYLOAD).encode()
    headers = [("host", "127.0.0.1"), ("content-type", "application/json"), ("content-length", str(len(body)))]
    event = build_event(Request("POST", "/predict", "HTTP/1.1", headers, body))
    os.environ.update({"MODEL_URI": str(brew), "MODEL_SOURCE": "DISK"})
    in_process = []
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the handler logs a line per call
        from coldbrew.aws import handler

        for _ in range(20):
            handler(event, _Context())
        for _ in range(requests):
            t0 = time.perf_counter()
            result = handler(event, _Context())
            in_process.append((time.perf_counter() - t0) * 1000)
    assert result["statusCode"] == 200, result

    with Lab(LabConfig(model_uri=brew, max_concurrency=1, report=False, function_output=os.devnull)) as lab:
        conn = http.client.HTTPConnection("127.0.0.1", lab.port)
        through_lab = []
        for i in range(requests + 20):
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if i >= 20:
                through_lab.append((time.perf_counter() - t0) * 1000)
            assert response.status == 200
        conn.close()
        function_p50 = lab.stats()["duration_ms"]["p50"]
    p50_in, p50_lab = statistics.median(in_process), statistics.median(through_lab)
    return {
        "requests": requests,
        "in_process_p50_ms": round(p50_in, 3),
        "lab_p50_ms": round(p50_lab, 3),
        "overhead_p50_ms": round(p50_lab - p50_in, 3),
        "function_duration_p50_ms": function_p50,
    }


def probe_memory_mb(model: Path) -> int:
    """Max Memory Used by one environment serving ``model`` after one request."""
    with Lab(LabConfig(model_uri=model, max_concurrency=1, report=False, env=ALLOW_PICKLE)) as lab:
        conn = http.client.HTTPConnection("127.0.0.1", lab.port, timeout=120)
        conn.request("POST", "/predict", json.dumps(STUDY_PAYLOAD), {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        return lab.stats()["envs"][0]["max_memory_mb"]


def _mem_used_mb() -> float:
    """System memory in use (MemTotal - MemAvailable), MB: counts a shared page-cache page once."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) / 1024


def resident_run(model: Path, environments: int) -> dict:
    """``environments`` provisioned environments, each having predicted once at init (COLDBREW_WARMUP=1, so every
    one has touched the model's pages): their summed RSS and PSS, and the machine's memory in use before/after."""
    before = _mem_used_mb()
    config = LabConfig(
        model_uri=model,
        provisioned=environments,
        max_concurrency=environments,
        report=False,
        env={"COLDBREW_WARMUP": "1"},
        init_timeout="300s",
    )
    with Lab(config) as lab:
        stats = lab.stats()
        after = _mem_used_mb()
    return {
        "environments": stats["environments"]["total"],
        "rss_mb_total": stats["rss_mb_total"],
        "pss_mb_total": stats["pss_mb_total"],
        "machine_mb_delta": round(after - before, 1),
    }


def load_run(model: Path, fmt: str, max_concurrency: int, args, work: Path) -> dict:
    """The study's load profile against the lab; returns the row for the results table."""
    from coldbrew.experiment.loadtest import run_loadtest

    out = work / f"{fmt}-c{max_concurrency}"
    events = out / "events.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    config = LabConfig(
        model_uri=model,
        max_concurrency=max_concurrency,
        report=False,
        log=events,
        function_output=out / "function.log",
        init_timeout=args.init_timeout,
        env=ALLOW_PICKLE,
    )
    peak = {"rss_mb_total": 0.0, "pss_mb_total": 0.0, "environments": 0}
    with Lab(config) as lab:
        done = threading.Event()

        def sample():
            while not done.wait(2.0):
                stats = lab.stats()
                peak["rss_mb_total"] = max(peak["rss_mb_total"], stats["rss_mb_total"])
                peak["pss_mb_total"] = max(peak["pss_mb_total"], stats["pss_mb_total"])
                peak["environments"] = max(peak["environments"], stats["environments"]["total"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            run_json = run_loadtest(
                lab.url,
                out / "locust",
                users=args.users,
                spawn_rate=args.spawn_rate,
                run_time=args.run_time,
                name=f"lab-{fmt}",
                labels={"setup": "lab-disk", "format": fmt},
                progress=None,
            )
        finally:
            done.set()
            sampler.join()
        stats = lab.stats()
    run = json.loads(run_json.read_text())
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    ready = [e for e in logged if e["event"] == "env_ready"]
    cold_invokes = [e for e in logged if e["event"] == "invoke" and e["cold"]]
    return {
        "format": fmt,
        "model_mb": round(model.stat().st_size / 1e6, 1),
        "max_concurrency": max_concurrency,
        "requests": run["requests"],
        "failures": run["failures"],
        "throttles": stats["throttles"],
        "errors": stats["errors"],
        "cold_starts": stats["cold_starts"],
        "envs_ready_logged": len(ready),
        "cold_invokes_with_init_logged": sum(1 for e in cold_invokes if e.get("init_ms") is not None),
        "init_ms_p50": stats["init_ms"]["p50"],
        "init_ms_p99": stats["init_ms"]["p99"],
        "duration_ms_p50": stats["duration_ms"]["p50"],
        "latency_ms_p50": stats["latency_ms"]["p50"],
        "latency_ms_p99": stats["latency_ms"]["p99"],
        "environments": stats["environments"]["total"],
        "peak_environments": peak["environments"],
        "rss_mb_total": max(peak["rss_mb_total"], stats["rss_mb_total"]),
        "pss_mb_total": max(peak["pss_mb_total"], stats["pss_mb_total"]),
        "max_memory_mb_per_env": max((e["max_memory_mb"] for e in stats["envs"]), default=0),
    }


def write_markdown(summary: dict, path: Path) -> None:
    o = summary["overhead"]
    lines = [
        "# Lab load and memory (`bench/lab_load.py`)",
        "",
        f"Model: `{summary['model']}`; load: {summary['users']} users, spawn {summary['spawn_rate']}/s, "
        f"{summary['run_time']}, wait 3-5 s (the study's profile, locust via `coldbrew loadtest`). "
        f"Machine: {os.cpu_count()} cores shared. Run {summary['date']}.",
        "",
        "## Lab overhead (warm request, p50)",
        "",
        "| in process (`coldbrew.aws.handler` called directly) | through the lab (HTTP client → front door → "
        "scheduler → Runtime API → awslambdaric) | overhead | function duration inside the lab |",
        "|---:|---:|---:|---:|",
        f"| {o['in_process_p50_ms']:.3f} ms | {o['lab_p50_ms']:.3f} ms | **{o['overhead_p50_ms']:.3f} ms** "
        f"| {o['function_duration_p50_ms']} ms |",
        "",
        f"{o['requests']} sequential requests each, same payload-v2 event, keep-alive connection.",
        "",
        "## Load",
        "",
        "| format | model | max concurrency | requests | failures | throttled | environments | cold starts "
        "(logged) | init p50 / p99 | latency p50 / p99 | max memory per env | total RSS | total PSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["runs"]:
        lines.append(
            f"| {r['format']} | {r['model_mb']:,} MB | {r['max_concurrency']} | {r['requests']:,} | {r['failures']:,} "
            f"| {r['throttles']:,} | {r['peak_environments']} | {r['cold_starts']} ({r['envs_ready_logged']}) "
            f"| {r['init_ms_p50']} / {r['init_ms_p99']} ms | {r['latency_ms_p50']} / {r['latency_ms_p99']} ms "
            f"| {r['max_memory_mb_per_env']:,} MB | {r['rss_mb_total']:,.0f} MB | {r['pss_mb_total']:,.0f} MB |"
        )
    lines += [
        "",
        "RSS counts a shared page once per process that maps it; PSS divides it between them "
        '(the page cache holds one copy of a memory-mapped `.brew`). "max memory per env" is the '
        "REPORT line's Max Memory Used (VmHWM).",
        "",
    ]
    if summary.get("resident"):
        r = summary["resident"]
        lines += [
            "## Environments at rest (provisioned, each warmed by one prediction at init)",
            "",
            "| format | environments | summed RSS | summed PSS | machine memory in use, after − before |",
            "|---|---:|---:|---:|---:|",
            f"| brew | {r['environments']} | {r['rss_mb_total']:,.0f} MB | {r['pss_mb_total']:,.0f} MB | "
            f"{r['machine_mb_delta']:,.0f} MB |",
            "",
            "Summed RSS counts the mapped model once per environment; PSS and the machine's own count "
            "(MemTotal − MemAvailable) count it once, as the page cache holds it.",
            "",
        ]
    if summary.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in summary["notes"]] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="1090mb")
    parser.add_argument("--pickle", help="pickled model (default: the preset's, from the model cache)")
    parser.add_argument("--brew", help=".brew model (default: the preset's, compiled if missing)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--run-time", default="60s")
    parser.add_argument("--init-timeout", default="60s", help="lab --init-timeout (a loaded box inits slowly)")
    parser.add_argument("--memory-budget-gb", type=float, default=20.0, help="RAM the pickle run may use")
    parser.add_argument("--overhead-requests", type=int, default=500)
    parser.add_argument("--skip-pickle", action="store_true")
    parser.add_argument("--resident", type=int, default=100, help="environments for the at-rest memory row (0: skip)")
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="re-measure only the overhead and update it in the existing results",
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "coldbrew-lab-load")
    parser.add_argument("--out", type=Path, default=RESULTS / "lab_load.md")
    parser.add_argument("--note", action="append", default=[], help="a line for the Notes section")
    args = parser.parse_args(argv)
    pickle_path, brew_path, label = resolve_models(args)
    if args.overhead_only:
        summary = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
        summary["overhead"] = measure_overhead(brew_path, args.overhead_requests)
        summary["notes"] = summary.get("notes", []) + list(args.note)
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        write_markdown(summary, args.out)
        print(json.dumps(summary["overhead"]))
        return 0
    work = args.work / time.strftime("%Y%m%d-%H%M%S")
    summary = {
        "model": label,
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "run_time": args.run_time,
        "date": time.strftime("%Y-%m-%d"),
        "notes": list(args.note),
        "runs": [],
    }
    print("measuring lab overhead ...", flush=True)
    summary["overhead"] = measure_overhead(brew_path, args.overhead_requests)
    print(json.dumps(summary["overhead"]), flush=True)
    if args.resident:
        print(f"memory: {args.resident} provisioned .brew environments ...", flush=True)
        summary["resident"] = resident_run(brew_path, args.resident)
        print(json.dumps(summary["resident"]), flush=True)
    print(f"load: .brew at max concurrency {args.users} ...", flush=True)
    summary["runs"].append(load_run(brew_path, "brew", args.users, args, work))
    print(json.dumps(summary["runs"][-1]), flush=True)
    if not args.skip_pickle:
        per_env = probe_memory_mb(pickle_path)
        concurrency = max(1, min(args.users, int(args.memory_budget_gb * 1024 // max(per_env, 1))))
        summary["notes"].append(
            f"pickle: one environment used {per_env:,} MB, so {concurrency} environments fit "
            f"the {args.memory_budget_gb:g} GB budget on this {_ram_gb():.0f} GB machine"
        )
        print(f"load: pickle at max concurrency {concurrency} ({per_env} MB each) ...", flush=True)
        summary["runs"].append(load_run(pickle_path, "pickle", concurrency, args, work))
        print(json.dumps(summary["runs"][-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_markdown(summary, args.out)
    print(f"wrote {args.out}")
    return 0


def _ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    sys.exit(main())
