"""The study's published AWS Lambda numbers, as reference rows for our tables.

Only figures stated in the project's sources are kept (issue 6 and shared/seed-logs/README.md):
the study's cold-start table row for DOCKER_DISK with the 140MB model. Bench adds more as they are sourced.
"""

from __future__ import annotations

from collections.abc import Sequence

from coldbrew.tools.coldstats import reference_group

STUDY_SOURCE = "study (AWS Lambda, 2021)"

# (setup, model_size) → cold-start stats in ms (requests > 1000 ms, all rounds of that size).
STUDY_COLD_STARTS: dict[tuple[str, str], dict[str, float]] = {
    ("DOCKER_DISK", "140MB"): {"mean": 10629, "p50": 5572, "max": 29326},
}


def study_reference_rows(label_columns: Sequence[str] = ("setup", "model_size")) -> list[dict]:
    """The study's published rows as report groups (labels setup and model_size)."""
    return [
        reference_group({"setup": setup, "model_size": size}, stats, source=STUDY_SOURCE, label_columns=label_columns)
        for (setup, size), stats in STUDY_COLD_STARTS.items()
    ]
