"""Constants and header rules of the .brew format, versions 1, 2 and 3 (docs/format.md is the spec)."""

from __future__ import annotations

import itertools
import math

from coldbrew.errors import ModelFormatError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    import struct
    from collections.abc import Callable
    from typing import Any, NamedTuple, TypeGuard

    import numpy as np

    PREAMBLE: struct.Struct
    NODE_STRUCT: struct.Struct
else:
    from coldbrew.records import NamedTuple  # typing's class syntax, without importing typing

MAGIC = b"\x89BREW\r\n\x1a"
VERSION = 3  # the newest version this coldbrew reads and writes; every older one is still read
VERSIONS = (1, 2, 3)
PREAMBLE_SIZE = 64
ALIGN = 64
FORMAT_NAME = "coldbrew.brew"

# magic, version, header length H, payload offset P, payload length L (the digest follows at offset 32):
# ``PREAMBLE`` is ``struct.Struct(PREAMBLE_FORMAT)``, made on first use (the reader parses the preamble with
# ``int.from_bytes``: the serving path imports no struct, one shared library and a module fewer at start-up).
PREAMBLE_FORMAT = "<8sIIQQ"
DIGEST_OFFSET = 32
DIGEST_SIZE = 32
CHECKSUM = {"algorithm": "sha256", "covers": "preamble[0:32] + bytes[64:]"}

NODE_DTYPE_NAME = "brew.node.v1"
NODE_SIZE = 16
# brew.node.v1 as a struct: value (threshold or leaf value), feature (-1 for a leaf), right child / leaf row.
NODE_FORMAT = "<dii"  # NODE_STRUCT = struct.Struct(NODE_FORMAT), made on first use
#: Item size in bytes of every dtype name the array table may use (no numpy needed to check a table).
ITEMSIZES = {NODE_DTYPE_NAME: NODE_SIZE, "<i8": 8, "<f8": 8, "|u1": 1, "<i4": 4, "<u4": 4}
#: The ``memoryview.cast`` format of each plain array dtype (on a little-endian host, where it is the file's).
MEMORYVIEW_FORMATS = {"<i8": "q", "<f8": "d", "|u1": "B", "<i4": "i", "<u4": "I"}
LEAF = -1

#: The deepest leaf a .brew tree may have (root = depth 0). Far beyond what the libraries build in practice
#: (XGBoost's and LightGBM's depth limits are typically 6-16, their leaf-wise/lossguide trees and fully grown
#: scikit-learn forests on millions of rows reach depths of tens), with margin; a deeper tree is refused by the
#: writer, by the reader (the header's ``max_depth``) and by both kernels (a walk that goes deeper), so no file can
#: make one walk cost more than MAX_DEPTH steps. ``_kernel.MAX_DEPTH`` is the same number.
MAX_DEPTH = 1024

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

# Version 2 (docs/format.md section 10): kinds from HistGradientBoosting, XGBoost and LightGBM, per-node missing
# value / categorical flags, float32 or float64 input and accumulation, and explicit decision rules.
KINDS_V2 = (
    "hgb_classifier",
    "hgb_regressor",
    "xgb_classifier",
    "xgb_regressor",
    "lgbm_classifier",
    "lgbm_regressor",
    # CatBoost symmetric trees, expanded to ordinary trees (docs/models.md, CatBoost)
    "cb_classifier",
    "cb_regressor",
    # section 11 (additive): scikit-learn forests and trees with per-node missing-value routing
    "forest_classifier",
    "forest_regressor",
    "tree_classifier",
    "tree_regressor",
)
CLASSIFIER_OUTPUTS_V2 = (
    "logistic",
    "softmax",
    "softmax_seq",
    "sigmoid_f32",
    "softmax_f32",
    # section 11 (additive)
    "proba",
    "softmax_np_seq",
    "sigmoid_each",
    "hinge_f32",
)
BINARY_OUTPUTS_V2 = ("logistic", "sigmoid_f32", "hinge_f32")
#: Outputs of a regressor (n_outputs = 1, decision "value"): the link applied to the raw score.
REGRESSOR_OUTPUTS_V2 = ("identity", "sigmoid_f32", "exp", "exp_f32", "exp_np", "logistic")
OUTPUTS_V2 = tuple(dict.fromkeys(CLASSIFIER_OUTPUTS_V2 + REGRESSOR_OUTPUTS_V2))
#: Outputs computed in float32 (they need ``accumulate = "float32"``).
FLOAT32_OUTPUTS_V2 = ("sigmoid_f32", "softmax_f32", "exp_f32", "hinge_f32")
#: Outputs whose exact bits are numpy's own ``exp`` (not libm's): serving them imports numpy (section 7).
NUMPY_OUTPUTS = ("softmax", "softmax_np_seq", "exp_np", "isolation_np")
INPUT_DTYPES = ("float32", "float64")
SPLIT_COMPARES = ("le", "lt")
ACCUMULATES = ("float64", "float32")
DECISIONS = ("raw_ge0", "raw_gt0", "argmax_raw", "proba_gt_half", "argmax_proba", "value")
TASKS = ("binary", "multiclass", "regression", "anomaly", "ranking")
#: Tasks of version 3 (section 13): their answers have another shape over HTTP (scores).
TASKS_V3 = ("anomaly", "ranking")

