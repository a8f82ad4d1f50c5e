"""Model source configuration (MODEL_SOURCE / MODEL_URI) and the DISK source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coldbrew.errors import ConfigError, SourceError
from coldbrew.sources import ModelConfig, config_from_env, config_from_uri, fetch


def test_env_disk_and_s3():
    assert config_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": "/m.pkl"}) == ModelConfig("DISK", "/m.pkl")
    cfg = config_from_env({"MODEL_SOURCE": "S3", "MODEL_URI": "s3://bkt/dir/m.brew"})
    assert (cfg.source, cfg.bucket, cfg.key) == ("S3", "bkt", "dir/m.brew")


def test_env_source_inferred_when_unset():
    assert config_from_env({"MODEL_URI": "s3://b/k"}).source == "S3"
    assert config_from_env({"MODEL_URI": "m.pkl"}).source == "DISK"


@pytest.mark.parametrize(
    "env, words",
    [
        ({"MODEL_SOURCE": "GCS", "MODEL_URI": "x"}, ["MODEL_SOURCE", "DISK", "S3"]),
        ({"MODEL_SOURCE": "DISK"}, ["MODEL_URI"]),
        ({"MODEL_SOURCE": "S3", "MODEL_URI": " "}, ["MODEL_URI"]),
        ({"MODEL_SOURCE": "S3", "MODEL_URI": "/local/model.pkl"}, ["MODEL_URI", "s3://bucket/key"]),
        ({"MODEL_SOURCE": "S3", "MODEL_URI": "s3://bucket-only"}, ["MODEL_URI", "s3://bucket/key"]),
        ({"MODEL_SOURCE": "S3", "MODEL_URI": "s3:///key"}, ["MODEL_URI", "s3://bucket/key"]),
        ({"MODEL_SOURCE": "DISK", "MODEL_URI": "s3://b/k"}, ["MODEL_SOURCE=S3"]),
        ({"MODEL_SOURCE": "DISK", "MODEL_URI": "https://x/m.pkl"}, ["MODEL_URI", "scheme"]),
    ],
)
def test_env_errors_are_one_line_and_name_the_variable(env, words):
    with pytest.raises(ConfigError) as e:
        config_from_env(env)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_model_config_validates_direct_construction():
    with pytest.raises(ConfigError, match="MODEL_SOURCE"):
        ModelConfig("disk ", "/m.pkl")
    assert config_from_env({"MODEL_SOURCE": " s3 ", "MODEL_URI": "s3://b/k"}).source == "S3"


def test_disk_fetch_is_the_file_itself(tmp_path):
    p = tmp_path / "m.pkl"
    p.write_bytes(b"x" * 123)
    for uri in (str(p), f"file://{p}"):
        got = fetch(config_from_uri(uri))
        assert (Path(got.path), got.size_bytes, got.source, got.cached) == (p, 123, "DISK", False)
        assert got.fetch_ms < 50


def test_disk_missing_file_and_directory(tmp_path):
    with pytest.raises(SourceError, match="not found.*nope.pkl"):
        fetch(config_from_uri(str(tmp_path / "nope.pkl")))
    with pytest.raises(SourceError, match="not a file"):
        fetch(config_from_uri(str(tmp_path)))


@pytest.mark.integration
def test_importing_sources_does_not_import_boto3():
    code = (
        "import sys, coldbrew.sources as s; s.fetch(s.config_from_uri(sys.executable)); "
        "print(sorted(m for m in ('boto3', 'botocore', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
