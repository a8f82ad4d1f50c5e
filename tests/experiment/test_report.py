"""`coldbrew report`: the study's numbers from his own logs, grouping, formats, plots, HTML."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from coldbrew.cli import main
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.coldstats import summarize
from coldbrew.experiment.report import render_rows, render_section, render_table, write_report
from coldbrew.experiment.results import labels_from_filename, load_inputs, read_requests, request_record

DATA = Path(__file__).parents[1] / "data"
DISK = DATA / "DOCKER_DISK_TEST_ROUND_5_locust_logs.txt"
S3 = DATA / "DOCKER_S3_TEST_ROUND_15_locust_logs.txt"

# tests/data/README.md: n, mean, p25, p50, p75, p95, p99, max (ms, two decimals).
EXPECTED = {
    ("DOCKER_DISK", "all"): (1077, 1483.70, 61.74, 96.76, 128.61, 6809.35, 27994.61, 28749.29),
    ("DOCKER_DISK", "cold"): (85, 17616.11, 5489.69, 24788.91, 27097.52, 28408.37, 28679.52, 28749.29),
    ("DOCKER_DISK", "warm"): (992, 101.39, 60.64, 92.21, 117.20, 201.47, 331.26, 460.14),
    ("DOCKER_S3", "all"): (951, 2165.62, 58.74, 65.99, 99.18, 19992.16, 21296.10, 23197.90),
    ("DOCKER_S3", "cold"): (100, 19942.71, 19220.27, 19893.34, 20848.72, 21450.65, 22782.24, 23197.90),
    ("DOCKER_S3", "warm"): (851, 76.66, 56.68, 64.17, 78.35, 136.24, 216.47, 334.84),
}
KEYS = ("n", "mean", "p25", "p50", "p75", "p95", "p99", "max")


def _cli_json(capsys, *argv) -> list[dict]:
    assert main(["report", *map(str, argv), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_logs_give_the_readme_numbers_unrounded(capsys):
    groups = {g["setup"]: g for g in _cli_json(capsys, DISK, S3)}
    assert [(g["setup"], g["model_size"]) for g in groups.values()] == [
        ("DOCKER_DISK", "140MB"),
        ("DOCKER_S3", "1090MB"),
    ]
    for (setup, subset), expected in EXPECTED.items():
        g = groups[setup]
        stats = g if subset == "cold" else g[subset]
        assert stats["n"] == expected[0]
        # The README shows two decimals; the JSON holds numpy's unrounded values.
        assert [stats[k] for k in KEYS[1:]] == pytest.approx(expected[1:], abs=0.006)
    # The study's log records every response and no status: all are measured, outcomes unknown.
    assert groups["DOCKER_DISK"]["counts"] == {
        "requests": 1077,
        "measured": 1077,
        "timeouts": None,
        "throttled": None,
        "errors": None,
        "cold": 85,
        "warm": 992,
        "cold_share": 85 / 1077,
    }
    assert groups["DOCKER_S3"]["true_cold"] is None  # the study's logs carry no environment ids


def test_table_truncates_to_whole_ms_as_the_study(capsys):
    assert main(["report", str(DISK), str(S3)]) == 0
    out = capsys.readouterr().out
    sections = out.split("\n\n")
    cold = sections[sections.index("Cold starts (latency > 1000 ms), ms") + 1]
    warm = sections[sections.index("Warm requests (latency <= 1000 ms), ms") + 1]
    everything = sections[sections.index("All requests, ms") + 1]
    for table, subset in ((cold, "cold"), (warm, "warm"), (everything, "all")):
        rows = {line.split()[0]: line.split()[2:] for line in table.splitlines()[2:]}
        for setup in ("DOCKER_DISK", "DOCKER_S3"):
            expected = EXPECTED[(setup, subset)]
            assert rows[setup] == [f"{expected[0]:,}"] + [f"{int(v):,}" for v in expected[1:]]


def test_markdown_table(capsys):
    assert main(["report", str(DISK), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "### Cold starts (latency > 1000 ms), ms" in out
    assert "| setup | model_size | n | mean | p25 | p50 | p75 | p95 | p99 | max |" in out
    assert "| DOCKER_DISK | 140MB | 85 | 17,616 | 5,489 | 24,788 | 27,097 | 28,408 | 28,679 | 28,749 |" in out


def test_csv_parses_back_to_the_json_values(capsys):
    groups = _cli_json(capsys, DISK, S3)
    assert main(["report", str(DISK), str(S3), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {(r["setup"], r["subset"]) for r in rows} == {
        (s, sub) for s in ("DOCKER_DISK", "DOCKER_S3") for sub in ("cold", "warm", "all")
    }
    by_key = {(r["setup"], r["subset"]): r for r in rows}
    for g in groups:
        for subset, stats in (("cold", g), ("warm", g["warm"]), ("all", g["all"])):
            row = by_key[(g["setup"], subset)]
            assert int(row["n"]) == stats["n"]
            assert [float(row[k]) for k in KEYS[1:]] == [stats[k] for k in KEYS[1:]]


def test_cold_threshold_option(capsys):
    (g,) = _cli_json(capsys, DISK, "--cold-threshold-ms", "5000")
    assert g["threshold_ms"] == 5000
    assert g["counts"]["cold"] == int(np.sum(_latencies(DISK) > 5000))


def _latencies(path: Path) -> np.ndarray:
    """The log's latencies read with a regex here, not by the code under test (coldbrew's own reader)."""
    text = path.read_text(encoding="utf-8")
    return np.array([float(ms) for ms in re.findall(r"/INFO/root: ([0-9]+\.[0-9]+)$", text, re.M)])


def test_study_round_rows_are_the_numbers_tests_data_readme_gives():
    """The one-round reference rows are tests/data/README.md's numbers, not values computed by the code under test."""
    from coldbrew.experiment.published import ROUND_LOG, STUDY_COLD_STARTS

    for setup, key in (("DOCKER_DISK", ("DOCKER_DISK", "140MB")), ("DOCKER_S3", ("DOCKER_S3", "1090MB"))):
        published = dict(STUDY_COLD_STARTS[key])[ROUND_LOG]
        assert published == dict(zip(KEYS, EXPECTED[(setup, "cold")], strict=True))


