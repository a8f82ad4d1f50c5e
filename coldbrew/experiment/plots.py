"""The study's figures as PNGs (matplotlib, Agg backend).

* performance over time: p50, p95 and max latency per 5 s window, one figure per group;
* latency histograms of all / warm / cold requests with p5, mean, p50 and p95 lines, one figure per group;
* a cold-start comparison bar chart across groups (reference rows hatched);
* isolated cold starts (one environment at a time) per model size: pickle, .brew and the study's AWS row.

:func:`write_plots` returns :class:`Figure` s: each PNG with a title in words for the HTML page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coldbrew.experiment.coldstats import group_runs
from coldbrew.experiment.results import Run

WINDOW_S = 5.0
_LINES = (("p5", "tab:purple", ":"), ("mean", "tab:red", "-"), ("p50", "tab:green", "--"), ("p95", "tab:orange", "-."))


@dataclass(frozen=True)
class Figure:
    """A written PNG and what it shows, in words."""

    path: Path
    title: str


_WORDS = {
    "setup": {
        "disk": "model read from disk",
        "s3": "model downloaded from S3",
        "warmed": "disk, warmed first",
        "provisioned": "disk, provisioned environments",
    },
    "format": {"brew": ".brew", "pickle": "pickle"},
}


def words(labels: dict) -> str:
    """A group's labels as a phrase: ``disk, tiny, pickle, 10`` → ``model read from disk, tiny model, pickle,
    at most 10 environments``; unknown label columns read ``name value``."""
    parts = []
    for key, value in labels.items():
        if value is None:
            continue
        value = str(value)
        if key in _WORDS:
            parts.append(_WORDS[key].get(value, value))
        elif key == "model_size":
            parts.append(f"{value} model")
        elif key == "concurrency":
            cap = value.endswith(" (RAM cap)")
            parts.append(f"at most {value.removesuffix(' (RAM cap)')} environments" + (" (RAM cap)" if cap else ""))
        elif key == "run":
            parts.append(value)
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts) or "all requests"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def group_title(labels: dict) -> str:
    """A group's labels as a short title: ``DOCKER_DISK · 140MB``."""
    return " · ".join(str(v) for v in labels.values() if v is not None) or "all requests"


def slug(labels: dict) -> str:
    """A file-name-safe version of a group's labels."""
    text = "_".join(str(v) for v in labels.values() if v is not None) or "all"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def windows(runs: Sequence[Run], window_s: float = WINDOW_S) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per window since each run's start: window start (s) and p50/p95/max of successful latencies."""
    rel, lat = [], []
    for run in runs:
        t, ms = run.t[run.measured], run.latency_ms[run.measured]
        if t.size:
            start = float(np.min(t - ms / 1000.0))
            rel.append(t - start)
            lat.append(ms)
    if not rel:
        return np.array([]), {"p50": np.array([]), "p95": np.array([]), "max": np.array([])}
    rel_all, lat_all = np.concatenate(rel), np.concatenate(lat)
    bins = np.floor(rel_all / window_s).astype(int)
    starts: list[float] = []
    out: dict[str, list[float]] = {"p50": [], "p95": [], "max": []}
    for b in np.unique(bins):
        chunk = lat_all[bins == b]
        starts.append(b * window_s)
        out["p50"].append(np.percentile(chunk, 50))
        out["p95"].append(np.percentile(chunk, 95))
        out["max"].append(chunk.max())
    return np.array(starts), {k: np.array(v) for k, v in out.items()}


