"""Fuzz the .brew reader and both kernels with mutations of the tiny model (seeded, so failures reproduce).

Mutations: truncations; byte flips left unsigned and re-signed (a valid SHA-256, as an attacker would); header
edits (every field and every array-table entry set to wrong types, out-of-range and hostile values), re-signed.
Each file is loaded in a worker process (tests/security/brewcraft.py: 1 GiB address-space limit, 5 s deadline per
file, a fresh worker after a crash) with each kernel, and asked for predictions on the same rows.

The invariant, for every file: a one-line ``ModelFormatError`` (or ``InvalidInputError`` when an edited
``n_features`` no longer matches the rows), or a prediction — never a crash (a dead worker),
a hang (> 5 s) or any other exception, and both kernels give the same answer (the same error class, or the same
bits). With ``verify=True`` a mutation that was not re-signed must be refused or predict exactly what the
unmutated model predicts; a re-signed mutation is a different model, so only the kernels' agreement is checked.
"""

from __future__ import annotations

import json
import random

import pytest
from brewcraft import PREAMBLE, build, resign, run_cases, split

SEED = 20261130
# The clean refusals: the file is refused, or (a header edit changed n_features) the rows no longer fit the model.
CLEAN = {"ModelFormatError", "InvalidInputError"}
HOSTILE = [None, True, -1, 0, 1, 2**31, 2**63, 10**30, 0.5, "", "x", [], [1], [[0]], {}, {"a": 1}]


def truncations(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    p_off = PREAMBLE.unpack_from(data, 0)[3]
    lengths = {0, 1, 7, 8, 12, 31, 32, 63, 64, 65, p_off - 1, p_off, p_off + 1, p_off + 64, len(data) - 1}
    lengths |= {rng.randrange(len(data)) for _ in range(20)}
    return [(f"truncated to {n}", data[:n]) for n in sorted(lengths) if n < len(data)]


def flips(data: bytes, rng: random.Random, n: int, *, signed: bool) -> list[tuple[str, bytes]]:
    _, _, _, p_off, _ = PREAMBLE.unpack_from(data, 0)
    cases = []
    for i in range(n):
        # half in the preamble + header, half in the payload (the arrays)
        pos = rng.randrange(0, p_off) if i % 2 == 0 else rng.randrange(p_off, len(data))
        mask = rng.choice([0x01, 0x80, 0xFF, rng.randrange(1, 256)])
        mutated = bytearray(data)
        mutated[pos] ^= mask
        cases.append(
            (
                f"byte {pos} ^ {mask:#04x}{' re-signed' if signed else ''}",
                resign(bytes(mutated)) if signed else bytes(mutated),
            )
        )
    return cases


def header_edits(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    text, payload = split(data)
    original = json.loads(text)
    cases = []
    for key in original:
        if key == "arrays":
            continue
        for value in ["<deleted>", *HOSTILE]:
            header = json.loads(text)
            if value == "<deleted>":
                del header[key]
            else:
                header[key] = value
            cases.append((f"header {key} = {value!r}", build(header, payload)))
    for name in original["arrays"]:
        for field in ("dtype", "shape", "offset", "nbytes", "<deleted>"):
            for value in rng.sample(HOSTILE, 6) + ["<f4", "<i8"]:
                header = json.loads(text)
                if field == "<deleted>":
                    del header["arrays"][name]
                else:
                    header["arrays"][name][field] = value
                cases.append((f"arrays.{name}.{field} = {value!r}", build(header, payload)))
    for version in (0, 2, 2**32 - 1):
        cases.append((f"preamble version {version}", build(original, payload, version=version)))
    return cases


@pytest.fixture(scope="module", params=["gbm", "forest"])
def cases(request, tiny_brew, forest_brew, tmp_path_factory):
    """(description, path, re-signed) for every mutation of one model, written to disk once.

    ``gbm``: the study's tiny GradientBoostingClassifier (scalar leaves, two classes); ``forest``: a small
    RandomForestClassifier (vector leaves, three string classes)."""
    rng = random.Random(SEED)
    model = {"gbm": tiny_brew, "forest": forest_brew}[request.param]
    data = model.read_bytes()
    made = [(d, b, False) for d, b in truncations(data, rng)]
    made += [(d, b, False) for d, b in flips(data, rng, 100, signed=False)]
    made += [(d, b, True) for d, b in flips(data, rng, 140, signed=True)]
    made += [(d, b, True) for d, b in header_edits(data, rng)]
    folder = tmp_path_factory.mktemp("fuzz")
    out = [("unmutated", model, False)]
    for i, (description, blob, signed) in enumerate(made):
        path = folder / f"m{i:04d}.brew"
        path.write_bytes(blob)
        out.append((description, path, signed))
    return out


def problems(cases, outcomes, *, verify: bool) -> list[str]:
    reference = outcomes[0].kernels
    assert all("proba" in r for r in reference.values()), f"the unmutated model must predict: {reference}"
    found = []
    for (description, _, signed), outcome in zip(cases, outcomes, strict=True):
        if outcome.crashed:
            found.append(f"{description}: {outcome.crashed}")
            continue
        results = list(outcome.kernels.values())
        for kernel, r in outcome.kernels.items():
            if "error" in r and (r["error"] not in CLEAN or "\n" in r["message"]):
                found.append(f"{description} ({kernel} kernel): {r['error']}: {r['message'][:200]}")
        if any(r != results[0] for r in results[1:]) and not all(r.get("error") in CLEAN for r in results):
            found.append(f"{description}: the kernels disagree: {[str(r)[:120] for r in results]}")
        if verify and not signed and "proba" in results[0] and outcome.kernels != reference:
            found.append(f"{description}: an unsigned mutation passed verify with a different answer")
    return found


@pytest.mark.parametrize("verify", [False, True], ids=["cheap-checks", "verify"])
def test_mutated_brew_files_never_crash_hang_or_disagree(cases, verify):
    outcomes = run_cases([path for _, path, _ in cases], verify=verify)
    found = problems(cases, outcomes, verify=verify)
    refused = sum(1 for o in outcomes if o.errors())
    assert not found, f"{len(found)} of {len(cases)} mutated files misbehaved:\n" + "\n".join(found[:15])
    assert refused > len(cases) // 3, "most mutations are expected to be refused: is the fuzzer mutating?"
