"""Constants and header rules of the .brew format, version 1 (docs/format.md is the spec)."""

from __future__ import annotations

import itertools
import struct

import numpy as np

from coldbrew.errors import ModelFormatError

MAGIC = b"\x89BREW\r\n\x1a"
VERSION = 1
PREAMBLE_SIZE = 64
ALIGN = 64
FORMAT_NAME = "coldbrew.brew"

# magic, version, header length H, payload offset P, payload length L (the digest follows at offset 32).
PREAMBLE = struct.Struct("<8sIIQQ")
DIGEST_OFFSET = 32
DIGEST_SIZE = 32
CHECKSUM = {"algorithm": "sha256", "covers": "preamble[0:32] + bytes[64:]"}

NODE_DTYPE = np.dtype([("value", "<f8"), ("feature", "<i4"), ("right", "<i4")])
NODE_DTYPE_NAME = "brew.node.v1"
LEAF = -1

KINDS = (
    "gbm_classifier",
    "gbm_regressor",
    "forest_classifier",
    "forest_regressor",
    "tree_classifier",
    "tree_regressor",
)
LEAF_MODES = ("scalar", "vector")
COMBINES = ("sum", "mean")
OUTPUTS = ("logistic", "logistic2", "softmax", "proba", "identity")
CLASSIFIER_OUTPUTS = ("logistic", "logistic2", "softmax", "proba")

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "version": int,
    "kind": str,
    "n_features": int,
    "feature_names": (list, type(None)),
    "classes": (list, type(None)),
    "classes_dtype": (str, type(None)),
    "n_outputs": int,
    "n_trees": int,
    "n_nodes": int,
    "n_leaves": int,
    "max_depth": int,
    "leaf": str,
    "combine": str,
    "output": str,
    "arrays": dict,
}


def align(n: int) -> int:
    """``n`` rounded up to a multiple of 64."""
    return -(-n // ALIGN) * ALIGN


def array_dtype(name: str) -> np.dtype:
    """The numpy dtype for a dtype name used in the array table."""
    return NODE_DTYPE if name == NODE_DTYPE_NAME else np.dtype(name)


def expected_arrays(h: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The arrays a header of this shape must declare: name -> (dtype name, shape)."""
    arrays: dict[str, tuple[str, tuple[int, ...]]] = {
        "nodes": (NODE_DTYPE_NAME, (h["n_nodes"],)),
        "tree_offsets": ("<i8", (h["n_trees"] + 1,)),
        "base_score": ("<f8", (h["n_outputs"],)),
    }
    if h["leaf"] == "vector":
        arrays["leaf_values"] = ("<f8", (h["n_leaves"], h["n_outputs"]))
    return arrays


def validate_header(h: object, payload_length: int) -> None:
    """Refuse a header that is missing fields, has unknown values or an inconsistent array table."""
    if not isinstance(h, dict):
        raise ModelFormatError("header is not a JSON object")
    for key, types in REQUIRED.items():
        if key not in h:
            raise ModelFormatError(f"header lacks the required field {key!r}")
        if not isinstance(h[key], types) or (types is int and isinstance(h[key], bool)):
            raise ModelFormatError(f"header field {key!r} has the wrong type ({type(h[key]).__name__})")
    if h["format"] != FORMAT_NAME:
        raise ModelFormatError(f"header format is {h['format']!r}, expected {FORMAT_NAME!r}")
    if h["version"] != VERSION:
        raise ModelFormatError(f"header version {h['version']} disagrees with the preamble's {VERSION}")
    for key, allowed in (("kind", KINDS), ("leaf", LEAF_MODES), ("combine", COMBINES), ("output", OUTPUTS)):
        if h[key] not in allowed:
            raise ModelFormatError(f"header {key} {h[key]!r} is not one of {', '.join(allowed)}")
    for key in ("n_features", "n_outputs", "n_trees", "n_nodes"):
        if h[key] < 1:
            raise ModelFormatError(f"header {key} must be positive, got {h[key]}")
    if h["n_leaves"] < 0 or h["max_depth"] < 0 or h["n_leaves"] > h["n_nodes"]:
        raise ModelFormatError("header n_leaves / max_depth out of range")
    if h["feature_names"] is not None and (
        len(h["feature_names"]) != h["n_features"] or not all(isinstance(n, str) for n in h["feature_names"])
    ):
        raise ModelFormatError("header feature_names must be n_features strings")
    if h["output"] in CLASSIFIER_OUTPUTS:
        if not h["classes"] or h["classes_dtype"] is None:
            raise ModelFormatError("a classifier's header must list its classes and classes_dtype")
        if len(h["classes"]) != (2 if h["output"] in ("logistic", "logistic2") else h["n_outputs"]):
            raise ModelFormatError("header classes disagree with n_outputs")
    elif h["n_outputs"] != 1:
        raise ModelFormatError("a regressor must have n_outputs = 1")
    if h["output"] in ("logistic", "logistic2") and h["n_outputs"] != 1:
        raise ModelFormatError("a logistic output needs n_outputs = 1")
    if h["leaf"] == "scalar" and h["combine"] == "sum" and h["n_trees"] % h["n_outputs"]:
        raise ModelFormatError("n_trees must be a multiple of n_outputs")
    _validate_table(h, payload_length)


def _validate_table(h: dict, payload_length: int) -> None:
    table = h["arrays"]
    expected = expected_arrays(h)
    missing = set(expected) - set(table)
    if missing:
        raise ModelFormatError(f"array table lacks {', '.join(sorted(missing))}")
    spans = []
    for name, (dtype_name, shape) in expected.items():
        entry = table[name]
        if not isinstance(entry, dict):
            raise ModelFormatError(f"array {name}: entry is not an object")
        if entry.get("dtype") != dtype_name:
            raise ModelFormatError(f"array {name}: dtype {entry.get('dtype')!r}, expected {dtype_name!r}")
        if entry.get("shape") != list(shape):
            raise ModelFormatError(f"array {name}: shape {entry.get('shape')}, expected {list(shape)}")
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        if not (isinstance(offset, int) and isinstance(nbytes, int)) or offset < 0 or offset % ALIGN:
            raise ModelFormatError(f"array {name}: offset {offset!r} is not a 64-aligned integer")
        size = array_dtype(dtype_name).itemsize * int(np.prod(shape, dtype=np.int64))
        if nbytes != size:
            raise ModelFormatError(f"array {name}: nbytes {nbytes} does not match its shape ({size})")
        if offset + nbytes > payload_length:
            raise ModelFormatError(f"array {name} runs past the end of the payload (file truncated?)")
        spans.append((offset, offset + nbytes, name))
    spans.sort()
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            raise ModelFormatError(f"arrays {a} and {b} overlap")
