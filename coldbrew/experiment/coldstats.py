"""The study's cold-start statistics, per group of runs.

The latencies are the measured requests (``results.is_measured``): successful responses and API
Gateway's integration timeouts (504, or the lab's ``gateway-timeout``), which are cold starts the client
waited out. Throttles (429, or the lab's ``throttled``) and other failed requests are counted, not measured. A request is a cold start when its latency is above a threshold
(the study: 1000 ms). Each subset gets
count, mean, p25, p50, p75, p95, p99 and max with numpy's default (linear) percentiles, exactly as the
study computed them. When requests carry environment ids we also count *true* cold starts — the first
request each environment served (or the ones it flagged with ``X-Coldbrew-Cold: 1``) — and how often
the threshold rule gets them wrong. When the lab reported them (per-request ``init_ms``/``init_cpu_ms``),
``inits`` holds the wall and CPU time of the inits the requests waited for: under load the gap between
the two is contention on the lab's machine. The group dicts returned here are the JSON schema of
``coldbrew report --format json`` (docs/experiment.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from coldbrew.errors import ColdbrewError
from coldbrew.experiment.results import Run

STAT_KEYS = ("n", "mean", "p25", "p50", "p75", "p95", "p99", "max")
PERCENTILES = {"p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}
DEFAULT_THRESHOLD_MS = 1000.0
# Keys of a group dict besides its label columns; a label may not take one of these names.
RESERVED_KEYS = frozenset(
    (
        *STAT_KEYS,
        "labels",
        "warm",
        "all",
        "counts",
        "threshold_ms",
        "true_cold",
        "inits",
        "sources",
        "reference",
        "machine_wait",
    )
)


def describe(values: Iterable[float]) -> dict:
    """n, mean, p25, p50, p75, p95, p99, max of ``values`` (ms, floats); stats are None when empty."""
    data = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if data.size == 0:
        return {"n": 0, **{k: None for k in STAT_KEYS[1:]}}
    stats = {"n": int(data.size), "mean": float(data.mean())}
    for key, q in PERCENTILES.items():
        stats[key] = float(np.percentile(data, q))
    stats["max"] = float(data.max())
    return stats


def true_cold_mask(run: Run) -> np.ndarray | None:
    """Which requests were an environment's first (header flag if present, else first seen per env id)."""
    if not run.has_env or run.env is None:
        return None
    if run.cold is not None:
        return run.cold.copy()
    seen: set[str] = set()
    mask = np.zeros(len(run.env), dtype=bool)
    for i in np.argsort(run.t, kind="stable"):
        env = run.env[i]
        if env is not None and env not in seen:
            seen.add(env)
            mask[i] = True
    return mask


