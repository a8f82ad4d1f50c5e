"""`COLDBREW_EAGER` / ``eager=True`` (docs/serving.md): the OS reads a `.brew` file ahead (MADV_WILLNEED) instead of
faulting pages in on demand. Observed, not assumed: the file is evicted from the page cache, opened, and its
resident pages are counted with mincore(2) on a separate mapping; a lazy open of the same evicted file is the
control, so an eager open that did nothing fails.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from machine import disk_backed_dir

from coldbrew.lab.staging import evict_page_cache

pytestmark = pytest.mark.integration  # builds a 40 MB model and waits on the page cache

PAGE = mmap.PAGESIZE


def resident_pages(path: Path) -> tuple[int, int]:
    """(pages of ``path`` in the page cache, pages in the file), from mincore on a fresh mapping of it.

    The mapping is private and writable only so that ctypes can take its address; nothing is read or written.
    """
    size = path.stat().st_size
    pages = (size + PAGE - 1) // PAGE
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    vec = (ctypes.c_ubyte * pages)()
    buf = ctypes.c_char.from_buffer(mapped)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        assert libc.mincore(ctypes.addressof(buf), size, vec) == 0, os.strerror(ctypes.get_errno())
    finally:
        del buf
        mapped.close()
    return sum(v & 1 for v in vec), pages


@pytest.fixture(scope="module")
def big_brew(tmp_path_factory) -> Path:
    """A .brew of a few MB (a random forest grown to full depth), on a disk-backed filesystem."""
    from sklearn.ensemble import RandomForestRegressor

    from coldbrew.convert.sklearn import compile_model

    folder = disk_backed_dir(tmp_path_factory.mktemp("eager"))
    rng = np.random.default_rng(0)
    X, y = rng.random((20000, 6)), rng.random(20000)
    model = RandomForestRegressor(n_estimators=100, max_features=1, random_state=0, n_jobs=2).fit(X, y)
    model.n_jobs = 1  # predict's sum over trees in one thread: the order compile_model's check reproduces
    (folder / "forest.pkl").write_bytes(pickle.dumps(model))
    out = folder / "forest.brew"
    compile_model(folder / "forest.pkl", out, progress=False)
    # Several times a typical read-ahead window (this machine's disk: 8 MB), so a lazy open reads a fraction.
    assert out.stat().st_size > 30_000_000
    return out


def read_ahead_kb(path: Path) -> str:
    """The read-ahead window of the block device holding ``path`` (sysfs), for skip messages."""
    dev = os.stat(path).st_dev
    base = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    for candidate in (base / "queue" / "read_ahead_kb", base / ".." / "queue" / "read_ahead_kb"):
        if candidate.exists():
            return candidate.read_text().strip()
    return "unknown"


def _evicted(path: Path) -> int:
    evict_page_cache([path])
    resident, pages = resident_pages(path)
    if resident > pages // 20:
        pytest.skip(f"cannot evict {path} from the page cache here (posix_fadvise DONTNEED left {resident}/{pages})")
    return pages


def test_eager_open_reads_the_whole_file_ahead_and_lazy_does_not(big_brew):
    from coldbrew.engine import load_predictor

    pages = _evicted(big_brew)
    lazy = load_predictor(big_brew)
    lazy_resident, _ = resident_pages(big_brew)
    del lazy
    if lazy_resident >= pages // 2:
        pytest.skip(
            f"a lazy open read {lazy_resident}/{pages} pages: this disk's read-ahead (read_ahead_kb="
            f"{read_ahead_kb(big_brew)}) covers the file, so eager and lazy cannot be told apart"
        )

    _evicted(big_brew)
    eager = load_predictor(big_brew, eager=True)
    deadline = time.monotonic() + 20  # readahead is asynchronous: wait for it, with a deadline
    while (resident := resident_pages(big_brew)[0]) < pages * 0.95 and time.monotonic() < deadline:
        time.sleep(0.02)
    del eager
    assert resident >= pages * 0.95, f"eager open: {resident}/{pages} pages resident after 20 s"


def test_coldbrew_eager_switch_reaches_the_loader(big_brew):
    """The environment switch (serve and the Lambda handler read it) turns the read-ahead on."""
    from coldbrew.app.startup import load_from_env

    pages = _evicted(big_brew)
    started = load_from_env({"MODEL_URI": str(big_brew), "COLDBREW_EAGER": "1"})
    deadline = time.monotonic() + 20
    while (resident := resident_pages(big_brew)[0]) < pages * 0.95 and time.monotonic() < deadline:
        time.sleep(0.02)
    del started
    assert resident >= pages * 0.95, f"COLDBREW_EAGER=1: {resident}/{pages} pages resident after 20 s"
