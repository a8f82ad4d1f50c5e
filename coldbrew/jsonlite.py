"""JSON for the serving path: the standard library's own C scanner and encoder (``_json``), without ``import json``.

``import json`` costs a third of a bare interpreter's start-up on its own (json.decoder and json.encoder import
``re``, which brings ``enum``, ``functools`` and ``collections``: about 12 ms of a 11 ms ``python3.12 -S -c pass``,
bench/results/floor.md). Everything those modules add on top of ``_json`` is regular expressions for whitespace and
the error messages. So :func:`loads` and :func:`dumps` drive ``_json.make_scanner`` and ``_json.make_encoder`` with
the same settings ``json.loads`` / ``json.dumps`` give them, and hand anything else to the ``json`` module itself:

- a document that does not parse, or an object that does not encode, is parsed or encoded again by ``json``, which
  raises its own ``JSONDecodeError`` / ``TypeError`` / ``ValueError`` with its own message (only a request that is
  refused pays the import);
- bytes that are not plain UTF-8 (a BOM, or UTF-16/32, which ``json.loads`` detects) and a Python without ``_json``
  go to ``json`` from the start.

The answers are the ``json`` module's, character for character: tests/test_jsonlite.py compares both on generated
documents and on malformed ones.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as true)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json as _c
except ImportError:  # pragma: no cover - CPython always has it; elsewhere the json module does everything
    _c = None  # type: ignore[assignment]

_WS = " \t\n\r"  # JSON's whitespace, as json.decoder.WHITESPACE has it
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder`` (set as ``json.loads`` sets them)."""

    strict = True
    object_hook = None
    parse_float = float
    parse_int = int

    def __init__(self, parse_constant: Callable | None, object_pairs_hook: Callable | None) -> None:
        self.parse_constant = parse_constant or _CONSTANTS.__getitem__
        self.object_pairs_hook = object_pairs_hook
        self.memo: dict = {}


_scanners: dict = {}  # (parse_constant, object_pairs_hook) -> scanner


def _stdlib_loads(s, parse_constant, object_pairs_hook) -> Any:
    import json

    return json.loads(s, parse_constant=parse_constant, object_pairs_hook=object_pairs_hook)


def loads(s: str | bytes | bytearray, *, parse_constant=None, object_pairs_hook=None) -> Any:
    """``json.loads(s, parse_constant=..., object_pairs_hook=...)``: the same value, or the same exception."""
    if _c is None:
        return _stdlib_loads(s, parse_constant, object_pairs_hook)
    if isinstance(s, (bytes, bytearray)):
        if s[:3] == b"\xef\xbb\xbf" or b"\x00" in s[:4]:  # a BOM or UTF-16/32: json's detect_encoding decides
            return _stdlib_loads(s, parse_constant, object_pairs_hook)
        try:
            text = s.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return _stdlib_loads(s, parse_constant, object_pairs_hook)
    elif isinstance(s, str):
        text = s
    else:  # json's own TypeError ("the JSON object must be str, bytes or bytearray, not ...")
        return _stdlib_loads(s, parse_constant, object_pairs_hook)
    key = (parse_constant, object_pairs_hook)
    scan = _scanners.get(key)
    if scan is None:
        scan = _scanners[key] = _c.make_scanner(_Context(parse_constant, object_pairs_hook))  # type: ignore[arg-type]
    if text.startswith("\ufeff"):  # json refuses a BOM in a str, with its own message
        return _stdlib_loads(s, parse_constant, object_pairs_hook)
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = scan(text, start)
    except StopIteration:  # "Expecting value": json says so, with the position
        return _stdlib_loads(s, parse_constant, object_pairs_hook)
    except Exception:  # noqa: BLE001 - json raises the same, from the same scanner, or the hook's own error
        return _stdlib_loads(s, parse_constant, object_pairs_hook)
    if text[end:].strip(_WS):  # "Extra data"
        return _stdlib_loads(s, parse_constant, object_pairs_hook)
    return value


_encoders: dict = {}  # (item_separator, key_separator, allow_nan) -> encoder


def _stdlib_dumps(obj, separators, allow_nan) -> str:
    import json

    return json.dumps(obj, separators=separators, allow_nan=allow_nan)


def _no_default(obj):
    raise TypeError  # json.JSONEncoder.default's refusal; the json module raises it again with its message


def dumps(obj: Any, *, separators: tuple[str, str] = (", ", ": "), allow_nan: bool = True) -> str:
    """``json.dumps(obj, separators=..., allow_nan=...)`` (``ensure_ascii``): the same text, or json's exception."""
    if _c is None:
        return _stdlib_dumps(obj, separators, allow_nan)
    if isinstance(obj, str):  # json.dumps encodes a bare string without the encoder
        return _c.encode_basestring_ascii(obj)
    key = (separators, allow_nan)
    encode = _encoders.get(key)
    if encode is None:
        item_separator, key_separator = separators
        # markers None: no circular check, so no state that an error half-way could leave behind; a circular value
        # ends in RecursionError, and json, asked again, names it ("Circular reference detected")
        encode = _encoders[key] = _c.make_encoder(
            None, _no_default, _c.encode_basestring_ascii, None, key_separator, item_separator, False, False, allow_nan
        )
    try:
        return "".join(encode(obj, 0))
    except Exception:  # noqa: BLE001 - a value JSON cannot hold: json raises its own error for it
        return _stdlib_dumps(obj, separators, allow_nan)