# Version 3, objs's part (docs/format.md section 13): more outputs, leaves and combines. A file using any of these
# values is written as version 3 (an older reader refuses it: it would answer differently).
#: scikit-learn's IsolationForest: summed per-leaf path lengths, then its score through numpy's ``2 ** x``.
KINDS_V3 = ("isolation_forest", "voting_classifier", "voting_regressor", "calibrated_classifier")
OUTPUTS_V3 = ("isolation_np", "vote_proba", "vote_mean", "calibrated_proba", "vote_hard", "softmax_cb", "exp_cb")
#: CatBoost's fast exp (section 13.6): ``softmax_cb`` a classifier's probabilities (MultiClass), ``exp_cb`` a
#: regressor's value (Poisson, Tweedie).
CB_CLASSIFIER_OUTPUTS_V3 = ("softmax_cb",)
CB_REGRESSOR_OUTPUTS_V3 = ("exp_cb",)
DECISIONS_V3 = ("anomaly_sign", "vote_hard")
#: Classifier outputs without probabilities: ``predict_proba`` is refused, as the library's is.
NO_PROBA_OUTPUTS = ("vote_hard",)
#: scikit-learn's Voting*: members' sums side by side (``M`` blocks of ``K`` outputs), averaged as ``np.average``.
COMBINES_V3 = ("vote", "calibrate")
#: Linear leaves: what a NaN input does: the leaf's own value answers (LightGBM), or its term is skipped (XGBoost).
LINEAR_MISSING = ("leaf", "skip")
#: scikit-learn's classic GradientBoosting in the version 2 layout (section 13.5): with an input stage, or as a member.
GBM_KINDS_V3 = ("gbm_classifier", "gbm_regressor")
#: Its exponential loss (``expit(2 * raw)``), a binary classifier output of version 3 files.
BINARY_OUTPUTS_V3 = ("logistic2",)
#: ``input_missing``: a missing input (NaN, null) goes down the trees (``route``, the version 2 rule) or is an input
#: error (``refuse``, as scikit-learn's GradientBoosting refuses it, and as version 1 does).
INPUT_MISSING = ("route", "refuse")
#: Fields an isolation forest's header must hold: the score's denominator and decision_function's offset.
REQUIRED_ISOLATION = ("score_denominator", "score_offset")


def needs_v3(h: dict) -> bool:
    """True if the header uses a value of version 3: an input stage (section 12) or a value of section 13."""
    return (
        h.get("inputs") is not None
        or h.get("kind") in KINDS_V3
        or h.get("output") in OUTPUTS_V3
        or h.get("decision") in DECISIONS_V3
        or h.get("combine") in COMBINES_V3
        or "n_linear_coeffs" in h
        or h.get("task") in TASKS_V3
        or "input_missing" in h
        or (h.get("kind") in GBM_KINDS_V3 and "input_dtype" in h)
    )


# node_flags bits (version 2)
FLAG_DEFAULT_LEFT = 0x01  # a missing value (NaN) goes left; else right
MISSING_MASK, MISSING_SHIFT = 0x06, 1  # numeric splits: 0 NaN -> default; 1 NaN -> 0.0; 2 NaN or 0.0 -> default
MISSING_NAN, MISSING_AS_ZERO, MISSING_ZERO = 0, 1, 2
FLAG_CATEGORICAL = 0x08  # value holds the row of the node's bitset in cat_offsets
CAT_MASK, CAT_SHIFT = 0x30, 4  # 0 exact integers; 1 truncate, x < 0 outside; 2 truncate, trunc(x) < 0 outside
CAT_EXACT, CAT_TRUNC_X, CAT_TRUNC_C = 0, 1, 2
FLAG_OUTSIDE_LEFT = 0x40  # a category outside the bitset (or not an allowed value) goes left; else right
FLAGS_KNOWN = 0x7F

REQUIRED_V2: dict[str, type | tuple[type, ...]] = {
    "input_dtype": str,
    "split_compare": str,
    "accumulate": str,
    "decision": str,
    "n_cat_bitsets": int,
    "n_cat_words": int,
    "input_zero_threshold": (int, float),
}

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


_STRUCTS = {"PREAMBLE": PREAMBLE_FORMAT, "NODE_STRUCT": NODE_FORMAT}


