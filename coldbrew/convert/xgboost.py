"""The XGBoost converter: a ``save_model`` file (JSON or UBJSON) or a fitted estimator into .brew (version 2).

Parsing the file needs no xgboost: JSON with the standard library, UBJSON with ``convert.ubjson``. What the
compiled file reproduces, from xgboost's ``src/predictor`` and ``src/common/math.h`` (3.2):

- input cast to float32 (as a DMatrix / inplace_predict stores it); NaN is missing and takes the node's
  ``default_left`` side; a numeric split goes left on ``x < split_condition`` (float32 < float32);
- categorical splits (``split_type`` 1): the listed categories go right, everything else (including negative,
  too large or unlisted values) left; the value is truncated to an integer first;
- scores start from the intercept ``base_score`` put through the objective's ``ProbToMargin`` (float32
  ``-logf(1/p - 1)`` for logistic objectives), and each tree's float32 leaf is added **in float32**, in tree
  order, to its group ``tree_info[t]``; only the trees up to ``best_iteration`` are kept when the model has one
  (the scikit-learn wrapper predicts with ``iteration_range=(0, best_iteration + 1)``);
- outputs: ``binary:logistic`` / ``reg:logistic`` through ``common::Sigmoid`` (float32 ``expf``),
  ``multi:softprob`` through ``common::Softmax`` (float32, double sum), ``multi:softmax`` through scipy's softmax
  on the float32 margins (what ``XGBClassifier.predict_proba`` does), ``reg:squarederror`` identity.

Categories by name (a DataFrame ``category`` column, ``enable_categorical``): the model's ``cats`` container
becomes the file's input stage (format version 3): a request sends the name, a missing one is NaN, an unseen one
is refused (XGBoost 3.2 refuses it in some columns and reads it as the first category in others).

Refused with one line: other objectives, vector leaves (multi-output
trees), ``num_target > 1``, unknown major versions.
"""

from __future__ import annotations

import json
import math
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from coldbrew.convert import trees as tb
from coldbrew.convert.trees import UnsupportedModelError
from coldbrew.errors import ModelFormatError
from coldbrew.format import spec

#: Each supported objective -> (task, output, how base_score becomes a margin). The outputs are XGBoost's
#: ``PredTransform``s: identity, ``common::Sigmoid``, ``expf`` (log-link objectives), hinge's ``x > 0``, softmax.
OBJECTIVES = {
    "binary:logistic": ("binary", "sigmoid_f32", "logit"),
    "binary:hinge": ("binary", "hinge_f32", "identity"),
    "reg:logistic": ("regression", "sigmoid_f32", "logit"),
    "binary:logitraw": ("regression", "identity", "identity"),  # raw margins (see docs/models.md)
    "reg:squarederror": ("regression", "identity", "identity"),
    "reg:squaredlogerror": ("regression", "identity", "identity"),
    "reg:pseudohubererror": ("regression", "identity", "identity"),
    "reg:absoluteerror": ("regression", "identity", "identity"),
    "reg:quantileerror": ("regression", "identity", "identity"),
    "count:poisson": ("regression", "exp_f32", "log"),
    "reg:gamma": ("regression", "exp_f32", "log"),
    "reg:tweedie": ("regression", "exp_f32", "log"),
    "survival:cox": ("regression", "exp_f32", "log"),
    "survival:aft": ("regression", "exp_f32", "log"),
    "rank:pairwise": ("regression", "identity", "identity"),  # rankers answer raw scores
    "rank:ndcg": ("regression", "identity", "identity"),
    "rank:map": ("regression", "identity", "identity"),
    "multi:softprob": ("multiclass", "softmax_f32", "identity"),
    "multi:softmax": ("multiclass", "softmax", "identity"),
}
SUPPORTED_MAJOR = (2, 3)
#: How XGBoost's predict evaluates a model: inputs and sums in float32, x < threshold goes left.
EVALUATION = tb.summed_scalar_leaves("float32", "lt")


def load_model_file(path: str | os.PathLike) -> dict:
    """The model document of an XGBoost ``.json`` or ``.ubj`` file, as Python/numpy values."""
    from coldbrew.convert import detect, ubjson

    data = Path(path).read_bytes()
    kind = detect(path)
    try:
        doc = ubjson.loads(data) if kind == "xgboost-ubj" else json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not a readable XGBoost model file ({str(exc)[:200]})") from None
    except RecursionError:
        raise ModelFormatError(f"{path}: not a readable XGBoost model file (nested too deeply)") from None
    if not isinstance(doc, dict) or "learner" not in doc:
        raise ModelFormatError(f"{path}: not an XGBoost model file (no 'learner')")
    return doc


