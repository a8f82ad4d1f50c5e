"""scikit-learn ``Pipeline`` / ``ColumnTransformer`` + a tree model -> one .brew file with an input stage.

The fitted preprocessing becomes data (docs/format.md section 12): every feature the model sees is one raw column
run through a list of ops (impute, vocab, sub/add/mul/div, onehot, table), each reproducing scikit-learn's own
float64 operation (``StandardScaler``: ``(x - mean_) / scale_``; ``MinMaxScaler``: ``x * scale_ + min_``; ...).
A step that cannot be written this way is refused by name; nothing is approximated. The compiled file is checked
against ``pipeline.predict`` / ``predict_proba`` on a DataFrame of generated raw rows, strings included (known,
unseen and missing categories), on every kernel, with lists and with the DataFrame.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from coldbrew.convert import trees as tb
from coldbrew.convert.staging import check_stage, mark_nullable, probe_frame
from coldbrew.convert.trees import UnsupportedModelError
from coldbrew.errors import ModelFormatError

#: The transformers a Pipeline / ColumnTransformer may hold.
STEPS = (
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "SimpleImputer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "TargetEncoder",
    "ColumnTransformer",
    "Pipeline",
    "FunctionTransformer (identity)",
    "'passthrough'",
    "'drop'",
)


class Feat(NamedTuple):
    """One feature on its way to the model: a raw column, the ops applied so far, the type of its value now
    (``"raw"``: untouched, the column's own type, decided by the first op that needs one)."""

    column: int
    ops: tuple
    type: str


class _Build:
    def __init__(self, names: list[str]):
        self.names = names
        self.col_type: dict[int, str] = {}

    def need(self, f: Feat, want: str, step: str) -> Feat:
        """``f`` holding a value of type ``want`` (deciding its raw column's type), else a refusal."""
        if f.type == "raw":
            have = self.col_type.setdefault(f.column, want)
            if have != want:
                raise UnsupportedModelError(
                    f"scikit-learn Pipeline: column {self.names[f.column]!r} is used both as a string and as a number "
                    f"(step {step!r})"
                )
            return f._replace(type=want)
        if f.type != want:
            raise UnsupportedModelError(
                f"scikit-learn Pipeline step {step!r} receives a {f.type} where coldbrew needs a {want} "
                f"(column {self.names[f.column]!r})"
            )
        return f

    def op(self, f: Feat, want: str, step: str, op: dict, result: str = "number") -> Feat:
        f = self.need(f, want, step)
        return Feat(f.column, (*f.ops, op), result)


def _refuse(step: str, trans: Any, why: str = "") -> UnsupportedModelError:
    what = type(trans).__name__ if not isinstance(trans, str) else repr(trans)
    return UnsupportedModelError(
        f"scikit-learn Pipeline step {step!r} ({what}) is not supported{': ' + why if why else ''}"
        " (docs/models.md lists the steps coldbrew compiles)"
    )


def _floats(values) -> list[float]:
    out = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    if not all(math.isfinite(v) for v in out):
        raise ModelFormatError("a fitted scaler holds a non-finite statistic")
    return out


def _is_nan(v: object) -> bool:
    return isinstance(v, (float, np.floating)) and bool(np.isnan(v))


def _vocab_values(categories: np.ndarray, step: str) -> tuple[list, str, int | None]:
    """A fitted encoder's categories for one column -> (vocab values without NaN, their type, index of NaN)."""
    cats = list(categories.tolist())
    nan_at = next((i for i, v in enumerate(cats) if v is None or _is_nan(v)), None)
    if nan_at is not None and nan_at != len(cats) - 1:
        raise UnsupportedModelError(f"scikit-learn Pipeline step {step!r}: a missing category that is not last")
    known = cats if nan_at is None else cats[:nan_at]
    if all(isinstance(v, str) for v in known):
        return known, "string", nan_at
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in known):
        return [float(v) for v in known], "number", nan_at
    raise UnsupportedModelError(
        f"scikit-learn Pipeline step {step!r}: categories must be all strings or all numbers, got "
        f"{sorted({type(v).__name__ for v in known})}"
    )


