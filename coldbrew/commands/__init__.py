"""The CLI's sub-commands: each module parses its arguments (``add_arguments``) and calls a subsystem (``run``).

May import: any package, lazily inside ``run`` so that ``coldbrew serve`` pays only for what it serves.

The option grammar is one for every command, built here: durations (:func:`duration`, Go-style units, a bare
number is seconds), sizes (:func:`size`, ``k``/``M``/``G``), Lambda's limits (:func:`lambda_timeout`,
:func:`lambda_memory_mb`), ``-o/--output`` for what a command writes (:func:`add_output`), and the check that
a command's extra is installed before it starts anything (:func:`require`).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from coldbrew.durations import parse_duration
from coldbrew.errors import ColdbrewError, ConfigError
from coldbrew.sizes import check_lambda_memory, check_lambda_timeout, parse_megabytes, parse_size


class MissingExtraError(ColdbrewError):
    """A command needs a package an extra installs, and it is not installed."""


def add_model_uri(parser, help: str) -> None:
    """The optional ``MODEL_URI`` of the commands that run a function or server on a model (lab, serve)."""
    parser.add_argument("model_uri", nargs="?", metavar="MODEL_URI", help=help)


def add_output(parser, *, metavar: str = "DIR", help: str, required: bool = False, dest: str = "output") -> None:
    """``-o/--output`` (and the older ``--out``) for the file or folder a command writes."""
    parser.add_argument("-o", "--output", "--out", dest=dest, type=Path, metavar=metavar, required=required, help=help)


def _typed(option: str, parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` running ``parse``; its ``ConfigError`` becomes argparse's one-line usage error."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ConfigError as exc:  # argparse names the option itself: "argument --timeout: '16m': ..."
            message = str(exc)
            raise argparse.ArgumentTypeError(message.removeprefix(f"{option} ")) from None

    convert.__name__ = option  # argparse names the type in some messages
    return convert


def duration(option: str, *, positive: bool = False, scale: float = 1.0) -> Callable[[str], object]:
    """A duration in seconds (float; times ``scale``, 1000 for ms): ``500ms``, ``1.5s``, ``10m``, ``1h30m``; a bare
    number is seconds."""

    def parse(text: str) -> float:
        seconds = parse_duration(text, option=option)
        if positive and seconds <= 0:
            raise ConfigError(f"{option} {text!r}: must be more than 0")
        return seconds * scale

    return _typed(option, parse)


def duration_ms(option: str) -> Callable[[str], object]:
    """A duration in milliseconds (float) for the ``...-ms`` options: a bare number is ms, units also work."""

    def parse(text: str) -> float:
        try:
            ms = float(text)
        except ValueError:
            ms = parse_duration(text, option=option) * 1000
        if not ms > 0 or ms == float("inf"):
            raise ConfigError(f"{option} {text!r}: must be a positive duration, e.g. 1000 (ms) or 1s")
        return ms

    return _typed(option, parse)


def size(option: str, *, unit: int = 1) -> Callable[[str], object]:
    """A size: ``512k``, ``1M``, ``1.5G``; a bare number is in ``unit`` bytes. Returns bytes (int), or for a
    ``unit`` above 1 byte the size in that unit (float: ``--memory-budget-gb 1536M`` -> 1.5)."""
    if unit == 1:
        return _typed(option, lambda text: parse_size(text, option=option))
    return _typed(option, lambda text: parse_size(text, option=option, unit=unit) / unit)


def lambda_timeout(option: str = "--timeout", *, whole_seconds: bool = False) -> Callable[[str], object]:
    """A function timeout in seconds within Lambda's limit (at most 15 min); ``whole_seconds`` for templates."""

    def parse(text: str) -> float | int:
        seconds = check_lambda_timeout(parse_duration(text, option=option), option=option)
        if whole_seconds:
            if seconds != int(seconds):
                raise ConfigError(f"{option} {text!r}: Lambda's timeout is a whole number of seconds")
            return int(seconds)
        return seconds

    return _typed(option, parse)


def lambda_memory_mb(option: str = "--memory") -> Callable[[str], object]:
    """A function's memory in MB within Lambda's range (128-10,240): ``1024``, ``1536M``, ``1G``, ``10G``."""
    return _typed(option, lambda text: check_lambda_memory(parse_megabytes(text, option=option), option=option))


def require(*modules: tuple[str, str, str]) -> None:
    """Fail before anything starts when a ``(module, extra, what for)`` is not importable, naming the extra.

    A module set to None in ``sys.modules`` counts as missing, as ``import`` would fail on it.
    """
    for module, extra, why in modules:
        try:
            missing = sys.modules[module] is None if module in sys.modules else importlib.util.find_spec(module) is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            raise MissingExtraError(
                f"needs {module} ({why}), which `pip install coldbrew` leaves out: pip install 'coldbrew[{extra}]'"
            )


_LIBRARY_FILES = {
    "xgboost-json": "an XGBoost model file (JSON)",
    "xgboost-ubj": "an XGBoost model file (UBJSON)",
    "lightgbm-text": "a LightGBM model file (text)",
}


def refuse_uncompiled_model(uri: str | None) -> None:
    """A local XGBoost/LightGBM model file given where a ``.brew`` is served: say to compile it first.

    The serving path loads ``.brew`` files (and, opted in, pickles); a library's own model file would otherwise be
    refused as "not a .brew file" with advice about pickles, which is the wrong next step.
    """
    if not uri or uri.startswith("s3://"):
        return
    path = Path(uri).expanduser()
    if not path.is_file():
        return
    from coldbrew.convert import detect

    what = _LIBRARY_FILES.get(detect(path))
    if what is not None:
        raise ConfigError(
            f"{uri}: this looks like {what}, which is compiled before it is served: "
            f"coldbrew compile {uri} -o {path.stem}.brew, then use {path.stem}.brew"
        )
