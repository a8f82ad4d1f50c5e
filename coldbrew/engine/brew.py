"""BrewPredictor: predictions from a memory-mapped .brew file, bit-identical to the libraries'.

With the C kernel (``coldbrew/engine/_kernel.c``) the serving path imports no numpy: the reader is standard
library, rows given as lists are flattened into an ``array('d')``, and the kernel casts and checks them, walks the
trees, applies the link functions (libm's ``exp``/``expf``) and takes the argmax. Lists in, lists out. A numpy array
in (or any other array-like) gives numpy arrays out, with the same values and dtypes as before.

One output needs numpy whatever the kernel: ``softmax`` (scikit-learn's multiclass GradientBoosting and
HistGradientBoosting, XGBoost's ``multi:softmax``) computes probabilities with numpy's own ``exp``, which is not
libm's on CPUs with AVX-512 (see ``brew_numpy.softmax``), so its ``predict_proba`` imports numpy to stay bit-exact.
Its ``predict`` (an argmax of raw scores) does not.

Without the C kernel the numpy kernel runs the whole path on numpy (``coldbrew.engine.brew_numpy``).
"""

from __future__ import annotations

import os
import sys

from coldbrew.engine.buffers import array
from coldbrew.engine.inputs import (
    LINEAR_OVERFLOW,
    InvalidInputError,
    as_float32,
    as_float64_with_nan,
    bad_value,
    flat_rows,
    is_rows_list,
)
from coldbrew.errors import ColdbrewError, ModelFormatError
from coldbrew.format import BrewFile
from coldbrew.format.spec import NO_PROBA_OUTPUTS, NUMPY_OUTPUTS, label_values

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from typing import Any

    import numpy as np

try:
    from coldbrew.engine import _kernel as c_kernel
except ImportError:  # no compiler at install time: the numpy kernel does the same work
    c_kernel = None

KERNELS = ("c", "numpy") if c_kernel is not None and sys.byteorder == "little" else ("numpy",)