def _infrequent_map(enc, i: int, n: int) -> list[int]:
    mappings = getattr(enc, "_default_to_infrequent_mappings", None)
    mapping = mappings[i] if mappings is not None else None
    return list(range(n)) if mapping is None else [int(c) for c in mapping]


def _apply(b: _Build, trans: Any, feats: list[Feat], step: str) -> list[Feat]:
    """The features after ``trans`` (a fitted transformer) is applied to ``feats``."""
    if isinstance(trans, str):
        if trans == "passthrough":
            return feats
        if trans == "drop":
            return []
        raise _refuse(step, trans)
    name = type(trans).__name__
    if not type(trans).__module__.startswith("sklearn."):
        raise _refuse(step, trans)
    if name == "Pipeline":
        for sub, t in trans.steps:
            feats = _apply(b, t, feats, sub)
        return feats
    if name == "ColumnTransformer":
        return _column_transformer(b, trans, feats, step)
    if name == "FunctionTransformer":
        if trans.func is not None:
            raise _refuse(step, trans, "only the identity (func=None)")
        return feats
    handler = _HANDLERS.get(name)
    if handler is None:
        raise _refuse(step, trans)
    n_in = getattr(trans, "n_features_in_", None)
    if n_in is not None and n_in != len(feats):
        raise ModelFormatError(f"step {step!r} was fitted on {n_in} columns but receives {len(feats)}")
    return handler(b, trans, feats, step)


def _column_transformer(b: _Build, ct, feats: list[Feat], step: str) -> list[Feat]:
    out: list[Feat] = []
    for name, trans, _ in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        idx = list(ct._transformer_to_input_indices.get(name, []))
        if not idx:
            continue
        got = _apply(b, trans, [feats[i] for i in idx], name)
        s = ct.output_indices_[name]
        if s.stop - s.start != len(got):
            raise UnsupportedModelError(
                f"scikit-learn Pipeline step {name!r}: {s.stop - s.start} output columns, coldbrew derived {len(got)}"
            )
        out.extend(got)
    return out


def _standard(b, sc, feats, step):
    out = []
    mean = _floats(sc.mean_) if sc.with_mean else None
    scale = _floats(sc.scale_) if sc.with_std else None
    for i, f in enumerate(feats):
        f = b.need(f, "number", step)
        if mean is not None:
            f = b.op(f, "number", step, {"kind": "sub", "value": mean[i]})
        if scale is not None:
            f = b.op(f, "number", step, {"kind": "div", "value": scale[i]})
        out.append(f)
    return out


def _minmax(b, sc, feats, step):
    if sc.clip:
        raise _refuse(step, sc, "clip=True")
    scale, low = _floats(sc.scale_), _floats(sc.min_)
    return [
        b.op(
            b.op(f, "number", step, {"kind": "mul", "value": scale[i]}),
            "number",
            step,
            {"kind": "add", "value": low[i]},
        )
        for i, f in enumerate(feats)
    ]


def _maxabs(b, sc, feats, step):
    if getattr(sc, "clip", False):
        raise _refuse(step, sc, "clip=True")
    scale = _floats(sc.scale_)
    return [b.op(f, "number", step, {"kind": "div", "value": scale[i]}) for i, f in enumerate(feats)]


def _robust(b, sc, feats, step):
    center = _floats(sc.center_) if sc.with_centering else None
    scale = _floats(sc.scale_) if sc.with_scaling else None
    out = []
    for i, f in enumerate(feats):
        f = b.need(f, "number", step)
        if center is not None:
            f = b.op(f, "number", step, {"kind": "sub", "value": center[i]})
        if scale is not None:
            f = b.op(f, "number", step, {"kind": "div", "value": scale[i]})
        out.append(f)
    return out


def _imputer(b, imp, feats, step):
    if not _is_nan(imp.missing_values) and imp.missing_values is not None:
        raise _refuse(step, imp, f"missing_values={imp.missing_values!r} (only NaN)")
    if imp.add_indicator:
        raise _refuse(step, imp, "add_indicator=True")
    out = []
    for i, f in enumerate(feats):
        stat = imp.statistics_[i]
        if isinstance(stat, str):
            out.append(b.op(f, "string", step, {"kind": "impute", "value": stat}, result="string"))
        elif stat is None or _is_nan(stat):
            if imp.keep_empty_features:
                raise _refuse(step, imp, "keep_empty_features=True on a column without values")
            continue  # scikit-learn drops a column that had no value to learn from
        elif isinstance(stat, (int, float, np.integer, np.floating)) and not isinstance(stat, bool):
            out.append(b.op(f, "number", step, {"kind": "impute", "value": float(stat)}))
        else:
            raise _refuse(step, imp, f"a fill value of type {type(stat).__name__}")
    return out