def _floats(seq, dtype=np.float32) -> np.ndarray:
    if isinstance(seq, np.ndarray):
        return seq.astype(dtype)
    return np.array([float(v) for v in seq], dtype=np.float64).astype(dtype)


def _ints(seq) -> np.ndarray:
    return np.asarray(seq, dtype=np.int64)


def _base_scores(text: str) -> list[float]:
    text = str(text).strip()
    if text.startswith("["):
        text = text[1:-1]
    return [float(v) for v in text.split(",") if v.strip()]


def _libm_logf():
    import ctypes

    for name in ("libm.so.6", "libm.dylib", None):
        try:
            lib = ctypes.CDLL(name)
            lib.logf.restype, lib.logf.argtypes = ctypes.c_float, [ctypes.c_float]
            return lib.logf
        except (OSError, AttributeError):
            continue
    return lambda v: float(np.float32(math.log(v)))


def _log32(p: float) -> np.float32:
    """xgboost's ``ProbToMargin`` for log-link objectives: ``std::log`` of the float32 base score (``logf``)."""
    return np.float32(_libm_logf()(float(np.float32(p))))


def _logit32(p: float) -> np.float32:
    """xgboost's ``ProbToMargin`` for logistic losses: clamp to [1e-6, 1 - 1e-6], then ``-logf(1.0f / x - 1.0f)``."""
    f32 = np.float32
    eps = f32(1e-6)
    x = f32(p)
    x = min(max(x, eps), f32(1.0) - eps)
    inner = f32(f32(1.0) / x) - f32(1.0)
    return f32(-f32(_libm_logf()(float(inner))))


