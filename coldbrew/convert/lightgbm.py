"""The LightGBM converter: a ``save_model`` text file or a fitted estimator/Booster into .brew (version 2).

Parsing the text format needs no lightgbm. What the compiled file reproduces, from LightGBM's
``include/LightGBM/tree.h``, ``src/boosting/gbdt_prediction.cpp`` and ``src/c_api.cpp`` (4.x):

- the input is read as float64, and a value with ``|x| <= 1e-35f`` is read as 0 (the dense-row copy skips it);
- numeric splits go left on ``x <= threshold`` (float64), with the node's missing type: *None* — NaN is read as
  0 and compared; *Zero* — NaN or 0 goes to the ``default_left`` side; *NaN* — NaN goes to that side;
- categorical splits: NaN or ``(int)x < 0`` goes right, then the category (truncated toward zero) goes left
  when its bit is set in the node's bitset, right otherwise (also beyond the bitset);
- every tree in the file (a file saved after early stopping holds the best iteration's trees) is added in
  float64, in order, to its class ``t mod num_tree_per_iteration``, from 0;
- outputs: ``binary`` through ``1 / (1 + exp(-x))`` (libm), ``multiclass`` through ``Common::Softmax`` (libm
  exp, sequential sum), regression objectives with an identity output.

Refused with one line: other objectives (or a ``sigmoid`` other than 1, ``sqrt`` regression), linear trees,
random-forest averaging, a model with pandas categorical mappings, unknown format versions.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from coldbrew.convert import trees as tb
from coldbrew.convert.trees import UnsupportedModelError
from coldbrew.errors import ModelFormatError
from coldbrew.format import spec

IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
#: Log-link objectives: the output is ``std::exp(raw)``.
LOG_OBJECTIVES = ("poisson", "gamma", "tweedie")
#: Rankers: LGBMRanker.predict answers the raw scores.
RANKING_OBJECTIVES = ("lambdarank", "rank_xendcg")
VERSIONS = ("v2", "v3", "v4")
ZERO_THRESHOLD = float(np.float32(1e-35))  # kZeroThreshold = 1e-35f
#: How LightGBM's predict evaluates a model: float64 inputs and sums, tiny inputs read as 0, x <= threshold left.
EVALUATION = tb.summed_scalar_leaves("float64", "le", ZERO_THRESHOLD)
_CATEGORICAL, _DEFAULT_LEFT = 1, 2


def parse_text(text: str, *, where: str = "model") -> dict:
    """The header fields and trees of a LightGBM text model: ``{"meta": {...}, "trees": [{...}, ...]}``."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "tree":
        raise ModelFormatError(f"{where}: not a LightGBM text model (first line is not 'tree')")
    meta: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = meta
    for line in lines[1:]:
        line = line.strip()
        if not line:
            continue
        if line == "end of trees":
            break
        if line.startswith("Tree="):
            current = {"Tree": line[5:]}
            trees.append(current)
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
        elif current is meta:
            current[line] = ""
    else:
        raise ModelFormatError(f"{where}: truncated LightGBM model (no 'end of trees')")
    tail = text[text.find("end of trees") :]
    meta["pandas_categorical"] = ""
    for line in tail.splitlines():
        if line.startswith("pandas_categorical:"):
            meta["pandas_categorical"] = line.partition(":")[2].strip()
        elif line.startswith("[categorical_feature:"):  # the parameters block: which features pandas codes feed
            meta["categorical_feature"] = line.partition(":")[2].strip().rstrip("]").strip()
    return {"meta": meta, "trees": trees}


def _numbers(text: str, dtype, n: int, what: str, where: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64) if text.strip() else np.zeros(0)
    except ValueError:
        raise ModelFormatError(f"{where}: {what} holds a value that is not a number") from None
    if len(values) != n:
        raise ModelFormatError(f"{where}: {what} has {len(values)} values, expected {n}")
    if dtype is np.float64:
        return values
    if np.any(values != np.round(values)):
        raise ModelFormatError(f"{where}: {what} holds a non-integer")
    return values.astype(dtype)


