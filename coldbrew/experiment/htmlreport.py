"""One self-contained HTML page: the report's tables plus its figures embedded as base64 PNGs."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from coldbrew.experiment.report import table_sections

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 2em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
.note { color: #666; font-size: 13px; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(c)}</td>' if c[:1].isdigit() or c == "—" else f"<td>{html.escape(c)}</td>"
            for c in row
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(groups: Sequence[dict], images: Sequence[Path], out: Path, *,
               extra_sections: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = ()) -> Path:
    """Write the page to ``out`` (tables from ``groups``, ``images`` embedded); returns ``out``.

    ``extra_sections`` are more (title, headers, rows) tables of display strings, placed after the
    report's tables and before the figures.
    """
    out = Path(out)
    parts = [f"<h1>coldbrew cold-start report</h1><p class='note'>generated "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; numbers truncated to whole ms "
             "(numpy linear percentiles, as the study).</p>"]
    for title, headers, rows in [*table_sections(groups), *extra_sections]:
        parts.append(f"<h2>{html.escape(title)}</h2>{_table(headers, rows)}")
    parts.append("<h2>Figures</h2>")
    for image in images:
        data = base64.b64encode(Path(image).read_bytes()).decode("ascii")
        parts.append(f"<h3>{html.escape(Path(image).stem)}</h3>"
                     f'<img alt="{html.escape(Path(image).stem)}" src="data:image/png;base64,{data}">')
    sources = sorted({s for g in groups for s in g.get("sources", [])})
    if sources:
        parts.append("<h2>Inputs</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sources) + "</ul>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>coldbrew report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