class BrewPredictor:
    """A .brew model: ``predict_raw``, ``predict_proba`` (classifiers), ``predict``, ``info``.

    Each method takes rows as a list of lists (``None`` = missing where the model handles it) and returns lists,
    or a numpy array / array-like and returns numpy arrays.
    """

    format = "brew"

    def __init__(
        self,
        path,
        *,
        verify: bool = False,
        eager: bool = False,
        kernel: str | None = None,
        threads: int | None = None,
    ):
        self.kernel = kernel or KERNELS[0]
        #: Threads a large batch runs on (the C kernel; results do not depend on it): default_threads().
        self.threads = default_threads() if threads is None else _check_threads(threads, "threads")
        if self.kernel not in KERNELS:
            raise ColdbrewError(f"kernel {self.kernel!r} is not available here (available: {', '.join(KERNELS)})")
        self.file = BrewFile(path, verify=verify, eager=eager, checks=c_kernel if self.kernel == "c" else None)
        h = self.file.header
        self.header = h
        self.kind: str = h["kind"]
        self.n_features: int = h["n_features"]
        self.feature_names: tuple[str, ...] = tuple(h["feature_names"] or (f"x{i}" for i in range(self.n_features)))
        self.classes: tuple | None = None if h["classes"] is None else label_values(h["classes"], h["classes_dtype"])
        self._v2 = h["version"] >= 2
        self._K: int = h["n_outputs"]
        #: The model's own feature count; with an input stage (version 3 ``inputs``) ``n_features`` and
        #: ``feature_names`` are the raw request columns the stage turns into these features.
        self._nf: int = self.n_features
        self._model_names = self.feature_names
        self.stage: Any = None
        if h.get("inputs") is not None:
            from coldbrew.engine.stage import Stage

            self.stage = Stage(h["inputs"], self.feature_names)
            self.n_features, self.feature_names = self.stage.n_columns, self.stage.columns
        # The work budget: no row may pass more splits over all trees than the header states (docs/format.md 5).
        self._max_steps: int = h["n_trees"] * h["max_depth"]
        self._np_classes: Any = None
        self._numpy_path: Any = None
        self._has_proba = self.has_proba
        self._output: str = h["output"]
        self._fast: Any = None  # row_proba's arguments but the row and out, and the forms they are bound to
        if self.kernel == "numpy":
            _require_numpy("the numpy kernel (the C kernel is not built here)")
            from coldbrew.engine.brew_numpy import NumpyPath

            self._numpy_path = NumpyPath(self.file, self._model_names, max_steps=self._max_steps)
            return
        b = self.file.buffers
        self._nodes_buf, self._offsets_buf = b["nodes"], b["tree_offsets"]
        self._leaf_buf = b.get("leaf_values", b"")
        self._acc32 = self._v2 and h["accumulate"] == "float32"
        self._base_row = array("f" if self._acc32 else "d", b["base_score"].tolist())
        if self._v2:
            self._flags_buf, self._groups_buf = b["node_flags"], b["tree_groups"]
            self._cat_offsets_buf = b.get("cat_offsets", bytes(8))  # one zero offset: no bitsets
            self._cat_words_buf = b.get("cat_words", bytes(4))
            self._mode = 1 if h["input_dtype"] == "float32" else 2
            if h.get("input_missing") == "refuse":  # section 13.5: NaN is an input error, as in version 1
                self._mode = 3
            names = ("linear_offsets", "linear_features", "linear_coeffs", "linear_const")
            linear: list[Any] = [b[name] for name in names] if "linear_offsets" in b else [None] * 4
            self._linear = (*linear, h.get("linear_missing") == "skip")
        else:
            self._mode = 0
        # The compact and row forms (docs/format.md section 7) are built once the walks made without them have cost
        # about an eighth of building them (building checks every node): rows x trees walked >= nodes / 8. A single
        # request to a fresh process never pays for the whole model's check (a 140 MB model: ~65 ms), a batch of a
        # few rows per tree node builds them at once, and ``warm()`` builds them now (SnapStart's snapshot hook).
        self._walks_left = max(1, int(h["n_nodes"]) // 8)
        self._warmed = False
        self._trees = max(1, int(h["n_trees"]))
        self._compact: Any = None
        self._rowform: Any = None
        self._bound: Any = None  # (compact, rowform, bind2's capsule for them)
        # A binary classifier's single row, once the forms are built: one C call (row_proba) from the row to its
        # (1 - p, p), instead of ~2 us of Python around the walks (_fast: set by _raw).
        self._fast_how = 0
        if self._v2 and self._mode in (1, 2) and self.stage is None and self._K == 1 and self._has_proba:
            if self._output == "logistic" and not self._acc32:
                self._fast_how = 1
            elif self._output == "sigmoid_f32" and self._acc32:
                self._fast_how = 2
        # the kernel's arguments, fixed per model (a single row's cost is mostly the Python around the walks)
        self._lt = self._v2 and h["split_compare"] == "lt"
        self._zero = float(h["input_zero_threshold"]) if self._v2 else 0.0
        self._divisor = 0.0
        if h["combine"] == "mean":  # version 2: each output by the number of trees that add to it (section 11)
            self._divisor = float(h["n_trees"] // self._K if self._v2 else h["n_trees"])
        if self._v2:
            self._head: tuple = (
                self._nodes_buf,
                self._flags_buf,
                self._offsets_buf,
                self._groups_buf,
                self._cat_offsets_buf,
                self._cat_words_buf,
            )
        else:
            self._head = (self._nodes_buf, self._offsets_buf, self._leaf_buf)

    # numpy views of the arrays, for tools and tests that inspect a loaded model (imports numpy)
    @property
    def _nodes(self) -> np.ndarray:
        return self.file.arrays["nodes"]

    @property
    def _offsets(self) -> np.ndarray:
        return self.file.arrays["tree_offsets"]

    @property
    def _base(self) -> np.ndarray:
        return self.file.arrays["base_score"]

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def has_proba(self) -> bool:
        """True for a classifier with ``predict_proba`` (a hard-voting VotingClassifier has none, as in scikit-learn)."""
        return self.is_classifier and self.header["output"] not in NO_PROBA_OUTPUTS

    @property
    def needs_numpy(self) -> bool:
        """True if serving this model imports numpy: the numpy kernel, or a ``softmax`` output's probabilities
        (numpy's own exp, module docstring). A deployment without numpy can serve the model when this is False."""
        return self.kernel == "numpy" or self.header["output"] in NUMPY_OUTPUTS

    # ------------------------------------------------------------------------------------------- public API
    def predict_raw(self, X) -> Any:
        """Raw scores, shape (n_rows, n_outputs): base score plus every tree's leaf, tree by tree."""
        if self._numpy_path is not None:
            return self._listed(self._numpy_path.predict_raw(self._staged(X)), X)
        raw, n, numpy_in = self._raw(X)
        return self._matrix(raw, n, self._K, numpy_in)

    def predict_proba(self, X) -> Any:
        """Class probabilities, shape (n_rows, n_classes), in ``classes`` order."""
        if not self._has_proba:
            raise ColdbrewError(
                f"a {self.kind} with output {self.header['output']!r} has no predict_proba; use predict"
            )
        fast = self._fast  # one row of a binary classifier in one C call (same bits); else the general path
        if fast is not None and fast[7] is self._compact and fast[8] is self._rowform:  # (bound to today's forms)
            kind = type(X)
            if kind is list and len(X) == 1 and type(X[0]) in (list, tuple):  # (a list of numpy rows: numpy's way)
                out = fast[2][:]
                if c_kernel.row_proba(fast[0], X[0], fast[1], out, fast[3], fast[4], fast[5], fast[6]):
                    return [out.tolist()]
            elif kind is _NDARRAY:  # (row_proba takes a float64 C-contiguous (1, n_features) array only)
                out = fast[2][:]
                if c_kernel.row_proba(fast[0], X, fast[1], out, fast[3], fast[4], fast[5], fast[6]):
                    return _NDARRAY((1, 2), _F64 if fast[6] == 1 else _F32, out)
        if self._numpy_path is not None:
            return self._listed(self._numpy_path.predict_proba(self._staged(X)), X)
        raw, n, numpy_in = self._raw(X)
        proba, width = self._proba(raw, n)
        if not isinstance(proba, array):  # softmax: numpy's own exp (module docstring)
            return proba if numpy_in else proba.tolist()
        return self._matrix(proba, n, width, numpy_in)

    def predict(self, X) -> Any:
        """Class labels (classifiers) or regression values, as the library's ``predict``."""
        if self._numpy_path is not None:
            return self._listed(self._numpy_path.predict(self._staged(X)), X)
        raw, n, numpy_in = self._raw(X)
        h = self.header
        decision = h["decision"] if self._v2 else _V1_DECISIONS[h["output"]]
        if decision == "anomaly_sign":
            return self._anomaly(raw, numpy_in, "predict")
        if decision == "vote_hard":  # VotingClassifier(voting="hard"), section 13.3
            from coldbrew.engine.members import vote_labels

            return self._labels(vote_labels(raw, n, h), numpy_in)
        if decision == "value" or self.classes is None:
            return self._value(raw, numpy_in)
        if decision == "raw_ge0":
            chosen = [1 if v >= 0 else 0 for v in raw]
        elif decision == "raw_gt0":
            chosen = [1 if v > 0 else 0 for v in raw]
        elif decision == "argmax_raw":
            chosen = (c_kernel.argmax_f32 if self._acc32 else c_kernel.argmax_f64)(raw, self._K)
        else:
            proba, width = self._proba(raw, n)
            if not isinstance(proba, array):  # softmax probabilities are numpy's
                chosen = proba.argmax(axis=1).tolist()
            elif decision == "proba_gt_half":
                chosen = [1 if v > 0.5 else 0 for v in proba[1::2]]
            else:  # argmax_proba
                chosen = (c_kernel.argmax_f32 if proba.typecode == "f" else c_kernel.argmax_f64)(proba, width)
        return self._labels(chosen, numpy_in)

    def score_samples(self, X) -> Any:
        """An isolation forest's ``score_samples`` (the lower, the more abnormal), as scikit-learn's."""
        return self._anomaly_method(X, "score_samples")

    def decision_function(self, X) -> Any:
        """An isolation forest's ``decision_function`` (``score_samples - offset_``; negative: an outlier)."""
        return self._anomaly_method(X, "decision_function")

    def _anomaly_method(self, X, method: str) -> Any:
        if self.header["decision"] != "anomaly_sign" if self._v2 else True:
            raise ColdbrewError(f"a {self.kind} has no {method}; use predict")
        if self._numpy_path is not None:
            return self._listed(self._numpy_path.anomaly(X, method), X)
        raw, _, numpy_in = self._raw(X)
        return self._anomaly(raw, numpy_in, method)

    def _anomaly(self, raw: array, numpy_in: bool, method: str) -> Any:
        """Scores from the summed path lengths: numpy's ``2 ** x`` is not libm's ``pow`` (brew_numpy.anomaly)."""
        _require_numpy(f"the scores of a {self.kind} (numpy's power, not libm's)")
        import numpy as np

        from coldbrew.engine.brew_numpy import anomaly

        values = anomaly(np.frombuffer(raw, dtype=np.float64).copy(), self.header, method)
        return values if numpy_in else values.tolist()

    def info(self) -> dict:
        """Facts about the model for logs and telemetry."""
        h = self.header
        return {
            "format": self.format,
            "kind": self.kind,
            "size_bytes": self.file.size_bytes,
            "n_trees": h["n_trees"],
            "n_nodes": h["n_nodes"],
            "max_depth": h["max_depth"],
            "n_features": self.n_features,
            "classes": list(self.classes) if self.classes is not None else None,
            "format_version": h["version"],
            "kernel": self.kernel,
            "checksum_verified": self.file.checksum_verified,
        }

    # ------------------------------------------------------------------------------------ the C kernel path
    def _staged(self, X) -> Any:
        """``X`` through the input stage (numpy: a float64 matrix of the model's features); as is without one."""
        return X if self.stage is None else self.stage.matrix(X)

    def _input(self, X) -> tuple[Any, int, bool]:
        """The kernel's input buffer (float32 for version 1, float64 with NaN for version 2), its row count and
        whether numpy came in. Lists are cast and checked by the C kernel; array-likes by numpy, as before."""
        nf = self._nf
        if _NDARRAY is None and sys.modules.get("numpy") is not None:  # numpy came in (not imported here): its types
            _numpy()
        if (  # a C-contiguous float64 numpy matrix, checked cheapest first (the common request)
            type(X) is _NDARRAY
            and self._mode in (0, 1, 2)  # (3 refuses NaN: numpy's checks below)
            and self.stage is None
            and (X.dtype is _F64 or X.dtype == _F64)
            and X.ndim == 2
            and X.shape[1] == nf
            and X.shape[0] > 0
            and X.flags.c_contiguous
        ):  # the kernel casts and checks it (as numpy would, same bits)
            buf = array("f" if self._mode == 0 else "d", bytes(X.size * (4 if self._mode == 0 else 8)))
            if c_kernel.cast_input(X, buf, nf, self._mode, self._zero) < 0:
                return buf, X.shape[0], True
            # a refused value: numpy's checks below name it
        h = self.header
        if is_rows_list(X):
            if self.stage is not None:  # raw columns -> the model's features, without numpy
                flat = self.stage.rows(X)
            else:
                flat = flat_rows(X, nf)
            refuse_nan = self._mode in (0, 3)  # version 1, or input_missing "refuse": float32 without NaN
            buf = array("f" if refuse_nan else "d", bytes(len(flat) * (4 if refuse_nan else 8)))
            bad = c_kernel.cast_input(flat, buf, nf, 0 if refuse_nan else self._mode, self._zero)
            if bad < 0 and self._mode == 3:
                buf = array("d", buf)  # the float32 values widened exactly, for the version 2 traversal
            if bad >= 0:
                if refuse_nan:
                    why = "is NaN" if flat[bad] != flat[bad] else "is infinite or too large for float32"
                else:
                    why = f"is infinite or too large for {h['input_dtype']}"
                if self.stage is not None:
                    row, col = divmod(bad, nf)
                    raise InvalidInputError(f"row {row}, feature {self._model_names[col]}: {flat[bad]!r} {why}")
                raise InvalidInputError(bad_value(X, bad, nf, self.feature_names, why))
            return buf, len(flat) // nf, False
        import numpy as np

        X = self._staged(X)
        if not self._v2 or self._mode == 3:
            X32 = as_float32(X, self._model_names, nf)
            if self._mode == 3:  # input_missing "refuse": float32 without NaN, widened for the version 2 walk
                return X32.astype(np.float64), X32.shape[0], True
            return X32, X32.shape[0], True
        X64 = as_float64_with_nan(X, self._model_names, nf, h["input_dtype"])
        zero = h["input_zero_threshold"]
        if zero:  # LightGBM reads |x| <= 1e-35f as 0 (its dense-row copy skips them)
            X64[np.abs(X64) <= zero] = 0.0
        return X64, X64.shape[0], True

    def _raw(self, X) -> tuple[array, int, bool]:
        """Raw scores as a flat array (``'d'``, or ``'f'`` for float32 accumulation), rows, numpy-in."""
        rows, n, numpy_in = self._input(X)
        out = self._base_row * n
        if self._walks_left > 0:
            self._walks_left -= n * self._trees
            if self._walks_left <= 0:
                self._walks_left = 0
                self.warm()
        try:
            if self._v2:  # the model's buffers checked and held once per form (a row's call is then the rows')
                bound = self._bound
                if bound is None or bound[0] is not self._compact or bound[1] is not self._rowform:
                    bound = self._bound = (self._compact, self._rowform, self._bind())
                    if self._warmed and self._fast_how:  # the forms are built: single rows take row_proba
                        blank = array("d" if self._fast_how == 1 else "f", (0.0, 0.0))
                        fast = (bound[2], self._base_row, blank, self._mode, self._zero, self._divisor)
                        self._fast = (*fast, self._fast_how, self._compact, self._rowform)
                c_kernel.run_bound(bound[2], rows, out, self.threads)
            else:
                c_kernel.predict_raw(
                    *self._head,
                    rows,
                    out,
                    self._nf,
                    self._K,
                    self.header["leaf"] == "vector",
                    self._max_steps,
                    self.threads,
                    self._compact,
                    self._rowform,
                )
        except ValueError as exc:
            raise ModelFormatError(f"{self.file.path}: {exc}") from None
        if c_kernel.finish_raw(out, self._divisor, self._acc32) >= 0:  # an overflowing sum: never serve inf or NaN
            if "n_linear_coeffs" in self.header:
                raise InvalidInputError(LINEAR_OVERFLOW)
            raise ModelFormatError(f"{self.file.path}: corrupt model: the raw score overflowed to infinity or NaN")
        return out, n, numpy_in

    def _bind(self) -> Any:
        """``_kernel.bind2`` of this model with its current compact and row forms."""
        return c_kernel.bind2(
            *self._head,
            self._nf,
            self._K,
            self._lt,
            self._acc32,
            self._max_steps,
            *self._linear,
            self._compact,
            self._rowform,
        )

    def warm(self) -> None:
        """Build the C kernel's compact and row forms now (each tree checked whole once, then walked without checks;
        docs/format.md section 7) instead of once the predictions made have cost about an eighth of that."""
        if self.kernel != "c" or self._warmed:  # the numpy kernel has no forms; or built already
            return
        self._warmed = True
        self._walks_left = 0
        self._rowform = self._row_form()
        # a narrow row form serves single rows and batches alone: no compact form (16 bytes a node of memory)
        if self._rowform is None or not _narrow(self._rowform):
            self._compact = self._compacted()

    def _compacted(self) -> bytearray | None:
        """The kernel's compact walk-only form of the trees (``_kernel.compact``: every tree checked whole once, then
        walked without a check per node, several walks interleaved), built by :meth:`warm`, so the first predictions
        of a fresh process pay nothing for it; it takes 16 bytes per node of memory. None when the tree offsets are
        corrupt: every prediction then refuses the file as before."""
        try:
            return c_kernel.compact(
                self._nodes_buf,
                self._flags_buf if self._v2 else None,
                self._offsets_buf,
                self._nf,
                self._lt,
            )
        except ValueError:
            return None

    def _row_form(self) -> bytearray | None:
        """The kernel's row form (``_kernel.rowform``: the single-row walks' own form of the model, every tree checked
        whole once), built with the compact form. None for a model it does not cover (vector leaves, linear leaves, a
        tree the compact form does not hold) or a corrupt one: single rows then take the other walks. It takes 8 bytes
        per node when the model's rows are float32 values (its own float32 thresholds), else a few bytes per tree."""
        h = self.header
        if (not self._v2 and h["leaf"] == "vector") or (self._v2 and self._linear[0] is not None):
            return None
        try:
            return c_kernel.rowform(
                self._nodes_buf,
                self._flags_buf if self._v2 else None,
                self._offsets_buf,
                self._groups_buf if self._v2 else None,
                self._nf,
                self._K,
                self._lt,
                self._mode in (0, 1, 3),  # the rows are float32 values (the kernel checks each row)
            )
        except ValueError:
            return None

    def _proba(self, raw: array, n: int) -> tuple[Any, int]:
        """Probabilities from raw scores: a flat array and its row width, or (softmax) a numpy matrix."""
        output, K = self._output, self._K
        if output == "logistic" and n == 1:  # the commonest single row (LightGBM binary), first
            c_kernel.expit(raw)  # raw is this call's own
            p = raw[0]
            return array("d", (1 - p, p)), 2
        if output == "proba":
            return raw, K
        if output == "vote_proba":  # scikit-learn's VotingClassifier (soft): members averaged (section 13)
            from coldbrew.engine.members import vote

            width = K // len(self.header["member_divisors"])
            return array("d", vote(raw, n, self.header)), width
        if output == "calibrated_proba":  # scikit-learn's CalibratedClassifierCV (section 13)
            from coldbrew.engine.members import calibrate

            return array("d", calibrate(raw, n, self.header)), K // len(self.header["calibrated"])
        if output == "softmax_f32":
            c_kernel.softmax_f32(raw, K)
            return raw, K
        if output == "softmax_seq":
            c_kernel.softmax_seq(raw, K)
            return raw, K
        if output == "softmax_cb":  # CatBoost MultiClass: its CalcSoftmax with its fast exp (section 13.6)
            c_kernel.softmax_cb(raw, K)
            return raw, K
        if output in ("softmax", "softmax_np_seq"):
            _require_numpy(f"the probabilities of a {self.kind} with a {output} output (numpy's exp, not libm's)")
            import numpy as np

            from coldbrew.engine.brew_numpy import softmax

            matrix = np.frombuffer(raw, dtype=np.float32 if raw.typecode == "f" else np.float64).reshape(n, K)
            return softmax(matrix, sequential=output == "softmax_np_seq"), K
        if output == "sigmoid_each":  # LightGBM multiclassova: every class through 1 / (1 + exp(-x))
            c_kernel.expit(raw)
            return raw, K
        if output == "hinge_f32":  # XGBoost binary:hinge: p1 = 1 if raw > 0 else 0, then (1 - p1, p1) in float32
            proba = array("f", bytes(8 * n))
            proba[1::2] = array("f", [1.0 if v > 0 else 0.0 for v in raw])
            proba[0::2] = array("f", [1.0 - v for v in proba[1::2]])
            return proba, 2
        if output == "sigmoid_f32":  # XGBoost's sklearn wrapper: (1.0 - p, p) in float32
            p1 = raw if raw.typecode == "f" else array("f", raw)  # raw is this call's own
            c_kernel.sigmoid_f32(p1)
            if n == 1:  # one row: no slices
                return array("f", (1.0 - p1[0], p1[0])), 2
            proba = array("f", bytes(8 * n))
            c_kernel.pair_proba(p1, proba, True)  # 1.0 - p exact in double, then one rounding to float32
            return proba, 2
        # logistic, logistic2: scipy's expit with libm's exp, p0 = 1 - p1
        if output == "logistic2":
            p1 = array("d", [2 * v for v in raw])
        else:
            p1 = raw if raw.typecode == "d" else array("d", raw)
        c_kernel.expit(p1)
        if n == 1:
            return array("d", (1 - p1[0], p1[0])), 2
        proba = array("d", bytes(16 * n))
        c_kernel.pair_proba(p1, proba, False)  # (a loop here in Python took 5% of a LightGBM batch's time)
        return proba, 2

    def _value(self, raw: array, numpy_in: bool) -> Any:
        """A regressor's prediction: the raw score through the output's link (docs/format.md 10.4 and 11)."""
        output = self.header["output"]
        if output == "sigmoid_f32":  # XGBoost reg:logistic
            c_kernel.sigmoid_f32(raw)
        elif output == "exp_f32":  # XGBoost's log-link objectives: expf
            c_kernel.exp_f32(raw)
        elif output == "exp":  # LightGBM's log-link objectives: libm exp
            c_kernel.exp_f64(raw)
        elif output == "exp_cb":  # CatBoost's Poisson / Tweedie: its fast exp (section 13.6)
            c_kernel.exp_cb(raw)
        elif output == "logistic":  # LightGBM cross_entropy
            c_kernel.expit(raw)
        elif output == "vote_mean":  # scikit-learn's VotingRegressor: members averaged (section 13)
            from coldbrew.engine.members import vote

            return self._vector(array("d", vote(raw, len(raw) // self._K, self.header)), numpy_in)
        elif output == "exp_np":  # scikit-learn's log link: numpy's own exp (module docstring)
            _require_numpy(f"the predictions of a {self.kind} with a log link (numpy's exp, not libm's)")
            import numpy as np

            values = np.exp(np.frombuffer(raw, dtype=np.float64))
            return values if numpy_in else values.tolist()
        if self._K > 1:  # a multi-output regressor: one vector per row (docs/format.md section 11)
            return self._matrix(raw, len(raw) // self._K, self._K, numpy_in)
        return self._vector(raw, numpy_in)

    # ---------------------------------------------------------------------------------------- result shapes
    @staticmethod
    def _matrix(flat: array, n: int, width: int, numpy_in: bool) -> Any:
        if numpy_in:  # a view of flat, as np.frombuffer(flat, dtype).reshape(n, width) (a third of its time)
            if _NDARRAY is None:
                _numpy()
            return _NDARRAY((n, width), _F32 if flat.typecode == "f" else _F64, flat)
        values = flat.tolist()
        if n == 1:
            return [values]
        return [values[i : i + width] for i in range(0, len(values), width)]

    @staticmethod
    def _vector(flat: array, numpy_in: bool) -> Any:
        if numpy_in:
            np, f32, f64 = _numpy()
            return np.ndarray((len(flat),), f32 if flat.typecode == "f" else f64, flat)
        return flat.tolist()

    def _labels(self, chosen: list[int], numpy_in: bool) -> Any:
        if numpy_in:
            import numpy as np

            if self._np_classes is None:
                self._np_classes = np.array(self.header["classes"], dtype=np.dtype(self.header["classes_dtype"]))
            return self._np_classes.take(np.array(chosen, dtype=np.intp), axis=0)
        classes = self.classes
        assert classes is not None
        return [classes[i] for i in chosen]

    @staticmethod
    def _listed(result: Any, X) -> Any:
        """The numpy kernel's result as lists when lists came in."""
        return result.tolist() if is_rows_list(X) else result


def _narrow(rowform: bytearray) -> bool:
    """The row form's ``rfhead_t.narrow`` (the int32 at byte 48 of its header: after its 8-byte magic and five int64 fields)."""
    return memoryview(rowform)[48:52].cast("i")[0] == 1


#: Most threads a batch uses by default (a Lambda function has at most 6 vCPUs).
MAX_DEFAULT_THREADS = 8
#: Lambda gives a function one vCPU's worth of CPU time per this many MB of memory.
LAMBDA_MB_PER_VCPU = 1769


def default_threads() -> int:
    """Threads for a large batch: ``$COLDBREW_THREADS`` if set; else the CPUs this process may run on, capped at
    :data:`MAX_DEFAULT_THREADS` and, on Lambda, at the vCPUs its memory size pays for (1,769 MB = 1 vCPU)."""
    env = os.environ.get("COLDBREW_THREADS", "").strip()
    if env:
        return _check_threads(env, "COLDBREW_THREADS")
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit():
        n = min(n, max(1, int(memory) // LAMBDA_MB_PER_VCPU))
    return max(1, min(n, MAX_DEFAULT_THREADS))


def _check_threads(value: object, what: str) -> int:
    n = 0
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value)
    if n < 1 or n > 256:
        raise ColdbrewError(f"{what} must be a whole number of threads from 1 to 256, got {value!r}")
    return n


# numpy, its array type and its float32 and float64 dtypes once numpy has come in (None before: no numpy import)
_NP: Any = None
_NDARRAY: Any = None
_F32: Any = None
_F64: Any = None


def _numpy() -> tuple:
    """numpy and its float32 and float64 dtypes, looked up once (numpy came in, so it is imported)."""
    global _NP, _NDARRAY, _F32, _F64
    if _NP is None:
        import numpy as np

        _NDARRAY, _F32, _F64, _NP = np.ndarray, np.dtype(np.float32), np.dtype(np.float64), np
    return _NP, _F32, _F64


def _require_numpy(what: str) -> None:
    """Refuse with one line where numpy is needed and not installed (a numpy-free deployment)."""
    try:
        import numpy  # noqa: F401 - imported here because the caller is about to use it
    except ImportError:
        raise ColdbrewError(f"{what} needs numpy, which is not installed: pip install numpy") from None


# Format version 1 outputs → the version 2 decision rule they follow (docs/format.md sections 4 and 10.4).
_V1_DECISIONS = {
    "logistic": "raw_ge0",
    "logistic2": "raw_ge0",
    "softmax": "argmax_raw",
    "proba": "argmax_proba",
    "identity": "value",
}
