"""Differential fuzz of the two kernels over re-signed structural mutants of version 2 files (seeded, fast).

tests/security/test_fuzz_brew.py flips bytes of version 1 files; this one edits what a traversal reads, field by
field, in small XGBoost and LightGBM models (NaN-routing and zero-as-missing splits, float32 and float64
accumulation): node features (including leaf markers other than -1), right children, thresholds, flag bytes,
tree groups and offsets, and the header's ``max_depth`` (the work budget). Every mutant is re-signed, as an
attacker would, and loaded in a worker (tests/security/brewcraft.py) by both kernels on the same rows. Any file
that one kernel answers and the other refuses fails the test, as does any answer that differs in a bit, any
error other than a one-line ``ModelFormatError`` / ``InvalidInputError``, a crash or a hang.
"""

from __future__ import annotations

import json
import math
import random
import struct

import numpy as np
import pytest
from brewcraft import ROWS, build, run_cases, split

from coldbrew.engine.brew import KERNELS
from coldbrew.format.spec import MAX_DEPTH

SEED = 20261204
CLEAN = {"ModelFormatError", "InvalidInputError"}
NODE = struct.Struct("<dii")

pytestmark = pytest.mark.skipif(len(KERNELS) < 2, reason="needs both kernels (the C kernel is not built)")


def _data(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Six features on the scale of brewcraft.ROWS, 10% missing, a target that uses all of them."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [rng.uniform(17, 90, n), rng.uniform(1e4, 1.5e6, n), rng.integers(1, 17, n), rng.choice([0, 0, 15024], n)]
        + [rng.choice([0, 0, 1902], n), rng.uniform(1, 99, n)]
    ).astype(np.float64)
    y = (X[:, 0] / 90 + X[:, 2] / 16 + (X[:, 3] > 0) + rng.normal(0, 0.3, n) > 1.2).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X, y


@pytest.fixture(scope="module")
def v2_models(tmp_path_factory) -> dict[str, bytes]:
    import lightgbm
    import xgboost

    from coldbrew.convert import compile_file

    folder = tmp_path_factory.mktemp("v2models")
    X, y = _data(1)
    made = {}
    xgb = xgboost.XGBClassifier(n_estimators=12, max_depth=4, n_jobs=1, random_state=0).fit(X, y)
    xgb.save_model(folder / "xgb.json")
    compile_file(folder / "xgb.json", folder / "xgb.brew", progress=False)
    made["xgb"] = (folder / "xgb.brew").read_bytes()
    # zero_as_missing=False with NaN: LightGBM's NaN mode; use_missing=False: NaN read as 0.0 (flags 2/3)
    for name, params in {"lgbm": {}, "lgbm-nomissing": {"use_missing": False}}.items():
        m = lightgbm.LGBMClassifier(n_estimators=12, num_leaves=9, min_child_samples=5, verbose=-1, **params)
        m.fit(X, y)
        m.booster_.save_model(str(folder / f"{name}.txt"))
        compile_file(folder / f"{name}.txt", folder / f"{name}.brew", progress=False)
        made[name] = (folder / f"{name}.brew").read_bytes()
    # version 3 linear leaves (docs/format.md 13.4): LightGBM linear_tree (float64) and XGBoost gblinear (float32)
    m = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=5, linear_tree=True, verbose=-1).fit(X, y)
    m.booster_.save_model(str(folder / "lgbm-linear.txt"))
    compile_file(folder / "lgbm-linear.txt", folder / "lgbm-linear.brew", progress=False)
    made["lgbm-linear"] = (folder / "lgbm-linear.brew").read_bytes()
    xgb = xgboost.XGBClassifier(n_estimators=5, booster="gblinear", n_jobs=1).fit(X, y)
    xgb.save_model(folder / "xgb-linear.json")
    compile_file(folder / "xgb-linear.json", folder / "xgb-linear.brew", progress=False)
    made["xgb-linear"] = (folder / "xgb-linear.brew").read_bytes()
    return made


def _with(data: bytes, array: str, index: int, fmt: str, value, *, header_edit=None) -> bytes:
    """``data`` with item ``index`` of ``array`` (packed as ``fmt``, at its byte offset within the item for node
    fields) replaced by ``value``, re-signed."""
    text, payload = split(data)
    header = json.loads(text)
    entry = header["arrays"][array]
    payload = bytearray(payload)
    if array == "nodes":
        field, fmt = {"value": (0, "<d"), "feature": (8, "<i"), "right": (12, "<i")}[fmt]
        struct.pack_into(fmt, payload, entry["offset"] + 16 * index + field, value)
    else:
        struct.pack_into(fmt, payload, entry["offset"] + struct.calcsize(fmt) * index, value)
    if header_edit:
        header_edit(header)
    return build(header, bytes(payload), version=header["version"])


