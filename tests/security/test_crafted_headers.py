"""A crafted .brew file cannot exhaust memory or time, and cannot make the two kernels disagree.

Every file here is re-signed (a valid SHA-256), as an attacker who edits a file would do, and loaded in a
worker process limited to 1 GiB of address space with a 5 s deadline per file (tests/security/brewcraft.py):
before the fix, ``n_features = 10^9`` took > 40 s and 4 GB, a ``classes_dtype`` of ``"(50000000,)f8"`` 11 s and
4.7 GB, malformed headers raised TypeError/RecursionError, NaN leaves served NaN, and the numpy kernel used a leaf
marker of -2 that the C kernel refuses. Each case must end in a one-line ``ModelFormatError`` naming the problem.
"""

from __future__ import annotations

import itertools
import json
import struct

import numpy as np
import pytest
from brewcraft import build, header_of, run_cases, split

NODE = struct.Struct("<dii")  # a brew.node.v1 record: value, feature, right


def edit_header(**changes):
    def mutate(header: dict, payload: bytearray):
        header.update(changes)

    return mutate


def edit_nodes(change):
    """``change(nodes, trees)`` edits a writable (value, feature, right) view of the node records; ``trees`` are
    the record ranges of the trees."""

    def mutate(header: dict, payload: bytearray):
        entry, offsets = header["arrays"]["nodes"], header["arrays"]["tree_offsets"]
        view = np.frombuffer(
            payload,
            dtype=[("value", "<f8"), ("feature", "<i4"), ("right", "<i4")],
            count=entry["shape"][0],
            offset=entry["offset"],
        )
        bounds = np.frombuffer(payload, dtype="<i8", count=offsets["shape"][0], offset=offsets["offset"])
        change(view, [range(int(a), int(b)) for a, b in itertools.pairwise(bounds)])

    return mutate


def set_leaves_of_tree0(field, value, trees=1):
    """Every leaf of the first ``trees`` trees: whatever the row, the prediction meets one of them."""

    def change(nodes, ranges):
        for tree in ranges[:trees]:
            leaves = [i for i in tree if nodes["feature"][i] == -1]
            assert len(leaves) >= 2
            for i in leaves:
                nodes[field][i] = value

    return change


def set_root(field, value):
    def change(nodes, ranges):
        nodes[field][ranges[0][0]] = value

    return change


def nan_base_score(header: dict, payload: bytearray):
    offset = header["arrays"]["base_score"]["offset"]
    payload[offset : offset + 8] = struct.pack("<d", float("nan"))


def inf_base_score(header: dict, payload: bytearray):
    offset = header["arrays"]["base_score"]["offset"]
    payload[offset : offset + 8] = struct.pack("<d", float("-inf"))


def extra_array(header: dict, payload: bytearray):
    header["arrays"]["categories"] = {"dtype": "<f8", "shape": [1], "offset": len(payload) - 8, "nbytes": 8}


def deep_json(depth):
    def raw(header: dict) -> bytes:
        return b'{"deep":' + b"[" * depth + b"]" * depth + b"}"

    return raw


def header_text(transform):
    def raw(header: dict) -> bytes:
        text = json.dumps(header, separators=(",", ":"))
        assert transform(text) != text, "the edit applies to the tiny model's header"
        return transform(text).encode()

    return raw


