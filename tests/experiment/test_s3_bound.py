"""The S3 cold-start bound the bench prints beside the measurement (issue #26's acceptance), and the download table."""

from __future__ import annotations

import pytest

from coldbrew.experiment.isolated import IsolatedResult, Sample, bound_rows, download_rows, s3_bound

AWS = {"per_connection_Bps": 85e6, "aggregate_Bps": 200e6, "first_byte_s": 0.05}


def test_the_bound_is_the_larger_of_its_two_terms():
    # 31.13 MB at 200 MB/s is 155.65 ms: (132 + 155.65 + 50) x 1.2 = 405.18 > 1.5 x 132 = 198
    assert s3_bound(132.0, 31_130_000, AWS) == pytest.approx(405.18)
    # a tiny file: the transfer is nothing, 1.5 x disk wins: max(1500, (1000 + 0.03 + 50) x 1.2 = 1260.04)
    assert s3_bound(1000.0, 6_000, AWS) == pytest.approx(1500.0)
    assert s3_bound(132.0, 31_130_000, {}) is None  # loopback as it is: no network figures, no bound


def _cell(setup: str, latencies: list[float], **extra) -> IsolatedResult:
    return IsolatedResult(setup, "140mb", "brew", 31_130_000, [Sample(ms, 200) for ms in latencies], **extra)


def test_bound_rows_compare_each_shaped_s3_cell_with_the_same_runs_disk_cell():
    disk = _cell("disk", [130, 132, 134])
    fast = _cell("s3", [400, 401, 402], network="aws", network_figures=AWS)
    slow = _cell("s3", [500, 510, 520], network="aws", network_figures=AWS)
    assert bound_rows([disk, fast])[0][3:] == ["132", "401", "405", "0.99", "yes"]
    assert bound_rows([disk, slow])[0][-1] == "NO"
    assert bound_rows([fast]) == []  # no disk cell of that size and format: nothing to compare with


def test_download_rows_show_each_clients_median():
    cell = _cell(
        "s3",
        [400],
        network="aws",
        downloads={
            "coldbrew": [{"download_ms": 200.0, "client_ms": 20.0}, {"download_ms": 300.0, "client_ms": 30.0}],
            "one GET": [{"download_ms": 500.0, "client_ms": 400.0}],
        },
    )
    rows = download_rows([cell])
    assert [r[2] for r in rows] == ["coldbrew", "one GET"]
    assert rows[0][4:] == ["250", "125", "25", "275"]  # 31.13 MB in 250 ms: 125 MB/s