def test_labels_from_the_study_file_names():
    assert labels_from_filename(DISK.name) == ({"setup": "DOCKER_DISK", "model_size": "140MB"}, {"round": 5})
    assert labels_from_filename("DOCKER_S3_TEST_ROUND_9_locust_logs.txt")[0]["model_size"] == "420MB"
    assert labels_from_filename("DOCKER_S3_TEST_ROUND_15_locust_logs.txt")[0]["model_size"] == "1090MB"
    assert labels_from_filename("my_run.txt") == ({}, {})


def test_manifest_groups_by_its_label_columns(tmp_path, capsys):
    shutil.copy(DISK, tmp_path / "a.txt")
    shutil.copy(S3, tmp_path / "b.txt")
    (tmp_path / "m.csv").write_text("path,setup,model_size\na.txt,lab,big\nb.txt,lab,big\n")
    # Inputs default to the manifest's paths (relative to the manifest).
    (g,) = _cli_json(capsys, "--manifest", tmp_path / "m.csv")
    assert (g["setup"], g["model_size"], g["labels"]) == ("lab", "big", ["setup", "model_size"])
    assert g["counts"]["requests"] == 1077 + 951
    assert g["n"] == 85 + 100
    (tmp_path / "m2.csv").write_text("path,variant\na.txt,one\nb.txt,two\n")
    groups = _cli_json(capsys, tmp_path, "--manifest", tmp_path / "m2.csv")
    assert [(g["variant"], g["n"]) for g in groups] == [("one", 85), ("two", 100)]


def test_unlabelled_file_gets_its_name(tmp_path, capsys):
    shutil.copy(DISK, tmp_path / "morning.log")
    (g,) = _cli_json(capsys, tmp_path / "morning.log")
    assert g["run"] == "morning" and g["n"] == 85


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello\n")
    assert main(["report", str(tmp_path / "notes.txt")]) == 1
    assert "no request lines in the study's log format" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.txt")]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "m.csv").write_text("file,setup\n")
    assert main(["report", str(DISK), "--manifest", str(tmp_path / "m.csv")]) == 1
    assert "needs a 'path' column" in capsys.readouterr().err
    (tmp_path / "m.csv").write_text("path,mean\nx.txt,1\n")
    assert main(["report", str(DISK), "--manifest", str(tmp_path / "m.csv")]) == 1
    assert "clash" in capsys.readouterr().err


