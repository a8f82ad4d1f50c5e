"""spec.is_classes_dtype accepts exactly the label dtypes docs/format.md lists (the regex it replaced, as the oracle)."""

from __future__ import annotations

import itertools
import re

import pytest

from coldbrew.errors import ModelFormatError
from coldbrew.format import spec

# docs/format.md's list of classes_dtype values, as the regular expression the reader used before.
ORACLE = re.compile(r"\A(?:\|b1|\|i1|<i[248]|\|u1|<u[248]|<f[248]|<U[1-9][0-9]{0,8}|\|O)\Z")

TRICKY = [
    "<U1", "<U9", "<U10", "<U999999999", "<U1000000000", "<U0", "<U01", "<U", "<U-1", "<U+1", "<U1 ", " <U1",
    "<U1\n", "<U\u0661", "<U1\u0662", "<U\uff11", "<U²", ">U1", "<u1", "|U1", "<f8", "<f16", ">f8", "=f8", "<f1",
    "|b1", "|b2", "<b1", "|i1", "<i1", "<i2", "<i3", "<i8", "|u1", "<u2", "<u8", "|O", "|O8", "<O", "", "|",
]  # fmt: skip


@pytest.mark.parametrize("name", TRICKY)
def test_tricky_names_agree_with_the_documented_list(name):
    assert spec.is_classes_dtype(name) is bool(ORACLE.match(name))


def test_every_short_name_over_the_relevant_alphabet_agrees():
    for n in range(5):
        for chars in itertools.product("<>|=bifuUO0189 ", repeat=n):
            name = "".join(chars)
            assert spec.is_classes_dtype(name) is bool(ORACLE.match(name)), name


@pytest.mark.parametrize("value", [None, 8, 1.5, ["<f8"], {"<f8": 1}, True])
def test_a_non_string_is_refused_not_raised_on(value):
    assert spec.is_classes_dtype(value) is False
    h = {"feature_names": ["a"], "n_features": 1, "classes": [0, 1], "output": "logistic", "version": 2}
    with pytest.raises(ModelFormatError, match="classes_dtype"):
        spec.validate_bounds({**h, "classes_dtype": value}, 1000)