def doc_to_arrays(doc: dict, *, where: str = "model") -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays for an XGBoost model document (``learner`` + ``version``).

    A document that lacks a field or holds a value of the wrong kind is a one-line ``ModelFormatError``.
    """
    try:
        return _doc_to_arrays(doc, where)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ModelFormatError(f"{where}: not a valid XGBoost model ({what})") from None


def _doc_to_arrays(doc: dict, where: str) -> tuple[dict, dict[str, np.ndarray]]:
    version = doc.get("version") or [0]
    if not isinstance(version, (list, np.ndarray)) or int(version[0]) not in SUPPORTED_MAJOR:
        raise UnsupportedModelError(
            f"{where}: XGBoost model version {list(version)} is not supported (coldbrew reads major versions "
            f"{', '.join(map(str, SUPPORTED_MAJOR))}; re-save the model with one of them)"
        )
    learner = doc["learner"]
    objective = learner["objective"]["name"]
    booster = learner["gradient_booster"]
    weights = None
    if booster.get("name") == "dart":  # trees weighted at prediction time: each leaf scaled by its tree's weight
        weights = _floats(booster["weight_drop"])
        booster = booster["gbtree"]
    if booster.get("name") not in ("gbtree", "gblinear"):
        raise UnsupportedModelError(
            f"{where}: XGBoost booster {str(booster.get('name'))[:40]!r} is not supported (gbtree, dart, gblinear)"
        )
    if objective not in OBJECTIVES:
        raise UnsupportedModelError(
            f"{where}: XGBoost objective {str(objective)[:80]!r} is not supported (supported: {', '.join(OBJECTIVES)})"
        )
    task, output, base_link = OBJECTIVES[objective]
    mparam = learner["learner_model_param"]
    n_targets = int(mparam.get("num_target", 1))
    if n_targets != 1 and (task != "regression" or output != "identity" or n_targets < 1):
        raise UnsupportedModelError(
            f"{where}: multi-output XGBoost models (num_target {n_targets}) are supported with identity-output "
            f"regression objectives only, not {str(objective)[:40]!r}"
        )
    n_features = int(mparam["num_feature"])
    num_class = int(mparam.get("num_class", 0))
    model = booster["model"]
    if booster["name"] == "gblinear":
        if n_targets != 1:
            raise UnsupportedModelError(f"{where}: a multi-target XGBoost gblinear model is not supported")
        return _linear_to_arrays(doc, model, objective, n_features, num_class, where)
    names_by_feature = _category_names(model.get("cats") or {}, n_features, where)
    tree_docs = model["trees"]
    tree_info = _ints(model["tree_info"])
    indptr = _ints(model.get("iteration_indptr") or _indptr(tree_info, num_class))
    if len(tree_info) != len(tree_docs):
        raise ModelFormatError(f"{where}: tree_info lists {len(tree_info)} trees, the model has {len(tree_docs)}")
    if len(indptr) < 2 or indptr[0] != 0 or indptr[-1] != len(tree_docs) or np.any(np.diff(indptr) < 1):
        raise ModelFormatError(f"{where}: iteration_indptr does not rise from 0 to the {len(tree_docs)} trees")
    attributes = learner.get("attributes") or {}
    n_trees = len(tree_docs)
    if "best_iteration" in attributes:
        best = int(attributes["best_iteration"])
        if not 0 <= best < len(indptr) - 1:
            raise ModelFormatError(f"{where}: best_iteration {best} is outside the model's {len(indptr) - 1} rounds")
        n_trees = int(indptr[best + 1])
    if n_trees < 1:
        raise UnsupportedModelError(f"{where}: the XGBoost model has no trees")
    K = max(num_class, 1) if objective.startswith("multi:") else n_targets
    if objective.startswith("multi:") and num_class < 2:
        raise ModelFormatError(f"{where}: a multi-class objective with num_class {num_class}")
    margin = _margins(mparam, base_link, K, where)
    trees = [_tree(tree_docs[t], n_features, where, t) for t in range(n_trees)]
    groups = [int(g) for g in tree_info[:n_trees]]
    if any(len(tree.vector) for tree in trees):  # vector leaves: one scalar copy of the tree per target
        if weights is not None:
            raise UnsupportedModelError(f"{where}: XGBoost dart with vector leaves is not supported")
        trees, groups = _split_vector_leaves(trees, groups, K, where)
    elif weights is not None:
        if len(weights) != len(tree_docs):
            raise ModelFormatError(f"{where}: weight_drop has {len(weights)} weights for {len(tree_docs)} trees")
        for t, tree in enumerate(trees):
            # Dart::InplacePredict (what the scikit-learn wrapper's predict runs): each tree is predicted on its own
            # from the base margin b, then out += ((b + leaf) - b) * w, all in float32: a constant per leaf.
            b = np.float32(margin[int(tree_info[t])] if len(margin) > 1 else margin[0])
            leaf = tree.left == -1
            scaled = (((b + tree.value.astype(np.float32)) - b) * weights[t]).astype(np.float32)
            tree.value = np.where(leaf, scaled.astype(np.float64), tree.value)
    if any(not 0 <= g < K for g in groups):
        raise ModelFormatError(f"{where}: tree_info names a group outside [0, {K})")
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = np.asarray(margin, dtype=np.float32).astype(np.float64)
    header = _finish_header(doc, objective, K, counts, n_features, attributes, len(indptr) - 1)
    if names_by_feature:  # categories by name (format version 3): an unseen name is refused, a missing one is NaN
        from coldbrew.convert.names import by_name_stage

        header["inputs"] = by_name_stage(
            header["feature_names"], n_features, names_by_feature, unknown="error", missing=None
        )
    return header, arrays


def _category_names(cats: dict, n_features: int, where: str) -> dict[int, list]:
    """Feature index -> the category names (or numbers) XGBoost re-codes a DataFrame ``category`` column by (its
    ``cats`` container: code i is the i-th name). XGBoost 3.2 refuses an unseen name in some columns and reads it
    as the first category in others; coldbrew refuses it in every column (HTTP 400 naming the column)."""
    enc = cats.get("enc") or []
    if not enc:
        return {}
    if not isinstance(enc, list) or len(enc) != n_features:
        raise ModelFormatError(f"{where}: the category container lists {len(enc)} columns, the model has {n_features}")
    out: dict[int, list] = {}
    for j, column in enumerate(enc):
        if not isinstance(column, dict):
            raise ModelFormatError(f"{where}: category column {j} is not an object")
        values, offsets = list(column.get("values") or []), list(column.get("offsets") or [])
        if offsets:  # strings: UTF-8 bytes, name i is values[offsets[i]:offsets[i + 1]]
            if (
                offsets[0] != 0
                or offsets[-1] != len(values)
                or any(b < a for a, b in zip(offsets[:-1], offsets[1:], strict=True))
            ):
                raise ModelFormatError(f"{where}: category column {j} has offsets outside its names")
            try:
                data = bytes(int(v) for v in values)
                names: list = [data[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            except (ValueError, TypeError):
                raise ModelFormatError(f"{where}: category column {j} holds a name that is not UTF-8") from None
        elif values:  # numbers
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise UnsupportedModelError(f"{where}: category column {j} holds values that are not finite numbers")
            names = [float(v) for v in values]
        else:
            continue
        if len(set(names)) != len(names):
            raise ModelFormatError(f"{where}: category column {j} names a category twice")
        out[j] = names
    return out


def _margins(mparam: dict, base_link: str, K: int, where: str) -> list[np.float32]:
    """The base score of each output as a float32 margin, through the objective's ``ProbToMargin``."""
    base = _base_scores(mparam["base_score"])
    if len(base) == 1:
        base = base * K
    if len(base) != K:
        raise ModelFormatError(f"{where}: base_score has {len(base)} values for {K} outputs")
    if base_link == "logit":
        return [_logit32(b) for b in base]
    if base_link == "log":
        return [_log32(b) for b in base]
    return [np.float32(b) for b in base]


