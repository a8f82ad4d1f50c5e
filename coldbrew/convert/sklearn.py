"""`coldbrew compile`: convert a fitted scikit-learn tree model (pickle/joblib) into a .brew file.

The conversion copies each tree's nodes into 16-byte records in pre-order (docs/format.md), pre-scales
gradient-boosting leaves by the learning rate (bit-identical, see the spec), stores the init estimator's
constant raw prediction, writes atomically, then re-reads the file: checksum, and predictions compared with
scikit-learn's bit for bit on rows built from the model's own thresholds. Nothing is written on failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from coldbrew.errors import ColdbrewError, ModelFormatError

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


class UnsupportedModelError(ColdbrewError):
    """The pickle holds an estimator type that .brew cannot represent."""


def _check_supported(est) -> str:
    name = type(est).__name__
    module = type(est).__module__
    if name not in SUPPORTED or not module.startswith("sklearn."):
        raise UnsupportedModelError(
            f"cannot compile a {module}.{name}: supported estimators are {', '.join(SUPPORTED)}"
        )
    if not hasattr(est, "n_features_in_"):
        raise UnsupportedModelError(f"the {name} is not fitted")
    if getattr(est, "n_outputs_", 1) != 1:
        raise UnsupportedModelError(f"cannot compile a multi-output {name} (n_outputs_={est.n_outputs_})")
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
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in ("DummyClassifier", "DummyRegressor"):
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
    header = {
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
    cols = [[] for _ in range(est.n_features_in_)]
    for i in picks:
        tr = trees[i]
        split = tr.children_left != -1
        for f, thr in zip(tr.feature[split], tr.threshold[split], strict=True):
            t32 = np.float32(thr)
            cols[f].extend([float(t32), float(np.nextafter(t32, np.float32(-np.inf))), float(np.nextafter(t32, np.float32(np.inf)))])
    X = rng.normal(size=(n, est.n_features_in_)) * 1e3
    for f, values in enumerate(cols):
        if values:
            X[:, f] = rng.choice(values, size=n)
    return X


def _check_class_labels(class_labels, header: dict) -> list[str]:
    classes = header["classes"]
    if classes is None:
        raise UnsupportedModelError("class labels were given, but a regressor has no classes")
    labels = list(class_labels)
    if len(labels) != len(classes) or not all(isinstance(s, str) for s in labels) or len(set(labels)) != len(labels):
        raise UnsupportedModelError(
            f"class labels must be {len(classes)} distinct strings, one per class {classes}, got {labels}"
        )
    return labels


def compile_model(
    src: str | os.PathLike, dst: str | os.PathLike, *, progress: bool = True, class_labels=None
) -> dict:
    """Compile the scikit-learn estimator pickled at ``src`` into the .brew file ``dst``, checked bit for bit.

    Args:
        src: a pickle or joblib file of a fitted tree ensemble (``GradientBoosting*``, ``RandomForest*``,
            ``ExtraTrees*``, ``DecisionTree*``).
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
    import warnings

    from coldbrew.engine.brew import BrewPredictor
    from coldbrew.engine.pickled import load_estimator
    from coldbrew.format import write_brew

    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    est = load_estimator(src)
    header, arrays = to_arrays(est, progress=progress)
    if class_labels is not None:
        header["class_labels"] = _check_class_labels(class_labels, header)
    header["created_by"] = f"coldbrew {_coldbrew_version()}"
    size = write_brew(dst, header, arrays)
    try:
        predictor = BrewPredictor(dst, verify=True)
        X = probe_rows(est)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            if predictor.is_classifier:
                ok = np.array_equal(predictor.predict_proba(X), est.predict_proba(X))
            else:
                ok = np.array_equal(predictor.predict(X), est.predict(X))
        if not ok:
            raise ModelFormatError(f"{dst}: compiled predictions differ from scikit-learn's; file removed")
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return {
        "src": str(src),
        "dst": str(dst),
        "estimator": type(est).__name__,
        "kind": header["kind"],
        "n_trees": header["n_trees"],
        "n_nodes": header["n_nodes"],
        "max_depth": header["max_depth"],
        "input_bytes": src.stat().st_size,
        "output_bytes": size,
        "seconds": time.perf_counter() - started,
        "checked_rows": len(X),
    }


def _coldbrew_version() -> str:
    from coldbrew import __version__

    return __version__


def add_arguments(parser) -> None:
    parser.add_argument("model", type=Path, help="a fitted sklearn estimator, pickled or joblib-dumped")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the .brew file to write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    if not args.model.is_file():
        raise ColdbrewError(f"{args.model}: no such file")
    stats = compile_model(args.model, args.output, progress=not args.quiet)
    rows = [
        ("estimator", f"{stats['estimator']} ({stats['kind']})"),
        ("trees", f"{stats['n_trees']:,}"),
        ("nodes", f"{stats['n_nodes']:,}"),
        ("max depth", f"{stats['max_depth']}"),
        ("input size", _mb(stats["input_bytes"])),
        ("output size", f"{_mb(stats['output_bytes'])} ({stats['output_bytes'] / stats['input_bytes']:.2f}x)"),
        ("checked", f"checksum + {stats['checked_rows']} threshold rows bit-identical to sklearn"),
        ("time", f"{stats['seconds']:.2f} s"),
    ]
    print(f"wrote {stats['dst']}")
    for key, value in rows:
        print(f"  {key:<12} {value}")
    return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"