def _encoder_vocab(b, enc, f: Feat, i: int, step: str, unknown, missing_known, missing_unknown) -> tuple[Feat, list]:
    """``f`` through a vocab of the encoder's column ``i``; returns it and the category list."""
    values, kind, nan_at = _vocab_values(np.asarray(enc.categories_[i], dtype=object), step)
    missing = missing_known(nan_at) if nan_at is not None else missing_unknown
    f = b.need(f, kind, step)
    op = {"kind": "vocab", "values": values, "unknown": unknown, "missing": missing}
    return Feat(f.column, (*f.ops, op), "number"), values


def _onehot(b, enc, feats, step):
    out = []
    drop = getattr(enc, "drop_idx_", None)
    handle = enc.handle_unknown
    for i, f in enumerate(feats):
        n = len(enc.categories_[i])
        mapping = _infrequent_map(enc, i, n)
        infrequent = mappings_has_infrequent(enc, i)
        if handle == "error":
            unknown: Any = "error"
        elif handle in ("infrequent_if_exist", "warn") and infrequent:
            unknown = mapping.index(max(mapping))  # a category mapped to the infrequent column
        else:
            unknown = None  # ignore: all zeros
        coded, _ = _encoder_vocab(b, enc, f, i, step, unknown, lambda at: at, unknown)
        d = None if drop is None or drop[i] is None else int(drop[i])
        for c in range(max(mapping) + 1 if mapping else 0):
            if c == d:
                continue
            codes = [j for j, m in enumerate(mapping) if m == c]
            out.append(Feat(coded.column, (*coded.ops, {"kind": "onehot", "codes": codes}), "number"))
    return out


def mappings_has_infrequent(enc, i: int) -> bool:
    cats = getattr(enc, "infrequent_categories_", None)
    return cats is not None and cats[i] is not None and len(cats[i]) > 0


def _ordinal(b, enc, feats, step):
    out = []
    if enc.handle_unknown == "error":
        unknown: Any = "error"
    else:
        unknown = None if _is_nan(enc.unknown_value) else int(enc.unknown_value)
    encoded_missing = None if _is_nan(enc.encoded_missing_value) else int(enc.encoded_missing_value)
    for i, f in enumerate(feats):
        n = len(enc.categories_[i])
        mapping = _infrequent_map(enc, i, n)
        coded, values = _encoder_vocab(b, enc, f, i, step, unknown, lambda at: encoded_missing, unknown)
        if mapping != list(range(n)):
            vocab = dict(coded.ops[-1])
            vocab["codes"] = mapping[: len(values)]
            coded = Feat(coded.column, (*coded.ops[:-1], vocab), "number")
        out.append(coded)
    return out


def _target(b, enc, feats, step):
    n_classes = len(enc.classes_) if enc.target_type_ == "multiclass" else 1
    means = np.asarray(enc.target_mean_, dtype=np.float64).reshape(-1)
    out = []
    for i, f in enumerate(feats):
        coded, values = _encoder_vocab(b, enc, f, i, step, None, lambda at: at, None)
        for k in range(n_classes):
            table = _floats(enc.encodings_[i * n_classes + k] if n_classes > 1 else enc.encodings_[i])
            op = {"kind": "table", "values": table, "default": float(means[k])}
            out.append(Feat(coded.column, (*coded.ops, op), "number"))
    return out


_HANDLERS = {
    "StandardScaler": _standard,
    "MinMaxScaler": _minmax,
    "MaxAbsScaler": _maxabs,
    "RobustScaler": _robust,
    "SimpleImputer": _imputer,
    "OneHotEncoder": _onehot,
    "OrdinalEncoder": _ordinal,
    "TargetEncoder": _target,
}