def __getattr__(name: str) -> Any:
    if name in _STRUCTS:  # the writer and the tools: struct is imported when they ask
        import struct

        made = globals()[name] = struct.Struct(_STRUCTS[name])
        return made
    if name == "NODE_DTYPE":  # numpy only for the tools that ask (writer, converters): the reader needs none
        import numpy as np

        dtype = np.dtype([("value", "<f8"), ("feature", "<i4"), ("right", "<i4")])
        globals()["NODE_DTYPE"] = dtype
        return dtype
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def array_dtype(name: str) -> np.dtype:
    """The numpy dtype for a dtype name used in the array table (imports numpy)."""
    import numpy as np

    return __getattr__("NODE_DTYPE") if name == NODE_DTYPE_NAME else np.dtype(name)


# ------------------------------------------------------------------------------------------ the array table
def _always(h: dict) -> bool:
    return True


class ArrayRule(NamedTuple):  # a NamedTuple, not a dataclass: dataclasses costs ~4 ms of imports at start-up
    """One array a .brew file may hold: its only accepted dtype, its shape and when it is present.

    ``shape(h)`` computes the shape from the (already type-checked) header; ``present(h)`` says whether a file
    with this header must hold the array (an array present when it must not be is refused, like an unknown one).
    ``finite``: the values (the ``value`` field of a record array) must be finite (no NaN, no infinity).
    ``"load"``: checked when the file is opened (small arrays); ``"visit"``: leaf values are checked by both
    kernels as a prediction uses them, and every value (thresholds too) by ``verify`` (checking them at load
    would read the whole file).
    """

    dtype: str
    shape: Callable[[dict], tuple[int, ...]]
    present: Callable[[dict], bool] = _always
    finite: str = ""


#: Every array a .brew file may hold. The reader, the writer and validation all follow this table; a name not
#: in it (or present when ``present`` says no) is refused. A new array is registered here and nowhere else.
ARRAYS: dict[str, ArrayRule] = {
    "nodes": ArrayRule(NODE_DTYPE_NAME, lambda h: (h["n_nodes"],), finite="visit"),
    "tree_offsets": ArrayRule("<i8", lambda h: (h["n_trees"] + 1,)),
    "base_score": ArrayRule("<f8", lambda h: (h["n_outputs"],), finite="load"),
    "leaf_values": ArrayRule(
        "<f8", lambda h: (h["n_leaves"], h["n_outputs"]), present=lambda h: h["leaf"] == "vector", finite="visit"
    ),
    # version 2: per-node flags (missing-value routing, categorical), each tree's output group, category bitsets
    "node_flags": ArrayRule("|u1", lambda h: (h["n_nodes"],), present=lambda h: h["version"] >= 2),
    "tree_groups": ArrayRule("<i4", lambda h: (h["n_trees"],), present=lambda h: h["version"] >= 2),
    "cat_offsets": ArrayRule(
        "<i8", lambda h: (h["n_cat_bitsets"] + 1,), present=lambda h: h["version"] >= 2 and h["n_cat_bitsets"] > 0
    ),
    "cat_words": ArrayRule(
        "<u4", lambda h: (h["n_cat_words"],), present=lambda h: h["version"] >= 2 and h["n_cat_bitsets"] > 0
    ),
    # version 3 (section 13): linear leaves, per node (coefficients of node i: linear_offsets[i] .. [i + 1])
    "linear_offsets": ArrayRule("<i8", lambda h: (h["n_nodes"] + 1,), present=lambda h: _linear(h)),
    "linear_features": ArrayRule("<i4", lambda h: (h["n_linear_coeffs"],), present=lambda h: _linear(h)),
    "linear_coeffs": ArrayRule("<f8", lambda h: (h["n_linear_coeffs"],), present=lambda h: _linear(h), finite="visit"),
    "linear_const": ArrayRule("<f8", lambda h: (h["n_nodes"],), present=lambda h: _linear(h), finite="visit"),
}


def _linear(h: dict) -> bool:
    """A version 3 header with linear leaves (its ``n_linear_coeffs`` is validated before the table)."""
    return h["version"] >= 3 and "n_linear_coeffs" in h


def invalid_values(arr: np.ndarray) -> np.ndarray:
    """Where an array with a ``finite`` rule holds a value no .brew file may hold (a boolean mask).

    Leaf values, leaf vectors and base scores must be finite. A split threshold may be an infinity (a legal
    extreme: scikit-learn's HistGradientBoosting writes +inf when every non-missing value goes left) but never
    NaN, which no comparison can route.
    """
    import numpy as np

    if arr.dtype.names:  # node records: the value is a threshold where feature >= 0, a leaf value where -1
        values = arr["value"]
        return np.where(arr["feature"] >= 0, np.isnan(values), ~np.isfinite(values))
    return ~np.isfinite(arr)


