"""The lab's S3 network shaper (coldbrew/lab/s3shaper.py) against the real SeaweedFS: the shaping is real.

Each timing test asserts a lower bound only (the configured figures make an answer at least this slow), which a
busy machine cannot break; the upper side is the bench's business (bench/results/s3_cold_starts.md).
"""

from __future__ import annotations

import http.client
import os
import threading
import time

import pytest

from coldbrew.errors import ConfigError
from coldbrew.lab.s3shaper import MB, PRESETS, S3Shaper, network_profile, parse_rate

MiB = 1 << 20


# ---------------------------------------------------------------------------------------------- figures


@pytest.mark.parametrize(
    "text, rate",
    [("85MB", 85e6), ("85MB/s", 85e6), ("1.5GB", 1.5e9), ("512KiB", 512 * 1024), ("200mb", 200e6), ("1000", 1000.0)],
)
def test_rates_take_decimal_and_binary_units(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5MB", "0MB", "85 MBps", "", "1e9"])
def test_a_bad_rate_is_one_line_naming_the_option(text):
    with pytest.raises(ConfigError, match=r"^--s3-bandwidth ") as e:
        parse_rate(text)
    assert "\n" not in str(e.value)


def test_explicit_figures_override_the_preset():
    aws = network_profile("aws")
    assert aws is not None and aws == PRESETS["aws"]
    custom = network_profile("aws", bandwidth="10MB", first_byte="200ms")
    assert custom is not None
    assert (custom.per_connection, custom.first_byte, custom.aggregate) == (10e6, 0.2, aws.aggregate)
    assert network_profile("none") is None  # loopback as it is: no shaper at all
    only_latency = network_profile("none", first_byte="20ms")
    assert only_latency is not None and (only_latency.per_connection, only_latency.aggregate) == (0.0, 0.0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"s3_network": "azure"}, "--s3-network must be one of aws, none"),
        ({"s3_first_byte": "soon"}, "--s3-first-byte 'soon': not a duration"),
        ({"s3_bandwidth": "lots"}, "--s3-bandwidth 'lots': not a rate"),
    ],
)
def test_the_lab_refuses_bad_network_options_in_one_line(options, message, tmp_path):
    from coldbrew.lab import LabConfig

    with pytest.raises(ConfigError, match=message):
        LabConfig(source="s3", task_root=tmp_path, **options)


def test_network_figures_need_the_s3_source(tmp_path):
    from coldbrew.lab import LabConfig

    with pytest.raises(ConfigError, match="--s3-bandwidth needs --source s3"):
        LabConfig(source="disk", task_root=tmp_path, s3_bandwidth="10MB")


# ---------------------------------------------------------------------------------------------- the real thing


@pytest.fixture(scope="module")
def big_object(s3_server):
    """A 64 MiB object in a bucket of its own."""
    s3_server.create_bucket("shaper-test")
    s3_server.client().put_object(Bucket="shaper-test", Key="64m", Body=os.urandom(64 * MiB))
    return "shaper-test", "64m"