class _Headers(dict):
    def get(self, key, default=None):
        return super().get(key, default)


def _write_requests(path: Path, rows) -> None:
    with open(path, "w") as fh:
        for end, ms, status, headers, *error in rows:
            # locust reports every non-2xx/3xx response as a failure, with a message.
            message = error[0] if error else (None if 200 <= status < 400 else f"HTTPError('{status}')")
            fh.write(json.dumps(request_record(end, ms, status, _Headers(headers), message)) + "\n")


def test_structured_file_round_trip_and_true_cold_starts(tmp_path):
    rows = [
        (1000.0, 1500.0, 200, {"X-Coldbrew-Env": "a"}),  # first of env a: true cold, slow
        (1000.5, 800.0, 200, {"X-Coldbrew-Env": "b"}),  # first of env b: true cold but fast
        (1004.0, 1200.0, 200, {"X-Coldbrew-Env": "a"}),  # warm but slow
        (1005.0, 40.0, 200, {"X-Coldbrew-Env": "b"}),
        (1006.0, 3.0, 429, {}),  # throttled: a failure, not a latency sample
    ]
    path = tmp_path / "r.jsonl"
    _write_requests(path, rows)
    run = read_requests(path)
    assert run.latency_ms.tolist() == [1500.0, 800.0, 1200.0, 40.0, 3.0]
    assert run.measured.tolist() == [True, True, True, True, False]
    assert run.env == ["a", "b", "a", "b", None]
    assert run.t.tolist() == [1000.0, 1000.5, 1004.0, 1005.0, 1006.0]
    assert run.cold is None
    (g,) = summarize([run], [])
    assert g["counts"] == {
        "requests": 5,
        "measured": 4,
        "timeouts": 0,
        "throttled": 1,
        "errors": 0,
        "cold": 2,
        "warm": 2,
        "cold_share": 0.5,
    }
    assert g["true_cold"]["environments"] == 2
    assert g["true_cold"]["n"] == 2 and g["true_cold"]["max"] == 1500.0
    assert (g["true_cold"]["slow_warm"], g["true_cold"]["fast_cold"]) == (1, 1)


def test_pre_warmed_environments_report_no_true_cold_starts(tmp_path):
    """Every response says X-Coldbrew-Cold: 0 (the environments were warmed before the load): nothing is cold,
    even though each environment's first request in the file is its first seen."""
    path = tmp_path / "r.jsonl"
    _write_requests(
        path, [(float(i), 5.0, 200, {"X-Coldbrew-Env": env, "X-Coldbrew-Cold": "0"}) for i, env in enumerate("abab")]
    )
    run = read_requests(path)
    assert run.cold.tolist() == [False] * 4
    (g,) = summarize([run], [])
    assert g["true_cold"]["environments"] == 2 and g["true_cold"]["n"] == 0


