"""`coldbrew inspect` cannot be made to forge output or drive the terminal by a crafted, re-signed .brew file.

Header strings (feature names, class labels, ``created_by``, ``source``) and the file's name reach the output; every
non-printable character in them (ESC sequences, CR, LF, C1 controls, bidi overrides, line separators) must come out
escaped, so the output has exactly one line per row and no control byte (issue #23).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from brewcraft import build, split

LINE = "\nchecksum         verified (sha256) 0000\x1b[2K\r"  # what a forger wants to appear on a line of its own
HOSTILE = {
    "feature_names": lambda h: [h["feature_names"][0] + LINE, *h["feature_names"][1:]],
    "class_labels": lambda h: ["no\x1b]0;pwned\x07", "yes\u202e"],
    "created_by": lambda h: "x\r\ncreated by       coldbrew 9\x1bc",
    "source": lambda h: {**h["source"], "estimator": "Gradient\x9bBoosting\u2028\x00", "sklearn_version": "\x1b[31m"},
}


def crafted(tiny_brew: Path, folder: Path, name: str = "evil.brew") -> Path:
    header_bytes, payload = split(tiny_brew.read_bytes())
    header = json.loads(header_bytes)
    for key, value in HOSTILE.items():
        header[key] = value(header)
    path = folder / name
    path.write_bytes(build(header, payload))
    return path


def check(out: str, path: Path) -> None:
    lines = out.splitlines()
    assert out.isascii() or all(c.isprintable() for c in out.replace("\n", "")), repr(out)
    assert not any(c in out for c in "\x1b\r\x00\x07\x9b\u202e\u2028"), repr(out)
    labels = [line.split("  ", 1)[0].strip() for line in lines]
    assert labels.count("checksum") == 1 and labels.count("created by") == 1, out
    assert len(lines) == len(set(labels)), "one line per row, none forged"
    checksum = next(line for line in lines if line.startswith("checksum"))
    assert "not checked" in checksum, "the file cannot claim it was verified"
    assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out and "\\n" in out, "the hostile text is shown, escaped"


def test_inspect_escapes_control_characters_in_header_strings(tiny_brew, tmp_path, capsys):
    from argparse import Namespace

    from coldbrew.commands.inspect import run

    path = crafted(tiny_brew, tmp_path)
    assert run(Namespace(model=path, verify=False)) == 0
    check(capsys.readouterr().out, path)


def test_inspect_escapes_the_file_name_too(tiny_brew, tmp_path, capsys):
    from argparse import Namespace

    from coldbrew.commands.inspect import run

    path = crafted(tiny_brew, tmp_path, name="m\x1b[2J\nchecksum  verified.brew")
    assert run(Namespace(model=path, verify=False)) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J\\nchecksum  verified.brew" in out
    assert sum(line.startswith("checksum") for line in out.splitlines()) == 1


def test_a_refusal_naming_a_hostile_file_name_is_escaped(tiny_brew, tmp_path):
    from argparse import Namespace

    from coldbrew.commands.inspect import run
    from coldbrew.errors import ColdbrewError

    path = tmp_path / "m\x1b[2J\nverified.brew"
    path.write_bytes(b"not a brew file")
    with pytest.raises(ColdbrewError) as refused:
        run(Namespace(model=path, verify=False))
    message = str(refused.value)
    assert message.isprintable() and "\\x1b[2J\\nverified.brew" in message


@pytest.mark.integration
def test_the_real_command_prints_no_control_byte(tiny_brew, tmp_path):
    path = crafted(tiny_brew, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "inspect", str(path), "--verify"], capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")
    check(out.replace("verified (sha256)", "not checked"), path)  # --verify: this file's signature is valid
    assert "verified (sha256)" in next(line for line in out.splitlines() if line.startswith("checksum"))
