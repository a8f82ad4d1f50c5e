"""Hypothesis health checks are suppressed only where a comment right above says why (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.mark.parametrize("path", sorted(TESTS.rglob("*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_every_suppressed_health_check_has_a_written_reason(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "suppress_health_check" not in line or path.name == Path(__file__).name:
            continue
        assert "list(HealthCheck)" not in line, f"{path.name}:{i + 1}: suppresses every health check"
        checks = re.findall(r"HealthCheck\.(\w+)", line)
        assert checks, f"{path.name}:{i + 1}: names no health check"
        comment = []
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith(("#", "@")):
            if lines[j].lstrip().startswith("#"):
                comment.insert(0, lines[j])
            j -= 1
        reason = " ".join(comment)
        for check in checks:
            assert re.search(rf"\b{check}\b", reason), f"{path.name}:{i + 1}: no comment says why {check} is off"