# ------------------------------------------------------------------------------------------- the final model
def model_arrays(est) -> tuple[dict, dict[str, np.ndarray], Any]:
    """Header fields, arrays and a reference ``(X) -> (proba or None, predict)`` of a bare tree model."""
    module = type(est).__module__.split(".")[0]
    name = type(est).__name__
    if module == "xgboost":
        import json

        import xgboost

        if not isinstance(est, xgboost.XGBModel):
            raise UnsupportedModelError(f"a scikit-learn Pipeline ending in an XGBoost {name} is not supported")
        from coldbrew.convert import xgboost as cx

        header, arrays = cx.doc_to_arrays(json.loads(bytes(est.get_booster().save_raw(raw_format="json"))), where=name)
        return header, arrays, est
    if module == "lightgbm":
        from coldbrew.convert import lightgbm as cl

        classes = getattr(est, "classes_", None)
        header, arrays = cl.model_to_arrays(
            cl.parse_text(est.booster_.model_to_string(), where=name),
            where=name,
            classes=None if classes is None else np.asarray(classes).tolist(),
        )
        if classes is not None:
            header["classes_dtype"] = np.asarray(classes).dtype.str
        return header, arrays, est
    from coldbrew.convert import sklearn as cs

    if name in cs.HGB_SUPPORTED:
        header, arrays = cs.hgb_to_arrays(est)
        return header, arrays, est
    if cs.routes_missing(est):
        header, arrays = cs.forest_to_arrays(est)
        return header, arrays, est
    if cs._is_gbm(est):
        cs._check_supported(est)
        header, arrays = cs.gbm_to_arrays(est)
        return header, arrays, est
    raise UnsupportedModelError(
        f"a scikit-learn Pipeline ending in a {type(est).__module__}.{name} is not supported: the final step must be "
        "HistGradientBoosting, GradientBoosting, RandomForest, ExtraTrees, DecisionTree, XGBClassifier/XGBRegressor "
        "or LGBMClassifier/LGBMRegressor"
    )


def stage_of(pipe) -> tuple[dict, Any, list[str] | None]:
    """The ``inputs`` object for a fitted Pipeline's preprocessing, its final estimator and the model's feature
    names (the preprocessing's output names, when scikit-learn knows them)."""
    steps = list(pipe.steps)
    if len(steps) < 2:
        raise UnsupportedModelError("a scikit-learn Pipeline needs at least one preprocessing step and a model")
    names_in = getattr(pipe, "feature_names_in_", None)
    first = steps[0][1]
    n_in = int(getattr(pipe, "n_features_in_", getattr(first, "n_features_in_", 0)) or 0)
    if not n_in:
        raise UnsupportedModelError("the scikit-learn Pipeline is not fitted")
    names = [str(n) for n in names_in] if names_in is not None else [f"x{i}" for i in range(n_in)]
    b = _Build(names)
    feats = [Feat(i, (), "raw") for i in range(len(names))]
    for step, trans in steps[:-1]:
        if trans is None:
            continue
        feats = _apply(b, trans, feats, step)
    final = steps[-1][1]
    used = {f.column for f in feats}
    columns = [
        {"name": name, "type": b.col_type.get(i, "number") if i in used else "any", "nullable": True}
        for i, name in enumerate(names)
    ]
    out_names = None
    try:
        out_names = [str(n) for n in pipe[:-1].get_feature_names_out()]
    except Exception:  # noqa: BLE001 - a step without output names: the header keeps none
        out_names = None
    for f in feats:
        if f.type == "raw":
            b.need(f, "number", steps[-1][0])
    stage = {
        "columns": columns,
        "features": [{"column": f.column, "ops": [dict(op) for op in f.ops]} for f in feats],
    }
    return stage, final, out_names


def _sparse_to_model(pipe) -> bool:
    """True if the last transformer hands the model a sparse matrix (XGBoost/LightGBM read absent entries as
    missing, not zero)."""
    last = pipe.steps[-2][1]
    if type(last).__name__ == "ColumnTransformer":
        return bool(getattr(last, "sparse_output_", False))
    if type(last).__name__ == "OneHotEncoder":
        return bool(last.sparse_output)
    return False