def mutants(data: bytes, rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    text, payload = split(data)
    h = json.loads(text)
    n_nodes, n_trees, nf = h["n_nodes"], h["n_trees"], h["n_features"]
    offsets = np.frombuffer(payload, "<i8", n_trees + 1, h["arrays"]["tree_offsets"]["offset"])
    cases = []
    for _ in range(n):
        t = rng.randrange(n_trees)
        lo, hi = int(offsets[t]), int(offsets[t + 1])
        i = rng.randrange(lo, hi)
        rel, size = i - lo, hi - lo
        kinds = ["feature", "right", "value", "flags", "group", "offsets"]
        kind = rng.choice(kinds + ["linear"] * 3 if "n_linear_coeffs" in h else kinds)
        if kind == "linear":
            n_coeffs = h["n_linear_coeffs"]
            which = rng.choice(["linear_features", "linear_offsets", "linear_coeffs", "linear_const"])
            if which == "linear_features" and n_coeffs:
                c, v = rng.randrange(n_coeffs), rng.choice([-1, nf, nf - 1, 0, 2**31 - 1, -(2**31)])
                cases.append((f"linear feature {c} = {v}", _with(data, which, c, "<i", v)))
            elif which == "linear_offsets":
                v = rng.choice([-1, 0, n_coeffs, n_coeffs + 1, 2**62, rng.randrange(n_coeffs + 1)])
                cases.append((f"linear_offsets[{i}] = {v}", _with(data, which, i, "<q", v)))
            elif which == "linear_coeffs" and n_coeffs:
                c, v = rng.randrange(n_coeffs), rng.choice([math.nan, math.inf, 1e308, -0.0, 5e-324])
                cases.append((f"linear coeff {c} = {v}", _with(data, which, c, "<d", v)))
            else:
                v = rng.choice([math.nan, math.inf, -1e308, 0.0])
                cases.append((f"linear const {i} = {v}", _with(data, "linear_const", i, "<d", v)))
        elif kind == "feature":
            v = rng.choice([-2, -1, -(2**31), nf, nf - 1, 0, 2**31 - 1, rng.randrange(nf)])
            cases.append((f"node {i} feature {v}", _with(data, "nodes", i, "feature", v)))
        elif kind == "right":
            v = rng.choice([0, -1, rel, rel + 1, rel + 2, size - 1, size, 2**31 - 1, rng.randrange(size)])
            cases.append((f"node {i} right {v}", _with(data, "nodes", i, "right", v)))
        elif kind == "value":
            v = rng.choice([math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, -0.0, 5e-324, 1e-36])
            cases.append((f"node {i} value {v}", _with(data, "nodes", i, "value", v)))
        elif kind == "flags":
            v = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x18, 0x28, 0x38, 0x40, 0x48, 0x80, 0xFF, rng.randrange(256)])
            cases.append((f"node {i} flags {v:#x}", _with(data, "node_flags", i, "<B", v)))
        elif kind == "group":
            v = rng.choice([-1, 1, 2, h["n_outputs"], 2**31 - 1])
            cases.append((f"tree {t} group {v}", _with(data, "tree_groups", t, "<i", v)))
        else:
            v = rng.choice([lo - 1, lo + 1, hi, hi + 1, n_nodes, -1])
            if 0 < t < n_trees:
                cases.append((f"tree_offsets[{t}] = {v}", _with(data, "tree_offsets", t, "<q", v)))
    for depth in (0, 1, 2, h["max_depth"] - 1, h["max_depth"], MAX_DEPTH, MAX_DEPTH + 1):

        def edit(header, depth=depth):
            header["max_depth"] = depth

        cases.append((f"header max_depth {depth}", _with(data, "tree_groups", 0, "<i", 0, header_edit=edit)))
    return cases


def problems(cases, outcomes) -> list[str]:
    found = []
    for (description, _), outcome in zip(cases, outcomes, strict=True):
        if outcome.crashed:
            found.append(f"{description}: {outcome.crashed}")
            continue
        results = list(outcome.kernels.values())
        for kernel, r in outcome.kernels.items():
            if "error" in r and (r["error"] not in CLEAN or "\n" in r["message"]):
                found.append(f"{description} ({kernel} kernel): {r['error']}: {r['message'][:200]}")
        answered = ["error" not in r for r in results]
        if any(answered) and not all(answered):
            found.append(f"{description}: one kernel answers, the other refuses: {[str(r)[:160] for r in results]}")
        elif all(answered) and any(r != results[0] for r in results[1:]):
            found.append(f"{description}: the kernels answer differently: {[str(r)[:160] for r in results]}")
    return found