# name -> (mutation of (header, payload) or a raw-header builder, words the one-line error must contain)
CASES = {
    "n_features 10^9 without names": (edit_header(n_features=10**9, feature_names=None), "n_features"),
    "classes_dtype a 50M sub-array": (edit_header(classes_dtype="(50000000,)f8"), "classes_dtype"),
    "classes_dtype a 1G-character string": (edit_header(classes_dtype="<U1000000000"), "classes"),
    "classes_dtype not a dtype": (edit_header(classes_dtype="bogus"), "classes_dtype"),
    "classes_dtype big-endian": (edit_header(classes_dtype=">i8"), "classes_dtype"),
    "classes_dtype a record": (edit_header(classes_dtype="[('a', '<f8')]"), "classes_dtype"),
    "classes nested lists": (edit_header(classes=[[1, 2], [3, 4]], classes_dtype="<i8"), "class label"),
    "classes nested as objects": (edit_header(classes=[[1, 2], {"a": 1}], classes_dtype="|O"), "class label"),
    "classes label longer than its dtype": (edit_header(classes=["abcdef", "b"], classes_dtype="<U2"), "class label"),
    "classes null labels": (edit_header(classes=[None, None], classes_dtype="|O"), "class label"),
    "classes on a regressor": (edit_header(output="identity", kind="gbm_regressor"), "classes null"),
    "feature names duplicated": (edit_header(feature_names=["age"] * 6), "duplicates"),
    "feature name empty": (edit_header(feature_names=["", "a", "b", "c", "d", "e"]), "non-empty"),
    "feature name not a string": (edit_header(feature_names=[1, "a", "b", "c", "d", "e"]), "feature_names"),
    "n_nodes 10^30": (edit_header(n_nodes=10**30), "nodes"),
    "n_outputs 10^18": (edit_header(n_outputs=10**18), "n_outputs"),
    "unknown array in the table": (extra_array, "does not call for"),
    "JSON nested 50k deep": (deep_json(50_000), "nested too deeply"),
    "JSON nested 100k deep": (deep_json(100_000), "JSON objects and arrays"),  # the bracket cap, before parsing
    "JSON NaN constant": (header_text(lambda t: t.replace('"learning_rate":1.0', '"learning_rate":NaN')), "JSON"),
    "JSON duplicate key": (header_text(lambda t: t.replace('{"format"', '{"kind":"x","format"', 1)), "duplicate"),
    "JSON 5000-digit integer": (header_text(lambda t: t.replace('"max_depth":3', '"max_depth":' + "9" * 5000)), "JSON"),
    "base score NaN": (nan_base_score, "non-finite"),
    "base score -inf": (inf_base_score, "non-finite"),
}
# Structurally valid files whose corruption the kernels meet while predicting: refused on every row set.
VISITED = {
    "leaf values NaN": (edit_nodes(set_leaves_of_tree0("value", float("nan"))), "non-finite"),
    "leaf values +inf": (edit_nodes(set_leaves_of_tree0("value", float("inf"))), "non-finite"),
    "leaf values finite but overflowing": (edit_nodes(set_leaves_of_tree0("value", 1.7e308, trees=2)), "overflow"),
    "leaf marker -2 at the last level": (edit_nodes(set_leaves_of_tree0("feature", -2)), "feature index"),
}
# NaN/infinite thresholds route every row one way, as a legitimate extreme threshold would (identically in both
# kernels: checked by the fuzz test), so the traversal loop does not check them on every step;
# they are refused by verify, which reads every value anyway.
THRESHOLDS = {
    "threshold NaN": edit_nodes(set_root("value", float("nan"))),
    "threshold +inf": edit_nodes(set_root("value", float("inf"))),
    "threshold -inf": edit_nodes(set_root("value", float("-inf"))),
}


def craft(original: bytes, mutation) -> bytes:
    header_bytes, payload = split(original)
    header = json.loads(header_bytes)
    if mutation.__name__ == "raw":
        return build(mutation(header), payload)
    payload = bytearray(payload)
    mutation(header, payload)
    return build(header, bytes(payload))


@pytest.fixture(scope="module")
def outcomes(tiny_brew, tmp_path_factory):
    """Every case crafted from the tiny model and loaded once, in one worker (restarted if it dies)."""
    original = tiny_brew.read_bytes()
    assert header_of(original)["max_depth"] == 3 and header_of(original)["arrays"]["nodes"]["shape"][0] > 15
    folder = tmp_path_factory.mktemp("crafted")
    names = [*CASES, *VISITED]
    paths = []
    for i, name in enumerate(names):
        mutation = (CASES | VISITED)[name][0]
        path = folder / f"case{i:02d}.brew"
        path.write_bytes(craft(original, mutation))
        paths.append(path)
    return dict(zip(names, run_cases(paths), strict=True))


@pytest.mark.parametrize("name", [*CASES, *VISITED])
def test_crafted_file_is_refused_on_one_line(outcomes, name):
    words = (CASES | VISITED)[name][1]
    outcome = outcomes[name]
    assert outcome.crashed is None, f"{name}: {outcome.crashed}"
    for kernel, result in outcome.kernels.items():
        assert result.get("error") == "ModelFormatError", f"{name} ({kernel} kernel): {result}"
        assert "\n" not in result["message"] and words in result["message"], result["message"]


