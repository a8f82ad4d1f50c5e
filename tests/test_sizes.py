"""coldbrew.sizes: the one size parser (k/M/G, binary as Lambda's MB) and Lambda's limits."""

from __future__ import annotations

import pytest

from coldbrew.errors import ConfigError
from coldbrew.sizes import check_lambda_memory, check_lambda_timeout, parse_megabytes, parse_size


@pytest.mark.parametrize(
    "text, unit, expected",
    [
        ("1M", 1, 1 << 20),
        ("1m", 1, 1 << 20),
        ("512k", 1, 512 << 10),
        ("2KB", 1, 2048),
        ("2KiB", 1, 2048),
        ("1.5G", 1, 3 << 29),
        ("1536MiB", 1, 1536 << 20),
        (" 1 M ", 1, 1 << 20),
        ("5b", 1, 5),
        ("300", 1, 300),
        ("300", 1 << 20, 300 << 20),  # a bare number is in the option's unit
        (300, 1 << 20, 300 << 20),
        ("0", 1, 0),
    ],
)
def test_sizes_with_units(text, unit, expected):
    assert parse_size(text, unit=unit) == expected


@pytest.mark.parametrize("text", ["", "M", "-1", "1T", "1MM", "5ib", "nan", "inf", "1e3", "1,000", True])
def test_what_is_not_a_size_is_one_line_naming_the_option(text):
    with pytest.raises(ConfigError) as error:
        parse_size(text, option="--max-body-bytes")
    assert str(error.value).startswith("--max-body-bytes ") and "\n" not in str(error.value)


def test_megabytes():
    assert parse_megabytes("1G") == 1024 and parse_megabytes("512") == 512 and parse_megabytes("1536M") == 1536
    with pytest.raises(ConfigError, match="whole number of MB"):
        parse_megabytes("100k", option="--memory")


@pytest.mark.parametrize("mb, ok", [(127, False), (128, True), (10_240, True), (10_241, False)])
def test_lambda_memory_range(mb, ok):
    if ok:
        assert check_lambda_memory(mb) == mb
    else:
        with pytest.raises(ConfigError, match="128 to 10,240 MB"):
            check_lambda_memory(mb)


@pytest.mark.parametrize("seconds, ok", [(0, False), (0.5, True), (900, True), (900.001, False), (960, False)])
def test_lambda_timeout_limit(seconds, ok):
    if ok:
        assert check_lambda_timeout(seconds) == seconds
    else:
        with pytest.raises(ConfigError, match="at most 15m"):
            check_lambda_timeout(seconds)