def _linear_to_arrays(doc: dict, model: dict, objective: str, n_features: int, num_class: int, where: str):
    """A ``gblinear`` booster as linear leaves (format version 3, section 13): one single-leaf tree per output group
    whose linear model is ``GBLinear::Pred``: ``psum = bias[g] + base_margin[g]``, then ``psum += x[f] * w[f][g]``
    for every feature in order, all in float32, a missing input skipped (it is absent from XGBoost's sparse row).
    The first addition is done here (the same float32 operation), the rest by the kernel."""
    task, _, base_link = OBJECTIVES[objective]
    K = max(num_class, 1) if objective.startswith("multi:") else 1
    weights = _floats(model["weights"])
    if len(weights) != (n_features + 1) * K:
        raise ModelFormatError(f"{where}: gblinear has {len(weights)} weights, expected {(n_features + 1) * K}")
    if not np.all(np.isfinite(weights)):
        raise ModelFormatError(f"{where}: gblinear holds a non-finite weight")
    margin = _margins(doc["learner"]["learner_model_param"], base_link, K, where)
    table = weights[: n_features * K].reshape(n_features, K)
    bias = weights[n_features * K :]
    trees = []
    for g in range(K):
        # PredictBatchInternal: every group starts from BaseScore()(0), the first output's margin
        const = np.float32(bias[g] + np.float32(margin[0]))
        tree = tb.Tree(
            left=np.array([-1]),
            right=np.array([-1]),
            feature=np.array([-1]),
            value=np.array([float(const)]),
            flags=np.zeros(1, dtype=np.uint8),
            linear={0: (float(const), np.arange(n_features), table[:, g].astype(np.float64))},
        )
        trees.append(tree)
    counts, arrays = tb.build(trees, list(range(K)))
    arrays["base_score"] = np.zeros(K, dtype=np.float64)
    attributes = doc["learner"].get("attributes") or {}
    header = _finish_header(doc, objective, K, counts, n_features, attributes, int(model.get("boosted_rounds", 0)))
    header["linear_missing"] = "skip"
    return header, arrays


def _finish_header(doc: dict, objective: str, K: int, counts: dict, n_features: int, attributes: dict, rounds: int):
    """The header of an XGBoost model: evaluation, serving contract and the objective's output and decision."""
    learner = doc["learner"]
    version = doc.get("version") or [0]
    task, output, _ = OBJECTIVES[objective]
    feature_types = list(learner.get("feature_types") or [])
    names = list(learner.get("feature_names") or [])
    categorical = [t == "c" for t in feature_types] if feature_types else None
    header = {
        "n_features": n_features,
        "feature_names": [str(n) for n in names] if len(names) == n_features else None,
        "n_outputs": K,
        **EVALUATION,
        "learning_rate": None,
        "feature_missing": [True] * n_features,
        "feature_categorical": categorical if categorical and any(categorical) else None,
        "source": {
            "library": "xgboost",
            "xgboost_version": ".".join(str(int(v)) for v in version),
            "objective": objective,
            "best_iteration": attributes.get("best_iteration"),
            "rounds": rounds,
        },
        **counts,
    }
    if task == "regression":
        ranker = objective.startswith("rank:")  # a ranker answers scores (task "ranking", section 13)
        header.update(
            kind="xgb_regressor",
            classes=None,
            classes_dtype=None,
            task="ranking" if ranker else "regression",
            decision="value",
            output=output,
        )
    elif task == "binary":
        header.update(
            kind="xgb_classifier",
            classes=[0, 1],
            classes_dtype="<i8",
            task="binary",
            output=output,
            decision="proba_gt_half",
        )
    else:
        softprob = objective == "multi:softprob"
        header.update(
            kind="xgb_classifier",
            classes=list(range(K)),
            classes_dtype="<i8" if softprob else "<i4",
            task="multiclass",
            output="softmax_f32" if softprob else "softmax",
            decision="argmax_proba" if softprob else "argmax_raw",
        )
    return header


