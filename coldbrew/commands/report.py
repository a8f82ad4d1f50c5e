"""`coldbrew report`: parse the options, read the load-test logs and print/write the study's tables (the work is in
``coldbrew.experiment.report``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from coldbrew.commands import duration, duration_ms
from coldbrew.experiment.coldstats import DEFAULT_THRESHOLD_MS, summarize
from coldbrew.experiment.report import FORMATS, render_section, render_table, study_log_note, write_report
from coldbrew.experiment.results import Run, load_inputs

if TYPE_CHECKING:
    from coldbrew.experiment.isolated import IsolatedResult


def add_arguments(parser) -> None:
    """Options of ``coldbrew report``."""
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="INPUTS",
        help="study-format locust logs, our .jsonl files, run.json, or folders of them",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        metavar="CSV",
        help="CSV with a 'path' column plus label columns (e.g. setup,model_size) to group by",
    )
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--cold-threshold",
        dest="cold_threshold_ms",
        type=duration("--cold-threshold", positive=True, scale=1000),
        default=DEFAULT_THRESHOLD_MS,
        metavar="DURATION",
        help=f"a request slower than this is a cold start: 1s, 800ms (default: {DEFAULT_THRESHOLD_MS / 1000:g}s, "
        "the study's)",
    )
    threshold.add_argument(
        "--cold-threshold-ms",
        dest="cold_threshold_ms",
        type=duration_ms("--cold-threshold-ms"),
        metavar="MS",
        help="the same in milliseconds when bare (1000), or with a unit (1s)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output on stdout (default: table)")
    parser.add_argument(
        "--with-study", action="store_true", help="add the study's published AWS numbers as reference rows"
    )
    parser.add_argument(
        "--isolated",
        type=Path,
        metavar="JSON",
        help="an isolated.json from coldbrew bench: its isolated cold-start table first (table and "
        "markdown formats) and on the page; INPUTS may then be omitted",
    )
    parser.add_argument("--html", type=Path, metavar="OUT", help="write one self-contained HTML page")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write the PNG figures to DIR")


def run(args) -> int:
    """Entry point of ``coldbrew report``."""
    isolated: list[IsolatedResult] = []
    machine = None
    if getattr(args, "isolated", None) is not None:
        from coldbrew.experiment.isolated import ISOLATED_HEADERS, ISOLATED_TITLE, isolated_rows, read_isolated

        isolated, document = read_isolated(args.isolated)
        machine = document.get("machine")
        if args.format in ("table", "markdown"):
            print(render_section(ISOLATED_TITLE, ISOLATED_HEADERS, isolated_rows(isolated), args.format) + "\n")
    if isolated and not args.inputs and args.manifest is None:
        runs: list[Run] = []
        columns = ["setup", "model_size", "format"]
    else:
        runs, columns = load_inputs(args.inputs, args.manifest)
    groups = summarize(runs, columns, args.cold_threshold_ms)
    if args.with_study and runs:
        from coldbrew.experiment.published import study_reference_rows

        groups += study_reference_rows(columns if {"setup", "model_size"} <= set(columns) else ("setup", "model_size"))
    if groups or not isolated:
        print(render_table(groups, args.format))
    note = study_log_note(runs)
    if note:  # after the tables; csv and json keep stdout machine-readable, so it goes to stderr there
        if args.format in ("table", "markdown"):
            print(f"\n{'> ' if args.format == 'markdown' else ''}{note}")
        else:
            print(note, file=sys.stderr)
    if args.html or args.plots:
        for path in write_report(
            runs,
            columns,
            groups,
            threshold_ms=args.cold_threshold_ms,
            html=args.html,
            plots=args.plots,
            isolated=isolated,
            machine=machine,
        ):
            print(f"wrote {path}", file=sys.stderr)
    return 0
