"""`coldbrew report`: load-test logs → the study's cold-start table, plots and an HTML page.

Python API (used by ``coldbrew bench``)::

    runs, columns = load_inputs([Path("runs/")])          # coldbrew.experiment.results
    groups = summarize(runs, columns, threshold_ms=1000)  # one dict per group (the JSON schema)
    groups += study_reference_rows(columns)               # optional published rows
    print(render_table(groups, "table"))                  # table | markdown | csv | json
    print(render_section("Runs", headers, rows, "table"))  # any other table, same layout
    write_report(runs, columns, groups, threshold_ms=1000, html=Path("report.html"),
                 extra_sections=[("Runs", headers, rows)])  # tables added to the page
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coldbrew.errors import ColdbrewError
from coldbrew.experiment.coldstats import STAT_KEYS, summarize

if TYPE_CHECKING:
    pass

FORMATS = ("table", "markdown", "csv", "json")
__all__ = ["FORMATS", "render_rows", "render_section", "render_table", "summarize", "table_sections", "write_report"]


# ---------------------------------------------------------------- tables


def _ms(value) -> str:
    """Whole milliseconds, truncated as the study did, with thousands separators."""
    return "—" if value is None else f"{math.trunc(value):,}"


def _count(value) -> str:
    return "—" if value is None else f"{value:,}"


def _labels(group: dict) -> list[str]:
    return ["—" if group.get(c) is None else str(group[c]) for c in group["labels"]]


def table_sections(groups: Sequence[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as (title, headers, rows of display strings); numbers truncated to whole ms."""
    if not groups:
        return []
    columns = list(dict.fromkeys(c for g in groups for c in g["labels"]))
    groups = [{**g, "labels": columns} for g in groups]
    threshold = groups[0]["threshold_ms"]
    has_ref = any(g.get("reference") for g in groups)
    measured = [g for g in groups if not g.get("reference")]
    stat_head = ["n", "mean", "p25", "p50", "p75", "p95", "p99", "max"]

    def stat_cells(stats: dict) -> list[str]:
        return [f"{stats['n']:,}" if stats.get("n") is not None else "—"] + [_ms(stats.get(k)) for k in STAT_KEYS[1:]]

    cold_rows = [_labels(g) + ([g.get("reference") or "measured"] if has_ref else []) + stat_cells(g) for g in groups]
    sections = [
        (
            f"Cold starts (latency > {threshold:g} ms), ms",
            columns + (["source"] if has_ref else []) + stat_head,
            cold_rows,
        )
    ]
    sections.append(
        (
            f"Warm requests (latency <= {threshold:g} ms), ms",
            columns + stat_head,
            [_labels(g) + stat_cells(g["warm"]) for g in measured],
        )
    )
    sections.append(("All requests, ms", columns + stat_head, [_labels(g) + stat_cells(g["all"]) for g in measured]))
    sections.append(
        (
            "Requests (504s are measured; throttled and errors are not)",
            columns + ["requests", "measured", "cold", "warm", "cold share", "504", "throttled", "errors"],
            [
                _labels(g)
                + [_count(g["counts"][k]) for k in ("requests", "measured", "cold", "warm")]
                + ["—" if g["counts"]["cold_share"] is None else f"{100 * g['counts']['cold_share']:.1f}%"]
                + [_count(g["counts"][k]) for k in ("timeouts", "throttled", "errors")]
                for g in measured
            ],
        )
    )
    true_rows = [g for g in measured if g.get("true_cold")]
    if true_rows:
        sections.append(
            (
                "True cold starts (first request of each environment) vs the threshold rule, ms",
                columns + ["environments", "n", "mean", "p50", "p95", "max", "slow warm", "fast cold"],
                [
                    _labels(g)
                    + [f"{g['true_cold']['environments']:,}", f"{g['true_cold']['n']:,}"]
                    + [_ms(g["true_cold"][k]) for k in ("mean", "p50", "p95", "max")]
                    + [f"{g['true_cold']['slow_warm']:,}", f"{g['true_cold']['fast_cold']:,}"]
                    for g in true_rows
                ],
            )
        )
    init_rows = [g for g in measured if g.get("inits")]
    if init_rows:

        def pair(g, key):
            return [_ms(g["inits"]["wall"].get(key)), _ms(g["inits"]["cpu"].get(key))]

        sections.append(
            (
                "Inits the requests waited for: wall time vs CPU time (the gap is waiting for a core), ms",
                columns + ["inits", "wall p50", "CPU p50", "wall p95", "CPU p95", "wall max", "CPU max"],
                [
                    _labels(g) + [f"{g['inits']['wall']['n']:,}"] + pair(g, "p50") + pair(g, "p95") + pair(g, "max")
                    for g in init_rows
                ],
            )
        )
    sections += _machine_wait_sections(measured, columns)
    return sections


