"""The UCI Adult census data bundled with coldbrew, as the cold-start study used it.

Becker, B. & Kohavi, R. (1996). Adult [Dataset]. UCI Machine Learning Repository.
https://doi.org/10.24432/C5XW20 — licence CC BY 4.0 (see coldbrew/data/README.md).
"""

from __future__ import annotations

from importlib import resources

# The study's six numeric features, in the order the model sees them.
FEATURES = ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week")

# The study API's answers, "<=$50K" / ">$50K": the trained model's classes are these strings (income <=50K, >50K),
# so the labels travel inside the model file and the app has nothing study-specific in it.
CLASS_LABELS = ("<=$50K", ">$50K")

# The study's front door, for the load runs and the isolated cold starts: Zappa (its zappa_settings.json) deploys
# the container-image function behind an API Gateway REST API with a Lambda proxy integration — a 29 s integration
# timeout answered 504 (the study's ~29 s cold-start maxima), and a throttle answered 500 (counted as throttled
# from the lab's x-lab-outcome).
STUDY_API = "rest"

# The study's load-test payload (one row).
STUDY_PAYLOAD = {
    "age": 34,
    "fnlwgt": 261799,
    "education_num": 11,
    "capital_gain": 0,
    "capital_loss": 0,
    "hours_per_week": 56,
}


def load_adult():
    """Return ``(X, y)``: a DataFrame of the six features and a boolean Series ``income == ">50K"``."""
    import pandas as pd

    with resources.files("coldbrew.data").joinpath("adult.csv.gz").open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip", usecols=[*FEATURES, "income"])
    return frame[list(FEATURES)], frame["income"] == ">50K"


def study_split(test_size: float = 0.33, random_state: int = 42):
    """The study's split: ``train_test_split(X, y, test_size=0.33, random_state=42)``."""
    from sklearn.model_selection import train_test_split

    X, y = load_adult()
    return train_test_split(X, y, test_size=test_size, random_state=random_state)