def test_verify_refuses_a_non_finite_value_no_prediction_visits(tiny_brew, tmp_path):
    """A re-signed file passes the checksum; verify (COLDBREW_VERIFY=1, inspect --verify) still checks values."""
    from coldbrew.errors import ModelFormatError
    from coldbrew.format import BrewFile

    def last_leaf_nan(nodes, ranges):
        nodes["value"][np.flatnonzero(nodes["feature"] == -1)[-1]] = float("nan")

    path = tmp_path / "nan-leaf.brew"
    path.write_bytes(craft(tiny_brew.read_bytes(), edit_nodes(last_leaf_nan)))
    BrewFile(path)  # the cheap checks at open do not read every node
    with pytest.raises(ModelFormatError, match="non-finite"):
        BrewFile(path, verify=True)


@pytest.fixture(scope="module")
def threshold_outcomes(tiny_brew, tmp_path_factory):
    """The THRESHOLDS files, loaded without and with verify."""
    folder = tmp_path_factory.mktemp("thresholds")
    paths = []
    for i, mutation in enumerate(THRESHOLDS.values()):
        paths.append(folder / f"t{i}.brew")
        paths[-1].write_bytes(craft(tiny_brew.read_bytes(), mutation))
    return {verify: dict(zip(THRESHOLDS, run_cases(paths, verify=verify), strict=True)) for verify in (False, True)}


@pytest.mark.parametrize("name", THRESHOLDS)
def test_non_finite_threshold_routes_identically_and_verify_judges_it(threshold_outcomes, name):
    """Every kernel routes a NaN or infinite threshold the same way; verify refuses NaN (no comparison can route
    it) and accepts an infinity, a legal extreme that HistGradientBoosting itself writes."""
    cheap, verified = threshold_outcomes[False][name], threshold_outcomes[True][name]
    assert cheap.crashed is None and verified.crashed is None
    results = list(cheap.kernels.values())
    assert all("proba" in r for r in results) and all(r == results[0] for r in results), results
    for result in verified.kernels.values():
        if name == "threshold NaN":
            assert result.get("error") == "ModelFormatError" and "non-finite" in result["message"], result
        else:
            assert result == results[0], result


def test_compile_never_writes_a_non_finite_value(tmp_path):
    from coldbrew.format import write_brew
    from coldbrew.format.spec import NODE_DTYPE

    nodes = np.zeros(1, dtype=NODE_DTYPE)
    nodes["feature"], nodes["value"] = -1, float("inf")
    header = {
        "kind": "tree_regressor",
        "n_features": 1,
        "feature_names": None,
        "classes": None,
        "classes_dtype": None,
        "n_outputs": 1,
        "n_trees": 1,
        "n_nodes": 1,
        "n_leaves": 1,
        "max_depth": 0,
        "leaf": "scalar",
        "combine": "mean",
        "output": "identity",
    }
    arrays = {"nodes": nodes, "tree_offsets": np.array([0, 1]), "base_score": np.zeros(1)}
    with pytest.raises(ValueError, match="NaN or an infinite leaf value"):
        write_brew(tmp_path / "inf.brew", header, arrays)
    assert not (tmp_path / "inf.brew").exists()


@pytest.mark.parametrize("field", ["source", "learning_rate", "created_by"])
@pytest.mark.parametrize("value", ["<deleted>", None, [1], "x", {"estimator": [1]}])
def test_inspect_survives_any_informational_field(tiny_brew, tmp_path, field, value):
    """Informational header fields may hold any JSON value (readers ignore them): `coldbrew inspect` still prints."""
    from coldbrew.commands.inspect import summary

    header_bytes, payload = split(tiny_brew.read_bytes())
    header = json.loads(header_bytes)
    if value == "<deleted>":
        del header[field]
    else:
        header[field] = value
    path = tmp_path / "info.brew"
    path.write_bytes(build(header, payload))
    rows = dict(summary(path, verify=True))
    assert rows["kind"] == "gbm_classifier" and rows["checksum"].startswith("verified")