def expected_arrays(h: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The arrays a header of this shape must declare: name -> (dtype name, shape), from :data:`ARRAYS`."""
    return {name: (rule.dtype, tuple(rule.shape(h))) for name, rule in ARRAYS.items() if rule.present(h)}


def validate_header(h: object, payload_length: int, version: int = VERSION) -> dict:
    """Refuse a header that is missing fields, has unknown values or an inconsistent array table.

    ``version`` is the preamble's; the header must agree with it and is checked by that version's rules.
    Returns ``h``, now known to be a valid header (a dict).
    """
    if not isinstance(h, dict):
        raise ModelFormatError("header is not a JSON object")
    required = dict(REQUIRED, **REQUIRED_V2) if version >= 2 else REQUIRED
    for key, types in required.items():
        if key not in h:
            raise ModelFormatError(f"header lacks the required field {key!r}")
        if not isinstance(h[key], types) or (types is int and isinstance(h[key], bool)):
            raise ModelFormatError(f"header field {key!r} has the wrong type ({type(h[key]).__name__})")
    if h["format"] != FORMAT_NAME:
        raise ModelFormatError(f"header format is {_short(h['format'])}, expected {FORMAT_NAME!r}")
    if h["version"] != version:
        raise ModelFormatError(f"header version {h['version']} disagrees with the preamble's {version}")
    if version >= 2:
        _validate_v2(h)
    else:
        _validate_v1(h)
    validate_bounds(h, payload_length)
    _validate_optional(h, payload_length)
    if "inputs" in h:  # version 3: the input stage (section 12); imported only for a file that has one
        from coldbrew.format.stage import validate_inputs

        validate_inputs(h)
    _validate_table(h, payload_length)
    return h


def _check_choices(h: dict, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
    """Each ``(key, allowed)``: the header's value is one of ``allowed``."""
    for key, allowed in rules:
        if h[key] not in allowed:
            raise ModelFormatError(f"header {key} {_short(h[key])} is not one of {', '.join(allowed)}")


def _check_counts(h: dict) -> None:
    """Counts every version shares: positive sizes, leaves within nodes, feature names one string per feature."""
    for key in ("n_features", "n_outputs", "n_trees", "n_nodes"):
        if h[key] < 1:
            raise ModelFormatError(f"header {key} must be positive, got {h[key]}")
    if h["n_leaves"] < 0 or h["max_depth"] < 0 or h["n_leaves"] > h["n_nodes"]:
        raise ModelFormatError("header n_leaves / max_depth out of range")
    if h["max_depth"] > MAX_DEPTH:
        raise ModelFormatError(f"header max_depth {h['max_depth']} exceeds the format's limit of {MAX_DEPTH} levels")
    if h["feature_names"] is not None and (
        len(h["feature_names"]) != h["n_features"] or not all(isinstance(n, str) for n in h["feature_names"])
    ):
        raise ModelFormatError("header feature_names must be n_features strings")


def _validate_v1(h: dict) -> None:
    """Version 1 rules: the scikit-learn GradientBoosting / forest / tree kinds."""
    _check_choices(h, (("kind", KINDS), ("leaf", LEAF_MODES), ("combine", COMBINES), ("output", OUTPUTS)))
    _check_counts(h)
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


def _validate_v2(h: dict) -> None:
    """Version 2 rules: scalar leaves summed per tree group, explicit input/accumulation dtypes and decision."""
    v3 = h["version"] >= 3
    _check_choices(
        h,
        (
            ("kind", KINDS_V2 + KINDS_V3 + GBM_KINDS_V3 if v3 else KINDS_V2),
            ("leaf", ("scalar",)),
            ("combine", COMBINES + COMBINES_V3 if v3 else COMBINES),
            ("output", OUTPUTS_V2 + OUTPUTS_V3 + BINARY_OUTPUTS_V3 if v3 else OUTPUTS_V2),
            ("input_dtype", INPUT_DTYPES),
            ("split_compare", SPLIT_COMPARES),
            ("accumulate", ACCUMULATES),
            ("decision", DECISIONS + DECISIONS_V3 if v3 else DECISIONS),
        ),
    )
    _check_counts(h)
    if "input_missing" in h and (not v3 or h["input_missing"] not in INPUT_MISSING):
        raise ModelFormatError(f"header input_missing must be one of {', '.join(INPUT_MISSING)} (format version 3)")
    if h["n_cat_bitsets"] < 0 or h["n_cat_words"] < 0 or (h["n_cat_bitsets"] == 0) != (h["n_cat_words"] == 0):
        raise ModelFormatError("header n_cat_bitsets / n_cat_words out of range")
    if h["kind"] == "calibrated_classifier" or h["combine"] == "calibrate" or h["output"] == "calibrated_proba":
        _validate_calibrated(h)
    elif (
        h["kind"].startswith("voting_")
        or h["combine"] == "vote"
        or h["output"] in ("vote_proba", "vote_mean", "vote_hard")
    ):
        _validate_vote(h)
    elif h["classes"] is not None:
        outputs = CLASSIFIER_OUTPUTS_V2 + (BINARY_OUTPUTS_V3 + CB_CLASSIFIER_OUTPUTS_V3 if v3 else ())
        if not h["classes"] or h["classes_dtype"] is None or h["output"] not in outputs:
            raise ModelFormatError("a classifier's header must list its classes and classes_dtype and a class output")
        binary = h["output"] in BINARY_OUTPUTS_V2 + BINARY_OUTPUTS_V3
        if binary and h["n_outputs"] != 1:
            raise ModelFormatError("a logistic output needs n_outputs = 1")
        if len(h["classes"]) != (2 if binary else h["n_outputs"]):
            raise ModelFormatError("header classes disagree with n_outputs")
        binary_decisions = ("raw_ge0", "raw_gt0", "proba_gt_half", "argmax_proba")
        decisions = binary_decisions if binary else ("argmax_raw", "argmax_proba")
        if h["decision"] not in decisions:
            raise ModelFormatError(f"header decision {h['decision']!r} does not fit output {h['output']!r}")
    elif (
        h["kind"] in KINDS_V3
        or (h["output"] in OUTPUTS_V3 and h["output"] not in CB_REGRESSOR_OUTPUTS_V3)
        or h["decision"] in DECISIONS_V3
    ):
        _validate_isolation(h)
    elif (
        (h["n_outputs"] != 1 and h["output"] != "identity")
        or h["decision"] != "value"
        or h["output"] not in REGRESSOR_OUTPUTS_V2 + (CB_REGRESSOR_OUTPUTS_V3 if v3 else ())
    ):
        raise ModelFormatError(
            "a regressor must have decision 'value', an output among "
            f"{', '.join(REGRESSOR_OUTPUTS_V2)} and n_outputs = 1 (or, multi-output, identity)"
        )
    if "n_linear_coeffs" in h and (
        not h["version"] >= 3
        or not _is_int(h["n_linear_coeffs"])
        or h["n_linear_coeffs"] < 0
        or h.get("linear_missing") not in LINEAR_MISSING
    ):
        raise ModelFormatError(
            "header n_linear_coeffs must be an integer >= 0 and linear_missing one of "
            f"{', '.join(LINEAR_MISSING)} (format version 3)"
        )
    zt = h["input_zero_threshold"]
    if isinstance(zt, bool) or not (0 <= zt < 1e-30):
        raise ModelFormatError("header input_zero_threshold must be a number in [0, 1e-30)")
    if h["output"] in FLOAT32_OUTPUTS_V2 and h["accumulate"] != "float32":
        raise ModelFormatError(f"output {h['output']!r} needs float32 accumulation")
    if h["combine"] == "mean" and (h["accumulate"] != "float64" or h["n_trees"] % h["n_outputs"]):
        raise ModelFormatError("combine 'mean' needs float64 accumulation and n_trees a multiple of n_outputs")


def _validate_vote(h: dict) -> None:
    """Section 13: a Voting* file: ``M`` members' sums side by side, each divided by its tree count, averaged."""
    clf = h["kind"] == "voting_classifier"
    want = ("voting_classifier", "vote", "vote_proba", "argmax_proba") if clf else ("voting_regressor", "vote")
    got = (h["kind"], h["combine"], h["output"], h["decision"]) if clf else (h["kind"], h["combine"])
    if got == ("voting_classifier", "vote", "vote_hard", "vote_hard"):  # hard voting: weights must not be negative
        got = want
        if h.get("member_weights") is not None and any(
            isinstance(w, (int, float)) and w < 0 for w in h["member_weights"]
        ):
            raise ModelFormatError("header member_weights of hard voting must not be negative")
    if got != want or (not clf and (h["output"], h["decision"]) != ("vote_mean", "value")):
        raise ModelFormatError("a voting model has combine 'vote' and output vote_proba (argmax_proba) or vote_mean")
    divisors, weights = h.get("member_divisors"), h.get("member_weights")
    if not isinstance(divisors, list) or not divisors or not all(_is_int(d) and d >= 0 for d in divisors):
        raise ModelFormatError("header member_divisors must be a non-empty list of integers >= 0")
    if weights is not None and (
        not isinstance(weights, list)
        or len(weights) != len(divisors)
        or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)
        or sum(weights) == 0
    ):
        raise ModelFormatError("header member_weights must be null or one finite number per member, not all zero")
    K, rest = divmod(h["n_outputs"], len(divisors))
    if rest or h["accumulate"] != "float64" or (not clf and K != 1):
        raise ModelFormatError("a voting model's n_outputs is its members times its outputs, accumulated in float64")
    if clf and (not h["classes"] or h["classes_dtype"] is None or len(h["classes"]) != K):
        raise ModelFormatError("a voting classifier's header lists one class per member output")
    if not clf and h["classes"] is not None:
        raise ModelFormatError("a voting regressor's header must have classes null")


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _validate_calibrated(h: dict) -> None:
    """Section 13: a CalibratedClassifierCV: ``M`` members' base sums side by side, calibrated per class, averaged."""
    want = ("calibrated_classifier", "calibrate", "calibrated_proba", "argmax_proba")
    if (h["kind"], h["combine"], h["output"], h["decision"]) != want:
        raise ModelFormatError("a calibrated classifier has combine 'calibrate', output 'calibrated_proba' (argmax)")
    members = h.get("calibrated")
    if not isinstance(members, list) or not members or h["n_outputs"] % len(members) or h["accumulate"] != "float64":
        raise ModelFormatError("header calibrated must list the members; n_outputs is members times classes")
    K = h["n_outputs"] // len(members)
    if not h["classes"] or h["classes_dtype"] is None or len(h["classes"]) != K or not 2 <= K <= 128:
        raise ModelFormatError("a calibrated classifier's header lists its 2 to 128 classes, one per member output")
    for member in members:
        cals = member.get("calibrators") if isinstance(member, dict) else None
        if not (isinstance(cals, list) and cals and _is_int(member.get("divisor")) and member["divisor"] >= 0):
            raise ModelFormatError("each calibrated member has a divisor (int >= 0) and calibrators")
        if member.get("link", "none") not in ("none", "logistic", "softmax_seq") or (
            member.get("link") == "logistic" and K != 2
        ):
            raise ModelFormatError("a calibrated member's link is none, logistic (two classes) or softmax_seq")
        for cal in cals:
            if not (
                isinstance(cal, dict)
                and all(_is_int(cal.get(key)) and 0 <= cal[key] < K for key in ("column", "class"))
                and (
                    (cal.get("method") == "sigmoid" and _number(cal.get("a")) and _number(cal.get("b")))
                    or (
                        cal.get("method") == "isotonic"
                        and _number(cal.get("x_min"))
                        and _number(cal.get("x_max"))
                        and isinstance(cal.get("x"), list)
                        and isinstance(cal.get("y"), list)
                        and len(cal["x"]) == len(cal["y"]) >= 1
                        and all(map(_number, cal["x"] + cal["y"]))
                        and all(a < b for a, b in itertools.pairwise(cal["x"]))
                    )
                )
            ):
                raise ModelFormatError("a calibrator must be sigmoid (a, b) or isotonic (x rising, y, x_min, x_max)")


