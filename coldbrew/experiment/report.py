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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coldbrew.errors import ColdbrewError
from coldbrew.experiment.coldstats import STAT_KEYS, summarize
from coldbrew.experiment.tables import render_rows, render_section, table_sections

if TYPE_CHECKING:
    pass

FORMATS = ("table", "markdown", "csv", "json")
__all__ = ["FORMATS", "render_rows", "render_section", "render_table", "summarize", "table_sections", "write_report"]


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
