"""The lab serving the real coldbrew handler (coldbrew.aws.handler) and the tiny model:
from disk, over the lab's own S3 (SeaweedFS), as a snapshot, with page-cache eviction."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import pickle
import time
import urllib.request
from pathlib import Path

import pytest
from machine import disk_backed_dir
from proctools import alive

from coldbrew.experiment.dataset import FEATURES, STUDY_PAYLOAD
from coldbrew.lab import Lab, LabConfig
from coldbrew.lab.staging import evict_page_cache


@pytest.fixture(scope="module")
def study_answer(tiny_model) -> dict:
    """What the study's Flask app answered for its payload: scikit-learn's own predict/predict_proba on a one-row
    DataFrame of the tiny model (the .brew is compiled from the same model, so it must answer the same)."""
    import pandas as pd

    model = pickle.loads(tiny_model.read_bytes())
    row = pd.DataFrame([STUDY_PAYLOAD], columns=list(FEATURES))
    return {"prediction": str(model.predict(row)[0]), "probability": float(model.predict_proba(row)[0][1])}


def predict(lab, payload=STUDY_PAYLOAD):
    request = urllib.request.Request(
        lab.url + "/predict",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, json.load(response)


def start(tmp_path, model, **options) -> Lab:
    options.setdefault("memory_mb", 1024)
    return Lab(LabConfig(model_uri=model, function_output=tmp_path / "function.log", **options)).start()


def check_prediction(status, headers, body, expected):
    assert status == 200
    assert body == expected
    assert headers["x-coldbrew-env"]


def wait_until_no_environment(lab, timeout_s: float = 30.0) -> None:
    """Poll the lab's stats until every environment is gone (reaped), or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while lab.stats()["environments"]["total"]:
        assert time.monotonic() < deadline, f"environments not reaped within {timeout_s} s: {lab.stats()}"
        time.sleep(0.05)


@pytest.mark.integration
def test_serves_the_brew_model_from_disk(tmp_path, tiny_brew, study_answer):
    with start(tmp_path, tiny_brew) as lab:
        first = predict(lab)
        check_prediction(*first, study_answer)
        assert first[1]["x-coldbrew-cold"] == "1" and first[1]["x-lab-cold"] == "1"
        second = predict(lab)
        check_prediction(*second, study_answer)
        assert second[1]["x-coldbrew-env"] == first[1]["x-coldbrew-env"] and second[1]["x-lab-cold"] == "0"
        assert second[2] == first[2]


@pytest.mark.integration
def test_serves_the_pickle_over_the_labs_s3(tmp_path, tiny_model, study_answer):
    with start(tmp_path, tiny_model, source="s3", env={"COLDBREW_ALLOW_PICKLE": "1"}) as lab:
        check_prediction(*predict(lab), study_answer)
        assert lab.stats()["config"]["source"] == "s3"
        weed = lab._staged.server.proc.pid  # the lab's own SeaweedFS
    assert not alive(weed)


@pytest.mark.integration
def test_snapshot_restores_a_loaded_model(tmp_path, tiny_brew, study_answer):
    with start(tmp_path, tiny_brew, snapshot=True) as lab:
        status, headers, body = predict(lab)
        check_prediction(status, headers, body, study_answer)
        assert lab.stats()["restore_ms"]["count"] == 1


def resident_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (mincore on a fresh mapping)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    buf = ctypes.c_char.from_buffer(mapped)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    assert libc.mincore(ctypes.addressof(buf), size, vec) == 0, os.strerror(ctypes.get_errno())
    del buf
    mapped.close()
    return sum(v & 1 for v in vec)


def test_evict_page_cache_drops_the_model_file(tmp_path):
    model = disk_backed_dir(tmp_path) / "model.bin"
    model.write_bytes(os.urandom(4 * 1024 * 1024))
    model.read_bytes()
    assert resident_pages(model) > 0
    assert evict_page_cache([model]) == 1
    assert resident_pages(model) == 0


@pytest.mark.integration
def test_every_cold_start_follows_an_eviction(tmp_path, tiny_brew, study_answer):
    log = tmp_path / "events.jsonl"
    with start(tmp_path, tiny_brew, evict_page_cache=True, idle_timeout="200ms", log=log) as lab:
        check_prediction(*predict(lab), study_answer)
        wait_until_no_environment(lab)  # reaped: the next request is cold again
        check_prediction(*predict(lab), study_answer)
        assert lab.stats()["cold_starts"] == 2
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    starts = [i for i, e in enumerate(events) if e == "env_start"]
    assert len(starts) == 2 and all(events[i - 1] == "page_cache_evicted" for i in starts)
