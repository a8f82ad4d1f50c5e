"""The scikit-learn converter: fitted tree models (pickle/joblib or objects) into .brew files.

The 8 classic estimators (gradient boosting, forests, extra trees, decision trees) are written as format
version 1, exactly as before; HistGradientBoostingClassifier/Regressor as version 2 (``hgb_to_arrays``);
IsolationForest, VotingClassifier/VotingRegressor and CalibratedClassifierCV as version 3 (docs/format.md
section 13: ``isolation_to_arrays``, ``voting_to_arrays``, ``calibrated_to_arrays``).

The conversion copies each tree's nodes into 16-byte records in pre-order (docs/format.md), pre-scales
gradient-boosting leaves by the learning rate (bit-identical, see the spec), stores the init estimator's
constant raw prediction, writes atomically, then re-reads the file: checksum, and predictions compared with
scikit-learn's bit for bit on rows built from the model's own thresholds. Nothing is written on failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from coldbrew.convert import trees as tb
from coldbrew.convert.trees import (
    UnsupportedModelError,  # one error type for every converter
    set_class_labels,
)
from coldbrew.errors import ModelFormatError

SUPPORTED = (
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
)
_PROGRESS_MIN_TREES = 200


def _check_supported(est, *, multi_output: bool = False) -> str:
    name = type(est).__name__
    module = type(est).__module__
    if name in ("StackingClassifier", "StackingRegressor") and module.startswith("sklearn."):
        final = type(getattr(est, "final_estimator_", None) or est.final_estimator).__name__
        raise UnsupportedModelError(
            f"cannot compile a scikit-learn {name}: its final estimator ({final}) combines the members' outputs "
            "with a matrix product (BLAS), whose summation order cannot be reproduced bit for bit"
        )
    if name not in SUPPORTED or not module.startswith("sklearn."):
        raise UnsupportedModelError(
            f"cannot compile a {module}.{name}: supported estimators are {', '.join(SUPPORTED + HGB_SUPPORTED)}, "
            "IsolationForest, Bagging*, Voting* and CalibratedClassifierCV of those, "
            "XGBoost (XGBClassifier, XGBRegressor, Booster) and LightGBM (LGBMClassifier, LGBMRegressor, Booster)"
        )
    if not hasattr(est, "n_features_in_"):
        raise UnsupportedModelError(f"the {name} is not fitted")
    if getattr(est, "n_outputs_", 1) != 1 and not (multi_output and not hasattr(est, "classes_")):
        raise UnsupportedModelError(
            f"cannot compile a multi-output scikit-learn {name} (n_outputs_={est.n_outputs_}): multi-output "
            "regressors (forests and trees) compile, multi-output classifiers do not"
        )
    return name


def _preorder(tree) -> np.ndarray:
    """Node ids of ``tree`` in pre-order, left subtree first (sklearn's depth-first builder already is)."""
    left, right = tree.children_left, tree.children_right
    ids = np.arange(tree.node_count)
    split = left != -1
    if np.array_equal(left[split], ids[split] + 1):
        return ids
    order, stack = [], [0]
    while stack:
        i = stack.pop()
        order.append(i)
        if left[i] != -1:
            stack.append(right[i])
            stack.append(left[i])
    return np.asarray(order, dtype=np.int64)


def _tree_records(tree, leaf_scalar: np.ndarray | None, first_leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """Records for one tree and the node ids of its leaves (in record order)."""
    from coldbrew.format import NODE_DTYPE

    order = _preorder(tree)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    left, right = tree.children_left[order], tree.children_right[order]
    split = left != -1
    rec = np.zeros(len(order), dtype=NODE_DTYPE)
    rec["feature"] = np.where(split, tree.feature[order], -1)
    leaves = order[~split]
    if leaf_scalar is None:  # vector leaves: point at rows of leaf_values
        rec["value"] = np.where(split, tree.threshold[order], 0.0)
        leaf_rows = np.zeros(len(order), dtype=np.int64)
        leaf_rows[~split] = first_leaf + np.arange(len(leaves))
        rec["right"] = np.where(split, position[np.where(split, right, 0)], leaf_rows)
    else:
        rec["value"] = np.where(split, tree.threshold[order], leaf_scalar[order])
        rec["right"] = np.where(split, position[np.where(split, right, 0)], 0)
    return rec, leaves


def _gbm_base_score(est) -> np.ndarray:
    init = est.init_
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in (
        "DummyClassifier",
        "DummyRegressor",
    ):
        raise UnsupportedModelError(
            f"cannot compile a {type(est).__name__} whose init is a {type(init).__name__}: only the default "
            "prior (DummyClassifier/DummyRegressor) or init='zero' give a constant starting score"
        )
    row = np.zeros((1, est.n_features_in_), dtype=np.float32)
    return np.asarray(est._raw_predict_init(row), dtype=np.float64)[0]


def describe(est) -> tuple[dict, list, dict]:
    """Header fields, the list of trees (in accumulation order) and how to read their leaves."""
    name = _check_supported(est)
    is_clf = hasattr(est, "classes_")
    header: dict[str, Any] = {  # the JSON header: values of every JSON type
        "n_features": int(est.n_features_in_),
        "feature_names": [str(n) for n in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
        "classes": None,
        "classes_dtype": None,
        "learning_rate": None,
        "leaf_values_scaled": False,
        "source": {"estimator": name, "sklearn_version": _sklearn_version()},
    }
    if is_clf:
        header["classes"] = est.classes_.tolist()
        header["classes_dtype"] = est.classes_.dtype.str
    header.update(
        task=("binary" if len(est.classes_) == 2 else "multiclass") if is_clf else "regression",
        feature_missing=None,  # version 1 kinds refuse NaN
        feature_categorical=None,
    )
    scale = 1.0
    if name.startswith("GradientBoosting"):
        trees = list(est.estimators_.ravel())  # stage-major: tree t is stage t // K, output t % K
        base = _gbm_base_score(est)
        scale = float(est.learning_rate)
        header.update(
            kind="gbm_classifier" if is_clf else "gbm_regressor",
            n_outputs=int(est.estimators_.shape[1]),
            leaf="scalar",
            combine="sum",
            learning_rate=scale,
            leaf_values_scaled=True,
        )
        header["source"].update(loss=est.loss, init="zero" if isinstance(est.init_, str) else type(est.init_).__name__)
        if not is_clf:
            header["output"] = "identity"
        elif len(est.classes_) > 2:
            header["output"] = "softmax"
        elif est.loss == "exponential":
            header["output"] = "logistic2"
        else:
            header["output"] = "logistic"
    else:
        single = name.startswith("DecisionTree")
        trees = [est] if single else list(est.estimators_)
        prefix = "tree" if single else "forest"
        n_out = len(est.classes_) if is_clf else 1
        base = np.zeros(n_out)
        header.update(
            kind=f"{prefix}_{'classifier' if is_clf else 'regressor'}",
            n_outputs=n_out,
            leaf="vector" if is_clf else "scalar",
            combine="mean",
            output="proba" if is_clf else "identity",
        )
    return header, trees, {"base": base, "scale": scale}


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def to_arrays(est, *, progress: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """The .brew header fields and arrays for a fitted estimator."""
    from tqdm import tqdm

    from coldbrew.format import NODE_DTYPE

    header, trees, how = describe(est)
    vector = header["leaf"] == "vector"
    K = header["n_outputs"]
    counts = np.array([t.tree_.node_count for t in trees], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nodes = np.empty(int(offsets[-1]), dtype=NODE_DTYPE)
    leaf_rows, n_leaves, max_depth = [], 0, 0
    show = progress and len(trees) >= _PROGRESS_MIN_TREES
    for t, tree_est in enumerate(tqdm(trees, unit="tree", desc="compiling", disable=not show)):
        tree = tree_est.tree_
        scalar = None if vector else how["scale"] * tree.value[:, 0, 0]
        rec, leaves = _tree_records(tree, scalar, n_leaves)
        nodes[offsets[t] : offsets[t + 1]] = rec
        if vector:
            leaf_rows.append(tree.value[leaves, 0, :K])
        n_leaves += len(leaves)
        max_depth = max(max_depth, int(tree.max_depth))
    header.update(n_trees=len(trees), n_nodes=int(offsets[-1]), n_leaves=n_leaves, max_depth=max_depth)
    arrays = {"nodes": nodes, "tree_offsets": offsets, "base_score": np.asarray(how["base"], dtype=np.float64)}
    if vector:
        arrays["leaf_values"] = np.ascontiguousarray(np.concatenate(leaf_rows), dtype=np.float64)
    return header, arrays


def probe_rows(est, n: int = 64, seed: int = 0) -> np.ndarray:
    """Rows whose values sit exactly on, just below and just above the model's own thresholds."""
    rng = np.random.default_rng(seed)
    trees = [t.tree_ for t in np.asarray(getattr(est, "estimators_", [est]), dtype=object).ravel()]
    picks = rng.choice(len(trees), size=min(len(trees), 32), replace=False)
    cols: list[list[float]] = [[] for _ in range(est.n_features_in_)]
    for i in picks:
        tr = trees[i]
        split = tr.children_left != -1
        for f, thr in zip(tr.feature[split], tr.threshold[split], strict=True):
            t32 = np.float32(thr)
            cols[f].extend(
                [
                    float(t32),
                    float(np.nextafter(t32, np.float32(-np.inf))),
                    float(np.nextafter(t32, np.float32(np.inf))),
                ]
            )
    X = rng.normal(size=(n, est.n_features_in_)) * 1e3
    for f, values in enumerate(cols):
        if values:
            X[:, f] = rng.choice(values, size=n)
    return X


def compile_model(
    src: str | os.PathLike, dst: str | os.PathLike, *, progress: bool = True, class_labels: list[str] | None = None
) -> dict:
    """Compile the scikit-learn estimator pickled at ``src`` into the .brew file ``dst``, checked bit for bit.

    Unpickling runs code from ``src``: compile only your own models.

    Args:
        src: a pickle or joblib file of a fitted tree ensemble (``GradientBoosting*``, ``RandomForest*``,
            ``ExtraTrees*``, ``DecisionTree*``, ``HistGradientBoosting*``).
        dst: the .brew file to write (atomically; its folder is created).
        progress: show a progress bar while the trees are converted.
        class_labels: one distinct string per class, in ``classes_`` order: the header's ``class_labels``, what
            the served API answers instead of ``str()`` of each class (docs/serving.md).

    Returns:
        Statistics: ``src``, ``dst``, ``estimator``, ``kind``, ``n_trees``, ``n_nodes``, ``max_depth``,
        ``input_bytes``, ``output_bytes``, ``seconds`` and ``checked_rows``.

    Raises:
        ModelFormatError: ``src`` is not a loadable pickle, or the written file does not reproduce scikit-learn's
            predictions on probe rows (the file is removed).
        UnsupportedModelError: the estimator is one .brew cannot represent, or ``class_labels`` do not fit it
            (nothing written).
    """
    from coldbrew.engine.pickled import load_estimator

    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    est = load_estimator(src)
    stats = compile_estimator(est, dst, progress=progress, class_labels=class_labels)
    stats.update(src=str(src), input_bytes=src.stat().st_size, seconds=time.perf_counter() - started)
    return stats


def compile_estimator(
    est, dst: str | os.PathLike, *, progress: bool = True, class_labels: list[str] | None = None
) -> dict:
    """Compile a fitted scikit-learn estimator object into ``dst``; returns statistics (see ``compile_model``)."""
    import warnings

    from coldbrew.engine.brew import BrewPredictor

    if (
        type(est).__name__ not in HGB_SUPPORTED
        and not _is_bagging(est)
        and not _is_isolation(est)
        and not _is_voting(est)
        and not _is_calibrated(est)
    ):
        _check_supported(est, multi_output=True)
    if "n_jobs" in est.get_params(deep=False) and est.n_jobs not in (None, 1):
        # A forest's predict_proba with n_jobs > 1 sums the trees in whatever order its threads finish, so its
        # own answer is not repeatable; .brew sums in tree order, which is what n_jobs=1 computes.
        est.set_params(n_jobs=1)
    started = time.perf_counter()
    dst = Path(dst)
    if type(est).__name__ in HGB_SUPPORTED and type(est).__module__.startswith("sklearn."):
        return _compile_hgb(est, dst, class_labels, started)
    if routes_missing(est) or _is_bagging(est) or _is_isolation(est) or _is_voting(est) or _is_calibrated(est):
        return _compile_forest_v2(est, dst, class_labels, started)
    header, arrays = to_arrays(est, progress=progress)
    set_class_labels(header, class_labels)
    header["created_by"] = f"coldbrew {_coldbrew_version()}"
    X = probe_rows(est)

    def check(path: Path) -> None:
        predictor = BrewPredictor(path, verify=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            if predictor.is_classifier:
                ok = np.array_equal(predictor.predict_proba(X), est.predict_proba(X))
            else:
                ok = np.array_equal(predictor.predict(X), est.predict(X))
        if not ok:
            raise ModelFormatError(f"{dst}: compiled predictions differ from scikit-learn's; nothing written")

    size = tb.write_staged(dst, header, arrays, check)
    return tb.compile_stats(
        dst, header, what=type(est).__name__, size=size, started=started, checked=len(X), reference="scikit-learn"
    )


def _compile_hgb(est, dst: Path, class_labels, started: float) -> dict:
    header, arrays = hgb_to_arrays(est)
    return _finish_v2(est, dst, header, arrays, hgb_probe_rows(est), class_labels, started)


def _finish_v2(est, dst: Path, header: dict, arrays: dict, X: np.ndarray, class_labels, started: float) -> dict:
    """Label, stamp, write and check a version 2/3 file against ``est``'s own predict (and predict_proba)."""
    import warnings

    set_class_labels(header, class_labels)
    header["created_by"] = f"coldbrew {_coldbrew_version()}"
    is_clf = header["classes"] is not None
    if header.get("inputs") is not None:
        from coldbrew.convert.staging import finish_by_name

        return finish_by_name(est, dst, header, arrays, started, what=type(est).__name__, reference="scikit-learn")

    def reference(rows):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return (est.predict_proba(rows) if is_clf and hasattr(est, "predict_proba") else None), est.predict(rows)

    def check(path: Path) -> None:
        tb.check_compiled(path, reference, X, classifier=is_clf, label=dst)
        if header["kind"] == "isolation_forest":
            _check_scores(path, est, X, label=dst)
        if header.get("input_missing") == "refuse":
            _check_refuses_nan(path, X[:1], label=dst)

    size = tb.write_staged(dst, header, arrays, check)
    return tb.compile_stats(
        dst, header, what=type(est).__name__, size=size, started=started, checked=len(X), reference="scikit-learn"
    )


def _check_refuses_nan(path: Path, row: np.ndarray, *, label: Path) -> None:
    """A NaN input is an input error on every kernel, numpy and lists in, as scikit-learn's GradientBoosting
    refuses it (``input_missing = "refuse"``)."""
    from coldbrew.engine.brew import KERNELS, BrewPredictor
    from coldbrew.engine.inputs import InvalidInputError

    X = np.array(row, dtype=np.float64)
    X[0, -1] = np.nan
    for kernel in KERNELS:
        predictor = BrewPredictor(path, kernel=kernel)
        for given in (X, [[None if v != v else v for v in X[0].tolist()]]):
            try:
                predictor.predict(given)
            except InvalidInputError:
                continue
            raise ModelFormatError(f"{label}: a NaN input was answered ({kernel} kernel), scikit-learn refuses it")


def _coldbrew_version() -> str:
    from coldbrew import __version__

    return __version__


# ---- HistGradientBoostingClassifier / HistGradientBoostingRegressor: format version 2 -------------------------

HGB_SUPPORTED = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
#: How HistGradientBoosting's predict evaluates a model: float64 inputs and sums, x <= threshold goes left.
HGB_EVALUATION = tb.summed_scalar_leaves("float64", "le")


def hgb_to_arrays(est) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays (format version 2) for a fitted HistGradientBoosting model.

    Reproduces ``_predictor.pyx``: X as float64, ``x <= num_threshold`` (float64), NaN to the node's
    ``missing_go_to_left`` side, categorical splits through the fitted OrdinalEncoder (unknown or non-integer
    values follow the missing side), leaves summed per class in float64 on top of ``_baseline_prediction``.
    """

    name = type(est).__name__
    if not hasattr(est, "_predictors"):
        raise tb.UnsupportedModelError(f"the {name} is not fitted")
    is_clf = hasattr(est, "classes_")
    loss = type(est._loss).__name__
    link = type(est._loss.link).__name__
    if not is_clf and link not in ("IdentityLink", "LogLink"):
        raise tb.UnsupportedModelError(
            f"cannot compile a scikit-learn {name} with loss={est.loss!r}: its {link} output transform is not "
            "supported (supported links: identity for squared_error, absolute_error, quantile; log for poisson, gamma)"
        )
    K = int(est.n_trees_per_iteration_)
    n_features = int(est.n_features_in_)
    column_of, categories = _hgb_columns(est, n_features)
    trees, groups = [], []
    for iteration in est._predictors:
        for k, predictor in enumerate(iteration):
            trees.append(_hgb_tree(predictor, column_of, categories))
            groups.append(k)
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    if is_clf:
        binary = K == 1
        # predict_proba's softmax sums each row of a Fortran-ordered matrix: left to right (softmax_np_seq)
        output, decision = ("logistic", "raw_gt0") if binary else ("softmax_np_seq", "argmax_raw")
        task = "binary" if binary else "multiclass"
    else:
        output = "exp_np" if link == "LogLink" else "identity"  # LogLink.inverse is numpy's exp
        decision, task = "value", "regression"
    cat_cols = sorted({int(column_of[f]) for f in categories})
    header = {
        "kind": "hgb_classifier" if is_clf else "hgb_regressor",
        "n_features": n_features,
        "feature_names": [str(n) for n in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
        "classes": est.classes_.tolist() if is_clf else None,
        "classes_dtype": est.classes_.dtype.str if is_clf else None,
        "n_outputs": K,
        **HGB_EVALUATION,
        "output": output,
        "decision": decision,
        "learning_rate": float(est.learning_rate),
        "task": task,
        "feature_missing": [True] * n_features,
        "feature_categorical": [i in cat_cols for i in range(n_features)] if cat_cols else None,
        "source": {"estimator": name, "sklearn_version": _sklearn_version(), "loss": loss, "n_iter": int(est.n_iter_)},
        **counts,
    }
    names = _hgb_names(est)
    if names:  # categories by name (format version 3): unknown and missing names are NaN, the missing side
        from coldbrew.convert.names import by_name_stage

        header["inputs"] = by_name_stage(header["feature_names"], n_features, names, unknown=None, missing=None)
    if is_clf and not _plain_classes(est.classes_):
        raise tb.UnsupportedModelError(f"cannot compile a {name} whose classes have dtype {est.classes_.dtype}")
    return header, arrays


def _hgb_columns(est, n_features: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Map from the predictors' (remapped) feature index to the input column, and each categorical feature's
    OrdinalEncoder categories (keyed by remapped index)."""

    pre = getattr(est, "_preprocessor", None)
    if pre is None:
        return np.arange(n_features), {}
    is_cat = np.asarray(est.is_categorical_, dtype=bool)
    column_of = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)])
    enc_slice = pre.output_indices_["encoder"]
    if enc_slice.start != 0 or enc_slice.stop != is_cat.sum():
        raise tb.UnsupportedModelError(
            "unexpected HistGradientBoosting preprocessor layout (categorical columns first)"
        )
    cats = {}
    for j, values in enumerate(pre.named_transformers_["encoder"].categories_):
        values = np.asarray(values)
        if values.dtype.kind not in "iuf":
            names = [v for v in values.tolist() if not (isinstance(v, float) and v != v)]
            if not all(isinstance(v, str) for v in names):
                raise tb.UnsupportedModelError(
                    f"cannot compile a scikit-learn HistGradientBoosting categorical feature with {values.dtype} "
                    f"categories (column {column_of[j]}): categories must be all numbers or all strings"
                )
            # categories by name: the input stage maps each name to its index, the code the trees split on
            cats[j] = np.arange(len(names), dtype=np.float64)
            continue
        values = values.astype(np.float64)
        values = values[~np.isnan(values)]
        if np.any(values < 0) or np.any(values != np.floor(values)) or np.any(values >= 1 << 16):
            raise tb.UnsupportedModelError(
                f"cannot compile categorical column {column_of[j]}: its categories must be integers in [0, 65536)"
            )
        cats[j] = values
    return column_of, cats


def _plain_classes(classes: np.ndarray) -> bool:
    """Class labels a header can hold exactly: numbers, bools, fixed-width strings, or an object array of strings
    (pandas 3 string columns give one: the labels are written as ``|O`` strings)."""
    if classes.dtype.kind in "biufU":
        return True
    return classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes.tolist())


def _hgb_names(est) -> dict[int, list[str]]:
    """Input column -> category names, for the categorical features HistGradientBoosting knows by name (strings:
    a pandas category or string column); its OrdinalEncoder sends unknown and missing names to NaN."""
    pre = getattr(est, "_preprocessor", None)
    if pre is None:
        return {}
    is_cat = np.asarray(est.is_categorical_, dtype=bool)
    out = {}
    for j, values in enumerate(pre.named_transformers_["encoder"].categories_):
        values = np.asarray(values)
        if values.dtype.kind not in "iuf":
            out[int(np.flatnonzero(is_cat)[j])] = [v for v in values.tolist() if isinstance(v, str)]
    return out


def _hgb_tree(predictor, column_of: np.ndarray, categories: dict[int, np.ndarray]):
    from coldbrew.format import spec

    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    feature = column_of[nodes["feature_idx"].astype(np.int64)]
    value = np.where(leaf, nodes["value"], nodes["num_threshold"]).astype(np.float64)
    go_left = nodes["missing_go_to_left"].astype(bool)
    flags = np.where(go_left, spec.FLAG_DEFAULT_LEFT, 0).astype(np.uint8)
    cats = {}
    for i in np.flatnonzero(~leaf & nodes["is_categorical"].astype(bool)):
        f = int(nodes["feature_idx"][i])
        raw_values = categories[f]
        row = predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]]
        n_bits = int(raw_values.max()) + 1 if len(raw_values) else 1
        words = tb.bitset_words([], n_bits)
        if go_left[i]:  # unknown integer values follow the missing side
            words[:] = np.uint32(0xFFFFFFFF)
        for code, raw in enumerate(raw_values.astype(np.int64)):
            in_left = (int(row[code // 32]) >> (code % 32)) & 1
            bit = np.uint32(1) << np.uint32(raw % 32)
            words[raw // 32] = (words[raw // 32] | bit) if in_left else (words[raw // 32] & ~bit)
        cats[int(i)] = words
        flags[i] = tb.flags(
            default_left=bool(go_left[i]), categorical=True, cat_mode=spec.CAT_EXACT, outside_left=bool(go_left[i])
        )
    return tb.Tree(left=left, right=right, feature=feature, value=value, flags=flags, cats=cats)


def hgb_probe_rows(est, n: int = 96) -> np.ndarray:
    """Rows on the model's thresholds, with NaNs, zeros and (for categorical features) valid and invalid codes."""

    column_of, categories = _hgb_columns(est, int(est.n_features_in_))
    thresholds: dict[int, list[float]] = {}
    for iteration in est._predictors[:32]:
        for predictor in iteration:
            nodes = predictor.nodes
            split = ~nodes["is_leaf"].astype(bool) & ~nodes["is_categorical"].astype(bool)
            for f, t in zip(nodes["feature_idx"][split], nodes["num_threshold"][split], strict=True):
                thresholds.setdefault(int(column_of[f]), []).append(float(t))
    cat = {int(column_of[j]): int(v.max()) + 1 if len(v) else 1 for j, v in categories.items()}
    return tb.probe_rows(thresholds, int(est.n_features_in_), n=n, categorical=cat)


# ---- RandomForest / ExtraTrees / DecisionTree with missing-value routing: format version 2 (section 11) ---------

#: How a scikit-learn tree evaluates: X cast to float32, ``x <= threshold`` in float64, NaN to the node's
#: ``missing_go_to_left`` side, float64 sums.
FOREST_EVALUATION = tb.summed_scalar_leaves("float32", "le") | {"accumulate": "float64"}


def routes_missing(est) -> bool:
    """True for a forest or tree whose ``predict`` accepts NaN (scikit-learn >= 1.4 with a splitter and criterion
    that support missing values): it is compiled as format version 2 with each node's ``missing_go_to_left``."""
    name = type(est).__name__
    if not type(est).__module__.startswith("sklearn.") or name.startswith("GradientBoosting") or name not in SUPPORTED:
        return False
    _check_supported(est, multi_output=True)
    first = est if name.startswith("DecisionTree") else est.estimators_[0]
    if not hasattr(first.tree_, "missing_go_to_left"):
        return False
    try:
        return bool(first.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        return False


#: Bagging meta-estimators compiled as forests when their members are scikit-learn trees that route NaN.
BAGGING = ("BaggingClassifier", "BaggingRegressor")
_BAGGABLE = ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor")


def _is_bagging(est) -> bool:
    return type(est).__name__ in BAGGING and type(est).__module__.startswith("sklearn.")


def _tree_members(est) -> tuple[str, list[tuple[Any, np.ndarray, dict[int, int]]]]:
    """The estimator's name and its trees: (tree estimator, input column of each of its features, its class
    index -> column of the model's classes). A forest's trees read every column; a bagged tree reads
    ``estimators_features_`` (it is fitted on ``X[:, features]``) and may have seen only some classes."""
    if not _is_bagging(est):
        name = _check_supported(est, multi_output=True)
        trees = [est] if name.startswith("DecisionTree") else list(est.estimators_)
        all_columns = np.arange(int(est.n_features_in_))
        identity = {k: k for k in range(len(getattr(est, "classes_", [])))}
        return name, [(t, all_columns, identity) for t in trees]
    name = type(est).__name__
    if not hasattr(est, "estimators_"):
        raise UnsupportedModelError(f"the scikit-learn {name} is not fitted")
    members = []
    for member, features in zip(est.estimators_, est.estimators_features_, strict=True):
        kind = type(member).__name__
        tags = member.__sklearn_tags__().input_tags
        if kind not in _BAGGABLE or not type(member).__module__.startswith("sklearn.") or not tags.allow_nan:
            raise UnsupportedModelError(
                f"cannot compile a scikit-learn {name} of {kind}: only bagged decision/extra trees that accept "
                "missing values compile"
            )
        if getattr(member, "n_outputs_", 1) != 1:
            raise UnsupportedModelError(f"cannot compile a multi-output scikit-learn {name}")
        classes = {int(c): j for j, c in enumerate(getattr(member, "classes_", []))}
        members.append((member, np.asarray(features, dtype=np.int64), classes))
    return name, members


def forest_to_arrays(est) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays (format version 2) for a RandomForest / ExtraTrees / DecisionTree.

    Reproduces ``tree._apply_dense``: float32 input, NaN to ``missing_go_to_left``, ``x <= threshold`` else right.
    A classifier's leaf vectors become one scalar-leaf copy of each tree per class (tree ``t``, class ``k`` adds
    to output ``k``), so every class sums its trees in tree order, as ``all_proba += tree.predict_proba(X)`` does;
    a forest then divides by its number of trees (``combine = "mean"``), a single tree does not.
    """
    name, members = _tree_members(est)
    is_clf = hasattr(est, "classes_")
    single = name.startswith("DecisionTree")
    K = len(est.classes_) if is_clf else int(getattr(est, "n_outputs_", 1))  # multi-output: a group per output
    trees, groups = _forest_trees(members, is_clf, K)
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = np.zeros(K, dtype=np.float64)
    n_features = int(est.n_features_in_)
    header = {
        "kind": f"{'tree' if single else 'forest'}_{'classifier' if is_clf else 'regressor'}",
        "n_features": n_features,
        "feature_names": [str(n) for n in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
        "classes": est.classes_.tolist() if is_clf else None,
        "classes_dtype": est.classes_.dtype.str if is_clf else None,
        "n_outputs": K,
        **FOREST_EVALUATION,
        "combine": "sum" if single else "mean",
        "output": "proba" if is_clf else "identity",
        "decision": "argmax_proba" if is_clf else "value",
        "learning_rate": None,
        "task": ("binary" if K == 2 else "multiclass") if is_clf else "regression",
        "feature_missing": [True] * n_features,
        "feature_categorical": None,
        "source": {"estimator": name, "sklearn_version": _sklearn_version(), "n_estimators": len(members)},
        **counts,
    }
    if is_clf and not _plain_classes(est.classes_):
        raise tb.UnsupportedModelError(
            f"cannot compile a scikit-learn {name} whose classes have dtype {est.classes_.dtype}"
        )
    return header, arrays


def _routed_structure(tree, columns: np.ndarray):
    """A scikit-learn tree's children, leaf mask, DEFAULT_LEFT flags (``missing_go_to_left``) and split features
    as input columns (``columns[feature]``; -1 at leaves)."""
    left = tree.children_left.astype(np.int64)
    right = tree.children_right.astype(np.int64)
    leaf = left == -1
    go_left = np.asarray(tree.missing_go_to_left).astype(bool)
    flags = np.where(~leaf & go_left, 1, 0).astype(np.uint8)
    feature = np.where(leaf, -1, columns[np.where(leaf, 0, tree.feature)]).astype(np.int64)
    return left, right, leaf, flags, feature


def _forest_trees(members: list, is_clf: bool, K: int, group0: int = 0) -> tuple[list[tb.Tree], list[int]]:
    """The scalar-leaf trees of a forest's ``members`` (``_tree_members``): one copy of each tree per output,
    tree-major, adding to groups ``group0 .. group0 + K - 1``."""
    trees, groups = [], []
    for tree_est, columns, class_of in members:
        tree = tree_est.tree_
        left, right, leaf, flags, feature = _routed_structure(tree, columns)
        for k in range(K):
            if is_clf:  # a bagged tree may have seen fewer classes: the others get 0.0 (x + 0.0 == x)
                j = class_of.get(k)
                leaf_values = tree.value[:, 0, j] if j is not None else np.zeros(len(left))
            else:
                leaf_values = tree.value[:, k, 0]
            value = np.where(leaf, leaf_values, tree.threshold).astype(np.float64)
            trees.append(tb.Tree(left=left, right=right, feature=feature, value=value, flags=flags))
            groups.append(group0 + k)
    return trees, groups


def _compile_forest_v2(est, dst: Path, class_labels, started: float) -> dict:
    if _is_isolation(est):
        header, arrays = isolation_to_arrays(est)
    elif _is_calibrated(est):
        header, arrays = calibrated_to_arrays(est)
    else:
        header, arrays = voting_to_arrays(est) if _is_voting(est) else forest_to_arrays(est)
    X = tb.probe_rows_from_arrays(header, arrays, n=128, dtype=np.float32)
    if header.get("input_missing") == "refuse":  # GradientBoosting members refuse NaN: probe without (_finish_v2)
        X = np.nan_to_num(X, nan=0.0)
    return _finish_v2(est, dst, header, arrays, X, class_labels, started)


# ---- classic GradientBoosting in the version 2 layout: with an input stage or as a member (section 13.5) -------

#: How classic GradientBoosting's predict evaluates: X cast to float32 (NaN refused), ``x <= threshold`` in float64,
#: float64 sums of the learning-rate scaled leaves on top of the init estimator's raw prediction.
GBM_EVALUATION = FOREST_EVALUATION | {"input_missing": "refuse"}


def _is_gbm(est) -> bool:
    return type(est).__name__ in ("GradientBoostingClassifier", "GradientBoostingRegressor") and _is_sklearn(est)


def gbm_trees(est, columns: list[int], group0: int = 0) -> tuple[list[tb.Tree], list[int]]:
    """A GradientBoosting model's trees, stage-major (stage ``i``, output ``k`` adds to ``group0 + columns[k]``),
    each leaf ``learning_rate * value`` (the product ``predict_stages`` computes per tree, rounded once)."""
    scale = float(est.learning_rate)
    trees, groups = [], []
    for stage in est.estimators_:
        for k, tree_est in enumerate(stage):
            tree = tree_est.tree_
            left = tree.children_left.astype(np.int64)
            right = tree.children_right.astype(np.int64)
            leaf = left == -1
            feature = np.where(leaf, -1, tree.feature).astype(np.int64)
            value = np.where(leaf, scale * tree.value[:, 0, 0], tree.threshold).astype(np.float64)
            flags = np.zeros(len(left), dtype=np.uint8)  # no missing-value routing: NaN never reaches a tree
            trees.append(tb.Tree(left=left, right=right, feature=feature, value=value, flags=flags))
            groups.append(group0 + columns[k])
    return trees, groups


def gbm_to_arrays(est) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays (format version 3, section 13.5) for a classic GradientBoosting model: its version 1
    arithmetic (``describe``) in the version 2 layout, which an input stage needs."""
    header, _, how = describe(est)
    K = header["n_outputs"]
    trees, groups = gbm_trees(est, list(range(K)))
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = np.asarray(how["base"], dtype=np.float64).reshape(K)
    output = header["output"]
    decision = {"logistic": "raw_ge0", "logistic2": "raw_ge0", "softmax": "argmax_raw", "identity": "value"}[output]
    for key in ("n_trees", "n_nodes", "n_leaves", "max_depth"):
        header.pop(key, None)
    header.update(GBM_EVALUATION, decision=decision, feature_missing=None, **counts)
    if header["classes"] is not None and not _plain_classes(est.classes_):
        raise UnsupportedModelError(
            f"cannot compile a {type(est).__name__} whose classes have dtype {est.classes_.dtype}"
        )
    return header, arrays


# ---- IsolationForest: format version 3 (docs/format.md section 13) ---------------------------------------------


def _is_isolation(est) -> bool:
    return type(est).__name__ == "IsolationForest" and type(est).__module__.startswith("sklearn.")


def isolation_to_arrays(est) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays (format version 3) for a fitted IsolationForest.

    ``_compute_score_samples`` adds, tree by tree in float64, ``decision_path_length[leaf] +
    average_path_length[leaf] - 1.0`` for the leaf each row reaches; that sum is computed here per leaf with the
    forest's own arrays (the same float64 operations in the same order), so each leaf's value is its term. The
    trees are walked as ``tree.apply`` walks them (float32 input, NaN to ``missing_go_to_left``). The score,
    ``-(2 ** -(depths / denominator))``, is numpy's (section 13), ``decision_function`` subtracts ``offset_``.
    """
    from sklearn.ensemble._iforest import _average_path_length

    if not hasattr(est, "estimators_"):
        raise UnsupportedModelError("the scikit-learn IsolationForest is not fitted")
    n_features = int(est.n_features_in_)
    subsample = est._max_features != n_features  # as _compute_chunked_score_samples decides
    trees = []
    for tree_est, features, paths, averages in zip(
        est.estimators_,
        est.estimators_features_,
        est._decision_path_lengths,
        est._average_path_length_per_tree,
        strict=True,
    ):
        tree = tree_est.tree_
        if not hasattr(tree, "missing_go_to_left"):
            raise UnsupportedModelError(
                "cannot compile a scikit-learn IsolationForest from scikit-learn < 1.4 (no missing-value routing)"
            )
        columns = np.asarray(features, dtype=np.int64) if subsample else np.arange(n_features)
        left, right, leaf, flags, feature = _routed_structure(tree, columns)
        term = np.asarray(paths, dtype=np.float64) + np.asarray(averages, dtype=np.float64) - 1.0
        value = np.where(leaf, term, tree.threshold).astype(np.float64)
        trees.append(tb.Tree(left=left, right=right, feature=feature, value=value, flags=flags))
    counts, arrays = tb.build(trees, [0] * len(trees))
    arrays["base_score"] = np.zeros(1, dtype=np.float64)
    denominator = len(est.estimators_) * _average_path_length([est._max_samples])
    header = {
        "kind": "isolation_forest",
        "n_features": n_features,
        "feature_names": [str(n) for n in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
        "classes": None,
        "classes_dtype": None,
        "n_outputs": 1,
        **FOREST_EVALUATION,
        "output": "isolation_np",
        "decision": "anomaly_sign",
        "score_denominator": float(denominator[0]),
        "score_offset": float(est.offset_),
        "learning_rate": None,
        "task": "anomaly",
        "feature_missing": [True] * n_features,
        "feature_categorical": None,
        "source": {"estimator": "IsolationForest", "sklearn_version": _sklearn_version(), "n_estimators": len(trees)},
        **counts,
    }
    return header, arrays


def _check_scores(path: Path, est, X: np.ndarray, *, label: Path) -> None:
    """``score_samples`` and ``decision_function`` bit-exact on every kernel, numpy and lists in (else removed)."""
    import warnings

    from coldbrew.engine.brew import KERNELS, BrewPredictor

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        want = {"score_samples": est.score_samples(X), "decision_function": est.decision_function(X)}
    rows = [[None if v != v else v for v in row] for row in X.tolist()]
    for kernel in KERNELS:
        predictor = BrewPredictor(path, kernel=kernel)
        for method, ref in want.items():
            got = getattr(predictor, method)(X)
            listed = getattr(predictor, method)(rows)
            if not (got.dtype == ref.dtype and np.array_equal(got, ref) and listed == ref.tolist()):
                raise ModelFormatError(f"{label}: compiled {method} differs from scikit-learn's ({kernel} kernel)")


# ---- VotingClassifier (soft) / VotingRegressor of scikit-learn forests and trees: format version 3 (section 13) --

VOTING = ("VotingClassifier", "VotingRegressor")


def _is_voting(est) -> bool:
    return type(est).__name__ in VOTING and type(est).__module__.startswith("sklearn.")


def voting_to_arrays(est) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays (format version 3) for a VotingClassifier (soft) or VotingRegressor whose members
    are RandomForest / ExtraTrees / DecisionTree models that route missing values (section 11).

    Member ``m``'s trees add to outputs ``m*K .. m*K + K - 1`` (as a forest's would, section 11); ``predict_proba``
    / ``predict`` then divide each member's sums by its tree count and take ``np.average`` over the members with
    the fitted ``weights`` (``coldbrew.engine.members.vote``).
    """
    name = type(est).__name__
    if not hasattr(est, "estimators_"):
        raise UnsupportedModelError(f"the scikit-learn {name} is not fitted")
    is_clf = name == "VotingClassifier"
    hard = is_clf and est.voting == "hard"
    if hard and any(w < 0 for w in est._weights_not_none or ()):
        raise UnsupportedModelError(f"cannot compile a scikit-learn {name} with voting='hard' and negative weights")
    K = len(est.classes_) if is_clf else 1
    trees: list[tb.Tree] = []
    groups: list[int] = []
    divisors = []
    for m, member in enumerate(est.estimators_):
        _check_member(name, member)
        if is_clf and len(member.classes_) != K:
            raise UnsupportedModelError(f"cannot compile a scikit-learn {name}: a member saw fewer classes")
        member_name, members = _tree_members(member)
        member_trees, member_groups = _forest_trees(members, is_clf, K, group0=m * K)
        trees += member_trees
        groups += member_groups
        divisors.append(0 if member_name.startswith("DecisionTree") else len(members))
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = np.zeros(K * len(divisors), dtype=np.float64)
    weights = est._weights_not_none
    n_features = int(est.n_features_in_)
    header = {
        "kind": "voting_classifier" if is_clf else "voting_regressor",
        "n_features": n_features,
        "feature_names": [str(n) for n in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
        "classes": est.classes_.tolist() if is_clf else None,
        "classes_dtype": est.classes_.dtype.str if is_clf else None,
        "n_outputs": K * len(divisors),
        **FOREST_EVALUATION,
        "combine": "vote",
        "output": ("vote_hard" if hard else "vote_proba") if is_clf else "vote_mean",
        "decision": ("vote_hard" if hard else "argmax_proba") if is_clf else "value",
        "member_divisors": divisors,
        "member_weights": None if weights is None else [float(w) for w in weights],
        "learning_rate": None,
        "task": ("binary" if K == 2 else "multiclass") if is_clf else "regression",
        "feature_missing": [True] * n_features,
        "feature_categorical": None,
        "source": {"estimator": name, "sklearn_version": _sklearn_version(), "n_estimators": len(divisors)},
        **counts,
    }
    if is_clf and est.classes_.dtype.kind not in "biufU":
        raise UnsupportedModelError(
            f"cannot compile a scikit-learn {name} whose classes have dtype {est.classes_.dtype}"
        )
    return header, arrays


def _check_member(name: str, member) -> None:
    """A meta-estimator's member must be a single-output forest or tree that routes missing values."""
    kind = type(member).__name__
    if kind not in SUPPORTED or kind.startswith("GradientBoosting") or not routes_missing(member):
        raise UnsupportedModelError(
            f"cannot compile a scikit-learn {name} with a {kind} member: only RandomForest, ExtraTrees and "
            "DecisionTree members compile"
        )
    if getattr(member, "n_outputs_", 1) != 1:
        raise UnsupportedModelError(f"cannot compile a scikit-learn {name}: a member is multi-output")


# ---- CalibratedClassifierCV of scikit-learn forests and trees: format version 3 (section 13) ---------------------


def _is_calibrated(est) -> bool:
    return type(est).__name__ == "CalibratedClassifierCV" and type(est).__module__.startswith("sklearn.")


def calibrated_to_arrays(est) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays (format version 3) for a CalibratedClassifierCV (``sigmoid`` or ``isotonic``, any
    ``cv`` / ``ensemble``) whose base estimator is a RandomForest / ExtraTrees / DecisionTree classifier.

    Calibrated classifier ``m``'s base trees add to outputs ``m*K + j`` (``j``: the base estimator's class index);
    the header lists, per member, its tree count and its calibrators with their fitted numbers (sigmoid ``a_``,
    ``b_``; isotonic ``interp1d``'s own ``x``, ``y`` and the clip bounds), which ``coldbrew.engine.members.calibrate``
    applies as ``_CalibratedClassifier.predict_proba`` does.
    """
    from sklearn.isotonic import IsotonicRegression

    name = "CalibratedClassifierCV"
    if not hasattr(est, "calibrated_classifiers_"):
        raise UnsupportedModelError(f"the scikit-learn {name} is not fitted")
    if est.method not in ("sigmoid", "isotonic"):
        raise UnsupportedModelError(
            f"cannot compile a scikit-learn {name} with method={est.method!r}: sigmoid and isotonic compile"
        )
    K = len(est.classes_)
    if K > 128:
        raise UnsupportedModelError(f"cannot compile a scikit-learn {name} with more than 128 classes ({K})")
    trees: list[tb.Tree] = []
    groups: list[int] = []
    members = []
    n_features = int(est.n_features_in_)
    bases = [cc.estimator for cc in est.calibrated_classifiers_]
    bases = [getattr(b, "estimator", b) if type(b).__name__ == "FrozenEstimator" else b for b in bases]
    hgb = [type(b).__name__ == "HistGradientBoostingClassifier" and _is_sklearn(b) for b in bases]
    lgbm = [type(b).__name__ == "LGBMClassifier" and type(b).__module__.startswith("lightgbm") for b in bases]
    gbm = [type(b).__name__ == "GradientBoostingClassifier" and _is_sklearn(b) for b in bases]
    if (any(hgb) and not all(hgb)) or (any(lgbm) and not all(lgbm)) or (any(gbm) and not all(gbm)):
        raise UnsupportedModelError(f"cannot compile a scikit-learn {name} whose base estimators differ in kind")
    base_score = np.zeros(K * len(bases), dtype=np.float64)
    categorical: set[int] = set()
    for m, (cc, base) in enumerate(zip(est.calibrated_classifiers_, bases, strict=True)):
        if not hgb[m] and not lgbm[m] and not gbm[m]:
            _check_member(name, base)
        base_classes = list(base.classes_)
        index = {c: k for k, c in enumerate(est.classes_.tolist())}
        if K == 2 and len(base_classes) != 2:
            raise UnsupportedModelError(f"cannot compile a scikit-learn {name}: a base estimator saw one class")
        link = "none"
        if lgbm[m]:  # its predict_proba: LightGBM's trees, then its sigmoid or softmax (members.calibrate)
            base_name, link = "LightGBM", _lgbm_member(base, m, K, n_features, trees, groups, categorical)
        elif gbm[m]:  # its decision_function: init raw prediction plus the scaled trees (one column when binary)
            _check_supported(base)
            columns = [1] if K == 2 else list(range(len(base_classes)))
            member_trees, member_groups = gbm_trees(base, columns, group0=m * K)
            trees += member_trees
            groups += member_groups
            for k, value in enumerate(_gbm_base_score(base).reshape(-1)):
                base_score[m * K + columns[k]] = value
            base_name = "GradientBoostingClassifier"
        elif hgb[m]:  # its decision_function: the raw scores (one column when binary), baseline plus trees
            columns = [1] if K == 2 else list(range(len(base_classes)))
            column_of, categories = _hgb_columns(base, n_features)
            categorical |= {int(column_of[f]) for f in categories}
            for iteration in base._predictors:
                for k, predictor in enumerate(iteration):
                    trees.append(_hgb_tree(predictor, column_of, categories))
                    groups.append(m * K + columns[k])
            for k, value in enumerate(np.asarray(base._baseline_prediction, dtype=np.float64).reshape(-1)):
                base_score[m * K + columns[k]] = value
            base_name = "HistGradientBoostingClassifier"
        else:  # its predict_proba: each tree's class fractions summed, then divided by the tree count
            base_name, tree_members = _tree_members(base)
            member_trees, member_groups = _forest_trees(tree_members, True, len(base_classes), group0=m * K)
            trees += member_trees
            groups += member_groups
        pairs = [(1, 1)] if K == 2 else [(j, index[c]) for j, c in enumerate(np.asarray(base_classes).tolist())]
        calibrators = []
        for (column, klass), cal in zip(pairs, cc.calibrators, strict=True):
            entry: dict = {"column": column, "class": klass}
            if type(cal).__name__ == "_SigmoidCalibration":
                entry.update(method="sigmoid", a=float(cal.a_), b=float(cal.b_))
            elif isinstance(cal, IsotonicRegression) and cal.out_of_bounds == "clip" and _np_interp(cal.f_):
                f = cal.f_
                x = np.asarray(f.x if hasattr(f, "x") else cal.X_thresholds_, dtype=np.float64)
                y = np.asarray(f.y if hasattr(f, "y") else cal.y_thresholds_, dtype=np.float64).reshape(-1)
                entry.update(
                    method="isotonic", x=x.tolist(), y=y.tolist(), x_min=float(cal.X_min_), x_max=float(cal.X_max_)
                )
            else:
                raise UnsupportedModelError(f"cannot compile a scikit-learn {name} with a {type(cal).__name__}")
            calibrators.append(entry)
        single = base_name.startswith(("DecisionTree", "HistGradientBoosting", "LightGBM", "GradientBoosting"))
        member: dict = {"divisor": 0 if single else len(tree_members), "calibrators": calibrators}
        if link != "none":
            member["link"] = link
        members.append(member)
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = base_score
    header = {
        "kind": "calibrated_classifier",
        "n_features": n_features,
        "feature_names": [str(n) for n in est.feature_names_in_] if hasattr(est, "feature_names_in_") else None,
        "classes": est.classes_.tolist(),
        "classes_dtype": est.classes_.dtype.str,
        "n_outputs": K * len(members),
        **(
            HGB_EVALUATION
            if all(hgb)
            else _lgbm_evaluation()
            if all(lgbm)
            else GBM_EVALUATION
            if all(gbm)
            else FOREST_EVALUATION
        ),
        "combine": "calibrate",
        "output": "calibrated_proba",
        "decision": "argmax_proba",
        "calibrated": members,
        "learning_rate": None,
        "task": "binary" if K == 2 else "multiclass",
        "feature_missing": None if all(gbm) else [True] * n_features,  # GradientBoosting refuses NaN
        "feature_categorical": [c in categorical for c in range(n_features)] if categorical else None,
        "source": {"estimator": name, "sklearn_version": _sklearn_version(), "n_estimators": len(members)},
        **counts,
    }
    if "n_linear_coeffs" in counts:  # LightGBM linear trees: a NaN input gives the leaf's value
        header["linear_missing"] = "leaf"
    if est.classes_.dtype.kind not in "biufU":
        raise UnsupportedModelError(
            f"cannot compile a scikit-learn {name} whose classes have dtype {est.classes_.dtype}"
        )
    return header, arrays


def _lgbm_evaluation() -> dict:
    from coldbrew.convert.lightgbm import EVALUATION

    return EVALUATION


def _lgbm_member(base, m: int, K: int, n_features: int, trees: list, groups: list, categorical: set) -> str:
    """Add a fitted LGBMClassifier's trees for member ``m`` (outputs ``m*K ..``; a binary model's one raw score in
    column 1) and return what the calibrators read: ``none`` (its ``decision_function``, the raw margins, which
    scikit-learn prefers) or, without one, the link its ``predict_proba`` applies: ``logistic`` or ``softmax_seq``."""
    from coldbrew.convert import lightgbm as lgb

    where = "CalibratedClassifierCV's LGBMClassifier"
    model = lgb.parse_text(base.booster_.model_to_string(), where=where)
    header, _ = lgb.model_to_arrays(model, where=where)
    if header["output"] not in ("logistic", "softmax_seq") or header["combine"] != "sum":
        raise UnsupportedModelError(
            "cannot compile a scikit-learn CalibratedClassifierCV of an LGBMClassifier with objective "
            f"{header['source']['objective'][:60]!r} (binary and multiclass compile)"
        )
    per_round = header["n_outputs"]
    if K > 2 and per_round != K:
        raise UnsupportedModelError("cannot compile a scikit-learn CalibratedClassifierCV: a base saw fewer classes")
    for i, doc in enumerate(model["trees"]):
        tree = lgb._tree(doc, n_features, f"{where}: tree {i}")
        trees.append(tree)
        groups.append(m * K + (1 if K == 2 else i % per_round))
        categorical |= {int(tree.feature[node]) for node in tree.cats}
    if hasattr(base, "decision_function"):  # LightGBM >= 4.7: the calibrators read its raw margins
        return "none"
    return "logistic" if K == 2 else "softmax_seq"  # before: its predict_proba


def _np_interp(f) -> bool:
    """True for an isotonic calibrator's function that is ``np.interp`` (scipy's ``interp1d`` delegates to it for
    float64 points) or a constant (one point); coldbrew reproduces exactly those."""
    call = getattr(f, "_call", None)
    return getattr(call, "__name__", "") == "_call_linear_np" or not hasattr(f, "x")


def _is_sklearn(est) -> bool:
    return type(est).__module__.startswith("sklearn.")