def _validate_isolation(h: dict) -> None:
    """Section 13: an isolation forest sums path lengths in float64 (one output) and scores them as scikit-learn."""
    if (h["kind"], h["output"], h["decision"]) != ("isolation_forest", "isolation_np", "anomaly_sign"):
        raise ModelFormatError("kind 'isolation_forest', output 'isolation_np' and decision 'anomaly_sign' go together")
    if h["n_outputs"] != 1 or h["combine"] != "sum" or h["accumulate"] != "float64":
        raise ModelFormatError("an isolation forest has n_outputs = 1, combine 'sum' and float64 accumulation")
    for key in REQUIRED_ISOLATION:
        value = h.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelFormatError(f"header {key} must be a finite number")
    if h["score_denominator"] < 0:
        raise ModelFormatError("header score_denominator must not be negative")


# --------------------------------------------------------------------------------- sizes and labels bounds
# Everything a reader builds from the header must cost memory and time in proportion to the file (an attacker
# who re-signs a file controls every header field): these checks run before anything is allocated.

#: Without ``feature_names``, ``n_features`` may not exceed max(this, the payload length in bytes): the names a
#: reader makes up ("x0", "x1", ...) then cost memory in proportion to the file.
MIN_FEATURE_BOUND = 1 << 16
#: The label array a reader builds from ``classes`` may take max(this, the payload length) bytes.
MIN_CLASSES_BYTES = 1 << 20
#: The dtypes scikit-learn's ``classes_`` can have, and nothing else (no sub-array, record or big-endian dtype):
#: bool, signed/unsigned 8-64 bit integers, float 16/32/64, object, and fixed-width unicode ``<U1``-``<U999999999``
#: (:func:`is_classes_dtype`; no regex, so nothing is compiled at start-up).
CLASSES_DTYPES = frozenset({"|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8", "|O"})


