"""The study's AWS Lambda numbers, as reference rows for our tables.

Only figures stated in the project's sources are kept, each with where it comes from:
- his published cold-start table, DOCKER_DISK 140MB (all rounds): mean 10,629, p50 5,572, max 29,326 ms;
- the p50s he quotes for the three sizes with the model on disk: 5.6 s / 8.3 s / 17.6 s (to 0.1 s);
- his two original locust logs (tests/data, with their provenance in tests/data/README.md): DOCKER_DISK round 5 (140MB) and
  DOCKER_S3 round 15 (1090MB), one round each, statistics as tests/data/README.md gives them.
"""

from __future__ import annotations

from collections.abc import Sequence

from coldbrew.experiment.coldstats import reference_group

TABLE = "study (AWS Lambda, 2021)"
QUOTED = "study (AWS, quoted p50)"
ROUND_LOG = "study (AWS, one round's log)"

# (setup, model_size) → [(source, cold-start stats in ms over requests > 1000 ms)], most complete first.
STUDY_COLD_STARTS: dict[tuple[str, str], list[tuple[str, dict[str, float]]]] = {
    ("DOCKER_DISK", "140MB"): [
        (TABLE, {"mean": 10629, "p50": 5572, "max": 29326}),
        (
            ROUND_LOG,
            {
                "n": 85,
                "mean": 17616.11,
                "p25": 5489.69,
                "p50": 24788.91,
                "p75": 27097.52,
                "p95": 28408.37,
                "p99": 28679.52,
                "max": 28749.29,
            },
        ),
    ],
    ("DOCKER_DISK", "420MB"): [(QUOTED, {"p50": 8300})],
    ("DOCKER_DISK", "1090MB"): [(QUOTED, {"p50": 17600})],
    ("DOCKER_S3", "1090MB"): [
        (
            ROUND_LOG,
            {
                "n": 100,
                "mean": 19942.71,
                "p25": 19220.27,
                "p50": 19893.34,
                "p75": 20848.72,
                "p95": 21450.65,
                "p99": 22782.24,
                "max": 23197.90,
            },
        ),
    ],
}


def study_rows_for(setup: str, model_size: str, labels: dict[str, str], label_columns: Sequence[str]) -> list[dict]:
    """The study's rows for his (setup, model_size), shaped as report groups carrying ``labels``."""
    return [
        reference_group(labels, stats, source=source, label_columns=label_columns)
        for source, stats in STUDY_COLD_STARTS.get((setup, model_size), [])
    ]


def study_reference_rows(label_columns: Sequence[str] = ("setup", "model_size")) -> list[dict]:
    """Every study row as report groups (labels setup and model_size, in his names)."""
    return [
        row
        for setup, size in STUDY_COLD_STARTS
        for row in study_rows_for(setup, size, {"setup": setup, "model_size": size}, label_columns)
    ]