def _indptr(tree_info: np.ndarray, num_class: int) -> np.ndarray:
    per_round = max(num_class, 1)
    return np.arange(0, len(tree_info) + 1, per_round, dtype=np.int64)


def _split_vector_leaves(trees: list, groups: list[int], K: int, where: str) -> tuple[list[tb.Tree], list[int]]:
    """Each vector-leaf tree as K scalar-leaf trees, tree-major (tree t target k adds to output k), so each target
    sums its trees in order, as the vector addition does."""
    out, out_groups = [], []
    for index, tree in enumerate(trees):
        vector = tree.vector
        if vector.ndim != 2 or vector.shape[1] != K:
            raise ModelFormatError(f"{where}: tree {index} has leaf vectors of size {vector.shape[-1]}, not {K}")
        leaf = tree.left == -1
        rows = np.where(leaf, tree.right, 0)
        if np.any(leaf & ((rows < 0) | (rows >= len(vector)))):
            raise ModelFormatError(f"{where}: tree {index} has a leaf outside its leaf_weights")
        right = np.where(leaf, -1, tree.right)
        for k in range(K):
            value = np.where(leaf, vector[rows, k].astype(np.float64), tree.value)
            out.append(tb.Tree(left=tree.left, right=right, feature=tree.feature, value=value, flags=tree.flags))
            out_groups.append(k)
    return out, out_groups


def _tree(t: dict, n_features: int, where: str, index: int) -> tb.Tree:
    size_leaf = int((t.get("tree_param") or {}).get("size_leaf_vector", 1) or 1)
    left, right = _ints(t["left_children"]), _ints(t["right_children"])
    feature = _ints(t["split_indices"])
    cond = _floats(t["split_conditions"]).astype(np.float64)
    default_left = _ints(t["default_left"]).astype(bool)
    n = len(left)
    if not (len(right) == len(feature) == len(cond) == len(default_left) == n) or n < 1:
        raise ModelFormatError(f"{where}: tree {index} has arrays of different lengths")
    leaf = left == -1
    if np.any(~leaf & ((feature < 0) | (feature >= n_features))):
        raise ModelFormatError(f"{where}: tree {index} splits on a feature outside [0, {n_features})")
    left = np.where(leaf, -1, left)
    flags = np.where(default_left, spec.FLAG_DEFAULT_LEFT, 0).astype(np.uint8)
    split_type = _ints(t.get("split_type") if t.get("split_type") is not None else np.zeros(n))
    cats = {}
    nodes = _ints(t.get("categories_nodes", []))
    if len(nodes):
        segments, sizes = _ints(t["categories_segments"]), _ints(t["categories_sizes"])
        values = _ints(t["categories"])
        if not len(segments) == len(sizes) == len(nodes):
            raise ModelFormatError(
                f"{where}: tree {index} lists {len(nodes)} categorical nodes but {len(segments)} category segments "
                f"and {len(sizes)} sizes"
            )
        if np.any(segments < 0) or np.any(sizes < 0) or np.any(segments + sizes > len(values)):
            raise ModelFormatError(f"{where}: tree {index} has a category segment outside its {len(values)} categories")
        for node, seg, size in zip(nodes, segments, sizes, strict=True):
            if not 0 <= node < n or split_type[node] != 1:
                raise ModelFormatError(f"{where}: tree {index} lists categories for a non-categorical node {node}")
            right_set = values[seg : seg + size]
            if np.any(right_set < 0) or np.any(right_set >= 1 << 24):
                raise ModelFormatError(f"{where}: tree {index} has a category outside [0, 2^24)")
            n_bits = int(right_set.max()) + 1 if len(right_set) else 1
            words = tb.bitset_words(right_set, n_bits)
            cats[int(node)] = ~words  # listed categories go right; everything else goes left
            flags[node] = tb.flags(
                default_left=bool(default_left[node]), categorical=True, cat_mode=spec.CAT_TRUNC_X, outside_left=True
            )
    if np.any(~leaf & (split_type == 1) & ~np.isin(np.arange(n), nodes)):
        raise ModelFormatError(f"{where}: tree {index} has a categorical split without categories")
    tree = tb.Tree(left=left, right=right, feature=feature, value=cond, flags=flags, cats=cats)
    if size_leaf > 1:
        weights = _floats(t["leaf_weights"]).astype(np.float64)
        if len(weights) % size_leaf:
            raise ModelFormatError(f"{where}: tree {index} has leaf_weights not a multiple of {size_leaf}")
        tree.vector = weights.reshape(-1, size_leaf)
    return tree


