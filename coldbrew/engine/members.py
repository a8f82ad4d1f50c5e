"""Combining members' raw scores the way scikit-learn's meta-estimators do (docs/format.md section 13).

Standard library only (the serving path imports it): plain float64 arithmetic in the libraries' own order, shared by
both kernels so they give the same bits.
"""

from __future__ import annotations

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