def is_classes_dtype(name: object) -> bool:
    """True for an accepted ``classes_dtype``: one of :data:`CLASSES_DTYPES`, or ``<U`` and 1-9 ASCII digits
    not starting with 0."""
    if not isinstance(name, str):
        return False
    if name in CLASSES_DTYPES:
        return True
    count = name[2:]
    return name[:2] == "<U" and 0 < len(count) <= 9 and count.isascii() and count.isdigit() and count[0] != "0"


#: The header may take max(this, the payload length) bytes: a header is fields, names and labels, never more bytes
#: than the model itself unless the model is tiny.
MIN_HEADER_BYTES = 4 << 20
#: The most ``{`` and ``[`` characters a header may hold (in strings or not): the format needs a few dozen JSON
#: objects and arrays (the header, ``source``, ``checksum``, the array table and its shapes, the per-feature lists);
#: the cap leaves room for informational fields and for brackets in feature names, and is checked with one C-speed
#: count before the JSON is parsed, so a header of millions of ``{}`` or ``[[]]`` is refused in milliseconds
#: instead of costing gigabytes.
MAX_HEADER_CONTAINERS = 1 << 16


def check_header_size(header_length: int, payload_length: int) -> None:
    """Refuse a header longer than max(:data:`MIN_HEADER_BYTES`, the payload length), before reading it."""
    limit = max(MIN_HEADER_BYTES, payload_length)
    if header_length > limit:
        raise ModelFormatError(
            f"header of {header_length} bytes exceeds max({MIN_HEADER_BYTES}, the payload's {payload_length}) bytes"
        )


