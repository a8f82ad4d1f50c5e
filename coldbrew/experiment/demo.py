"""`coldbrew demo`: train the tiny model, serve it, send the study's payload, show the start-up timings.

The model is trained once into the model cache (``coldbrew.experiment.modelcache``) and, when the compiler is
available, compiled to .brew beside it. Each format is then served by a fresh ``coldbrew serve`` process on a
free loopback port, sent the study's payload, and stopped — the two side by side are the product's point.
"""

from __future__ import annotations

ROWS = [
    ("imports", "imports"),
    ("fetch", "model fetch"),
    ("load", "model load"),
    ("warmup", "warm-up"),
]


def _ms(value) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _size(n: int) -> str:
    return f"{n / 1e3:,.1f} kB" if n < 1e6 else f"{n / 1e6:,.1f} MB"


def format_table(results: dict[str, dict]) -> str:
    """Start-up timings per format as an aligned text table."""
    names = list(results)
    rows = [["", *names]]
    for key, label in ROWS:
        rows.append([label, *(_ms(results[n]["startup"]["timings_ms"][key]) for n in names)])
    rows.append(["start-up total (logged)", *(_ms(results[n]["startup"]["total_ms"]) for n in names)])
    rows.append(["spawn → first 200", *(_ms(results[n]["first_200_ms"]) for n in names)])
    rows.append(["model file", *(_size(results[n]["size"]) for n in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=False)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