def plot_over_time(runs: Sequence[Run], title: str, out: Path) -> Path:
    """Latency p50/p95/max per 5 s window over the run (log scale)."""
    plt = _pyplot()
    starts, series = windows(runs)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    for key, colour in (("max", "tab:red"), ("p95", "tab:orange"), ("p50", "tab:blue")):
        ax.plot(starts, series[key], marker="o", markersize=3, color=colour, label=key)
    ax.set_yscale("log")
    ax.set_xlabel(f"time since start (s), {WINDOW_S:g} s windows")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Performance over time — {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_histograms(runs: Sequence[Run], title: str, threshold_ms: float, out: Path) -> Path:
    """Histograms of all / warm / cold latencies with p5, mean, p50, p95 lines."""
    plt = _pyplot()
    lat = np.concatenate([r.latency_ms[r.measured] for r in runs])
    subsets = (
        ("all", lat),
        (f"warm (<= {threshold_ms:g} ms)", lat[lat <= threshold_ms]),
        (f"cold (> {threshold_ms:g} ms)", lat[lat > threshold_ms]),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), dpi=100)
    for ax, (name, data) in zip(axes, subsets, strict=False):
        ax.set_title(f"{name}: n={data.size:,}")
        ax.set_xlabel("latency (ms)")
        if data.size == 0:
            ax.text(0.5, 0.5, "no requests", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.hist(data, bins=50, color="tab:blue", alpha=0.75)
        marks = {
            "p5": np.percentile(data, 5),
            "mean": data.mean(),
            "p50": np.percentile(data, 50),
            "p95": np.percentile(data, 95),
        }
        for key, colour, style in _LINES:
            ax.axvline(marks[key], color=colour, linestyle=style, label=f"{key} {marks[key]:,.0f} ms")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("requests")
    fig.suptitle(f"Latency distribution — {title}")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _bars(ax, plt, groups: Sequence[dict], stats: Sequence[dict | None], names: list[str], title: str) -> None:
    keys = ("mean", "p50", "p95", "max")
    colours = ("tab:red", "tab:green", "tab:orange", "tab:purple")
    x = np.arange(len(groups))
    width = 0.2
    for i, (key, colour) in enumerate(zip(keys, colours, strict=False)):
        values = [s.get(key) if s and s.get(key) is not None else np.nan for s in stats]
        bars = ax.bar(x + (i - 1.5) * width, values, width, color=colour, label=key)
        for bar, g in zip(bars, groups, strict=False):
            if g.get("reference"):
                bar.set_hatch("//")
                bar.set_alpha(0.6)
    for xi, s in zip(x, stats, strict=False):
        if not s or s.get("n") == 0:
            ax.text(
                xi,
                0.03,
                "none" if s else "no data",
                ha="center",
                va="bottom",
                fontsize=8,
                color="dimgray",
                transform=ax.get_xaxis_transform(),
            )
    ax.set_xticks(x, names, fontsize=8)
    present = [s[k] for s in stats if s for k in keys if s.get(k)]
    log = bool(present) and max(present) / min(present) > 20  # ms-scale and s-scale side by side
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("latency (ms" + (", log scale)" if log else ")"))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def plot_cold_comparison(groups: Sequence[dict], out: Path) -> Path:
    """Grouped bars of cold-start mean/p50/p95/max per group (reference rows hatched), and of true cold
    starts (first request per environment) when any group has environment ids."""
    plt = _pyplot()
    names = []
    for g in groups:
        # One label part per line ("disk\n140mb\nbrew", "study\nAWS, quoted p50"), so neighbours don't collide
        title = group_title({c: g.get(c) for c in g["labels"]}).replace(" · ", "\n")
        names.append(f"{title}\n{g['reference'].replace(' (', chr(10)).rstrip(')')}" if g.get("reference") else title)
    with_true = any(g.get("true_cold") for g in groups)
    width = max(7, 1.6 * len(groups) + 2)
    fig, axes = plt.subplots(2 if with_true else 1, 1, figsize=(width, 9 if with_true else 5), dpi=100, squeeze=False)
    threshold = groups[0]["threshold_ms"] if groups else 1000
    _bars(axes[0][0], plt, groups, groups, names, f"Cold starts by the threshold rule (> {threshold:g} ms)")
    if with_true:
        _bars(
            axes[1][0],
            plt,
            groups,
            [g.get("true_cold") for g in groups],
            names,
            "True cold starts (first request of each environment)",
        )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_isolated(isolated: Sequence, out: Path) -> Path:
    """Isolated cold starts per model size, one panel per setup: each lab sample of pickle and .brew as a
    dot over its box, and the study's AWS statistics (p50, mean, max) where he published them (log scale)."""
    from coldbrew.experiment.isolated import study_rows

    plt = _pyplot()
    from matplotlib import ticker

    setups = list(dict.fromkeys(r.setup for r in isolated))
    sizes = list(dict.fromkeys(r.size for r in isolated))
    fig, axes = plt.subplots(
        1,
        len(setups),
        figsize=(max(6, 3.2 * len(sizes)) * len(setups) ** 0.5 + 2, 5),
        dpi=100,
        squeeze=False,
        sharey=True,
    )
    colours = {"pickle": "tab:red", "brew": "tab:blue", "study": "dimgray"}
    rng = np.random.default_rng(0)  # jitter of the dots only
    for ax, setup in zip(axes[0], setups, strict=True):
        for i, size in enumerate(sizes):
            for j, fmt in enumerate(("pickle", "brew")):
                x = i * 3 + j
                result = next((r for r in isolated if (r.setup, r.size, r.format) == (setup, size, fmt)), None)
                data = result.latencies() if result is not None else np.array([])
                if data.size:
                    ax.boxplot([data], positions=[x], widths=0.6, showfliers=False, medianprops={"color": colours[fmt]})
                    ax.scatter(x + rng.uniform(-0.2, 0.2, data.size), data, s=10, alpha=0.6, color=colours[fmt])
            study = study_rows(setup, size)
            if not study:
                ax.text(
                    i * 3 + 2,
                    0.5,
                    "no AWS number\npublished",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="dimgray",
                    transform=ax.get_xaxis_transform(),
                )
            else:
                _, stats = study[0]
                x = i * 3 + 2
                for key, marker in (("p50", "D"), ("mean", "o"), ("max", "^")):
                    if stats.get(key) is not None:
                        ax.scatter([x], [stats[key]], marker=marker, color=colours["study"], s=40, zorder=3)
                        ax.annotate(key, (x, stats[key]), xytext=(6, -3), textcoords="offset points", fontsize=7)
        ticks = [
            (i * 3 + j, name)
            for i, size in enumerate(sizes)
            for j, name in enumerate((f"{size}\npickle", f"{size}\n.brew", f"{size}\nstudy (AWS)"))
        ]
        ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(_WORDS["setup"].get(setup, setup))
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("first request's latency (ms, log scale)")
    fig.suptitle("Isolated cold starts: one environment at a time")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_plots(
    runs: Sequence[Run],
    label_columns: Sequence[str],
    groups: Sequence[dict],
    out_dir: Path,
    threshold_ms: float,
    isolated: Sequence = (),
) -> list[Figure]:
    """All figures for a report into ``out_dir``; returns them (path and title in words), the isolated
    cold starts (when given) first."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if isolated:
        written.append(
            Figure(
                plot_isolated(isolated, out_dir / "isolated_cold_starts.png"),
                "Isolated cold starts per model size: pickle, .brew and the study's AWS numbers",
            )
        )
    for labels, members in group_runs(runs, label_columns):
        name, title, phrase = slug(labels), group_title(labels), words(labels)
        written.append(
            Figure(
                plot_over_time(members, title, out_dir / f"over_time_{name}.png"),
                f"Latency over the run (p50, p95 and max per {WINDOW_S:g} s): {phrase}",
            )
        )
        written.append(
            Figure(
                plot_histograms(members, title, threshold_ms, out_dir / f"histogram_{name}.png"),
                f"How latencies are distributed (all, warm and cold requests): {phrase}",
            )
        )
    if groups:
        written.append(
            Figure(
                plot_cold_comparison(groups, out_dir / "cold_starts.png"),
                "Cold starts of every group side by side"
                + (", with the study's AWS rows hatched" if any(g.get("reference") for g in groups) else ""),
            )
        )
    return written