def check_header_containers(raw: bytes) -> None:
    """Refuse a header holding more than :data:`MAX_HEADER_CONTAINERS` ``{`` and ``[`` characters, before parsing."""
    count = raw.count(b"{") + raw.count(b"[")
    if count > MAX_HEADER_CONTAINERS:
        raise ModelFormatError(
            f"header holds {count} '{{' and '[' characters (JSON objects and arrays); the format needs far fewer "
            f"(at most {MAX_HEADER_CONTAINERS})"
        )


def validate_bounds(h: dict, payload_length: int) -> None:
    """Refuse feature names and class labels that are malformed or would cost more than the file justifies."""
    names = h["feature_names"]
    if names is None:
        limit = max(MIN_FEATURE_BOUND, payload_length)
        if h["n_features"] > limit:
            raise ModelFormatError(f"header n_features {h['n_features']} exceeds {limit} without feature_names")
    else:
        if not all(isinstance(n, str) and n for n in names):
            raise ModelFormatError("header feature_names must be non-empty strings")
        if len(set(names)) != len(names):
            raise ModelFormatError("header feature_names has duplicates")
    classes = h["classes"]
    if classes is None:
        return
    if h["output"] not in (
        CLASSIFIER_OUTPUTS_V2
        + BINARY_OUTPUTS_V3
        + ("vote_proba", "calibrated_proba", "vote_hard")
        + CB_CLASSIFIER_OUTPUTS_V3
        if h["version"] >= 2
        else CLASSIFIER_OUTPUTS
    ):
        raise ModelFormatError(f"a regressor's header must have classes null (output {h['output']!r})")
    dtype_name = h["classes_dtype"]
    if not is_classes_dtype(dtype_name):
        raise ModelFormatError(
            f"header classes_dtype {_short(dtype_name)} is not an accepted label dtype "
            "(|b1, |i1, <i2-<i8, |u1, <u2-<u8, <f2-<f8, <U<n>, |O)"
        )
    kind, itemsize = label_kind(dtype_name)
    limit = max(MIN_CLASSES_BYTES, payload_length)
    if itemsize * len(classes) > limit:
        raise ModelFormatError(f"header classes of dtype {dtype_name} would take more than {limit} bytes")
    for label in classes:
        if not _label_fits(label, kind, itemsize):
            raise ModelFormatError(f"header class label {_short(label)} does not fit classes_dtype {dtype_name}")


def label_kind(dtype_name: str) -> tuple[str, int]:
    """numpy's ``(dtype.kind, dtype.itemsize)`` for an accepted ``classes_dtype`` (see :func:`is_classes_dtype`),
    without numpy: ``"<U5"`` -> ``("U", 20)``, ``"|O"`` -> ``("O", 8)``."""
    if dtype_name == "|O":
        return "O", 8
    kind, count = dtype_name[1], int(dtype_name[2:])
    return kind, count * 4 if kind == "U" else count


