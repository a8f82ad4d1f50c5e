"""The report's tables as text: the sections of the study's cold-start table and the aligned-text / Markdown
layout every table of ``coldbrew report``, ``bench`` and the isolated cold starts is printed in.

A leaf of the experiment package, so the modules that print tables (report, htmlreport, isolated, bench) import
it without importing each other. May import: errors, experiment.coldstats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from coldbrew.errors import ColdbrewError
from coldbrew.experiment.coldstats import STAT_KEYS


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