def test_gateway_timeouts_are_measured_throttles_and_errors_are_counted(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    _write_requests(
        path,
        [
            (1.0, 60.0, 200, {"X-Coldbrew-Env": "a", "X-Coldbrew-Cold": "1"}),
            (2.0, 29_012.5, 504, {}),  # API Gateway gave up on a cold start: the client waited 29 s
            (3.0, 2.5, 429, {}),  # throttled: no environment ran it
            (4.0, 80.0, 200, {"X-Coldbrew-Env": "a", "X-Coldbrew-Cold": "0"}),
            (5.0, 1.0, 0, {}, "ConnectionRefusedError(111)"),  # no response at all
            (6.0, 3_000.0, 502, {}),  # the function failed
        ],
    )
    run = read_requests(path)
    assert run.measured.tolist() == [True, True, False, True, False, False]
    assert run.status.tolist() == [200, 504, 429, 200, 0, 502]
    (g,) = summarize([run], [])
    assert g["counts"] == {
        "requests": 6,
        "measured": 3,
        "timeouts": 1,
        "throttled": 1,
        "errors": 2,
        "cold": 1,
        "warm": 2,
        "cold_share": 1 / 3,
    }
    assert (g["n"], g["max"]) == (1, 29_012.5)  # the 504 is the cold start
    assert (g["warm"]["n"], g["warm"]["max"]) == (2, 80.0)
    assert g["all"]["n"] == 3 and g["all"]["mean"] == pytest.approx((60.0 + 29_012.5 + 80.0) / 3)
    # The 504 names no environment, so it is not called a slow warm request.
    assert (g["true_cold"]["n"], g["true_cold"]["slow_warm"], g["true_cold"]["fast_cold"]) == (1, 0, 1)
    assert main(["report", str(path)]) == 0
    table = capsys.readouterr().out.split("Requests (504s are measured; throttled and errors are not)\n\n")[1]
    header, _, row = table.splitlines()[:3]
    assert header.split()[-3:] == ["504", "throttled", "errors"]
    assert row.split() == ["r", "6", "3", "1", "2", "33.3%", "1", "1", "2"]


def test_the_labs_outcome_header_counts_throttles_and_timeouts_whatever_their_status(tmp_path):
    """API Gateway answers a Lambda throttle with 500 and an HTTP API its 30 s timeout with 503: by status alone
    they would be errors. The lab names them in x-lab-outcome; the record keeps it and the counts follow it."""
    path = tmp_path / "r.jsonl"
    _write_requests(
        path,
        [
            (1.0, 60.0, 200, {"X-Coldbrew-Env": "a", "X-Coldbrew-Cold": "1"}),
            (2.0, 3.0, 500, {"x-lab-outcome": "throttled"}),  # REST or HTTP API: a throttle is a 500
            (3.0, 30_004.0, 503, {"x-lab-outcome": "gateway-timeout"}),  # HTTP API's integration timeout
            (4.0, 4.0, 500, {}),  # a 500 the lab does not name: an error
        ],
    )
    run = read_requests(path)
    assert [json.loads(line).get("outcome") for line in path.read_text().splitlines()] == [
        None,
        "throttled",
        "gateway-timeout",
        None,
    ]
    assert run.measured.tolist() == [True, False, True, False]
    (g,) = summarize([run], [])
    assert (g["counts"]["timeouts"], g["counts"]["throttled"], g["counts"]["errors"]) == (1, 1, 1)
    assert (g["n"], g["max"]) == (1, 30_004.0)  # the timed-out request is the cold start, as a 504 is


def test_cold_header_wins_over_first_seen(tmp_path):
    path = tmp_path / "r.jsonl"
    _write_requests(
        path,
        [
            (1.0, 50.0, 200, {"X-Coldbrew-Env": "a"}),  # the env was warmed before the test
            (2.0, 900.0, 200, {"X-Coldbrew-Env": "b", "X-Coldbrew-Cold": "1"}),
        ],
    )
    run = read_requests(path)
    assert run.cold.tolist() == [False, True]
    (g,) = summarize([run], [])
    assert g["true_cold"]["n"] == 1 and g["true_cold"]["max"] == 900.0


def test_run_folder_is_read_once_with_its_labels(tmp_path, capsys):
    folder = tmp_path / "runs" / "one"
    folder.mkdir(parents=True)
    _write_requests(
        folder / "x_requests.jsonl",
        [(1.0, 1200.0, 200, {"X-Coldbrew-Env": "e1"}), (5.0, 30.0, 200, {"X-Coldbrew-Env": "e1"})],
    )
    # The study-format log of the same run must not be counted a second time.
    (folder / "x_locust_logs.txt").write_text(
        "[2024-01-01 00:00:01,000] h/INFO/root: 1200.00\n[2024-01-01 00:00:05,000] h/INFO/root: 30.00\n"
    )
    (folder / "run.json").write_text(
        json.dumps(
            {
                "labels": {"setup": "disk", "model_size": "tiny", "format": "brew"},
                "files": {"requests": "x_requests.jsonl", "study_log": "x_locust_logs.txt"},
            }
        )
    )
    (g,) = _cli_json(capsys, tmp_path / "runs")
    assert (g["setup"], g["model_size"], g["format"]) == ("disk", "tiny", "brew")
    assert g["counts"]["requests"] == 2 and g["true_cold"]["environments"] == 1
    # The .jsonl named directly also picks up its run.json labels.
    (g2,) = _cli_json(capsys, folder / "x_requests.jsonl")
    assert g2["format"] == "brew"


def test_plots_and_html(tmp_path, capsys):
    plots, page = tmp_path / "plots", tmp_path / "report.html"
    assert main(["report", str(DISK), str(S3), "--with-study", "--plots", str(plots), "--html", str(page)]) == 0
    names = sorted(p.name for p in plots.iterdir())
    assert names == [
        "cold_starts.png",
        "histogram_DOCKER_DISK_140MB.png",
        "histogram_DOCKER_S3_1090MB.png",
        "over_time_DOCKER_DISK_140MB.png",
        "over_time_DOCKER_S3_1090MB.png",
    ]
    for png in plots.iterdir():
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 5
    assert "17,616" in html and "study (AWS Lambda, 2021)" in html
    assert 'src="http' not in html and "<link" not in html  # self-contained


def test_study_reference_rows_in_the_table():
    runs, columns = load_inputs([DISK])
    from coldbrew.experiment.published import study_reference_rows

    groups = summarize(runs, columns) + study_reference_rows(columns)
    out = render_table(groups, "table")
    ref = next(line for line in out.splitlines() if "study (AWS Lambda, 2021)" in line)
    assert ref.split()[-8:] == ["—", "10,629", "—", "5,572", "—", "—", "—", "29,326"]
    assert json.loads(render_table(groups, "json"))[1]["reference"] == "study (AWS Lambda, 2021)"


def test_public_renderers_for_other_tables(tmp_path):
    headers, rows = ["run", "requests", "prepare"], [["disk-tiny", "1,234", "2.5 s"], ["s3 <b>", "7", "—"]]
    assert render_rows(headers, rows, "table").splitlines() == [
        "run        requests  prepare",
        "---------  --------  -------",
        "disk-tiny     1,234    2.5 s",
        "s3 <b>            7        —",
    ]
    assert render_section("Runs", headers, rows, "markdown").splitlines()[:4] == [
        "### Runs",
        "",
        "| run | requests | prepare |",
        "|---|---|---|",
    ]
    with pytest.raises(ColdbrewError, match="unknown table format"):
        render_rows(headers, rows, "csv")

    runs, columns = load_inputs([DISK])
    page = tmp_path / "report.html"
    write_report(
        runs,
        columns,
        summarize(runs, columns),
        threshold_ms=1000,
        html=page,
        extra_sections=[("Runs & costs", headers, rows)],
    )
    html = page.read_text()
    runs_at = html.index("<h3>Runs &amp; costs</h3>")
    assert html.index("<h3>Requests") < runs_at < html.index("<h2>Figures</h2>")
    assert '<td class="num">1,234</td>' in html and "<td>s3 &lt;b&gt;</td>" in html


def test_study_round_rows_agree_with_his_logs():
    """The one-round reference rows are what his own log files give (to the hundredth of a ms)."""
    from coldbrew.experiment.published import ROUND_LOG, STUDY_COLD_STARTS

    for path, key in ((DISK, ("DOCKER_DISK", "140MB")), (S3, ("DOCKER_S3", "1090MB"))):
        runs, columns = load_inputs([path])
        group = summarize(runs, columns)[0]
        published = dict(STUDY_COLD_STARTS[key])[ROUND_LOG]
        assert {k: round(group[k], 2) for k in published} == published


def test_a_study_format_log_is_flagged_as_counting_failures_as_latencies(tmp_path, capsys):
    assert main(["report", str(DISK)]) == 0
    out = capsys.readouterr().out
    assert "no status codes" in out.splitlines()[-1] and "failures in it" in out and DISK.name in out
    assert main(["report", str(DISK), str(S3), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("> Note: these 2 logs are in the study's format")
    assert main(["report", str(DISK), "--format", "json"]) == 0
    captured = capsys.readouterr()  # json stays parseable: the note goes to stderr
    assert json.loads(captured.out) and "no status codes" in captured.err
    # our per-request records carry status codes: no such note
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(request_record(1.7e9, 12.0, 200, {}, None)) + "\n")
    assert main(["report", str(requests)]) == 0
    assert "no status codes" not in capsys.readouterr().out
