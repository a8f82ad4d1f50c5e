"""The one duration parser every command uses, and the one KEY=VALUE parser."""

import pytest

from coldbrew.durations import format_duration, parse_duration
from coldbrew.errors import ColdbrewError, ConfigError
from coldbrew.pairs import parse_pairs


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("500ms", 0.5),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30.5s", 90.5),
        ("2h45m10s", 9910.0),
        ("1s500ms", 1.5),
        (".5s", 0.5),
        ("2", 2.0),
        ("0.25", 0.25),
        (" 5s ", 5.0),
        ("0s", 0.0),
        (3, 3.0),
        (2.5, 2.5),
    ],
)
def test_go_style_durations_are_accepted(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "10 minutes",
        "5 s",
        "-5s",
        "5x",
        "1d",
        "ms",
        "1h 30m",
        "nan",
        "inf",
        "1e3s",
        "5sec",
        "s5",
        float("nan"),
        float("inf"),
        -1,
        True,
        None,
        ["5s"],
    ],
)
def test_anything_else_is_a_one_line_config_error(text):
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    assert "\n" not in str(info.value) and "500ms" in str(info.value)


def test_the_error_names_the_option():
    with pytest.raises(ColdbrewError, match=r"^--every 'often': not a duration"):
        parse_duration("often", option="--every")


@pytest.mark.parametrize("seconds", [0.5, 0.001, 1.5, 90, 600, 3600, 5400, 7200])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_pairs_keep_values_verbatim_and_later_keys_win():
    assert parse_pairs(["A=1", "B=x=y", "C=", "A=2"], option="--env") == {"A": "2", "B": "x=y", "C": ""}


@pytest.mark.parametrize("item", ["A", "=1", "bad key=x", "1A=x", "A-B=x", ""])
def test_malformed_pairs_are_refused(item):
    with pytest.raises(ConfigError, match=r"^--env .*KEY=VALUE"):
        parse_pairs([item], option="--env")


def test_reserved_keys_are_refused():
    with pytest.raises(ConfigError, match="p50"):
        parse_pairs(["p50=1"], option="--label", reserved={"p50"})