def _label_fits(label: object, kind: str, itemsize: int) -> bool:
    """True if ``label`` (from JSON) is a scalar that the dtype of this kind and size holds exactly."""
    if isinstance(label, bool):
        return kind in "bO"
    if isinstance(label, int):
        if kind == "i":
            return -(1 << (8 * itemsize - 1)) <= label < 1 << (8 * itemsize - 1)
        if kind == "u":
            return 0 <= label < 1 << (8 * itemsize)
        return kind in "fO"
    if isinstance(label, float):
        return kind in "fO" and math.isfinite(label)
    if isinstance(label, str):
        return kind == "O" or (kind == "U" and len(label) <= itemsize // 4)
    return False  # null, lists, objects: a label is a scalar


def label_values(classes: list, dtype_name: str) -> tuple:
    """The labels as Python scalars, exactly as ``np.array(classes, dtype=dtype_name).tolist()`` gives them
    (validated by :func:`validate_bounds` first): a float32 label is rounded to float32, an int in a float dtype
    becomes a float, and so on. No numpy needed."""
    kind, itemsize = label_kind(dtype_name)
    if kind == "b":
        return tuple(bool(v) for v in classes)
    if kind in "iu":
        return tuple(int(v) for v in classes)
    if kind == "f":
        if itemsize == 8:
            return tuple(float(v) for v in classes)
        code = "<f" if itemsize == 4 else "<e"
        return tuple(_round_float(float(v), code) for v in classes)
    if kind == "U":
        return tuple(str(v) for v in classes)
    return tuple(classes)  # object: the JSON values themselves


def _round_float(value: float, code: str) -> float:
    import struct  # float16/float32 class labels only

    try:
        return struct.unpack(code, struct.pack(code, value))[0]
    except OverflowError:  # beyond the range of float16/float32: numpy's cast gives an infinity
        return math.copysign(math.inf, value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _validate_optional(h: dict, payload_length: int) -> None:
    """Optional serving-contract keys (any version): task, class_labels, feature_missing, feature_categorical."""
    n = h["n_features"]
    task = h.get("task")
    if task is not None and (task not in TASKS or (task in TASKS_V3 and h["version"] < 3)):
        raise ModelFormatError(f"header task {task!r} is not one of {', '.join(TASKS)} (anomaly, ranking: version 3)")
    labels = h.get("class_labels")
    if labels is not None and (
        not isinstance(labels, list)
        or h["classes"] is None
        or len(labels) != len(h["classes"])
        or not all(isinstance(v, str) for v in labels)
    ):
        raise ModelFormatError("header class_labels must be one string per class")
    if labels is not None and sum(len(v) for v in labels) > max(MIN_CLASSES_BYTES, payload_length):
        raise ModelFormatError("header class_labels take more bytes than the file justifies")
    for key in ("feature_missing", "feature_categorical"):
        value = h.get(key)
        if value is not None and (
            not isinstance(value, list) or len(value) != n or not all(isinstance(v, bool) for v in value)
        ):
            raise ModelFormatError(f"header {key} must be n_features booleans or null")


def _is_int(v: object) -> TypeGuard[int]:
    """True for an integer; a bool is an ``int`` subclass but no offset or size."""
    return isinstance(v, int) and not isinstance(v, bool)


def _validate_table(h: dict, payload_length: int) -> None:
    table = h["arrays"]
    expected = expected_arrays(h)
    missing = set(expected) - set(table)
    if missing:
        raise ModelFormatError(f"array table lacks {', '.join(sorted(missing))}")
    unexpected = set(table) - set(expected)
    if unexpected:
        raise ModelFormatError(
            f"array table holds arrays this header does not call for: {', '.join(sorted(map(_short, unexpected)))}"
        )
    spans = []
    for name, (dtype_name, shape) in expected.items():
        entry = table[name]
        if not isinstance(entry, dict):
            raise ModelFormatError(f"array {name}: entry is not an object")
        if entry.get("dtype") != dtype_name:
            raise ModelFormatError(f"array {name}: dtype {_short(entry.get('dtype'))}, expected {dtype_name!r}")
        if entry.get("shape") != list(shape):
            raise ModelFormatError(f"array {name}: shape {_short(entry.get('shape'))}, expected {list(shape)}")
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        if not (_is_int(offset) and _is_int(nbytes)):
            raise ModelFormatError(f"array {name}: offset and nbytes must be integers")
        if offset < 0 or offset % ALIGN:
            raise ModelFormatError(f"array {name}: offset {offset!r} is not a 64-aligned integer")
        size = ITEMSIZES[dtype_name] * math.prod(shape)  # Python ints: no overflow
        if nbytes != size:
            raise ModelFormatError(f"array {name}: nbytes {nbytes} does not match its shape ({size})")
        if offset + nbytes > payload_length:
            raise ModelFormatError(f"array {name} runs past the end of the payload (file truncated?)")
        spans.append((offset, offset + nbytes, name))
    spans.sort()
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            raise ModelFormatError(f"arrays {a} and {b} overlap")
    if payload_length > max(end for _, end, _ in spans):  # the payload is the arrays, nothing after them
        raise ModelFormatError(
            f"the payload runs {payload_length - max(end for _, end, _ in spans)} bytes past its last array"
        )