@pytest.mark.parametrize("model", ["xgb", "lgbm", "lgbm-nomissing", "lgbm-linear", "xgb-linear"])
def test_kernels_agree_on_every_structural_mutant(v2_models, model, tmp_path):
    rng = random.Random(f"{SEED}-{model}")
    data = v2_models[model]
    cases = [("unmutated", data), *mutants(data, rng, 150)]
    paths = []
    for k, (_, blob) in enumerate(cases):
        paths.append(tmp_path / f"m{k:04d}.brew")
        paths[-1].write_bytes(blob)
    outcomes = run_cases(paths)
    assert all("proba" in r for r in outcomes[0].kernels.values()), outcomes[0].kernels
    found = problems(cases, outcomes)
    assert not found, f"{len(found)} of {len(cases)} mutants misbehaved:\n" + "\n".join(found[:15])
    refused = sum(1 for o in outcomes if o.errors())
    answered = sum(1 for o in outcomes if not o.errors())
    assert refused > 20 and answered > 20, f"refused {refused}, answered {answered}: is the fuzzer mutating?"
    assert len(ROWS) >= 6


def _chain(depth: int, claimed: int | None = None) -> tuple[dict, bytes]:
    """A valid version 2 regressor of one tree: a chain of ``depth`` splits on feature 0 that every row of
    brewcraft.ROWS follows to the end (x < -1e300 goes left, to a leaf; else on down the chain)."""
    nodes = bytearray()
    for d in range(depth):  # split d at index 2d: left leaf at 2d + 1, right child at 2d + 2
        nodes += NODE.pack(-1e300, 0, 2 * d + 2) + NODE.pack(0.0, -1, 0)
    nodes += NODE.pack(1.0, -1, 0)
    n = 2 * depth + 1
    arrays = {
        "nodes": (nodes, "brew.node.v1", [n]),
        "node_flags": (bytes(n), "|u1", [n]),
        "tree_offsets": (struct.pack("<2q", 0, n), "<i8", [2]),
        "tree_groups": (struct.pack("<i", 0), "<i4", [1]),
        "base_score": (struct.pack("<d", 0.0), "<f8", [1]),
    }
    table, payload = {}, bytearray()
    for name, (blob, dtype, shape) in arrays.items():
        payload += bytes(-len(payload) % 64)
        table[name] = {"dtype": dtype, "shape": shape, "offset": len(payload), "nbytes": len(blob)}
        payload += blob
    header = {
        "format": "coldbrew.brew", "version": 2, "kind": "xgb_regressor", "n_features": 6, "feature_names": None,
        "classes": None, "classes_dtype": None, "n_outputs": 1, "n_trees": 1, "n_nodes": n, "n_leaves": depth + 1,
        "max_depth": depth if claimed is None else claimed, "leaf": "scalar", "combine": "sum", "output": "identity",
        "input_dtype": "float32", "split_compare": "lt", "accumulate": "float32", "decision": "value",
        "input_zero_threshold": 0, "n_cat_bitsets": 0, "n_cat_words": 0, "arrays": table,
    }  # fmt: skip
    return header, bytes(payload)


def test_depth_limit_and_work_budget_bind_both_kernels(tmp_path):
    """A chain as deep as the limit predicts; one level more is refused at load (honest header) or by both kernels
    during the walk (a header that claims less); a header that understates the depth trips the work budget."""
    cases = {
        "at the limit": _chain(MAX_DEPTH),
        "deeper, honest header": _chain(MAX_DEPTH + 1),
        "deeper, header claims the limit": _chain(MAX_DEPTH + 1, claimed=MAX_DEPTH),
        "header understates the depth": _chain(40, claimed=20),
    }
    paths = []
    for k, (header, payload) in enumerate(cases.values()):
        paths.append(tmp_path / f"chain{k}.brew")
        paths[-1].write_bytes(build(header, payload, version=2))
    outcomes = dict(zip(cases, run_cases(paths), strict=True))
    assert all("proba" in r for r in outcomes["at the limit"].kernels.values()), outcomes["at the limit"].kernels
    for name in ("deeper, honest header", "deeper, header claims the limit", "header understates the depth"):
        kernels = outcomes[name].kernels
        assert {r.get("error") for r in kernels.values()} == {"ModelFormatError"}, (name, kernels)
    assert "limit of 1024" in outcomes["deeper, honest header"].kernels["c"]["message"]
    for kernel in KERNELS:
        assert "deeper than" in outcomes["deeper, header claims the limit"].kernels[kernel]["message"]
        assert "n_trees x max_depth" in outcomes["header understates the depth"].kernels[kernel]["message"]
