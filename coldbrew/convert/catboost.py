"""The CatBoost converter: a ``.cbm`` or JSON model file, or a fitted CatBoost estimator, into .brew (version 2;
version 3 with an input stage for categorical features).

A symmetric (oblivious) tree of depth D is expanded into an ordinary binary tree of 2**D leaves: level ``l``
tests the tree's ``l``-th split, and the leaf reached is the one CatBoost indexes by ``sum(bit_l << l)``. What the
compiled file reproduces, from CatBoost's ``catboost/libs/model/cpu/quantization.h`` / ``evaluator_impl.cpp``
and ``eval_processing.h`` (1.2):

- the input is read as float32 and compared with the float32 borders: a split's bit is ``x > border`` (so x goes
  left, bit 0, on ``x <= border``);
- a missing value (NaN) is replaced, when the feature had NaNs in training, by -inf (``nan_mode=Min``, stored
  as ``AsFalse``) or +inf (``nan_mode=Max``, ``AsTrue``); an unreplaced NaN is never greater than a border. So
  NaN goes left, except under ``Max``;
- the leaves of every tree are added in float64, in order, from 0 (one output per dimension), then
  ``scale * sum + bias`` is applied when not the identity: a scale of 1 is required, the bias becomes a final
  one-leaf tree per dimension;
- outputs: ``Logloss``/``CrossEntropy`` through ``1 / (1 + exp(-x))`` (libm), class by ``raw > 0``;
  ``MultiClassOneVsAll`` through the same sigmoid per class, class by the largest raw score; ``MultiClass``
  through CatBoost's ``CalcSoftmax`` with its fast exp (``softmax_cb``), class by the largest raw score;
  ``Poisson``/``Tweedie`` through that fast exp (``exp_cb``; ``coldbrew/engine/cbexp.py``: the same bits on every
  x86-64 path of CatBoost's exp above -708.396, so a model whose raw scores can reach that is refused); other
  regression objectives with an identity output; ranking objectives answer the raw scores.

Categorical features (strings) go through an input stage (format version 3): a one-hot split tests
``catboost_hash(value) == hash``; a CTR on one column is ``table(vocab(catboost_hash(value)))``, the float32 CTR
value CatBoost computes from its learn-time counts (``TModelCtr::Calc``) for each category it saw, its prior for
any other.

Non-symmetric trees (``grow_policy`` Depthwise / Lossguide: nested ``{"split", "left", "right"}`` nodes in the
JSON export) are ordinary trees already: ``left`` is the false side of the split, ``right`` the true one.

Refused with one line: ``RMSEWithUncertainty`` (two columns: mean and variance), a ``MultiClass``/``Poisson``/
``Tweedie`` model whose raw scores can leave the range where CatBoost's exp is the same on every CPU, CTRs on
combinations of columns and CTR types other than Borders (binary target)
and Counter, text and embedding features, a scale other than 1, a probability threshold other than 0.5.

A ``.cbm`` file is flatbuffers; it is turned into CatBoost's JSON export by catboost itself in a child process
(a damaged file can crash the library). A JSON file is read without catboost.
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

#: Objectives whose prediction is the raw score (CatBoostRegressor.predict answers it unchanged).
IDENTITY_OBJECTIVES = (
    "RMSE",
    "MAE",
    "Quantile",
    "Huber",
    "Expectile",
    "MAPE",
    "LogCosh",
    "Lq",
    "LogLinQuantile",
)
#: Ranking objectives: CatBoostRanker.predict answers the raw scores.
RANKING_OBJECTIVES = (
    "YetiRank",
    "YetiRankPairwise",
    "PairLogit",
    "PairLogitPairwise",
    "QueryRMSE",
    "QuerySoftMax",
    "QueryCrossEntropy",
    "LambdaMart",
    "StochasticFilter",
    "StochasticRank",
)
BINARY_OBJECTIVES = ("Logloss", "CrossEntropy")
#: Objectives whose predictions go through CatBoost's fast exp (``coldbrew/engine/cbexp.py``): the exponent of the
#: raw score (``predict``) for these regressors, the softmax (``predict_proba``) for MultiClass.
FAST_EXP_REGRESSORS = ("Poisson", "Tweedie")
#: Refused: CatBoostRegressor(RMSEWithUncertainty).predict answers two columns (mean, variance).
TWO_COLUMN_OBJECTIVES = ("RMSEWithUncertainty",)
#: CatBoost's CTR hash of one categorical value: ``CalcHash(a, b) = M * (a + M * b)`` from ``a = 0``.
_CTR_MULT = 0x4906BA494954CB65
#: The most nodes the expanded trees may have (16 bytes each: a 2 GiB file); a tree of depth D takes 2**(D+1) - 1.
MAX_EXPANDED_NODES = 1 << 27
#: How CatBoost evaluates a model: float32 inputs, float64 sums, ``x > border`` is the split's "true" (right) side.
EVALUATION = {**tb.summed_scalar_leaves("float32", "le"), "accumulate": "float64"}


_POW10 = [float(f"1e{i}") for i in range(309)]  # rapidjson's Pow10 table: the correctly rounded 1e0 .. 1e308
_DIGITS = "0123456789"


def rapidjson_double(text: str) -> float:
    """The double CatBoost reads for the JSON number ``text``.

    CatBoost's JSON loader parses numbers with rapidjson's default ("normal precision") strtod, which is not
    correctly rounded: the decimal significand is gathered in a uint64 while it stays below 2**53 (then at most
    17 significant digits in a double, ``d * 10 + digit``) and scaled by one multiplication or division by a power
    of ten. A JSON model file is therefore read the way catboost reads it (often 1 ulp from Python's ``float``),
    so that the compiled file answers what catboost answers for that file. (rapidjson ``reader.h``, ParseNumber /
    ``internal::StrtodNormalPrecision``.)
    """
    s, n = text, len(text)
    minus = s.startswith("-")
    pos = 1 if minus else 0
    i = i64 = sig = 0
    use64 = use_double = False
    d = 0.0
    if s[pos] == "0":
        pos += 1
    else:
        i, pos = _DIGITS.index(s[pos]), pos + 1
        limit, last = (214748364, "8") if minus else (429496729, "5")
        while pos < n and s[pos] in _DIGITS:
            if i >= limit and (i != limit or s[pos] > last):
                i64, use64 = i, True
                break
            i, pos, sig = i * 10 + _DIGITS.index(s[pos]), pos + 1, sig + 1
    if use64:
        limit, last = (922337203685477580, "8") if minus else (1844674407370955161, "5")
        while pos < n and s[pos] in _DIGITS:
            if i64 >= limit and (i64 != limit or s[pos] > last):
                d, use_double = float(i64), True
                break
            i64, pos, sig = i64 * 10 + _DIGITS.index(s[pos]), pos + 1, sig + 1
    if use_double:
        while pos < n and s[pos] in _DIGITS:
            d, pos = d * 10 + _DIGITS.index(s[pos]), pos + 1
    exp_frac = 0
    if pos < n and s[pos] == ".":
        pos += 1
        if not use_double:
            if not use64:
                i64 = i
            while pos < n and s[pos] in _DIGITS and i64 <= (1 << 53) - 1:
                i64, pos, exp_frac = i64 * 10 + _DIGITS.index(s[pos]), pos + 1, exp_frac - 1
                sig += i64 != 0
            d, use_double = float(i64), True
        while pos < n and s[pos] in _DIGITS:
            if sig < 17:
                d, exp_frac = d * 10.0 + _DIGITS.index(s[pos]), exp_frac - 1
                sig += d > 0.0
            pos += 1
    exp = 0
    if pos < n and s[pos] in "eE":
        pos += 1
        if not use_double:
            d, use_double = float(i64 if use64 else i), True
        exp_minus = s[pos] == "-"
        pos += s[pos] in "+-"
        while pos < n and s[pos] in _DIGITS:
            exp, pos = exp * 10 + _DIGITS.index(s[pos]), pos + 1
        exp = -exp if exp_minus else exp
    if pos != n:
        raise ValueError(f"not a JSON number: {text[:40]!r}")
    if not use_double:
        d = float(i64 if use64 else i)
    else:
        p = exp + exp_frac
        if p < -308:
            d = _fast_path(_fast_path(d, -308), p + 308)
        else:
            d = _fast_path(d, p)
    return -d if minus else d


def _fast_path(d: float, exp: int) -> float:
    if exp < -308:
        return 0.0
    if exp >= 0:
        return d * _POW10[exp] if exp <= 308 else d * math.inf
    return d / _POW10[-exp]


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number CatBoost writes")


def parse_json(data: bytes | str, *, where: str = "model", as_catboost_reads: bool = True) -> dict:
    """A CatBoost JSON model as a dict (a one-line ``ModelFormatError`` if it is not one).

    ``as_catboost_reads``: numbers as catboost's own JSON loader reads them (:func:`rapidjson_double`), for a JSON
    model *file*; ``False`` for the export of a .cbm file or of a model in memory, whose numbers (shortest
    round-trip decimals) stand for the model's exact doubles.
    """
    try:
        doc = json.loads(
            data, parse_float=rapidjson_double if as_catboost_reads else float, parse_constant=_no_constant
        )
    except (ValueError, UnicodeDecodeError, IndexError, RecursionError) as exc:
        raise ModelFormatError(f"{where}: not a CatBoost JSON model ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or "features_info" not in doc:
        raise ModelFormatError(f"{where}: not a CatBoost JSON model (no features_info)")
    return doc


def model_to_arrays(doc: dict, *, where: str = "model", classes=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Header fields and arrays for a CatBoost JSON model (``CatBoost.save_model(format="json")``).

    A model that lacks a field or holds a value of the wrong kind is a one-line ``ModelFormatError``; one that
    cannot be reproduced exactly is a one-line ``UnsupportedModelError``.
    """
    try:
        return _model_to_arrays(doc, where, classes)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ModelFormatError(f"{where}: not a valid CatBoost model ({what[:200]})") from None


def _objective(doc: dict) -> tuple[str, dict]:
    params = (doc.get("model_info") or {}).get("params") or {}
    if isinstance(params, str):
        params = json.loads(params)
    loss = params.get("loss_function") or {}
    name = loss.get("type") if isinstance(loss, dict) else None
    return (str(name) if name else ""), (loss.get("params") or {}) if isinstance(loss, dict) else {}


def _feature_name(f: dict) -> str:
    return repr(f.get("feature_id") or f"#{f.get('flat_feature_index')}")


def _refuse_features(info: dict, doc: dict, where: str) -> None:
    for key, what in (("text_features", "text"), ("embedding_features", "embedding")):
        if info.get(key):
            names = ", ".join(_feature_name(f) for f in info[key])
            raise UnsupportedModelError(f"{where}: CatBoost model uses {what} features ({names[:100]}); not supported")


def _model_to_arrays(doc: dict, where: str, classes) -> tuple[dict, dict[str, np.ndarray]]:
    symmetric = "oblivious_trees" in doc
    tree_docs = doc["oblivious_trees"] if symmetric else doc["trees"]
    if not isinstance(tree_docs, list):
        raise ModelFormatError(f"{where}: the CatBoost model's trees are not a list")
    # every split of a non-symmetric tree, as the layout reads them from symmetric ones
    split_lists = (
        tree_docs if symmetric else [{"splits": [n["split"] for n in _nodes(t) if "split" in n]} for t in tree_docs]
    )
    info = doc["features_info"]
    _refuse_features(info, doc, where)
    name, options = _objective(doc)
    if not name:
        raise UnsupportedModelError(f"{where}: the CatBoost model names no loss function; not supported")
    if name in TWO_COLUMN_OBJECTIVES:
        raise UnsupportedModelError(
            f"{where}: CatBoost objective {name} is not supported: its prediction is two columns (the mean and "
            "the variance)"
        )
    floats = info.get("float_features") or []
    cats = info.get("categorical_features") or []
    layout = _Layout(floats, cats, split_lists, where, info.get("ctrs") or [], doc.get("ctr_data") or {})
    scale, bias = doc.get("scale_and_bias", [1.0, [0.0]])
    if float(scale) != 1.0:
        raise UnsupportedModelError(f"{where}: CatBoost model with scale {scale} is not supported (only 1)")
    bias = [float(b) for b in (bias if isinstance(bias, list) else [bias])]
    class_params = (doc.get("model_info") or {}).get("class_params") or {}
    if name in BINARY_OBJECTIVES:
        output, decision, task, K = "logistic", "raw_gt0", "binary", 1
        threshold = (doc.get("model_info") or {}).get("binclass_probability_threshold")
        if threshold is not None and float(threshold) != 0.5:
            raise UnsupportedModelError(
                f"{where}: CatBoost classifier with probability_threshold {threshold} is not supported (only 0.5)"
            )
    elif name in ("MultiClassOneVsAll", "MultiClass"):
        K = len(class_params.get("class_names") or []) or len(bias)
        output = "sigmoid_each" if name == "MultiClassOneVsAll" else "softmax_cb"
        decision, task = "argmax_raw", "multiclass"
    elif name in RANKING_OBJECTIVES:  # a ranker answers scores (task "ranking", as XGBoost's and LightGBM's)
        output, decision, task, K = "identity", "value", "ranking", 1
    elif name in IDENTITY_OBJECTIVES:
        output, decision, task, K = "identity", "value", "regression", 1
    elif name in FAST_EXP_REGRESSORS:
        output, decision, task, K = "exp_cb", "value", "regression", 1
    else:
        supported = BINARY_OBJECTIVES + ("MultiClassOneVsAll", "MultiClass") + IDENTITY_OBJECTIVES
        raise UnsupportedModelError(
            f"{where}: CatBoost objective {name[:80]} is not supported (supported: "
            f"{', '.join(supported + FAST_EXP_REGRESSORS + RANKING_OBJECTIVES)})"
        )
    if len(bias) != K:
        raise ModelFormatError(f"{where}: scale_and_bias has {len(bias)} biases, the objective needs {K}")
    if symmetric:
        expanded_nodes = sum(K * ((2 << len(t.get("splits") or [])) - 1) for t in tree_docs)
    else:
        expanded_nodes = sum(K * len(_nodes(t)) for t in tree_docs)
    if expanded_nodes > MAX_EXPANDED_NODES:
        raise UnsupportedModelError(
            f"{where}: CatBoost model too large to expand: its symmetric trees make {expanded_nodes:,} nodes "
            f"(at most {MAX_EXPANDED_NODES:,}; deep trees double per level)"
        )
    trees: list[tb.Tree] = []
    groups: list[int] = []
    for i, t in enumerate(tree_docs):
        expanded = (_tree if symmetric else _plain_tree)(t, layout, K, f"{where}: tree {i}")
        trees.extend(expanded)
        groups.extend(range(K))
    if not trees:
        raise ModelFormatError(f"{where}: the CatBoost model has no trees")
    if any(b != 0.0 for b in bias):  # CatBoost applies scale * sum + bias after the trees (not when the identity)
        for k, b in enumerate(bias):
            trees.append(_leaf(b))
            groups.append(k)
    if output in ("softmax_cb", "exp_cb"):
        _check_fast_exp_range(trees, groups, K, name, where)
    counts, arrays = tb.build(trees, groups)
    arrays["base_score"] = np.zeros(K, dtype=np.float64)
    n_classes = 2 if task == "binary" else K if task == "multiclass" else 0
    if classes is None and n_classes:
        classes = _class_names(class_params, n_classes, where)
    n_features = layout.n_model_features
    header = {
        "kind": "cb_classifier" if task in ("binary", "multiclass") else "cb_regressor",
        "n_features": n_features,
        "feature_names": layout.model_names,
        "classes": list(classes) if n_classes else None,
        "classes_dtype": (np.asarray(classes).dtype.str if n_classes else None),
        "n_outputs": K,
        **EVALUATION,
        "output": output,
        "decision": decision,
        "learning_rate": None,
        "task": task,
        "feature_missing": [True] * n_features,
        "feature_categorical": None,
        "source": {
            "library": "catboost",
            "format": "oblivious_trees" if symmetric else "trees",
            "objective": name + "".join(f":{k}={v}" for k, v in sorted(options.items())),
            "n_estimators": len(tree_docs),
            "catboost_version": _version(doc),
        },
        **counts,
    }
    if layout.stage is not None:
        header["inputs"] = layout.stage
    if n_classes and header["classes_dtype"].startswith("<U"):
        header["classes_dtype"] = "|O"  # CatBoostClassifier.predict answers string labels as an object array
    return header, arrays


class _Layout:
    """Where each CatBoost feature lands in the model's feature vector.

    Numeric only: feature ``i`` of the vector is CatBoost's flat feature ``i``. With categorical features (one-hot
    splits), the request's columns are CatBoost's flat features (numbers and strings) and an input stage
    (docs/format.md section 12) maps them to the vector: each numeric column as is, then one 0/1 feature per
    (categorical column, category hash) that a split tests, ``onehot(catboost_hash(string))``; the split becomes
    ``x > 0.5``.
    """

    def __init__(self, floats: list[dict], cats: list[dict], trees: list[dict], where: str, ctrs: list, ctr_data: dict):
        self.floats = {int(f["feature_index"]): f for f in floats}
        self.cats = {int(f["feature_index"]): f for f in cats}
        flat = [int(f["flat_feature_index"]) for f in floats + cats]
        n_columns = max(flat + [-1]) + 1
        if n_columns < 1 or len(set(flat)) != len(flat) or min(flat) < 0:
            raise ModelFormatError(f"{where}: the CatBoost model's flat feature indices are not distinct columns")
        if n_columns != len(flat):
            raise ModelFormatError(f"{where}: the CatBoost model's flat feature indices leave gaps")
        column_names = [""] * n_columns
        for f in floats + cats:
            column_names[int(f["flat_feature_index"])] = str(f.get("feature_id") or "")
        names_known = all(column_names) and len(set(column_names)) == n_columns
        self.stage: dict | None = None
        self.onehot: dict[tuple[int, int], int] = {}
        if not cats:
            self.n_model_features = n_columns
            self.model_names = column_names if names_known else None
            self.float_position = {i: int(f["flat_feature_index"]) for i, f in self.floats.items()}
            return
        columns = column_names if names_known else [f"x{i}" for i in range(n_columns)]
        float_flat = sorted(int(f["flat_feature_index"]) for f in floats)
        self.float_position = {i: float_flat.index(int(f["flat_feature_index"])) for i, f in self.floats.items()}
        features = [{"column": c, "ops": []} for c in float_flat]
        names = [columns[c] for c in float_flat]
        for t in trees:
            for s in t.get("splits") or []:
                if s.get("split_type") != "OneHotFeature":
                    continue
                cat, value = int(s["cat_feature_index"]), int(s["value"]) & 0xFFFFFFFF
                if cat not in self.cats:
                    raise ModelFormatError(f"{where}: a one-hot split names categorical feature {cat}")
                if (cat, value) not in self.onehot:
                    self.onehot[(cat, value)] = len(features)
                    column = int(self.cats[cat]["flat_feature_index"])
                    features.append(
                        {"column": column, "ops": [{"kind": "catboost_hash"}, {"kind": "onehot", "codes": [value]}]}
                    )
                    names.append(f"{columns[column]}=={value}")
        self.ctr_split: dict[int, tuple[int, float]] = {}
        ctr_splits = [s for t in trees for s in (t.get("splits") or []) if s.get("split_type") == "OnlineCtr"]
        if ctr_splits:
            self._ctrs(ctrs, ctr_data, ctr_splits, floats, cats, columns, features, names, where)
        if not features:
            raise UnsupportedModelError(f"{where}: the CatBoost model's trees test no feature")
        types = {int(f["flat_feature_index"]): "string" for f in cats}
        self.stage = {
            "columns": [
                {"name": columns[c], "type": types.get(c, "number"), "nullable": c not in types}
                for c in range(n_columns)
            ],
            "features": features,
        }
        self.n_model_features = len(features)
        self.model_names = names

    def _ctrs(self, ctrs, ctr_data, splits, floats, cats, columns, features, names, where) -> None:
        """One feature per CTR a split tests: ``table(vocab(catboost_hash(string)))``, the CTR value CatBoost
        computes for each category it saw (float32 ``((count + prior) / (total + prior_denom) + shift) * scale``
        from its learn tables) and for any other category (counts 0)."""
        cat_names = {int(c["feature_index"]): _feature_name(c) for c in cats}
        by_border = [(i, float(np.float32(float(b)))) for i, c in enumerate(ctrs) for b in c.get("borders") or []]
        n_float = sum(len(f.get("borders") or []) for f in floats)
        n_onehot = sum(len(c.get("values") or []) for c in cats)
        for offset in (n_float + n_onehot, n_float):
            place = [int(s["split_index"]) - offset for s in splits]
            if all(
                0 <= k < len(by_border) and by_border[k][1] == float(np.float32(float(s["border"])))
                for k, s in zip(place, splits, strict=True)
            ):
                break
        else:
            raise UnsupportedModelError(
                f"{where}: CatBoost model's CTR splits do not match its CTR borders; not supported"
            )
        made: dict[int, int] = {}
        for s, k in zip(splits, place, strict=True):
            i, border = by_border[k]
            if i not in made:
                made[i] = len(features)
                column, ops, name = self._ctr_feature(ctrs[i], ctr_data, cat_names, where)
                features.append({"column": column, "ops": ops})
                names.append(f"{columns[column]}:ctr{i}:{name}")
            self.ctr_split[int(s["split_index"])] = (made[i], border)

    def _ctr_feature(self, ctr: dict, ctr_data: dict, cat_names: dict, where: str) -> tuple[int, list, str]:
        elements = ctr.get("elements") or []
        kind = str(ctr.get("ctr_type"))
        on = ", ".join(cat_names.get(int(e.get("cat_feature_index", -1)), "?") for e in elements)
        if len(elements) != 1 or elements[0].get("combination_element") != "cat_feature_value":
            raise UnsupportedModelError(
                f"{where}: CatBoost model uses CTR features ({kind} on a combination: {on[:100]}); not supported "
                "(train with max_ctr_complexity=1 for CTRs on single columns)"
            )
        table = ctr_data.get(ctr["identifier"]) or {}
        stride = int(table.get("hash_stride", 0))
        if kind not in ("Borders", "Counter", "FeatureFreq") or (kind == "Borders") != (stride == 3):
            raise UnsupportedModelError(
                f"{where}: CatBoost model uses CTR features ({kind} on {on[:100]}"
                f"{', a multiclass target' if kind == 'Borders' else ''}); not supported (Borders on a binary or "
                "binarized target and Counter are)"
            )
        if kind != "Borders" and stride != 2:
            raise ModelFormatError(f"{where}: CTR {kind} table has stride {stride}, expected 2")
        f32 = np.float32
        prior, denom = f32(float(ctr["prior_numerator"])), f32(float(ctr["prior_denomerator"]))
        shift, scale = f32(float(ctr["shift"])), f32(float(ctr["scale"]))

        def calc(count: int, total: int) -> float:  # TModelCtr::Calc, in float32
            value = (f32(count) + prior) / (f32(total) + denom)
            return float((value + shift) * scale)

        flat = table["hash_map"]
        denominator = int(table.get("counter_denominator", 0))
        inverse = pow(_CTR_MULT * _CTR_MULT % (1 << 64), -1, 1 << 64)
        values, results = [], []
        for j in range(0, len(flat) - stride + 1, stride):
            b = int(flat[j]) * inverse % (1 << 64)  # the key is CalcHash(0, (ui64)(i32)hash) = M * M * b
            if (1 << 31) <= b < (1 << 64) - (1 << 31):
                continue  # no category hashes to this key (CatBoost's empty-bucket marker)
            counts = [int(v) for v in flat[j + 1 : j + stride]]
            values.append(b & 0xFFFFFFFF)
            results.append(
                calc(counts[1], counts[0] + counts[1]) if kind == "Borders" else calc(counts[0], denominator)
            )
        column = int(self.cats[int(elements[0]["cat_feature_index"])]["flat_feature_index"])
        ops = [
            {"kind": "catboost_hash"},
            {"kind": "vocab", "values": values, "unknown": None, "missing": "error"},
            {"kind": "table", "values": results, "default": calc(0, 0)},
        ]
        prior_text = f"{float(prior):g}/{float(denom):g}"
        return column, ops, f"{kind}[{prior_text}]"

    def split(self, s: dict, where: str) -> tuple[int, float, bool]:
        """(model feature, float32 border, NaN goes left) of one split: its bit is ``x > border``."""
        kind = s.get("split_type")
        if kind == "FloatFeature":
            i = int(s["float_feature_index"])
            f = self.floats[i]
            b = float(np.float32(float(s["border"])))  # CatBoost keeps its borders as float32
            if b != b:
                raise ModelFormatError(f"{where}: a border is NaN")
            nan_right = bool(f.get("has_nans")) and f.get("nan_value_treatment") == "AsTrue"
            return self.float_position[i], b, not nan_right
        if kind == "OneHotFeature":
            return self.onehot[(int(s["cat_feature_index"]), int(s["value"]) & 0xFFFFFFFF)], 0.5, True
        if kind == "OnlineCtr":
            feature, border = self.ctr_split[int(s["split_index"])]
            return feature, border, True
        raise UnsupportedModelError(f"{where}: CatBoost split type {str(kind)[:40]} is not supported")


def _raw_bounds(trees: list[tb.Tree], groups: list[int], K: int) -> tuple[list[float], list[float]]:
    """Per output, the float64 sums of the trees' smallest and largest leaves, in the order the raw score adds
    them: rounding is monotonic, so every raw score lies between the two."""
    lo, hi = [0.0] * K, [0.0] * K
    for tree, k in zip(trees, groups, strict=True):
        leaves = tree.value[tree.left == -1]
        lo[k] += float(leaves.min())
        hi[k] += float(leaves.max())
    return lo, hi


def _check_fast_exp_range(trees: list[tb.Tree], groups: list[int], K: int, name: str, where: str) -> None:
    """Refuse a model whose fast exp could see an input at or below -708.396 (or NaN): there CatBoost answers
    2.2e-308 or 0.0 (NaN: inf or NaN) depending on the CPU and on the value's position in its batch
    (``coldbrew/engine/cbexp.py``); above it, every path of its exp gives the same bits."""
    from coldbrew.engine.cbexp import SAFE_LOW

    lo, hi = _raw_bounds(trees, groups, K)
    if K == 1:  # Poisson, Tweedie: exp(raw)
        low, what = lo[0], "raw score"
    else:  # MultiClass: exp(raw - the row's largest raw)
        low, what = min(lo) - max(hi), "gap between a class's raw score and the row's largest"
    if not (math.isfinite(low) and all(math.isfinite(v) for v in lo + hi) and low > SAFE_LOW):
        raise UnsupportedModelError(
            f"{where}: CatBoost {name} model is not supported: its {what} can reach {low:.6g}, at or below "
            f"{SAFE_LOW!r}, where CatBoost's fast exp answers differently by CPU and by position in the batch"
        )


def _version(doc: dict) -> str:
    """The release in the model's ``catboost_version_info`` ("Branch: tags/v1.2.10"), or "?"."""
    info = str((doc.get("model_info") or {}).get("catboost_version_info") or "")
    for line in info.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Branch" and "/v" in value:
            return value.rsplit("/v", 1)[1].strip()[:40]
    return "?"


def _class_names(class_params: dict, n: int, where: str) -> list:
    names = class_params.get("class_names")
    if not names:
        return list(range(n))
    if len(names) != n:
        raise ModelFormatError(f"{where}: class_names has {len(names)} names, the model has {n} classes")
    kind = class_params.get("class_label_type", "")
    if kind == "Integer":
        return [int(v) for v in names]
    if kind == "Float":
        return [float(v) for v in names]
    if kind == "Boolean":
        return [v in (True, "true", "True", 1) for v in names]
    return [str(v) for v in names]


def _leaf(value: float) -> tb.Tree:
    return tb.Tree(
        left=np.array([-1]),
        right=np.array([-1]),
        feature=np.array([-1]),
        value=np.array([value], dtype=np.float64),
        flags=np.zeros(1, dtype=np.uint8),
    )


def _tree(t: dict, layout: _Layout, K: int, where: str) -> list[tb.Tree]:
    """One oblivious tree as K ordinary trees (one per output dimension), in heap numbering: node ``i`` has
    children ``2i+1`` (the split is false) and ``2i+2`` (true); level ``l`` tests ``splits[l]``."""
    splits = t.get("splits") or []
    D = len(splits)
    leaves = np.asarray(t["leaf_values"], dtype=np.float64)
    if len(leaves) != K << D:
        raise ModelFormatError(f"{where}: {len(leaves)} leaf values, expected {K << D} (depth {D}, {K} outputs)")
    if D > 16:
        raise UnsupportedModelError(f"{where}: depth {D} beyond CatBoost's limit of 16")
    feature, border, flag = [], [], []
    for s in splits:
        f, b, nan_left = layout.split(s, where)
        feature.append(f)
        border.append(b)
        flag.append(tb.flags(default_left=nan_left))
    n_inner = (1 << D) - 1
    inner = np.arange(n_inner)
    level = np.repeat(np.arange(D), 1 << np.arange(D))  # heap node i sits at level floor(log2(i + 1))
    left = np.concatenate([2 * inner + 1, np.full(1 << D, -1)])
    right = np.concatenate([2 * inner + 2, np.full(1 << D, -1)])
    feat = np.concatenate([np.asarray(feature, dtype=np.int64)[level], np.full(1 << D, -1)])
    flags = np.concatenate([np.asarray(flag, dtype=np.uint8)[level], np.zeros(1 << D, dtype=np.uint8)])
    # heap leaf q (left to right) took bit (q >> (D-1-l)) & 1 at level l: CatBoost's index reverses those bits
    q = np.arange(1 << D)
    index = np.zeros(1 << D, dtype=np.int64)
    for lvl in range(D):
        index |= ((q >> (D - 1 - lvl)) & 1) << lvl
    out = []
    for k in range(K):
        values = np.concatenate([np.asarray(border, dtype=np.float64)[level], leaves[index * K + k]])
        out.append(tb.Tree(left=left, right=right, feature=feat, value=values, flags=flags))
    return out


#: Strings the compile check sends to a categorical column: CatBoost stores only the hashes of the categories it
#: saw, so these are mostly unseen categories (the tests send the training categories too).
PROBE_STRINGS = ("", "a", "b", "0", "1", "unseen", "Unseen category", "\u00e9t\u00e9", "x" * 40)


def _nodes(root: dict) -> list[dict]:
    """The nodes of a non-symmetric tree (nested ``{"split", "left", "right"}`` / ``{"value"}``), pre-order."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            raise ModelFormatError("a CatBoost tree node is not an object")
        out.append(node)
        if len(out) > MAX_EXPANDED_NODES:
            raise UnsupportedModelError(f"a CatBoost tree has more than {MAX_EXPANDED_NODES:,} nodes")
        if "split" in node:
            stack.append(node["right"])
            stack.append(node["left"])
    return out


def _plain_tree(t: dict, layout: _Layout, K: int, where: str) -> list[tb.Tree]:
    """One non-symmetric tree (grow_policy Depthwise / Lossguide) as K ordinary trees: ``left`` is the side where
    the split is false (``x <= border``), ``right`` where it is true."""
    nodes = _nodes(t)
    index = {id(n): i for i, n in enumerate(nodes)}
    n = len(nodes)
    left, right = np.full(n, -1), np.full(n, -1)
    feature, border = np.full(n, -1), np.zeros(n)
    flags = np.zeros(n, dtype=np.uint8)
    leaves = np.zeros((n, K))
    for i, node in enumerate(nodes):
        if "split" in node:
            f, b, nan_left = layout.split(node["split"], where)
            left[i], right[i] = index[id(node["left"])], index[id(node["right"])]
            feature[i], border[i], flags[i] = f, b, tb.flags(default_left=nan_left)
        else:
            value = node["value"]
            values = np.asarray(value if isinstance(value, list) else [value], dtype=np.float64)
            if values.shape != (K,):
                raise ModelFormatError(f"{where}: a leaf has {values.size} values, expected {K}")
            leaves[i] = values
    out = []
    for k in range(K):
        value = np.where(left == -1, leaves[:, k], border)
        out.append(tb.Tree(left=left, right=right, feature=feature, value=value, flags=flags))
    return out


def probe_rows(header: dict, arrays: dict, n: int = 128) -> np.ndarray:
    """Rows on the model's float32 borders and next to them in float32 and in float64, with NaNs and zeros; for a
    model with an input stage, rows of its raw columns (an object array: numbers and strings)."""
    with np.errstate(over="ignore"):  # nextafter of the largest float32 border is an infinity: no probe there
        X = np.concatenate(
            [
                tb.probe_rows_from_arrays(header, arrays, n=n, dtype=np.float32),
                tb.probe_rows_from_arrays(header, arrays, n=n, dtype=np.float64),
            ]
        )
    stage = header.get("inputs")
    if stage is None:
        return X
    rng = np.random.default_rng(2)
    raw = np.empty((len(X), len(stage["columns"])), dtype=object)
    for c, column in enumerate(stage["columns"]):
        if column["type"] == "string":
            raw[:, c] = [PROBE_STRINGS[i] for i in rng.integers(0, len(PROBE_STRINGS), size=len(X))]
    for j, f in enumerate(stage["features"]):
        if not f["ops"]:
            raw[:, f["column"]] = X[:, j].tolist()
    return raw


#: :func:`~coldbrew.convert.trees.write_checked` for catboost: checked against catboost on :func:`probe_rows`.
_write_checked = partial(tb.write_checked, library="catboost", probe=probe_rows)

_TO_JSON = """import sys, catboost
path, out = sys.argv[1], sys.argv[2]
model = catboost.CatBoost()
model.load_model(path)
model.save_model(out, format="json")
"""

_CHILD = """import sys, numpy as np, catboost
path, rows, out = sys.argv[1:4]
est = catboost.{cls}()
est.load_model(path, format="{fmt}")
X = np.load(rows, allow_pickle=True)  # our own file: rows of numbers and strings
if {clf}:
    pred = est.predict(X)
    np.savez(out, pred=np.asarray(pred).reshape(len(X)).astype(str) if pred.dtype == object else
             np.asarray(pred).reshape(len(X)), proba=est.predict_proba(X), obj=pred.dtype == object)
else:
    np.savez(out, pred={predict})
"""


def _catboost_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("catboost") is None


def load_cbm(path: Path) -> dict:
    """The JSON export of a ``.cbm`` file, made by catboost in a child process."""
    import subprocess
    import sys
    import tempfile

    if _catboost_missing():
        raise UnsupportedModelError(
            f"{path}: compiling a CatBoost .cbm file needs the catboost package (pip install catboost), "
            "or save the model as JSON (save_model(..., format='json'))"
        )
    with tempfile.TemporaryDirectory(prefix="coldbrew-cbm-") as tmp:
        out = Path(tmp) / "model.json"
        proc = subprocess.run(
            [sys.executable, "-c", _TO_JSON, str(path), str(out)], capture_output=True, text=True, check=False
        )
        if proc.returncode:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            why = lines[-1] if proc.returncode > 0 and lines else f"the process died (exit status {proc.returncode})"
            if "Can save model with" in why:  # loaded, but catboost exports text/embedding models only as .cbm
                raise UnsupportedModelError(f"{path}: {_export_refusal(why)}")
            raise ModelFormatError(f"{path}: catboost itself cannot load this file: {why[:300]}")
        return parse_json(out.read_bytes(), where=str(path), as_catboost_reads=False)


def _export_refusal(why: str) -> str:
    """The one-line refusal for a model catboost will not export as JSON (text or embedding features)."""
    for what in ("text", "embedding"):
        if f"{what} features" in why:
            return f"CatBoost model uses {what} features; not supported"
    return f"catboost cannot export this model as JSON ({why.strip().splitlines()[-1][:200] if why.strip() else ''})"


def _reference_from_file(path: Path, header: dict, fmt: str):
    """catboost's own predictions (through CatBoostClassifier / CatBoostRegressor / the raw scores of a ranker),
    computed in a child process, or None when catboost is not installed."""
    if _catboost_missing():
        return None
    clf = header["classes"] is not None
    ranker = header["source"]["objective"].split(":")[0] in RANKING_OBJECTIVES
    cls = "CatBoostClassifier" if clf else "CatBoost" if ranker else "CatBoostRegressor"
    predict = "est.predict(X, prediction_type='RawFormulaVal')" if ranker else "est.predict(X)"
    code = _CHILD.format(cls=cls, clf=clf, fmt=fmt, predict=predict)

    def reference(X):
        got = tb.library_in_subprocess("catboost", code, path, X)
        pred = got["pred"]
        if clf and bool(got["obj"]):
            pred = pred.astype(object)
        return got.get("proba"), pred

    return reference


def compile_path(src: str | os.PathLike, dst: str | os.PathLike, *, kind: str, class_labels=None) -> dict:
    """Compile a CatBoost ``.cbm`` (``kind="catboost-cbm"``) or JSON model file into ``dst``; checked against
    catboost itself when it is installed."""
    started = time.perf_counter()
    src = Path(src)
    if kind == "catboost-cbm":
        doc, fmt = load_cbm(src), "cbm"
    else:
        doc, fmt = parse_json(src.read_bytes(), where=str(src)), "json"
    header, arrays = model_to_arrays(doc, where=str(src))
    reference = _reference_from_file(src, header, fmt)
    what = "CatBoost model file" + (" (.cbm)" if fmt == "cbm" else " (JSON)")
    return _write_checked(header, arrays, dst, reference, class_labels, started, what=what)


def compile_estimator(est, dst: str | os.PathLike, *, class_labels=None) -> dict:
    """Compile a fitted CatBoostClassifier / CatBoostRegressor / CatBoostRanker (or CatBoost) object into ``dst``."""
    import tempfile

    import catboost

    started = time.perf_counter()
    name = type(est).__name__
    if not isinstance(est, catboost.CatBoost):
        raise UnsupportedModelError(f"cannot compile a {type(est).__module__}.{name}")
    if not est.is_fitted():
        raise UnsupportedModelError(f"cannot compile a CatBoost {name}: it is not fitted")
    with tempfile.TemporaryDirectory(prefix="coldbrew-cb-") as tmp:
        path = Path(tmp) / "model.json"
        try:
            est.save_model(str(path), format="json")
        except catboost.CatBoostError as exc:
            raise UnsupportedModelError(f"cannot compile a CatBoost {name}: {_export_refusal(str(exc))}") from None
        doc = parse_json(path.read_bytes(), where=name, as_catboost_reads=False)
    classes = getattr(est, "classes_", None) if isinstance(est, catboost.CatBoostClassifier) else None
    header, arrays = model_to_arrays(doc, where=name, classes=None if classes is None else np.asarray(classes).tolist())
    classifier = header["classes"] is not None
    if isinstance(est, catboost.CatBoostClassifier) != classifier:
        raise UnsupportedModelError(
            f"cannot compile a CatBoost {name} with objective {header['source']['objective']}: "
            f"{'a classifier' if classifier else 'a regression/ranking'} objective in a {name}"
        )
    if classifier:

        def reference(X):
            pred = est.predict(X)
            return est.predict_proba(X), np.asarray(pred).reshape(len(X))
    elif type(est) is catboost.CatBoost:

        def reference(X):
            return None, est.predict(X, prediction_type="RawFormulaVal")
    else:

        def reference(X):
            return None, est.predict(X)

    return _write_checked(header, arrays, dst, reference, class_labels, started, what=name)
