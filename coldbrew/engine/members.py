"""Combining members' raw scores the way scikit-learn's meta-estimators do (docs/format.md section 13).

Standard library only (the serving path imports it): plain float64 arithmetic in the libraries' own order, shared by
both kernels so they give the same bits.
"""

from __future__ import annotations

import bisect
import math

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from collections.abc import Sequence


def vote(raw: Sequence[float], n: int, header: dict) -> list[float]:
    """``VotingClassifier.predict_proba`` (soft) / ``VotingRegressor.predict`` from the summed raw scores.

    ``raw`` holds, per row, ``M`` blocks of ``K`` member sums (member ``m``'s trees add to outputs
    ``m*K .. m*K + K - 1``). Each member's answer is its sum divided by its tree count (a forest's
    ``/= len(estimators_)``; no division for a single tree, divisor 0); then ``np.average`` over the members: without
    weights ``(a_0 + a_1 + ...) / M``, with weights ``(a_0*w_0 + a_1*w_1 + ...) / (w_0 + w_1 + ...)``, each sum left
    to right (numpy's reduction over the members' axis). Returns ``n * K`` values, row-major.
    """
    divisors = [float(d) for d in header["member_divisors"]]
    weights = header["member_weights"]
    M = len(divisors)
    K = header["n_outputs"] // M
    ws = None if weights is None else [float(w) for w in weights]
    if ws is None:
        scale = float(M)
    else:
        scale = ws[0]
        for w in ws[1:]:
            scale += w
    out = []
    for i in range(n):
        row = i * M * K
        for k in range(K):
            total = 0.0
            for m in range(M):
                v = raw[row + m * K + k]
                if divisors[m]:
                    v = v / divisors[m]
                if ws is not None:
                    v = v * ws[m]
                total = v if m == 0 else total + v
            out.append(total / scale)
    return out


def row_sum(values: Sequence[float]) -> float:
    """``np.sum`` of one contiguous float64 row, as numpy adds it: left to right below 8 values, else numpy's
    pairwise blocks of 8 accumulators (rows of at most 128 values, one block)."""
    n = len(values)
    if n < 8:
        total = values[0]
        for v in values[1:]:
            total += v
        return total
    r = list(values[:8])
    i = 8
    while i < n - n % 8:
        for j in range(8):
            r[j] += values[i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for v in values[i:]:
        total += v
    return total


def _expit(x: float) -> float:
    """scipy's ``expit`` (``1 / (1 + exp(-x))`` with libm's ``exp``, which ``math.exp`` is)."""
    try:
        e = math.exp(-x)
    except OverflowError:
        e = math.inf
    return 1.0 / (1.0 + e)


def _isotonic(t: float, cal: dict) -> float:
    """``IsotonicRegression.predict`` (``out_of_bounds='clip'``): ``np.clip``, then scipy's linear ``interp1d``,
    which is ``np.interp`` for float64 points: a point at a knot takes its ``y``; between knots
    ``slope * (t - x[j]) + y[j]`` with ``slope = (y[j+1] - y[j]) / (x[j+1] - x[j])``."""
    xs, ys = cal["x"], cal["y"]
    t = min(max(t, cal["x_min"]), cal["x_max"])
    if len(ys) == 1:
        return ys[0]
    j = bisect.bisect_right(xs, t) - 1
    if j < 0:
        return ys[0]
    if j >= len(xs) - 1:
        return ys[-1]
    if xs[j] == t:
        return ys[j]
    slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
    value = slope * (t - xs[j]) + ys[j]
    if value != value:  # numpy's fallback from the right knot
        value = slope * (t - xs[j + 1]) + ys[j + 1]
        if value != value and ys[j] == ys[j + 1]:
            value = ys[j]
    return value


def _softmax_seq(values: list[float]) -> list[float]:
    """LightGBM's ``Common::Softmax``: ``std::max`` over the row, libm ``exp``, the sum left to right from 0.0."""
    top = values[0]
    for v in values[1:]:
        top = v if top < v else top
    exps = [math.exp(v - top) for v in values]
    total = 0.0
    for e in exps:
        total += e
    return [e / total for e in exps]


def _base_output(raw: Sequence[float], start: int, K: int, member: dict) -> list[float]:
    """A member's base ``predict_proba`` / ``decision_function`` columns from its summed raw scores: divided by its
    tree count (a forest), as they are (HistGradientBoosting's raw scores), or through LightGBM's link."""
    values = list(raw[start : start + K])
    divisor = float(member["divisor"])
    if divisor:
        values = [v / divisor for v in values]
    link = member.get("link", "none")
    if link == "logistic":  # LightGBM binary: 1 / (1 + exp(-raw)) of the one raw score (column 1)
        values[1] = _expit(values[1])
    elif link == "softmax_seq":  # LightGBM multiclass
        values = _softmax_seq(values)
    return values


def calibrate(raw: Sequence[float], n: int, header: dict) -> list[float]:
    """``CalibratedClassifierCV.predict_proba`` from the members' summed raw scores (docs/format.md section 13).

    Member ``m`` (one calibrated classifier) owns outputs ``m*K .. m*K + K - 1``: its base forest's class sums, which
    divided by its tree count are the base ``predict_proba``. Each calibrator maps one column (``sigmoid``:
    ``expit(-(a * p + b))``; ``isotonic``: clip and interpolate) to its class; two classes: ``p0 = 1 - p1``, more:
    each divided by the row's sum (``np.sum``; a zero sum gives ``1 / K``); values in ``(1, 1 + 1e-5]`` become 1.
    The members' probabilities are added from zero in order and divided by their number.
    """
    members = header["calibrated"]
    M = len(members)
    K = header["n_outputs"] // M
    out = [0.0] * (n * K)
    for i in range(n):
        mean = [0.0] * K
        for m, member in enumerate(members):
            values = _base_output(raw, i * M * K + m * K, K, member)
            proba = [0.0] * K
            for cal in member["calibrators"]:
                p = values[cal["column"]]
                if cal["method"] == "sigmoid":
                    proba[cal["class"]] = _expit(-(cal["a"] * p + cal["b"]))
                else:
                    proba[cal["class"]] = _isotonic(p, cal)
            if K == 2:
                proba[0] = 1.0 - proba[1]
            else:
                total = row_sum(proba)
                proba = [v / total for v in proba] if total != 0 else [1 / K] * K
            for k in range(K):
                v = proba[k]
                mean[k] += 1.0 if 1.0 < v <= 1.0 + 1e-5 else v
        out[i * K : (i + 1) * K] = [v / M for v in mean]
    return out


def vote_labels(raw: Sequence[float], n: int, header: dict) -> list[int]:
    """``VotingClassifier.predict`` with ``voting="hard"``: each member's ``predict`` (the first largest of its
    class sums divided by its tree count, as its ``predict_proba``), then ``argmax(bincount(votes, weights))``: a
    class's votes (or weights, added in member order from 0.0) and the first class with the most. Class indices."""
    divisors = [float(d) for d in header["member_divisors"]]
    weights = header["member_weights"]
    M = len(divisors)
    K = header["n_outputs"] // M
    chosen = []
    for i in range(n):
        counts = [0.0] * K
        for m in range(M):
            start = i * M * K + m * K
            best, top = 0, None
            for k in range(K):
                v = raw[start + k]
                if divisors[m]:
                    v = v / divisors[m]
                if top is None or v > top:
                    best, top = k, v
            counts[best] += 1.0 if weights is None else float(weights[m])
        winner = 0
        for k in range(1, K):
            if counts[k] > counts[winner]:
                winner = k
        chosen.append(winner)
    return chosen
