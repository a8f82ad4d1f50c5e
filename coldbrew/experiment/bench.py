"""`coldbrew bench`: the study's experiment matrix on the lab, end to end, in one command.

First, for each (setup, model size, format) with setup disk or s3, N isolated cold starts (default 20):
one environment at a time, nothing else in the lab, model evicted from the page cache — on Lambda each
environment has its own CPU, so this is the comparison with the study's AWS rows
(``coldbrew.experiment.isolated``). Then, for each (setup, model size, format) it starts a fresh lab
(model evicted from the page cache before every cold start), runs the study's locust load through
``coldbrew loadtest``, stops the lab and keeps the run's folder; then it prints the study's cold-start table for every finished run, with his
published AWS numbers as reference rows, and writes the HTML report and figures.

Setups: ``disk`` (DOCKER_DISK: the function reads the file), ``s3`` (DOCKER_S3: it downloads it from
the lab's SeaweedFS), ``warmed`` (disk, after one ``coldbrew warm`` round of X = concurrency) and
``provisioned`` (disk, lab started with N = concurrency provisioned environments). Models come from the
model cache (``coldbrew.experiment.modelcache``): trained and compiled once, reused thereafter.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from coldbrew.errors import ColdbrewError
from coldbrew.experiment.dataset import STUDY_API
from coldbrew.experiment.results import BENCH_FILE, SCHEMA, producing_code
from coldbrew.experiment.train import PRESETS

SETUPS = ("disk", "s3", "warmed", "provisioned")
FORMATS = ("pickle", "brew")
LABELS = ("setup", "model_size", "format", "concurrency")
STUDY_SETUPS = {"disk": "DOCKER_DISK", "s3": "DOCKER_S3"}  # our setup → the study's name for it
DEFAULTS = {
    "sizes": "tiny,140mb,420mb,1090mb",
    "setups": "disk,s3",
    "formats": "pickle,brew",
    "users": 100,
    "spawn_rate": 20.0,
    "run_time": "60s",
    "isolated": 20,
}
QUICK = {
    "sizes": "tiny,140mb",
    "setups": "disk,s3",
    "formats": "pickle,brew",
    "users": 10,
    "spawn_rate": 5.0,
    "run_time": "30s",
    "isolated": 20,
}
# The init limit Lambda gives provisioned environments. On Lambda each environment has its own CPU;
# in the lab dozens of simultaneous inits share this machine's cores and take far longer, and a
# Lambda-like 10-30 s limit makes the lab kill and restart them in a loop that never converges.
# Clients still see API Gateway's 29 s timeout (504), as in the study.
INIT_TIMEOUT_S = 130.0
# A pickle environment holds the whole unpickled model: about 1.5x the file plus Python and sklearn.
PICKLE_RAM_FACTOR = 1.5
PICKLE_BASE_MB = 250
LAB_OVERHEAD_S = 15.0  # lab start/stop and locust start-up, for the first ETA
# The s3 setup reads the model over the lab's shaped S3 network (coldbrew/lab/s3shaper.py; docs/lab.md).
S3_NETWORK = "aws"
DOWNLOAD_SAMPLES = 5  # per s3 isolated cell: downloads by coldbrew, boto3 download_file and one GET (3 above 500 MB)


# ---------------------------------------------------------------- options


def _csv_choice(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise ColdbrewError(f"{option} {text!r}: choose from {','.join(allowed)} (comma-separated)")
    return items


@dataclass(frozen=True)
class Options:
    """The resolved matrix and load profile."""

    sizes: tuple[str, ...]
    setups: tuple[str, ...]
    formats: tuple[str, ...]
    users: int
    spawn_rate: float
    run_time: str
    max_concurrency: int
    memory_budget_mb: int
    out: Path
    isolated: int = 0
    load: bool = True
    s3_network: str = S3_NETWORK


def resolve_options(args) -> Options:
    """Defaults (or --quick's) with explicit options applied; raises ColdbrewError on invalid values."""
    from coldbrew.experiment.loadtest import run_time_seconds

    base = QUICK if args.quick else DEFAULTS

    def pick(name):
        value = getattr(args, name)
        return base[name] if value is None else value

    users, spawn_rate = pick("users"), pick("spawn_rate")
    if users < 1:
        raise ColdbrewError("--users must be at least 1")
    if spawn_rate <= 0:
        raise ColdbrewError("--spawn-rate must be positive")
    run_time = f"{run_time_seconds(pick('run_time'))}s"
    max_concurrency = users if args.max_concurrency is None else args.max_concurrency
    if max_concurrency < 1:
        raise ColdbrewError("--max-concurrency must be at least 1")
    isolated = pick("isolated")
    if isolated < 0:
        raise ColdbrewError("--isolated must be 0 or more")
    load = not getattr(args, "no_load", False)
    if not load and not isolated:
        raise ColdbrewError("--no-load with --isolated 0 leaves nothing to measure")
    budget_gb = args.memory_budget_gb if args.memory_budget_gb is not None else _ram_mb() * 2 / 3 / 1024
    if budget_gb <= 0:
        raise ColdbrewError("--memory-budget-gb must be positive")
    return Options(
        sizes=_csv_choice(pick("sizes"), tuple(PRESETS), "--sizes"),
        setups=_csv_choice(pick("setups"), SETUPS, "--setups"),
        formats=_csv_choice(pick("formats"), FORMATS, "--formats"),
        users=users,
        spawn_rate=spawn_rate,
        run_time=run_time,
        max_concurrency=max_concurrency,
        memory_budget_mb=int(budget_gb * 1024),
        out=args.out or Path("bench-out") / f"{datetime.now():%Y%m%d-%H%M%S}",
        isolated=isolated,
        load=load,
        s3_network=getattr(args, "s3_network", None) or S3_NETWORK,
    )


def _ram_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


# ---------------------------------------------------------------- models


def prepare_models(sizes, formats, log=print) -> dict[tuple[str, str], Path]:
    """The cached model file for each (size, format): trained and/or compiled when missing."""
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import pickle_is_labelled, train

    models = {}
    for size in sizes:
        recipe = PRESETS[size]
        pickle_path = cache_path(recipe, "pickle")
        if pickle_path.exists() and not pickle_is_labelled(pickle_path):
            log(f"model {size}: {pickle_path} predates the study's display labels; retraining it")
            pickle_path.unlink()
        if pickle_path.exists():
            log(f"model {size}: cached {pickle_path} ({pickle_path.stat().st_size / 1e6:,.1f} MB)")
        else:
            log(
                f"model {size}: training n_estimators={recipe.n_estimators} max_depth={recipe.max_depth} "
                f"-> {pickle_path}"
            )
            result = train(recipe, pickle_path, progress=True)
            log(f"model {size}: trained in {result.seconds:,.0f} s, {result.size_bytes / 1e6:,.1f} MB")
        models[(size, "pickle")] = pickle_path
        if "brew" in formats:
            brew_path = cache_path(recipe, "brew")
            from coldbrew.experiment.train import brew_is_labelled, compile_study_model

            stale = brew_path.exists() and brew_path.stat().st_mtime < pickle_path.stat().st_mtime
            if not brew_path.exists() or stale or not brew_is_labelled(brew_path):
                log(f"model {size}: compiling -> {brew_path}")
                stats = compile_study_model(pickle_path, brew_path, progress=True)
                log(f"model {size}: compiled in {stats['seconds']:,.1f} s, {stats['output_bytes'] / 1e6:,.1f} MB")
            models[(size, "brew")] = brew_path
    return models


def pickle_concurrency_cap(pickle_bytes: int, budget_mb: int) -> int:
    """How many pickle environments fit ``budget_mb``: each holds ~1.5x the pickle plus Python and sklearn."""
    per_env = PICKLE_RAM_FACTOR * pickle_bytes / 2**20 + PICKLE_BASE_MB
    return max(1, int(budget_mb // per_env))


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class Cell:
    """One run of the matrix and the lab settings it gets."""

    setup: str
    size: str
    format: str
    max_concurrency: int
    ram_capped: bool

    @property
    def name(self) -> str:
        return f"{self.setup}-{self.size}-{self.format}"

    @property
    def concurrency_label(self) -> str:
        return f"{self.max_concurrency} (RAM cap)" if self.ram_capped else str(self.max_concurrency)

    @property
    def labels(self) -> dict[str, str]:
        return {
            "setup": self.setup,
            "model_size": self.size,
            "format": self.format,
            "concurrency": self.concurrency_label,
        }


def plan_matrix(opts: Options, models: dict[tuple[str, str], Path]) -> list[Cell]:
    """Every (setup, size, format) in order, with pickle runs capped to what fits in RAM."""
    cells = []
    for size in opts.sizes:
        cap = pickle_concurrency_cap(models[(size, "pickle")].stat().st_size, opts.memory_budget_mb)
        for setup in opts.setups:
            for fmt in opts.formats:
                capped = fmt == "pickle" and cap < opts.max_concurrency
                cells.append(Cell(setup, size, fmt, cap if capped else opts.max_concurrency, capped))
    return cells


def environment_spans(events: Path) -> dict[str, tuple[float, float]]:
    """Each environment's (start, end) wall-clock seconds from the lab's event log.

    An environment is alive from its ``env_start`` to its ``env_stop`` or ``init_error`` (or the lab's
    stop, for any still running).
    """
    started, ended, lab_stop = {}, {}, None
    for line in events.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        kind = rec.get("event")
        if kind == "env_start":
            started[rec["env"]] = rec["ts"]
        elif kind in ("env_stop", "init_error"):
            ended[rec["env"]] = rec["ts"]
        elif kind == "lab_stop":
            lab_stop = rec["ts"]
    end_of_lab = lab_stop or max([*ended.values(), *started.values()], default=0.0)
    return {env: (t0, ended.get(env, end_of_lab)) for env, t0 in started.items()}


def alive_seconds(spans: dict[str, tuple[float, float]], until: float | None = None) -> float:
    """Environment-seconds alive in total (or before ``until``)."""
    return sum(max(0.0, (t1 if until is None else min(t1, until)) - t0) for t0, t1 in spans.values())


def _load_network(opts: Options, cell: Cell) -> dict:
    """The s3 load runs' network: the preset per connection and per request, and every environment's network
    share together as the shaper's one aggregate cap (each Lambda environment has its own; the lab's shaper cannot
    tell environments apart, docs/lab.md)."""
    if cell.setup != "s3" or opts.s3_network == "none":
        return {}
    from coldbrew.lab.s3shaper import network_profile

    profile = network_profile(opts.s3_network)
    assert profile is not None
    return {"s3_network": opts.s3_network, "s3_aggregate": profile.aggregate * cell.max_concurrency}


def run_cell(cell: Cell, model: Path, run_dir: Path, opts: Options, progress=True) -> dict:
    """Start a fresh lab for ``cell``, prepare it (warm/provision), run the load test, stop the lab.

    Writes the loadtest files, ``lab_events.jsonl``, ``function_output.log`` and ``bench.json`` to
    ``run_dir``; returns bench.json's content.
    """
    from coldbrew.experiment.loadtest import run_loadtest
    from coldbrew.lab import Lab, LabConfig

    run_dir.mkdir(parents=True, exist_ok=True)
    events = run_dir / "lab_events.jsonl"
    config = LabConfig(
        model_uri=model,
        api=STUDY_API,
        source="s3" if cell.setup == "s3" else "disk",
        evict_page_cache=True,
        max_concurrency=cell.max_concurrency,
        init_timeout=INIT_TIMEOUT_S,
        report=False,
        log=events,
        function_output=run_dir / "function_output.log",
        provisioned=cell.max_concurrency if cell.setup == "provisioned" else 0,
        # `warmed` warms over the lab's HTTP route, opened (like `package --warm-route`) with a one-off secret.
        warm_secret=secrets.token_urlsafe(24) if cell.setup == "warmed" else None,
        # The study's pickle baseline: our own freshly trained model, so the opt-in is explicit and safe.
        env={"COLDBREW_ALLOW_PICKLE": "1"} if cell.format == "pickle" else {},
        **_load_network(opts, cell),
    )
    info = {
        "schema": SCHEMA,
        **producing_code(),
        "name": cell.name,
        **asdict(cell),
        "model": model.name,
        "model_bytes": model.stat().st_size,
        "users": opts.users,
        "spawn_rate": opts.spawn_rate,
        "run_time": opts.run_time,
        "init_timeout_s": INIT_TIMEOUT_S,
        "warm_round": None,
    }
    t_lab = time.time()
    with Lab(config) as lab:
        t_ready = time.time()
        if cell.setup == "warmed":
            from coldbrew.experiment.warm import warm_round

            result = warm_round(lab.url, cell.max_concurrency, timeout_s=INIT_TIMEOUT_S + 30, secret=config.warm_secret)
            info["warm_round"] = asdict(result)
        t_load = time.time()
        stats_before = lab.stats()
        run_loadtest(
            lab.url,
            run_dir,
            users=opts.users,
            spawn_rate=opts.spawn_rate,
            run_time=opts.run_time,
            name="loadtest",
            labels=cell.labels,
            progress=progress,
        )
        stats = lab.stats()
    spans = environment_spans(events)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    info.update(
        lab_start_s=round(t_ready - t_lab, 2),
        prepare_s=round(t_load - t_ready, 2),
        requests=run["requests"],
        failures=run["failures"],
        throttles=stats["throttles"] - stats_before["throttles"],
        errors=stats["errors"],
        lab_cold_starts=stats["cold_starts"],
        environments=len(spans),
        envs_ready_at_load=stats_before["environments"]["total"],
        env_seconds=round(alive_seconds(spans), 1),
        env_seconds_before_load=round(alive_seconds(spans, until=t_load), 1),
        init_ms=stats["init_ms"],
    )
    (run_dir / BENCH_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


# ---------------------------------------------------------------- the report


def reference_rows(cells: list[Cell]) -> dict[tuple[str, str], list[dict]]:
    """The study's rows for the (setup, size) pairs we ran, labelled with our names."""
    from coldbrew.experiment.published import study_rows_for

    ours = {(c.setup, c.size) for c in cells if c.setup in STUDY_SETUPS}
    rows = {}
    for setup, size in sorted(ours):
        found = study_rows_for(STUDY_SETUPS[setup], size.upper(), {"setup": setup, "model_size": size}, LABELS)
        if found:
            rows[(setup, size)] = found
    return rows


def runs_table(infos: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The matrix's own table: limits, failures, environments and what they cost in environment-seconds."""
    headers = [
        "run",
        "concurrency",
        "requests",
        "failures",
        "throttled",
        "environments",
        "ready at load",
        "prepare",
        "env-s alive",
        "env-s before load",
    ]
    rows = []
    for i in infos:
        rows.append(
            [
                i["name"],
                i["labels_concurrency"],
                f"{i['requests']:,}",
                f"{i['failures']:,}",
                f"{i['throttles']:,}",
                f"{i['environments']:,}",
                f"{i['envs_ready_at_load']:,}",
                f"{i['lab_start_s'] + i['prepare_s']:.1f} s",
                f"{i['env_seconds']:,.0f}",
                f"{i['env_seconds_before_load']:,.0f}",
            ]
        )
    return headers, rows


def build_report(out: Path, finished: list[dict], cells: list[Cell], isolated=(), machine=None) -> str:
    """Summarize the isolated cold starts and the finished runs (plus reference rows); write report.html,
    plots/ and results.md. Returns the text tables."""
    from coldbrew.experiment.coldstats import DEFAULT_THRESHOLD_MS, summarize
    from coldbrew.experiment.isolated import ISOLATED_HEADERS, ISOLATED_TITLE, extra_sections, isolated_rows
    from coldbrew.experiment.report import render_section, render_table, write_report
    from coldbrew.experiment.results import load_inputs

    iso_rows = isolated_rows(isolated) if isolated else []
    iso_text = render_section(ISOLATED_TITLE, ISOLATED_HEADERS, iso_rows, "table") + "\n\n" if iso_rows else ""
    iso_md = render_section(ISOLATED_TITLE, ISOLATED_HEADERS, iso_rows, "markdown") + "\n\n" if iso_rows else ""
    if iso_rows and isolated:
        extra_text, extra_md = extra_sections(isolated, "table"), extra_sections(isolated, "markdown")
        iso_text += extra_text + "\n\n" if extra_text else ""
        iso_md += extra_md + "\n\n" if extra_md else ""
    if not finished:
        (out / "results.md").write_text(iso_md, encoding="utf-8")
        write_report(
            [],
            list(LABELS),
            [],
            threshold_ms=DEFAULT_THRESHOLD_MS,
            html=out / "report.html",
            plots=out / "plots",
            isolated=isolated,
            machine=machine,
        )
        return iso_text.rstrip("\n")
    run_files = [Path(i["dir"]) / "run.json" for i in finished]
    runs, _ = load_inputs(run_files)
    measured = summarize(runs, LABELS, DEFAULT_THRESHOLD_MS)
    references = reference_rows([c for c in cells if any(i["name"] == c.name for i in finished)])
    keys = [(g["setup"], g["model_size"]) for g in measured]
    groups = []
    for n, group in enumerate(measured):  # each (setup, size)'s study rows after its last measured run
        groups.append(group)
        if keys[n] not in keys[n + 1 :]:
            groups.extend(references.get(keys[n], []))
    headers, rows = runs_table(finished)
    text = (
        render_table(groups, "table")
        + "\n\n"
        + render_section("Runs (environment-seconds: the cost of keeping environments alive)", headers, rows, "table")
    )
    markdown = render_table(groups, "markdown") + "\n\n" + render_section("Runs", headers, rows, "markdown") + "\n"
    text, markdown = text + ("\n\n" + iso_text.rstrip("\n") if iso_text else ""), iso_md + markdown
    (out / "results.md").write_text(markdown, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps({"groups": groups, "runs": finished}, indent=2) + "\n", encoding="utf-8"
    )
    write_report(
        runs,
        list(LABELS),
        groups,
        threshold_ms=DEFAULT_THRESHOLD_MS,
        html=out / "report.html",
        plots=out / "plots",
        extra_sections=[("Runs (environment-seconds alive: the cost of each strategy)", headers, rows)],
        isolated=isolated,
        machine=machine,
    )
    return text


# ---------------------------------------------------------------- the command


def say(text: str) -> None:
    """Progress goes to stderr; the tables go to stdout."""
    print(text, file=sys.stderr, flush=True)


def reproducing_command(argv: list[str]) -> str:
    """The ``coldbrew bench`` command line that reproduces a run, without its machine-specific ``--out``."""
    if argv[:1] != ["bench"]:
        return "coldbrew bench"
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return "coldbrew " + " ".join(kept)


def isolated_plan(opts: Options) -> list[tuple[str, str, str]]:
    """The (setup, size, format) cells that get isolated cold starts: disk and s3 only (none with --isolated 0)."""
    from coldbrew.experiment.isolated import ISOLATED_SETUPS

    if not opts.isolated:
        return []
    return [
        (setup, size, fmt)
        for size in opts.sizes
        for setup in opts.setups
        if setup in ISOLATED_SETUPS
        for fmt in opts.formats
    ]


def run_isolated(opts: Options, models: dict[tuple[str, str], Path], out: Path) -> list:
    """The isolated cold starts of every disk/s3 (size, format), written to ``out/isolated.{json,md}``.

    A cell whose lab fails is reported and skipped; Ctrl-C propagates after the finished cells are written.
    """
    from coldbrew.experiment.isolated import describe_machine, measure_isolated, write_isolated

    plan = isolated_plan(opts)
    if not plan:
        return []
    say(f"\nisolated cold starts: {opts.isolated} per cell, one environment at a time, {len(plan)} cells")
    results, machine = [], describe_machine()
    command = reproducing_command(sys.argv[1:])
    try:
        for n, (setup, size, fmt) in enumerate(plan, 1):
            say(f"[isolated {n}/{len(plan)}] {setup} {size} {fmt}")
            try:
                results.append(
                    measure_isolated(
                        setup,
                        size,
                        fmt,
                        models[(size, fmt)],
                        opts.isolated,
                        out / "isolated" / f"{n:02d}-{setup}-{size}-{fmt}",
                        progress=say,
                        s3_network=opts.s3_network,
                        download_samples=(DOWNLOAD_SAMPLES if models[(size, fmt)].stat().st_size < 500e6 else 3)
                        if setup == "s3"
                        else 0,
                    )
                )
            except ColdbrewError as exc:
                say(f"[isolated {n}/{len(plan)}] {setup}-{size}-{fmt} failed: {exc}")
    finally:
        if results:
            machine["load_after"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # others share the machine
            write_isolated(results, out, machine, command)
    return results


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run_bench(opts: Options) -> int:
    """Run the bench: models, isolated cold starts, the load matrix, the report; returns the exit status."""
    from coldbrew.experiment.isolated import describe_machine
    from coldbrew.experiment.loadtest import run_time_seconds

    out = opts.out.resolve()
    if out.exists() and any(out.iterdir()):
        raise ColdbrewError(f"{out} is not empty; choose another --out")
    started = time.monotonic()
    models = prepare_models(opts.sizes, opts.formats, log=say)
    cells = plan_matrix(opts, models) if opts.load else []
    out.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    finished: list[dict] = []
    isolated: list = []
    interrupted = False
    try:
        isolated = run_isolated(opts, models, out)
    except KeyboardInterrupt:
        interrupted, cells = True, []
        say("\ninterrupted during the isolated cold starts: the lab is stopped; no load runs")
    for size in opts.sizes if cells else ():
        capped = next((c for c in cells if c.size == size and c.ram_capped), None)
        if capped:
            say(
                f"pickle {size}: max concurrency {capped.max_concurrency} so the environments fit "
                f"{opts.memory_budget_mb / 1024:,.1f} GB (~{PICKLE_RAM_FACTOR:g}x the "
                f"{models[(size, 'pickle')].stat().st_size / 1e6:,.0f} MB pickle + {PICKLE_BASE_MB} MB each)"
            )
    if cells:
        say(f"bench: {len(cells)} runs, {opts.users} users, spawn {opts.spawn_rate:g}/s, {opts.run_time} each -> {out}")
    matrix_t0 = time.monotonic()
    per_run_guess = run_time_seconds(opts.run_time) + LAB_OVERHEAD_S
    try:
        for n, cell in enumerate(cells, 1):
            elapsed = time.monotonic() - matrix_t0
            per_run = elapsed / len(finished) if finished else per_run_guess
            say(
                f"\n[run {n}/{len(cells)}] {cell.setup} {cell.size} {cell.format}, max concurrency "
                f"{cell.concurrency_label}  (elapsed {_clock(elapsed)}, ETA {_clock(per_run * (len(cells) - n + 1))})"
            )
            run_dir = out / "runs" / f"{n:02d}-{cell.name}"
            try:
                info = run_cell(cell, models[(cell.size, cell.format)], run_dir, opts)
            except ColdbrewError as exc:
                say(f"[run {n}/{len(cells)}] {cell.name} failed: {exc}")
                continue
            info.update(dir=str(run_dir), labels_concurrency=cell.concurrency_label)
            finished.append(info)
            say(
                f"[run {n}/{len(cells)}] {cell.name}: {info['requests']:,} requests, {info['failures']:,} failures, "
                f"{info['environments']} environments, {info['env_seconds']:,.0f} env-s"
            )
    except KeyboardInterrupt:
        interrupted = True
        say(f"\ninterrupted: every lab and locust process is stopped; reporting the {len(finished)} finished runs")
    if not finished and not isolated:
        say("no run finished; nothing to report")
        return 130 if interrupted else 1
    text = build_report(out, finished, cells, isolated, machine)
    print(text)
    print(
        f"\n{len(finished)} of {len(cells)} runs, {len(isolated)} isolated cells in "
        f"{_clock(time.monotonic() - started)} (models included); results in {out}/"
    )
    outputs = [out / "report.html", out / "results.md", out / "plots"]
    outputs += [out / "isolated.md", out / "isolated.json"] if isolated else []
    for path in outputs:
        print(f"  {path.relative_to(out)}")
    print(
        f"next: open {out / 'report.html'}"
        + (f", or coldbrew report {out / 'runs'} --format markdown" if finished else "")
    )
    if interrupted:
        return 130
    return 0 if len(finished) == len(cells) and len(isolated) == len(isolated_plan(opts)) else 1
