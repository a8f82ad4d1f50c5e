"""coldbrew.jsonlite answers what the json module answers (values, text and exceptions), without importing json."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldbrew import jsonlite

REPO = Path(__file__).resolve().parents[1]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (json turns "NaN" into a float nan; nan != nan)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _outcome(fn, *args, **kwargs):
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return type(exc), str(exc)


@given(documents, st.sampled_from([(", ", ": "), (",", ":")]), st.booleans())
def test_dumps_is_json_dumps(doc, separators, allow_nan):
    want = _outcome(json.dumps, doc, separators=separators, allow_nan=allow_nan)
    assert _outcome(jsonlite.dumps, doc, separators=separators, allow_nan=allow_nan) == want


@given(documents, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_is_json_loads(doc, pad):
    text = pad + json.dumps(doc) + pad
    assert _same(jsonlite.loads(text), json.loads(text))
    assert _same(jsonlite.loads(text.encode()), json.loads(text.encode()))


@given(st.text(max_size=40) | st.binary(max_size=40))
def test_any_input_gives_json_loads_value_or_exception(raw):
    want = _outcome(json.loads, raw)
    got = _outcome(jsonlite.loads, raw)
    assert got[0] == want[0] and (got[0] != "ok" or _same(got[1], want[1])), (raw, got, want)
    if got[0] != "ok":
        assert got[1] == want[1]


MALFORMED = [
    "",
    "   ",
    "{",
    "[1,]",
    "[1 2]",
    "1 2",
    '{"a" 1}',
    '"\\x"',
    '"abc',
    '"a\x01"',
    "nan",
    "-",
    "01",
    "[" * 100_000,
    "\ufeff[1]",
    b"\xef\xbb\xbf[1]",
    b"\xff\xfe[\x001\x00]\x00",
    b"[\xff]",
    b'["\xed\xa0\x80"]',
    bytearray(b"[1]"),
    12,
    None,
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_and_odd_inputs_match_json(raw):
    want = _outcome(json.loads, raw)
    got = _outcome(jsonlite.loads, raw)
    assert got[0] == want[0]
    if want[0] == "ok":
        assert _same(got[1], want[1])
    else:
        assert got[1] == want[1]


def test_hooks_are_json_loads_hooks():
    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    def no_duplicates(pairs):
        if len(dict(pairs)) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    for text in ['{"a": NaN}', '{"a": 1, "a": 2}', '{"a": [1, {"b": Infinity}]}', '{"a": 1, "b": [-Infinity]}']:
        options = {"parse_constant": no_constants, "object_pairs_hook": no_duplicates}
        assert _outcome(jsonlite.loads, text, **options) == _outcome(json.loads, text, **options)
    assert jsonlite.loads('{"b": 1, "a": 2}', object_pairs_hook=list) == [("b", 1), ("a", 2)]


def test_an_error_half_way_leaves_nothing_behind():
    """A value that does not encode, then the same objects again: the encoder kept no state from the first try."""
    shared = [1.5]
    with pytest.raises(TypeError):
        jsonlite.dumps({"a": shared, "b": object()})
    assert jsonlite.dumps({"a": shared, "b": shared}) == json.dumps({"a": shared, "b": shared})
    looped: list = []
    looped.append(looped)
    assert _outcome(jsonlite.dumps, looped) == _outcome(json.dumps, looped)


def test_a_bare_interpreter_parses_and_writes_without_importing_json():
    code = (
        "import sys\n"
        "from coldbrew import jsonlite\n"
        'v = jsonlite.loads(b\' {"a": [1, 2.5, null, "\\\\u00e9"]} \')\n'
        "t = jsonlite.dumps(v, separators=(',', ':'), allow_nan=False)\n"
        "print(t, sorted(m for m in ('json', 're', 'enum', 'functools', 'collections') if m in sys.modules))\n"
        "jsonlite.loads('[1,')\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.splitlines()[0] == '{"a":[1,2.5,null,"\\u00e9"]} []'
    # a refused document imports json for its message: the same JSONDecodeError as json.loads
    assert (
        out.stderr.strip().splitlines()[-1] == "json.decoder.JSONDecodeError: Expecting value: line 1 column 4 (char 3)"
    )
