"""The study's load (100 users, spawn 20/s, 60 s) against the study-shaped app in the lab, default settings.

A manual acceptance check (too heavy for the test suite on a small machine):

    PYTHONPATH=. python tests/apps/study_shape/load.py OUT_DIR

Prints the lab's counters; every request should be a 200 (no 5xx, no throttles).
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from coldbrew.experiment.loadtest import run_loadtest
from coldbrew.lab import Lab, LabConfig

APP = Path(__file__).parent


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    config = LabConfig(
        wsgi="app.main:app",
        task_root=APP,
        cwd=APP / "app",
        report=False,
        env={"MODEL_SOURCE": "DISK", "MODEL_VERSION": "v1"},
        log=out / "events.jsonl",
        function_output=out / "function.log",
    )
    with Lab(config) as lab:
        run_loadtest(lab.url, out / "run", users=100, spawn_rate=20, run_time="60s", progress=None)
        stats = lab.stats()
    statuses = collections.Counter(
        json.loads(line)["status"] for line in (out / "run" / "loadtest_requests.jsonl").read_text().splitlines()
    )
    print(
        json.dumps(
            {
                "statuses": statuses,
                **{k: stats[k] for k in ("invocations", "cold_starts", "throttles", "errors", "init_ms", "latency_ms")},
            },
            indent=1,
        )
    )
    return 0 if set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
