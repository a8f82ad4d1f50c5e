"""The .brew prediction path on numpy arrays, for the numpy kernel (the fallback where the C kernel is not built).

This is the whole path as it was before the serving runtime dropped numpy: numpy casts and checks the rows
(``coldbrew.engine.inputs``), ``coldbrew.engine.numpy_kernel`` traverses, numpy applies the outputs. Bit for bit
the same answers as the C path in ``coldbrew.engine.brew``; imported only when the numpy kernel is chosen.
"""

from __future__ import annotations

import numpy as np

from coldbrew.engine import numpy_kernel
from coldbrew.engine.inputs import LINEAR_OVERFLOW, InvalidInputError, as_float32, as_float64_with_nan
from coldbrew.errors import ModelFormatError
from coldbrew.format import BrewFile


class NumpyPath:
    """``predict_raw`` / ``predict_proba`` / ``predict`` of one .brew file on numpy arrays (numpy in, numpy out)."""

    def __init__(self, file: BrewFile, feature_names: tuple[str, ...], kern=numpy_kernel, max_steps: int = -1):
        h = file.header
        self.file, self.header, self.feature_names, self.n_features = file, h, feature_names, h["n_features"]
        self._kern = kern
        self._max_steps = max_steps
        self._classes = None if h["classes"] is None else np.array(h["classes"], dtype=np.dtype(h["classes_dtype"]))
        a = file.arrays
        self._nodes, self._offsets, self._base = a["nodes"], a["tree_offsets"], a["base_score"]
        self._vector = h["leaf"] == "vector"
        self._leaf_values = a.get("leaf_values", np.empty((0, h["n_outputs"])))
        self._v2 = h["version"] >= 2
        if self._v2:
            self._flags, self._groups = a["node_flags"], a["tree_groups"]
            self._cat_offsets = a.get("cat_offsets", np.zeros(1, dtype=np.int64))
            self._cat_words = a.get("cat_words", np.zeros(1, dtype=np.uint32))
            self._acc = np.float32 if h["accumulate"] == "float32" else np.float64
            names = ("linear_offsets", "linear_features", "linear_coeffs", "linear_const")
            linear: list = [a[name] for name in names] if "linear_offsets" in a else [None] * 4
            self._linear = (*linear, h.get("linear_missing") == "skip")

    def predict_raw(self, X) -> np.ndarray:
        """Raw scores, shape (n_rows, n_outputs): base score plus every tree's leaf, tree by tree."""
        if self._v2:
            return self._predict_raw_v2(X)
        X32 = as_float32(X, self.feature_names, self.n_features)
        K = self.header["n_outputs"]
        out = np.empty((X32.shape[0], K), dtype=np.float64)
        out[...] = self._base
        try:
            self._kern.predict_raw(
                self._nodes,
                self._offsets,
                self._leaf_values,
                X32,
                out,
                self.n_features,
                K,
                self._vector,
                self._max_steps,
            )
        except ValueError as exc:
            raise ModelFormatError(f"{self.file.path}: {exc}") from None
        if self.header["combine"] == "mean":
            out /= self.header["n_trees"]
        if not np.isfinite(out).all():  # finite but huge leaf values can still overflow: never serve inf or NaN
            raise ModelFormatError(f"{self.file.path}: corrupt model: the raw score overflowed to infinity or NaN")
        return out

    def _predict_raw_v2(self, X) -> np.ndarray:
        h = self.header
        if h.get("input_missing") == "refuse":  # section 13.5: float32 without NaN (scikit-learn's GradientBoosting)
            X64 = as_float32(X, self.feature_names, self.n_features).astype(np.float64)
        else:
            X64 = as_float64_with_nan(X, self.feature_names, self.n_features, h["input_dtype"])
        zero = h["input_zero_threshold"]
        if zero:  # LightGBM reads |x| <= 1e-35f as 0 (its dense-row copy skips them)
            X64[np.abs(X64) <= zero] = 0.0
        K = h["n_outputs"]
        out = np.empty((X64.shape[0], K), dtype=self._acc)
        out[...] = self._base.astype(self._acc)
        try:
            self._kern.predict_raw2(
                self._nodes,
                self._flags,
                self._offsets,
                self._groups,
                self._cat_offsets,
                self._cat_words,
                X64,
                out,
                self.n_features,
                K,
                h["split_compare"] == "lt",
                self._acc is np.float32,
                self._max_steps,
                1,
                *self._linear,
            )
        except ValueError as exc:
            raise ModelFormatError(f"{self.file.path}: {exc}") from None
        if h["combine"] == "mean":  # each output by the number of trees that add to it (section 11)
            out /= float(h["n_trees"] // K)
        if "n_linear_coeffs" in h and not np.isfinite(out).all():
            raise InvalidInputError(LINEAR_OVERFLOW)
        if not np.isfinite(out).all():  # a NaN/inf leaf or an overflowing sum: never serve inf or NaN
            raise ModelFormatError(f"{self.file.path}: corrupt model: the raw score overflowed to infinity or NaN")
        return out

    def _proba_v2(self, raw: np.ndarray) -> np.ndarray:
        output = self.header["output"]
        K = self.header["n_outputs"]
        if output == "softmax_f32":
            self._kern.softmax_f32(raw, K)
            return raw
        if output == "softmax_seq":
            self._kern.softmax_seq(raw, K)
            return raw
        if output == "softmax_cb":  # CatBoost MultiClass (section 13.6)
            self._kern.softmax_cb(raw, K)
            return raw
        if output == "sigmoid_f32":  # XGBoost's sklearn wrapper: vstack((1.0 - p, p)).transpose(), float32
            p1 = np.ascontiguousarray(raw[:, 0])
            self._kern.sigmoid_f32(p1)
            return np.vstack((1.0 - p1, p1)).transpose()
        if output == "sigmoid_each":  # LightGBM multiclassova
            flat = np.ascontiguousarray(raw).reshape(-1)
            self._kern.expit(flat)
            return flat.reshape(raw.shape)
        if output == "hinge_f32":  # XGBoost binary:hinge
            p1 = (raw[:, 0] > 0).astype(np.float32)
            return np.vstack((1.0 - p1, p1)).transpose()
        if output == "softmax_np_seq":
            return softmax(raw, sequential=True)
        if output == "vote_proba":  # VotingClassifier (soft), section 13: the same float64 steps as the C path
            from coldbrew.engine.members import vote

            n = raw.shape[0]
            return np.array(vote(raw.reshape(-1).tolist(), n, self.header), dtype=np.float64).reshape(n, -1)
        if output == "calibrated_proba":  # CalibratedClassifierCV, section 13
            from coldbrew.engine.members import calibrate

            n = raw.shape[0]
            return np.array(calibrate(raw.reshape(-1).tolist(), n, self.header), dtype=np.float64).reshape(n, -1)
        return self._proba(raw)  # logistic, softmax, proba: as scikit-learn

    def anomaly(self, X, method: str) -> np.ndarray:
        """An isolation forest's ``score_samples``, ``decision_function`` or ``predict`` (section 13)."""
        return anomaly(np.ascontiguousarray(self.predict_raw(X)[:, 0]), self.header, method)

    def _predict_v2(self, raw: np.ndarray) -> np.ndarray:
        h = self.header
        decision = h["decision"]
        if decision == "anomaly_sign":
            return anomaly(np.ascontiguousarray(raw[:, 0]), h, "predict")
        if decision == "vote_hard":  # VotingClassifier(voting="hard"), section 13.3
            from coldbrew.engine.members import vote_labels

            assert self._classes is not None
            chosen = vote_labels(raw.reshape(-1).tolist(), raw.shape[0], h)
            return self._classes.take(np.array(chosen, dtype=np.intp), axis=0)
        if decision == "value":
            output = h["output"]
            if output == "vote_mean":  # VotingRegressor, section 13
                from coldbrew.engine.members import vote

                return np.array(vote(raw.reshape(-1).tolist(), raw.shape[0], h), dtype=np.float64)
            if h["n_outputs"] > 1:  # a multi-output regressor (identity): one vector per row
                return raw
            p = np.ascontiguousarray(raw[:, 0])
            if output == "sigmoid_f32":
                self._kern.sigmoid_f32(p)
            elif output == "exp_f32":
                self._kern.exp_f32(p)
            elif output == "exp":
                self._kern.exp_f64(p)
            elif output == "exp_cb":  # CatBoost Poisson / Tweedie (section 13.6)
                self._kern.exp_cb(p)
            elif output == "logistic":
                self._kern.expit(p)
            elif output == "exp_np":
                return np.exp(p)
            return p
        assert self._classes is not None  # the header validation: a decision other than "value" has classes
        if decision == "raw_ge0":
            return self._classes[(raw[:, 0] >= 0).astype(int)]
        if decision == "raw_gt0":
            return self._classes[(raw[:, 0] > 0).astype(int)]
        if decision == "argmax_raw":
            return self._classes.take(np.argmax(raw, axis=1), axis=0)
        proba = self._proba_v2(raw)
        if decision == "proba_gt_half":
            return self._classes[(proba[:, 1] > 0.5).astype(int)]
        return self._classes.take(np.argmax(proba, axis=1), axis=0)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes), in ``classes`` order."""
        if self._v2:
            return self._proba_v2(self.predict_raw(X))
        return self._proba(self.predict_raw(X))

    def _proba(self, raw: np.ndarray) -> np.ndarray:
        output = self.header["output"]
        if output == "proba":
            return raw
        if output == "softmax":
            return softmax(raw)
        p1 = raw[:, 0] * 2 if output == "logistic2" else raw[:, 0].copy()
        self._kern.expit(p1)
        proba = np.empty((raw.shape[0], 2), dtype=np.float64)
        proba[:, 1] = p1
        proba[:, 0] = 1 - proba[:, 1]
        return proba

    def predict(self, X) -> np.ndarray:
        """Class labels (classifiers) or regression values, as the library's ``predict``."""
        raw = self.predict_raw(X)
        if self._v2:
            return self._predict_v2(raw)
        output = self.header["output"]
        if output == "identity" or self._classes is None:
            return raw[:, 0]
        if output in ("logistic", "logistic2"):
            return self._classes[(raw[:, 0] >= 0).astype(int)]
        return self._classes.take(np.argmax(raw, axis=1), axis=0)