def group_runs(runs: Sequence[Run], label_columns: Sequence[str]) -> list[tuple[dict[str, str | None], list[Run]]]:
    """Runs grouped by their values in ``label_columns``, groups in first-seen order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(run.labels.get(c) for c in label_columns)
        groups.setdefault(key, []).append(run)
    return [(dict(zip(label_columns, key, strict=False)), members) for key, members in groups.items()]


def _count(mask: np.ndarray | None) -> int:
    return 0 if mask is None else int(np.sum(mask))


def counts(members: Sequence[Run], measured: int) -> dict:
    """Requests by outcome: ``timeouts`` (integration timeouts, part of ``measured``: 504s and what the lab
    names ``gateway-timeout``), ``throttled`` (429s and what the lab names ``throttled``, whatever their
    status) and ``errors`` (every other request left out of the latencies); those three are None when a file
    records no status."""
    requests = int(sum(len(r.latency_ms) for r in members))
    result = {"requests": requests, "measured": measured, "timeouts": None, "throttled": None, "errors": None}
    if all(r.status is not None for r in members):
        timeouts = sum(_count(r.gateway_timeouts()) for r in members)
        throttled = sum(_count(r.throttled()) for r in members)
        result.update(timeouts=timeouts, throttled=throttled, errors=requests - measured - throttled)
    return result


def init_times(members: Sequence[Run]) -> dict | None:
    """``{"wall": describe(...), "cpu": describe(...)}`` of the inits requests waited for (the lab's
    per-request ``init_ms`` / ``init_cpu_ms``, cold starts only); None when no request carries them."""
    walls = [r.init_ms for r in members if r.init_ms is not None]
    cpus = [r.init_cpu_ms for r in members if r.init_cpu_ms is not None]
    if not walls and not cpus:
        return None
    wall = np.concatenate(walls) if walls else np.array([])
    cpu = np.concatenate(cpus) if cpus else np.array([])
    return {"wall": describe(wall[~np.isnan(wall)]), "cpu": describe(cpu[~np.isnan(cpu)])}


def machine_wait(members: Sequence[Run]) -> dict | None:
    """Latencies with and without the lab's machine wait (per-request ``queue_ms``), for the cold starts
    (requests that waited for an init: ``init_ms`` present) and for all measured requests:
    ``{"cold": {"with": describe, "without": describe}, "all": {...}}``. "without" is what would hold on AWS,
    where every environment has its own CPU; None when no request carries a machine wait."""
    withs: dict[str, list] = {"cold": [], "all": []}
    nets: dict[str, list] = {"cold": [], "all": []}
    for run in members:
        if run.queue_ms is None:
            continue
        known = run.measured & ~np.isnan(run.queue_ms)
        cold = known & (~np.isnan(run.init_ms) if run.init_ms is not None else np.zeros(len(known), dtype=bool))
        for key, mask in (("cold", cold), ("all", known)):
            withs[key].append(run.latency_ms[mask])
            nets[key].append(np.maximum(run.latency_ms[mask] - run.queue_ms[mask], 0.0))
    if not withs["all"]:
        return None
    return {
        key: {"with": describe(np.concatenate(withs[key])), "without": describe(np.concatenate(nets[key]))}
        for key in ("cold", "all")
    }


def _summarize_group(labels: dict, members: list[Run], label_columns: Sequence[str], threshold_ms: float) -> dict:
    latencies = np.concatenate([r.latency_ms[r.measured] for r in members])
    cold = latencies[latencies > threshold_ms]
    warm = latencies[latencies <= threshold_ms]
    group = {
        **labels,
        "labels": list(label_columns),
        **describe(cold),
        "warm": describe(warm),
        "all": describe(latencies),
        "counts": {
            **counts(members, int(latencies.size)),
            "cold": int(cold.size),
            "warm": int(warm.size),
            "cold_share": float(cold.size / latencies.size) if latencies.size else None,
        },
        "threshold_ms": float(threshold_ms),
        "true_cold": None,
        "inits": init_times(members),
        "machine_wait": machine_wait(members),
        "sources": [str(r.source) for r in members],
        "reference": None,
    }
    with_env = [r for r in members if r.has_env]
    if with_env:
        firsts, slow_warm, fast_cold, envs = [], 0, 0, 0
        for run in with_env:
            assert run.env is not None  # has_env
            # Only responses from an environment: a 504 comes from the gateway and names none.
            served = run.measured & np.array([e is not None for e in run.env])
            first = true_cold_mask(run)
            assert first is not None  # has_env
            mask = first[served]
            lat = run.latency_ms[served]
            firsts.append(lat[mask])
            slow_warm += int(np.sum((lat > threshold_ms) & ~mask))
            fast_cold += int(np.sum((lat <= threshold_ms) & mask))
            envs += len({e for e in run.env if e is not None})
        group["true_cold"] = {
            **describe(np.concatenate(firsts)),
            "environments": envs,
            "slow_warm": slow_warm,
            "fast_cold": fast_cold,
        }
    return group


def summarize(
    runs: Sequence[Run], label_columns: Sequence[str], threshold_ms: float = DEFAULT_THRESHOLD_MS
) -> list[dict]:
    """One dict per group of ``runs`` (grouped by ``label_columns``): the study's table row and more."""
    clashes = sorted(set(label_columns) & RESERVED_KEYS)
    if clashes:
        raise ColdbrewError(f"label column(s) {', '.join(clashes)} clash with the report's own keys; rename them")
    return [
        _summarize_group(labels, members, label_columns, threshold_ms)
        for labels, members in group_runs(runs, label_columns)
    ]


def reference_group(
    labels: dict[str, str], cold: dict, *, source: str, label_columns: Sequence[str] | None = None
) -> dict:
    """A published row (no raw data) shaped like :func:`summarize`'s groups; missing stats are None."""
    columns = list(label_columns or labels)
    return {
        **{c: labels.get(c) for c in columns},
        "labels": columns,
        **{k: cold.get(k) for k in STAT_KEYS},
        "warm": None,
        "all": None,
        "counts": None,
        "threshold_ms": DEFAULT_THRESHOLD_MS,
        "true_cold": None,
        "inits": None,
        "machine_wait": None,
        "sources": [],
        "reference": source,
    }