def probe_rows(header: dict, arrays: dict, n: int = 128) -> np.ndarray:
    """Rows on the model's float32 thresholds (and next to them), with NaNs, zeros and categories."""
    return tb.probe_rows_from_arrays(header, arrays, n=n, dtype=np.float32)


#: :func:`~coldbrew.convert.trees.write_checked` for xgboost: checked against xgboost on :func:`probe_rows`.
_write_checked = partial(tb.write_checked, library="xgboost", probe=probe_rows)


_CHILD = """import sys, numpy as np, xgboost
path, rows, out = sys.argv[1:4]
est = xgboost.{cls}()
est.load_model(path)
X = np.load(rows)
np.savez(out, pred=est.predict(X), **({{"proba": est.predict_proba(X)}} if {clf} else {{}}))
"""


def _reference_from_file(path: Path, header: dict):
    """xgboost's own predictions through its scikit-learn wrapper, computed in a child process (a damaged file can
    crash xgboost), or None when xgboost is not installed."""
    import importlib.util

    if importlib.util.find_spec("xgboost") is None:
        return None
    clf = header["classes"] is not None
    ranker = str(header["source"]["objective"]).startswith("rank:")
    cls = "XGBClassifier" if clf else "XGBRanker" if ranker else "XGBRegressor"
    code = _CHILD.format(cls=cls, clf=clf)

    def reference(X):
        got = tb.library_in_subprocess("xgboost", code, path, X)
        return got.get("proba"), got["pred"]

    return reference


def _reference(est, header: dict):
    classifier = header["classes"] is not None

    def reference(X):
        return (est.predict_proba(X) if classifier else None), est.predict(X)

    return reference


def compile_path(src: str | os.PathLike, dst: str | os.PathLike, *, class_labels=None) -> dict:
    """Compile an XGBoost model file into ``dst``; checked against xgboost itself when it is installed."""
    started = time.perf_counter()
    src = Path(src)
    header, arrays = doc_to_arrays(load_model_file(src), where=str(src))
    reference = _reference_from_file(src, header)
    return _write_checked(header, arrays, dst, reference, class_labels, started, what="XGBoost model file")


def compile_estimator(est, dst: str | os.PathLike, *, class_labels=None) -> dict:
    """Compile a fitted XGBClassifier / XGBRegressor (or Booster) object into ``dst``."""
    import xgboost

    started = time.perf_counter()
    name = type(est).__name__
    if isinstance(est, xgboost.XGBModel):
        if not (est.missing is None or (isinstance(est.missing, float) and math.isnan(est.missing))):
            raise UnsupportedModelError(f"cannot compile a {name} with missing={est.missing!r}: only NaN is missing")
        if getattr(est, "objective", None) == "binary:logitraw" and hasattr(est, "predict_proba"):
            raise UnsupportedModelError(
                f"cannot compile an XGBoost {name} with objective 'binary:logitraw': its predict thresholds raw margins "
                "at 0.5; save the Booster (or use XGBRegressor) to serve the raw scores"
            )
        booster = est.get_booster()
        reference_est = est
    elif isinstance(est, xgboost.Booster):
        booster, reference_est = est, None
    else:
        raise UnsupportedModelError(f"cannot compile a {type(est).__module__}.{name}")
    doc = json.loads(bytes(booster.save_raw(raw_format="json")))
    header, arrays = doc_to_arrays(doc, where=name)
    if reference_est is not None and header["classes"] is not None and not hasattr(reference_est, "predict_proba"):
        raise UnsupportedModelError(f"cannot compile a {name} with a classification objective")
    if reference_est is None:
        reference = None
    else:
        reference = _reference(reference_est, header)
    return _write_checked(header, arrays, dst, reference, class_labels, started, what=name)