def softmax(raw: np.ndarray, *, sequential: bool = False) -> np.ndarray:
    """In place: sklearn.utils.extmath.softmax, operation for operation (numpy's own exp and pairwise sum).

    ``sequential``: the row sums are added left to right, as numpy sums the rows of a Fortran-ordered array
    (HistGradientBoosting's raw scores are; from 8 columns on numpy's pairwise sum of a C-ordered row differs).

    numpy's ``exp`` is not libm's: on CPUs with AVX-512 numpy >= 2.4 uses its own SIMD exp, which differs from
    libm's in the last bit for about 5 % of float64 and 22 % of float32 inputs measured here
    (bench/results/exp_libm_vs_numpy.md). The libraries' softmax is numpy's, so this output is computed with numpy
    on both kernels.
    """
    raw -= raw.max(axis=1).reshape(-1, 1)
    np.exp(raw, out=raw)
    if sequential:
        total = raw[:, 0].copy()
        for k in range(1, raw.shape[1]):
            total += raw[:, k]
    else:
        total = raw.sum(axis=1)
    raw /= total.reshape(-1, 1)
    return raw


#: What an isolation forest answers, by method name (docs/format.md section 13).
ANOMALY_METHODS = ("score_samples", "decision_function", "predict")


def anomaly(depths: np.ndarray, header: dict, method: str) -> np.ndarray:
    """scikit-learn's IsolationForest from the summed path lengths ``depths`` (a contiguous float64 vector), its
    own expressions: ``score_samples = -(2 ** -(depths / denominator))`` (numpy's ``divide`` with its ``where``
    and numpy's ``power``, which is not libm's ``pow`` on CPUs with AVX-512: measured here, 5 % of the scores
    differ in the last bit), ``decision_function = score_samples - offset_``, ``predict`` = -1 where the decision
    is negative, else 1 (int64)."""
    denominator = np.array([header["score_denominator"]], dtype=np.float64)  # sklearn's is a 1-element array
    scores = 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))
    samples = -scores
    if method == "score_samples":
        return samples
    decision = samples - header["score_offset"]
    if method == "decision_function":
        return decision
    is_inlier = np.ones_like(decision, dtype=int)
    is_inlier[decision < 0] = -1
    return is_inlier