def _signed_get(s3_server, endpoint_port: int, bucket: str, key: str, headers: dict | None = None) -> tuple[int, float]:
    """(bytes received, seconds) of one GET sent through ``endpoint_port`` on one connection."""
    from coldbrew.sources.s3http import S3Reader

    reader = S3Reader(bucket, {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{endpoint_port}"})
    started = time.perf_counter()
    response = reader.request("GET", key, headers=headers)
    n = len(response.read())
    elapsed = time.perf_counter() - started
    reader.drop_connection()
    return n, elapsed


@pytest.mark.integration
def test_one_64mb_get_takes_at_least_its_configured_time(s3_server, big_object):
    """With the aws preset, 64 MiB on one connection cannot beat first byte + size / per-connection rate."""
    profile = network_profile("aws")
    assert profile is not None
    with S3Shaper(("127.0.0.1", s3_server.ports["s3"]), profile) as shaper:
        assert shaper.port is not None
        n, seconds = _signed_get(s3_server, shaper.port, *big_object)
        assert n == 64 * MiB
        configured = profile.first_byte + n / profile.per_connection
        assert seconds >= configured, (seconds, configured)
        assert shaper.requests == 1 and shaper.bytes_down >= n


@pytest.mark.integration
def test_connections_share_the_aggregate_cap(s3_server, big_object):
    """Four connections at once, each asking for 16 MiB: together no faster than the aggregate allows."""
    profile = network_profile("aws", bandwidth="1GB", aggregate="100MB", first_byte="0ms")
    assert profile is not None
    with S3Shaper(("127.0.0.1", s3_server.ports["s3"]), profile) as shaper:
        assert shaper.port is not None
        port = shaper.port
        results: list[tuple[int, float]] = []
        started = time.perf_counter()

        def fetch(i: int) -> None:
            rng = {"Range": f"bytes={i * 16 * MiB}-{(i + 1) * 16 * MiB - 1}"}
            results.append(_signed_get(s3_server, port, *big_object, headers=rng))

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.perf_counter() - started
    assert sorted(n for n, _ in results) == [16 * MiB] * 4
    assert elapsed >= 64 * MiB / (100 * MB) - 0.011 * 4  # the burst allowance, once per connection at most


@pytest.mark.integration
def test_every_request_waits_for_its_first_byte(s3_server, big_object):
    """Three small requests on one keep-alive connection: each pays the first-byte latency."""
    profile = network_profile("none", first_byte="150ms")
    assert profile is not None
    from coldbrew.sources.s3http import S3Reader

    with S3Shaper(("127.0.0.1", s3_server.ports["s3"]), profile) as shaper:
        reader = S3Reader(big_object[0], {**s3_server.env(), "AWS_ENDPOINT_URL": shaper.url})
        took = []
        for _ in range(3):
            t0 = time.perf_counter()
            reader.request("GET", big_object[1], headers={"Range": "bytes=0-99"}).read()
            took.append(time.perf_counter() - t0)
        reader.drop_connection()
        assert shaper.requests == 3
    assert min(took) >= 0.150


@pytest.mark.integration
def test_stop_ends_every_connection_and_the_listener(s3_server, big_object):
    profile = network_profile("aws", bandwidth="1MB")  # slow: the GET is still streaming when the shaper stops
    assert profile is not None
    shaper = S3Shaper(("127.0.0.1", s3_server.ports["s3"]), profile).start()
    port = shaper.port
    assert port is not None
    from coldbrew.sources.s3http import S3Reader

    reader = S3Reader(big_object[0], {**s3_server.env(), "AWS_ENDPOINT_URL": shaper.url})
    response = reader.request("GET", big_object[1])
    response.read(1000)
    shaper.stop()
    with pytest.raises((http.client.HTTPException, OSError)):
        response.read()  # cut short: the connection was closed
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
    shaper.stop()  # idempotent


@pytest.mark.integration
def test_the_staged_model_is_read_through_the_shaper(tiny_brew, tmp_path, monkeypatch):
    """``--source s3 --s3-network aws``: the function's endpoint is the shaper, whose figures its reads pay."""
    from coldbrew.lab.staging import stage_model
    from coldbrew.sources import config_from_env, fetch

    staged = stage_model(tiny_brew, "s3", tmp_path / "work", network=network_profile("aws", first_byte="120ms"))
    try:
        assert staged.shaper is not None and staged.server is not None
        assert staged.env["AWS_ENDPOINT_URL"] == staged.shaper.url != staged.server.endpoint_url
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(k)
        for k, v in staged.env.items():
            monkeypatch.setenv(k, v)
        t0 = time.perf_counter()
        got = fetch(config_from_env(staged.env), cache_dir=tmp_path / "cache")
        assert time.perf_counter() - t0 >= 0.120
        assert got.path.read_bytes() == tiny_brew.read_bytes()
        assert staged.shaper.requests >= 1
    finally:
        staged.close()
    assert staged.shaper is None and staged.server is None