def _machine_wait_sections(groups: Sequence[dict], columns: list[str]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The lab's runs: latency with and without the time a request waited for the lab's machine."""
    rows = []
    for g in groups:
        wait = g.get("machine_wait")
        if not wait:
            continue
        for subset in ("cold", "all"):
            w, n = wait[subset]["with"], wait[subset]["without"]
            rows.append(
                _labels(g)
                + [subset, f"{w['n']:,}"]
                + [cell for k in ("p50", "p95", "max") for cell in (_ms(w.get(k)), _ms(n.get(k)))]
            )
    if not rows:
        return []
    title = (
        "Latency with and without the lab's machine wait (queued for a core, waiting on the run queue), ms: "
        "the 'net' columns would hold on AWS, where each environment has its own CPU; the others are this machine's"
    )
    head = ["requests", "n", "p50", "net p50", "p95", "net p95", "max", "net max"]
    return [(title, columns + head, rows)]


def render_rows(headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "table") -> str:
    """One table of display strings: ``table`` (aligned text, numbers right-aligned) or ``markdown``."""
    if fmt == "table":
        return _aligned(list(headers), [list(r) for r in rows])
    if fmt == "markdown":
        return _markdown(list(headers), [list(r) for r in rows])
    raise ColdbrewError(f"unknown table format {fmt!r}; choose table or markdown")


def render_section(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "table") -> str:
    """A titled table as the report prints it: the title (a ``###`` heading in markdown), a blank line, the rows."""
    heading = f"### {title}" if fmt == "markdown" else title
    return f"{heading}\n\n{render_rows(headers, rows, fmt)}"


def _aligned(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(r[i][:1].isdigit() or r[i] == "—" for r in rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=False)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)])


def _csv(groups: Sequence[dict]) -> str:
    columns = list(dict.fromkeys(c for g in groups for c in g["labels"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*columns, "source", "subset", *STAT_KEYS])
    for g in groups:
        labels = ["" if g.get(c) is None else g[c] for c in columns]
        subsets = [("cold", g), ("warm", g["warm"]), ("all", g["all"]), ("true_cold", g["true_cold"])]
        for name, stats in subsets:
            if stats:
                writer.writerow(
                    [
                        *labels,
                        g.get("reference") or "measured",
                        name,
                        *("" if stats.get(k) is None else stats[k] for k in STAT_KEYS),
                    ]
                )
    return out.getvalue()


def render_table(groups: Sequence[dict], fmt: str = "table") -> str:
    """Render report groups: ``table`` (aligned text), ``markdown``, ``csv`` (unrounded) or ``json``."""
    if fmt == "json":
        return json.dumps(list(groups), indent=2)
    if fmt == "csv":
        return _csv(groups)
    if fmt not in ("table", "markdown"):
        raise ColdbrewError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return "\n\n".join(render_section(title, headers, rows, fmt) for title, headers, rows in table_sections(groups))


def study_log_note(runs) -> str | None:
    """What a reader must know when some inputs are study-format logs: they carry no status codes, so a
    failed request in them (timeout, error, throttle) is counted as a latency like any other. None otherwise."""
    names = [run.source.name for run in runs if run.meta.get("kind") == "study-log"]
    if not names:
        return None
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    which = "this log is" if len(names) == 1 else f"these {len(names)} logs are"
    return (
        f"Note: {which} in the study's format ({listed}), which records no status codes: "
        "failures in it (timeouts, errors, throttles) are counted as latencies."
    )


# ---------------------------------------------------------------- the command


def write_report(
    runs,
    label_columns,
    groups,
    *,
    threshold_ms: float,
    html: Path | None = None,
    plots: Path | None = None,
    extra_sections: Sequence[tuple[str, list[str], list[list[str]]]] = (),
    isolated: Sequence = (),
    machine: dict[str, str] | None = None,
) -> list[Path]:
    """Write the PNG figures (to ``plots``) and/or the HTML page; returns the files written.

    ``extra_sections``: more (title, headers, rows) tables for the page, after the report's own.
    ``isolated``: ``coldbrew.experiment.isolated.IsolatedResult`` s (the page's headlines and its isolated
    figure and table); ``machine``: what the numbers ran on (default: this machine).
    """
    import tempfile

    from coldbrew.experiment.plots import write_plots

    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="coldbrew-plots-") as scratch:
        figures = write_plots(runs, label_columns, groups, plots or Path(scratch), threshold_ms, isolated=isolated)
        if plots:
            written.extend(f.path for f in figures)
        if html:
            from coldbrew.experiment.htmlreport import write_html

            note = study_log_note(runs)
            written.append(
                write_html(
                    groups,
                    figures,
                    html,
                    extra_sections=extra_sections,
                    isolated=isolated,
                    machine=machine,
                    notes=[note] if note else [],
                )
            )
    return written