def compose(stage: dict, model_header: dict) -> dict:
    """The pipeline's stage followed by the model's own (categories by name), feature by feature."""
    inner = model_header.get("inputs")
    if inner is None:
        return stage
    for f, g in zip(stage["features"], inner["features"], strict=True):
        if g["ops"]:
            col = stage["columns"][f["column"]]
            if f["ops"] or col["type"] != "string":
                raise UnsupportedModelError(
                    "a scikit-learn Pipeline whose model reads category names needs them passed through unchanged"
                )
            f["ops"] = list(g["ops"])
    return stage


def compile_pipeline(pipe, dst: str | os.PathLike, *, class_labels=None) -> dict:
    """Compile a fitted scikit-learn Pipeline (preprocessing + a tree model) into ``dst``, checked bit for bit."""
    from coldbrew import __version__

    started = time.perf_counter()
    dst = Path(dst)
    stage, final, out_names = stage_of(pipe)
    header, arrays, _ = model_arrays(final)
    module = type(final).__module__.split(".")[0]
    if module in ("xgboost", "lightgbm") and _sparse_to_model(pipe):
        raise UnsupportedModelError(
            f"scikit-learn Pipeline: the preprocessing hands the {type(final).__name__} a sparse matrix (absent entries "
            "read as missing, not 0): fit with sparse_output=False / sparse_threshold=0"
        )
    if header["n_features"] != len(stage["features"]):
        raise UnsupportedModelError(
            f"scikit-learn Pipeline: the model takes {header['n_features']} features, coldbrew derived "
            f"{len(stage['features'])} from the preprocessing"
        )
    refuses = header.get("input_missing") == "refuse"  # classic GradientBoosting: a NaN feature is an input error
    header["inputs"] = mark_nullable(compose(stage, header), model_refuses_nan=refuses)
    if out_names is not None and len(out_names) == header["n_features"] and len(set(out_names)) == len(out_names):
        header["feature_names"] = out_names
    header["feature_missing"] = None if refuses else [True] * header["n_features"]
    header["feature_categorical"] = None
    header["source"] = dict(header.get("source") or {}, pipeline=[s for s, _ in pipe.steps])
    tb.set_class_labels(header, class_labels)
    header["created_by"] = f"coldbrew {__version__}"
    classifier = header["classes"] is not None
    frame, rows = probe_frame(header["inputs"], header, arrays=arrays)
    refused: list = []
    if refuses:  # scikit-learn refuses a batch with a NaN feature: check those rows are refused, the rest answered
        frame, rows, refused = _split_refused(pipe, frame, rows)

    def reference(X):
        return (pipe.predict_proba(X) if classifier else None), pipe.predict(X)

    def check(path: Path) -> None:
        check_stage(path, dst, reference, frame, rows, classifier=classifier)
        _check_refused(path, dst, refused)

    size = tb.write_staged(dst, header, arrays, check)
    return tb.compile_stats(
        dst, header, what="Pipeline", size=size, started=started, checked=len(rows), reference="scikit-learn"
    )


def _split_refused(pipe, frame, rows: list) -> tuple[Any, list, list]:
    """The probe rows whose features hold no NaN (what scikit-learn's GradientBoosting accepts: it refuses a batch
    with one), as a frame and as lists, and some of the others (lists), which coldbrew must refuse."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features = np.asarray(pipe[:-1].transform(frame), dtype=np.float64)
    bad = np.isnan(features).any(axis=1)
    keep = np.flatnonzero(~bad)
    if len(keep) == 0:
        raise UnsupportedModelError("scikit-learn Pipeline: every probe row gives the GradientBoosting a NaN feature")
    refused = [rows[i] for i in np.flatnonzero(bad)[:16]]
    return frame.iloc[keep].reset_index(drop=True), [rows[i] for i in keep], refused


def _check_refused(path: Path, label: Path, refused: list) -> None:
    """Each row whose features hold a NaN is an input error on every kernel (scikit-learn raises on it)."""
    from coldbrew.engine.brew import KERNELS, BrewPredictor
    from coldbrew.engine.inputs import InvalidInputError

    for kernel in KERNELS:
        p = BrewPredictor(path, kernel=kernel)
        for row in refused:
            try:
                p.predict([row])
            except InvalidInputError:
                continue
            raise ModelFormatError(f"{label}: a row whose features hold a NaN was answered ({kernel} kernel)")