def model_to_arrays(model: dict, *, where: str = "model", classes=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays for a parsed LightGBM text model.

    A model that lacks a field or holds a value of the wrong kind is a one-line ``ModelFormatError``.
    """
    try:
        return _model_to_arrays(model, where, classes)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ModelFormatError(f"{where}: not a valid LightGBM model ({what})") from None


def _model_to_arrays(model: dict, where: str, classes) -> tuple[dict, dict[str, np.ndarray]]:
    meta = model["meta"]
    version = meta.get("version", "")
    if version not in VERSIONS:
        raise UnsupportedModelError(
            f"{where}: LightGBM model format {version!r} is not supported (coldbrew reads {', '.join(VERSIONS)})"
        )
    average = "average_output" in meta  # boosting=rf: the trees' sum divided by the number of iterations
    pandas_categorical = _pandas_categorical(meta, where)
    objective = meta.get("objective", "").split()
    if not objective:
        raise UnsupportedModelError(
            f"{where}: the LightGBM model has no objective (custom objectives are not supported)"
        )
    name, options = objective[0], dict(o.partition(":")[::2] for o in objective[1:])
    K = int(meta.get("num_tree_per_iteration", "1"))
    num_class = int(meta.get("num_class", "1"))
    n_features = int(meta.get("max_feature_idx", "-1")) + 1
    if n_features < 1:
        raise ModelFormatError(f"{where}: max_feature_idx missing")
    if name == "binary":
        if float(options.get("sigmoid", "1")) != 1.0:
            raise UnsupportedModelError(
                f"{where}: LightGBM binary objective with sigmoid={options['sigmoid']} is not supported (only 1)"
            )
        output, decision, task, n_classes = "logistic", "argmax_proba", "binary", 2
    elif name == "multiclass":
        output, decision, task, n_classes = "softmax_seq", "argmax_proba", "multiclass", num_class
    elif name == "multiclassova":
        if float(options.get("sigmoid", "1")) != 1.0:
            raise UnsupportedModelError(
                f"{where}: LightGBM multiclassova objective with sigmoid={options['sigmoid']} is not supported (only 1)"
            )
        output, decision, task, n_classes = "sigmoid_each", "argmax_proba", "multiclass", num_class
    elif "sqrt" in options or "sqrt" in objective:
        raise UnsupportedModelError(
            f"{where}: LightGBM objective {' '.join(objective)[:80]!r} with sqrt (reg_sqrt=True) is not supported"
        )
    elif name in IDENTITY_OBJECTIVES:
        output, decision, task, n_classes = "identity", "value", "regression", 0
    elif name in RANKING_OBJECTIVES:  # a ranker answers scores (task "ranking", section 13)
        output, decision, task, n_classes = "identity", "value", "ranking", 0
    elif name in LOG_OBJECTIVES:
        output, decision, task, n_classes = "exp", "value", "regression", 0
    elif name == "cross_entropy":
        output, decision, task, n_classes = "logistic", "value", "regression", 0
    else:
        raise UnsupportedModelError(
            f"{where}: LightGBM objective {' '.join(objective)[:80]!r} is not supported (supported: binary, multiclass, "
            f"multiclassova, cross_entropy, {', '.join(IDENTITY_OBJECTIVES + LOG_OBJECTIVES + RANKING_OBJECTIVES)})"
        )
    if K != (num_class if name in ("multiclass", "multiclassova") else 1):
        raise ModelFormatError(f"{where}: num_tree_per_iteration {K} does not fit objective {name}")
    tree_docs = model["trees"]
    if not tree_docs or len(tree_docs) % K:
        raise ModelFormatError(f"{where}: {len(tree_docs)} trees is not a positive multiple of {K}")
    trees = [_tree(t, n_features, f"{where}: tree {i}") for i, t in enumerate(tree_docs)]
    counts, arrays = tb.build(trees, [i % K for i in range(len(trees))])
    arrays["base_score"] = np.zeros(K, dtype=np.float64)
    names = meta.get("feature_names", "").split()
    categorical = [False] * n_features
    for t in trees:
        for node in t.cats:
            categorical[int(t.feature[node])] = True
    if classes is None and n_classes:
        classes = list(range(n_classes))
    header = {
        "kind": "lgbm_regressor" if task in ("regression", "ranking") else "lgbm_classifier",
        "n_features": n_features,
        "feature_names": names if len(names) == n_features else None,
        "classes": list(classes) if n_classes else None,
        "classes_dtype": (np.asarray(classes).dtype.str if n_classes else None),
        "n_outputs": K,
        **EVALUATION,
        "combine": "mean" if average else "sum",
        "output": output,
        "decision": decision,
        "learning_rate": None,
        "task": task,
        "feature_missing": [True] * n_features,
        "feature_categorical": categorical if any(categorical) else None,
        "source": {"library": "lightgbm", "format": version, "objective": " ".join(objective)},
        **counts,
    }
    if "n_linear_coeffs" in counts:
        header["linear_missing"] = "leaf"  # Tree::Predict: a NaN input gives the leaf's constant output
    if pandas_categorical:  # categories by name (format version 3): pandas codes; unseen and missing are NaN
        from coldbrew.convert.names import by_name_stage

        header["inputs"] = by_name_stage(
            header["feature_names"], n_features, pandas_categorical, unknown=None, missing=None
        )
    return header, arrays


def _pandas_categorical(meta: dict, where: str) -> dict[int, list]:
    """Feature index -> the pandas category names LightGBM maps to codes 0, 1, ... (``pandas_categorical``,
    one list per ``category`` column, in the order of the model's ``categorical_feature`` indices)."""
    import json

    text = meta.get("pandas_categorical", "null")
    if text in ("", "null", "[]"):
        return {}
    try:
        lists = json.loads(text)
    except ValueError:
        raise ModelFormatError(f"{where}: pandas_categorical is not valid JSON") from None
    indices = [int(i) for i in meta.get("categorical_feature", "").split(",") if i.strip()]
    if not isinstance(lists, list) or len(lists) != len(indices) or not all(isinstance(v, list) for v in lists):
        raise UnsupportedModelError(
            f"{where}: the LightGBM model's pandas categories ({len(lists) if isinstance(lists, list) else '?'} "
            f"columns) do not match its categorical_feature ({len(indices)}): ordered or extra category columns "
            "are not supported"
        )
    for values in lists:
        if not (
            all(isinstance(v, str) for v in values)
            or all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            raise UnsupportedModelError(
                f"{where}: LightGBM pandas categories must be all strings or all numbers in each column"
            )
    return dict(zip(indices, lists, strict=True))


def _tree(t: dict, n_features: int, where: str) -> tb.Tree:
    n_leaves = int(t.get("num_leaves", "0"))
    if n_leaves < 1:
        raise ModelFormatError(f"{where}: num_leaves must be positive")
    leaf_value = _numbers(t.get("leaf_value", ""), np.float64, n_leaves, "leaf_value", where)
    m = n_leaves - 1
    linear = _linear_leaves(t, n_leaves, m, n_features, where) if t.get("is_linear", "0") not in ("0", "") else None
    if n_leaves == 1:
        return tb.Tree(
            left=np.array([-1]),
            right=np.array([-1]),
            feature=np.array([-1]),
            value=leaf_value,
            flags=np.zeros(1, dtype=np.uint8),
            linear=None if linear is None else {0: linear[m]},
        )
    feature = _numbers(t["split_feature"], np.int64, m, "split_feature", where)
    threshold = _numbers(t["threshold"], np.float64, m, "threshold", where)
    decision = _numbers(t["decision_type"], np.int64, m, "decision_type", where)
    left = _numbers(t["left_child"], np.int64, m, "left_child", where)
    right = _numbers(t["right_child"], np.int64, m, "right_child", where)
    if np.any((feature < 0) | (feature >= n_features)):
        raise ModelFormatError(f"{where}: a split feature is outside [0, {n_features})")
    for child in (left, right):
        if np.any((child >= m) | (child < -n_leaves)):
            raise ModelFormatError(f"{where}: a child index is out of range")

    # internal nodes keep their numbers 0..m-1; leaf j becomes node m + j
    def renumber(c):
        return np.where(c >= 0, c, m + ~c)

    n = m + n_leaves
    L = np.concatenate([renumber(left), np.full(n_leaves, -1)])
    R = np.concatenate([renumber(right), np.full(n_leaves, -1)])
    F = np.concatenate([feature, np.full(n_leaves, -1)])
    V = np.concatenate([threshold, leaf_value])
    flags = np.zeros(n, dtype=np.uint8)
    cats = {}
    num_cat = int(t.get("num_cat", "0"))
    boundaries = words = None
    if num_cat > 0:
        boundaries = _numbers(t["cat_boundaries"], np.int64, num_cat + 1, "cat_boundaries", where)
        words_text = t.get("cat_threshold", "")
        words = _numbers(words_text, np.int64, len(words_text.split()), "cat_threshold", where)
        if boundaries[0] != 0 or np.any(np.diff(boundaries) < 0) or boundaries[-1] != len(words):
            raise ModelFormatError(f"{where}: cat_boundaries do not match cat_threshold")
        if np.any((words < 0) | (words > 0xFFFFFFFF)):
            raise ModelFormatError(f"{where}: cat_threshold holds a value that is not a 32-bit word")
    for i in range(m):
        d = int(decision[i])
        if d & _CATEGORICAL:
            if boundaries is None or words is None:  # both are set together, from the tree's num_cat
                raise ModelFormatError(f"{where}: a categorical split but num_cat is 0")
            ci = int(threshold[i])
            if not 0 <= ci < num_cat or ci != threshold[i]:
                raise ModelFormatError(f"{where}: categorical split {i} names bitset {threshold[i]}")
            cats[i] = words[boundaries[ci] : boundaries[ci + 1]].astype(np.uint32)
            flags[i] = tb.flags(default_left=False, categorical=True, cat_mode=spec.CAT_TRUNC_C, outside_left=False)
        else:
            missing_type = (d >> 2) & 3
            if missing_type == 3:
                raise ModelFormatError(f"{where}: split {i} has an unknown missing type")
            missing = {0: spec.MISSING_AS_ZERO, 1: spec.MISSING_ZERO, 2: spec.MISSING_NAN}[missing_type]
            flags[i] = tb.flags(default_left=bool(d & _DEFAULT_LEFT), missing=missing)
    return tb.Tree(left=L, right=R, feature=F, value=V, flags=flags, cats=cats, linear=linear)


def _linear_leaves(t: dict, n_leaves: int, m: int, n_features: int, where: str) -> dict:
    """A linear tree's leaves (``linear_tree=True``): leaf ``j`` (node ``m + j``) -> (``leaf_const``, its
    ``leaf_features``, its ``leaf_coeff``), read from the text exactly as LightGBM's ``Tree`` reads them."""
    const = _numbers(t.get("leaf_const", ""), np.float64, n_leaves, "leaf_const", where)
    counts = _numbers(t.get("num_features", ""), np.int64, n_leaves, "num_features", where)
    if np.any(counts < 0):
        raise ModelFormatError(f"{where}: num_features holds a negative count")
    total = int(counts.sum())
    features = _numbers(t.get("leaf_features", ""), np.int64, total, "leaf_features", where)
    coeffs = _numbers(t.get("leaf_coeff", ""), np.float64, total, "leaf_coeff", where)
    if np.any((features < 0) | (features >= n_features)):
        raise ModelFormatError(f"{where}: a linear leaf's feature is outside [0, {n_features})")
    if not (np.all(np.isfinite(coeffs)) and np.all(np.isfinite(const))):
        raise ModelFormatError(f"{where}: a linear leaf holds a non-finite coefficient")
    starts = np.concatenate([[0], np.cumsum(counts)])
    return {
        m + j: (float(const[j]), features[starts[j] : starts[j + 1]], coeffs[starts[j] : starts[j + 1]])
        for j in range(n_leaves)
    }


def probe_rows(header: dict, arrays: dict, n: int = 128) -> np.ndarray:
    """Rows on the model's thresholds (and next to them), with NaNs, zeros, tiny values and categories."""
    X = tb.probe_rows_from_arrays(header, arrays, n=n)
    rng = np.random.default_rng(1)
    tiny = rng.random(X.shape) < 0.03
    X[tiny] = rng.choice([1e-36, -1e-36, 1e-35, ZERO_THRESHOLD, -ZERO_THRESHOLD, 2e-35, 5e-324], size=int(tiny.sum()))
    return X


#: :func:`~coldbrew.convert.trees.write_checked` for lightgbm: checked against lightgbm on :func:`probe_rows`.
_write_checked = partial(tb.write_checked, library="lightgbm", probe=probe_rows)


_CHILD = """import sys, numpy as np, lightgbm
path, rows, out = sys.argv[1:4]
np.savez(out, result=lightgbm.Booster(model_file=path).predict(np.load(rows)))
"""


def _reference_from_file(path: Path, header: dict):
    """LightGBM's own predictions for the file (a Booster, as the scikit-learn wrapper calls it), computed in a
    child process (a damaged file can crash lightgbm), or None when lightgbm is not installed."""
    import importlib.util

    if importlib.util.find_spec("lightgbm") is None:
        return None
    return _booster_reference(lambda X: tb.library_in_subprocess("lightgbm", _CHILD, path, X)["result"], header)


def _booster_reference(predict, header: dict):
    """(proba, predict) as LGBMClassifier/LGBMRegressor derive them from the Booster's ``predict`` output."""
    classes = np.asarray(header["classes"], dtype=np.dtype(header["classes_dtype"])) if header["classes"] else None

    def reference(X):
        result = predict(X)
        if classes is None:
            return None, result
        proba = np.vstack((1.0 - result, result)).transpose() if result.ndim == 1 else result
        return proba, classes[np.argmax(proba, axis=1)]

    return reference


def compile_path(src: str | os.PathLike, dst: str | os.PathLike, *, class_labels=None) -> dict:
    """Compile a LightGBM text model file into ``dst``; checked against lightgbm itself when it is installed."""
    started = time.perf_counter()
    src = Path(src)
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"{src}: not a LightGBM text model (not UTF-8)") from None
    header, arrays = model_to_arrays(parse_text(text, where=str(src)), where=str(src))
    return _write_checked(
        header, arrays, dst, _reference_from_file(src, header), class_labels, started, what="LightGBM model file"
    )


def compile_estimator(est, dst: str | os.PathLike, *, class_labels=None) -> dict:
    """Compile a fitted LGBMClassifier / LGBMRegressor (or Booster) object into ``dst``."""
    import lightgbm

    started = time.perf_counter()
    name = type(est).__name__
    if isinstance(est, lightgbm.LGBMModel):
        if type(est).__name__ not in ("LGBMClassifier", "LGBMRegressor", "LGBMRanker"):
            raise UnsupportedModelError(
                f"cannot compile a LightGBM {name}: only LGBMClassifier, LGBMRegressor and LGBMRanker are supported"
            )
        booster = est.booster_
        classes = getattr(est, "classes_", None)
    elif isinstance(est, lightgbm.Booster):
        booster, classes = est, None
    else:
        raise UnsupportedModelError(f"cannot compile a {type(est).__module__}.{name}")
    text = booster.model_to_string()  # num_iteration=None: the best iteration when there is one, as predict uses
    header, arrays = model_to_arrays(
        parse_text(text, where=name), where=name, classes=None if classes is None else np.asarray(classes).tolist()
    )
    if classes is not None:
        header["classes_dtype"] = np.asarray(classes).dtype.str
        if header["classes_dtype"] == "|O":
            raise UnsupportedModelError(f"cannot compile a {name} whose classes are Python objects")

        def reference(X):
            return est.predict_proba(X), est.predict(X)
    elif isinstance(est, lightgbm.LGBMModel):

        def reference(X):
            return None, est.predict(X)
    else:
        reference = _booster_reference(booster.predict, header)
    return _write_checked(header, arrays, dst, reference, class_labels, started, what=name)
