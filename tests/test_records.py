"""coldbrew.records.NamedTuple behaves as collections.namedtuple / typing.NamedTuple do, without their eval."""

from __future__ import annotations

import copy
import pickle
from collections import namedtuple

import pytest

from coldbrew.records import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 2
    label: str = "p"

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)


Reference = namedtuple("Reference", ["x", "y", "label"], defaults=[2, "p"])  # noqa: PYI024 - the reference itself


class Checked(Point):
    __slots__ = ()

    def __new__(cls, x: int, y: int = 2, label: str = "p") -> Checked:
        if x < 0:
            raise ValueError("x must be >= 0")
        return super().__new__(cls, x, y, label)


@pytest.mark.parametrize(
    "args, kwargs",
    [((1,), {}), ((1, 3), {}), ((1, 3, "q"), {}), ((), {"x": 1}), ((1,), {"label": "z"}), ((), {"y": 5, "x": 0})],
)
def test_construction_matches_namedtuple(args, kwargs):
    got, want = Point(*args, **kwargs), Reference(*args, **kwargs)
    assert tuple(got) == tuple(want)
    assert (got.x, got.y, got.label) == (want.x, want.y, want.label)
    assert repr(got) == repr(want).replace("Reference", "Point")
    assert got._asdict() == want._asdict()
    assert got == tuple(want) and hash(got) == hash(tuple(want))


@pytest.mark.parametrize(
    "args, kwargs",
    [((), {}), ((1, 2, "a", 4), {}), ((1,), {"x": 2}), ((1,), {"z": 3}), ((), {"y": 1})],
)
def test_bad_arguments_are_refused_as_namedtuple_refuses_them(args, kwargs):
    with pytest.raises(TypeError):
        Reference(*args, **kwargs)
    with pytest.raises(TypeError):
        Point(*args, **kwargs)


def test_namedtuple_api():
    p = Point(1, 2)
    assert Point._fields == ("x", "y", "label") == Point.__match_args__
    assert Point._field_defaults == {"y": 2, "label": "p"}
    assert Point._make([4, 5, "m"]) == (4, 5, "m") and type(Point._make([4, 5, "m"])) is Point
    with pytest.raises(TypeError):
        Point._make([1, 2])
    assert p._replace(y=9) == (1, 9, "p")
    with pytest.raises(ValueError, match="unexpected field names"):
        p._replace(z=1)
    assert p.norm1 == 3 and p.moved(2) == (3, 2, "p")
    assert Point.__doc__ == "A point." and Point.__qualname__ == "Point" and Point.__module__ == __name__
    assert Point.x.__doc__ == "Alias for field number 0"
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    match p:
        case Point(a, b):
            assert (a, b) == (1, 2)


def test_pickle_and_copy_round_trip():
    for value in (Point(1, 2, "x"), Checked(3)):
        for clone in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert clone == value and type(clone) is type(value)


def test_a_subclass_validates_in_its_own_new():
    assert Checked(1) == (1, 2, "p") and isinstance(Checked(1), Point)
    with pytest.raises(ValueError, match="x must be"):
        Checked(-1)


def test_class_bodies_refused_like_typing_refuses_them():
    with pytest.raises(TypeError, match="without a default follows"):

        class Bad(NamedTuple):
            a: int = 1
            b: int

    with pytest.raises(ValueError, match="underscore"):

        class Private(NamedTuple):
            _a: int
