"""One self-contained HTML page: the answer first, then the tables and figures (PNGs embedded as base64).

The page is the Jinja2 template ``templates/report.html.j2`` (package data). It opens with a headline per
setup — ``.brew`` against pickle, isolated (one environment at a time) and under load, and against the
study's AWS row — then the machine and the contention caveat, the figure of isolated cold starts, the
tables and the other figures, each titled in words.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from coldbrew.experiment.plots import Figure, words
from coldbrew.experiment.tables import table_sections

TEMPLATE = "report.html.j2"
_NUMBER = re.compile(r"[\d,.]+\s?(%|s|ms)?|—")  # right-aligned cells: 1,234 / 12.5% / 2.5 s / — (not "140mb")


def _seconds(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms / 1000:.2f} s" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _setup_name(setup: str) -> str:
    phrase = words({"setup": setup})
    return phrase[:1].upper() + phrase[1:]


def headlines(groups: Sequence[dict], isolated: Sequence = ()) -> list[dict]:
    """One headline per setup: ``{"setup", "sentence", "details": [one line per model size]}``.

    Medians (p50) throughout: of isolated cold starts (``isolated``: IsolatedResult s), of cold starts under
    load (measured ``groups`` with setup/model_size/format labels; latency above the threshold, as the
    study) and the study's AWS row for the same setup and size. Groups without those labels get one
    headline each with their own cold-start median.
    """
    from coldbrew.experiment.isolated import study_rows, summary

    iso = {(r.setup, r.size, r.format): summary(r) for r in isolated}
    measured = [g for g in groups if not g.get("reference")]
    labelled = [g for g in measured if {"setup", "model_size", "format"} <= set(g["labels"])]
    load: dict[tuple[str, str, str], dict] = {}
    for g in labelled:
        load.setdefault((g["setup"], g["model_size"], g["format"]), g)
    setups = list(dict.fromkeys([k[0] for k in iso] + [k[0] for k in load]))
    out = []
    for setup in setups:
        sizes = list(dict.fromkeys([k[1] for k in iso if k[0] == setup] + [k[1] for k in load if k[0] == setup]))
        details, sentence = [], None
        for size in sizes:
            parts = []
            pickle_iso, brew_iso = iso.get((setup, size, "pickle")), iso.get((setup, size, "brew"))
            if pickle_iso or brew_iso:
                alone = [
                    f"{name} {_seconds(s['p50'])} (init CPU {_seconds(s['init_cpu_p50'])}, n={s['n']})"
                    for name, s in ((".brew", brew_iso), ("pickle", pickle_iso))
                    if s
                ]
                parts.append("one environment at a time: " + ", ".join(alone))
            loaded = [(name, load.get((setup, size, fmt))) for name, fmt in ((".brew", "brew"), ("pickle", "pickle"))]
            under = [
                (f"{name} {_seconds(g['p50'])}" if g.get("n") else f"{name}: {_no_cold(g)}")
                + (
                    f" (init CPU {_seconds(g['inits']['cpu']['p50'])})"
                    if g.get("inits") and g["inits"]["cpu"]["n"]
                    else ""
                )
                for name, g in loaded
                if g
            ]
            if under:
                parts.append("under load on this machine: " + ", ".join(under))
            study = study_rows(setup, size)
            if study:
                source = study[0][0].removeprefix("study ").strip("()")
                parts.append(f"the study on AWS: pickle {_seconds(study[0][1].get('p50'))} ({source})")
            details.append(f"{size} model — " + "; ".join(parts) + ".")
            if pickle_iso and brew_iso and pickle_iso["p50"] and brew_iso["p50"]:
                ratio = pickle_iso["p50"] / brew_iso["p50"]
                sentence = (
                    f".brew starts cold in {_seconds(brew_iso['p50'])}, pickle in {_seconds(pickle_iso['p50'])} "
                    f"(median, one environment at a time, {size} model): "
                    + (f"{ratio:.1f}× faster." if ratio >= 1 else f"{1 / ratio:.1f}× slower.")
                )
                if study and study[0][1].get("p50"):
                    sentence += f" The study measured {_seconds(study[0][1]['p50'])} for pickle on AWS."
        if sentence is None:  # no isolated pair: the largest size under load with both formats
            for size in reversed(sizes):
                brew, pickle = load.get((setup, size, "brew")), load.get((setup, size, "pickle"))
                if brew and pickle and brew.get("n") and pickle.get("n"):
                    sentence = (
                        f"under load, .brew's cold starts take {_seconds(brew['p50'])} and pickle's "
                        f"{_seconds(pickle['p50'])} (median, {size} model)."
                    )
                    break
        out.append({"setup": _setup_name(setup), "sentence": sentence or "see the details below.", "details": details})
    for g in measured:
        if g in labelled:
            continue
        labels = {c: g.get(c) for c in g["labels"]}
        sentence = (
            f"cold starts (latency over {g['threshold_ms']:g} ms) take {_seconds(g['p50'])} (median of "
            f"{g['n']:,}), the slowest {_seconds(g['max'])}."
            if g.get("n")
            else "no cold start."
        )
        out.append({"setup": words(labels), "sentence": sentence, "details": []})
    return out


def _no_cold(group: dict) -> str:
    measured = (group.get("counts") or {}).get("measured")
    if not measured:
        return "no request answered"
    return f"no request over {group['threshold_ms']:g} ms"


def _cells(row: Sequence[str]) -> list[dict]:
    return [{"text": c, "num": bool(_NUMBER.fullmatch(c))} for c in row]


def _embed(figure: Figure) -> dict:
    return {"title": figure.title, "data": base64.b64encode(Path(figure.path).read_bytes()).decode("ascii")}


def render_html(
    groups: Sequence[dict],
    figures: Sequence[Figure],
    *,
    extra_sections: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = (),
    isolated: Sequence = (),
    machine: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The page as a string (see :func:`write_html`)."""
    import jinja2

    from coldbrew.experiment.isolated import ISOLATED_HEADERS, ISOLATED_TITLE, describe_machine, isolated_rows

    tables: list[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = []
    if isolated:
        tables.append((ISOLATED_TITLE, ISOLATED_HEADERS, isolated_rows(isolated)))
    tables += [*table_sections(groups), *extra_sections]
    iso_figure = next((f for f in figures if Path(f.path).name == "isolated_cold_starts.png"), None)
    template = resources.files("coldbrew.experiment").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        headlines=headlines(groups, isolated),
        machine=machine or describe_machine(),
        measured_here=machine is not None,
        has_isolated=bool(isolated),
        notes=list(notes),
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        isolated_figure=_embed(iso_figure) if iso_figure else None,
        tables=[{"title": t, "headers": list(h), "rows": [_cells(r) for r in rows]} for t, h, rows in tables],
        figures=[_embed(f) for f in figures if f is not iso_figure],
        sources=sorted({s for g in groups for s in g.get("sources", [])}),
    )


def write_html(
    groups: Sequence[dict],
    figures: Sequence[Figure],
    out: Path,
    *,
    extra_sections: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = (),
    isolated: Sequence = (),
    machine: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write the page to ``out``; returns ``out``.

    ``groups``: the report's groups (tables); ``figures``: PNGs with titles in words (plots.write_plots);
    ``extra_sections``: more (title, headers, rows) tables of display strings, after the report's tables;
    ``isolated``: IsolatedResult s (headlines, the isolated figure and table); ``machine``: what the numbers
    ran on (default: this machine, ``isolated.describe_machine``); ``notes``: caveats about the inputs.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render_html(groups, figures, extra_sections=extra_sections, isolated=isolated, machine=machine, notes=notes),
        encoding="utf-8",
    )
    return out
