"""The study's figures as PNGs (matplotlib, Agg backend).

* performance over time: p50, p95 and max latency per 5 s window, one figure per group;
* latency histograms of all / warm / cold requests with p5, mean, p50 and p95 lines, one figure per group;
* a cold-start comparison bar chart across groups (reference rows hatched).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coldbrew.tools.coldstats import group_runs
from coldbrew.tools.latency_logs import Run

WINDOW_S = 5.0
_LINES = (("p5", "tab:purple", ":"), ("mean", "tab:red", "-"), ("p50", "tab:green", "--"), ("p95", "tab:orange", "-."))


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
        t, ms = run.t[run.ok], run.latency_ms[run.ok]
        if t.size:
            start = float(np.min(t - ms / 1000.0))
            rel.append(t - start)
            lat.append(ms)
    if not rel:
        return np.array([]), {"p50": np.array([]), "p95": np.array([]), "max": np.array([])}
    rel_all, lat_all = np.concatenate(rel), np.concatenate(lat)
    bins = np.floor(rel_all / window_s).astype(int)
    starts, out = [], {"p50": [], "p95": [], "max": []}
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
    lat = np.concatenate([r.latency_ms[r.ok] for r in runs])
    subsets = (
        ("all", lat),
        (f"warm (<= {threshold_ms:g} ms)", lat[lat <= threshold_ms]),
        (f"cold (> {threshold_ms:g} ms)", lat[lat > threshold_ms]),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), dpi=100)
    for ax, (name, data) in zip(axes, subsets):
        ax.set_title(f"{name}: n={data.size:,}")
        ax.set_xlabel("latency (ms)")
        if data.size == 0:
            ax.text(0.5, 0.5, "no requests", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.hist(data, bins=50, color="tab:blue", alpha=0.75)
        marks = {"p5": np.percentile(data, 5), "mean": data.mean(), "p50": np.percentile(data, 50),
                 "p95": np.percentile(data, 95)}
        for key, colour, style in _LINES:
            ax.axvline(marks[key], color=colour, linestyle=style, label=f"{key} {marks[key]:,.0f} ms")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("requests")
    fig.suptitle(f"Latency distribution — {title}")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_cold_comparison(groups: Sequence[dict], out: Path) -> Path:
    """Grouped bars of cold-start mean/p50/p95/max per group; reference rows hatched."""
    plt = _pyplot()
    keys = ("mean", "p50", "p95", "max")
    colours = ("tab:red", "tab:green", "tab:orange", "tab:purple")
    names = []
    for g in groups:
        title = group_title({c: g.get(c) for c in g["labels"]})
        names.append(f"{title}\n({g['reference']})" if g.get("reference") else title)
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups) + 2), 5), dpi=100)
    x = np.arange(len(groups))
    width = 0.2
    for i, (key, colour) in enumerate(zip(keys, colours)):
        values = [g.get(key) if g.get(key) is not None else np.nan for g in groups]
        bars = ax.bar(x + (i - 1.5) * width, values, width, color=colour, label=key)
        for bar, g in zip(bars, groups):
            if g.get("reference"):
                bar.set_hatch("//")
                bar.set_alpha(0.6)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("cold-start latency (ms)")
    ax.set_title(f"Cold starts (> {groups[0]['threshold_ms']:g} ms) by group" if groups else "Cold starts")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_plots(runs: Sequence[Run], label_columns: Sequence[str], groups: Sequence[dict], out_dir: Path,
                threshold_ms: float) -> list[Path]:
    """All figures for a report into ``out_dir``; returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for labels, members in group_runs(runs, label_columns):
        name, title = slug(labels), group_title(labels)
        written.append(plot_over_time(members, title, out_dir / f"over_time_{name}.png"))
        written.append(plot_histograms(members, title, threshold_ms, out_dir / f"histogram_{name}.png"))
    written.append(plot_cold_comparison(groups, out_dir / "cold_starts.png"))
    return written
