"""Categories by name: the input stage of a bare model that knows some categories by their names (format version
3, docs/format.md section 12.4). Pure data helpers, shared by the converters (no converter imports)."""

from __future__ import annotations

import numpy as np


def by_name_stage(feature_names, n_features: int, names: dict[int, list], *, unknown, missing) -> dict:
    """The input stage of a bare model that knows some categories by name: each feature is its own column,
    a categorical one through a vocab (category name -> the code its trees split on)."""
    cols = list(feature_names) if feature_names else [f"x{i}" for i in range(n_features)]
    columns, features = [], []
    for i, name in enumerate(cols):
        if i in names:
            values = list(names[i])
            kind = "string" if all(isinstance(v, str) for v in values) else "number"
            columns.append({"name": name, "type": kind, "nullable": True})
            vocab = {"kind": "vocab", "values": values, "unknown": unknown, "missing": missing}
            features.append({"column": i, "ops": [vocab]})
        else:
            columns.append({"name": name, "type": "number", "nullable": True})
            features.append({"column": i, "ops": []})
    return {"columns": columns, "features": features}


def by_name_rows(inputs: dict, X: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[list]]:
    """For a model with categories by name (each feature its own column, a categorical one through a vocab): the
    numeric probe rows ``X`` with every category code that no name maps to set to NaN (what an unseen or missing
    name becomes), and the same rows as raw values (names, an unseen name or null; numbers as they are). A vocab
    that refuses unseen names (``unknown: "error"``) gets null only: the file must refuse what it cannot answer."""
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float64)
    raw: list[list] = [[None if np.isnan(v) else float(v) for v in row] for row in X]
    for j, f in enumerate(inputs["features"]):
        if f["column"] != j or len(f["ops"]) > 1:
            raise ValueError("not a by-name stage")
        if not f["ops"]:
            continue
        vocab = f["ops"][0]
        codes = dict(zip(vocab.get("codes") or range(len(vocab["values"])), vocab["values"], strict=True))
        unseen = "__unseen__" if isinstance(vocab["values"][0] if vocab["values"] else "", str) else -12345.5
        for i in range(len(X)):
            v = X[i, j]
            name = codes.get(int(v)) if np.isfinite(v) and v == int(v) else None
            if name is None:
                X[i, j] = np.nan
                raw[i][j] = None if vocab["unknown"] == "error" or rng.random() < 0.5 else unseen
            else:
                raw[i][j] = name
    return X, raw
