"""``NamedTuple`` for the serving path, without importing :mod:`typing` at start-up.

``typing`` costs a few milliseconds of a Lambda cold start (bench/results/floor.md), and the serving path only
needs it for its ``NamedTuple`` class syntax. Modules write::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from coldbrew.records import NamedTuple

so type checkers see :class:`typing.NamedTuple` and the running code gets a tuple subclass that behaves as a
:func:`collections.namedtuple` does (``_fields``, ``_field_defaults``, ``_make``, ``_replace``, ``_asdict``, its
``repr``, pickling) but is built without ``namedtuple``'s ``eval`` of generated source: that compile cost ~0.2 ms
of the cold start per class, and four of them are on the serving path. A class body may hold annotated fields
(with trailing defaults), a docstring, methods, properties and static methods; like ``typing.NamedTuple`` it may
not use ``super()`` (subclass the result for that). Base layer: the standard library only.
"""

try:  # the C accessor collections.namedtuple uses (the module is built into CPython); else a property
    from _collections import _tuplegetter
except ImportError:  # pragma: no cover - other interpreters
    from operator import itemgetter

    def _tuplegetter(index: int, doc: str) -> property:
        return property(itemgetter(index), doc=doc)


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as true)

if TYPE_CHECKING:
    from typing import Any

_NOT_COPIED = frozenset({"__module__", "__qualname__", "__annotations__", "__dict__", "__weakref__", "_is_root"})


def _new(cls, *args, **kwargs):
    """``cls(*args, **kwargs)``: every field given once, positionally or by name, or left to its default."""
    fields: tuple[str, ...] = cls._fields
    if len(args) > len(fields):
        raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments but {len(args)} were given")
    if len(args) == len(fields) and not kwargs:
        return tuple.__new__(cls, args)
    values = list(args)
    defaults = cls._field_defaults
    for name in fields[len(args) :]:
        if name in kwargs:
            values.append(kwargs.pop(name))
        elif name in defaults:
            values.append(defaults[name])
        else:
            raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
    for name in kwargs:
        if name in fields:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
    return tuple.__new__(cls, values)


def _make(cls, iterable):
    """Make a new instance from a sequence or iterable (no defaults, no validation: ``namedtuple``'s ``_make``)."""
    result = tuple.__new__(cls, iterable)
    if len(result) != len(cls._fields):
        raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
    return result


def _replace(self, /, **changes):
    """A new instance with the named fields replaced."""
    result = self._make(map(changes.pop, self._fields, self))
    if changes:
        raise ValueError(f"Got unexpected field names: {list(changes)!r}")
    return result


def _asdict(self) -> dict:
    """A new dict mapping field names to their values."""
    return dict(zip(self._fields, self, strict=True))


def _repr(self) -> str:
    pairs = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
    return f"{self.__class__.__name__}({pairs})"


def _getnewargs(self) -> tuple:
    """The fields as a plain tuple: what copy and pickle pass back to ``__new__``."""
    return tuple(self)


def _record_namespace(name: str, fields: tuple[str, ...], defaults: list, module: str | None) -> "dict[str, Any]":
    """The namespace of a tuple subclass with ``fields``, the last ``len(defaults)`` of them defaulted, as
    ``namedtuple`` makes it (the class is made from it in one ``type()`` call: every attribute set on a class
    afterwards costs it a slot update)."""
    for field in fields:
        if field.startswith("_"):
            raise ValueError(f"{name}: field names cannot start with an underscore: {field!r}")
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__doc__": f"{name}({', '.join(fields)})",
        "__new__": _new,
        "__repr__": _repr,
        "__getnewargs__": _getnewargs,
        "_make": classmethod(_make),
        "_replace": _replace,
        "_asdict": _asdict,
        "_fields": fields,
        "_field_defaults": dict(zip(fields[len(fields) - len(defaults) :], defaults, strict=True)),
        "__match_args__": fields,
        "__module__": module,
    }
    for index, field in enumerate(fields):
        namespace[field] = _tuplegetter(index, f"Alias for field number {index}")
    return namespace


class _NamedTupleMeta(type):
    def __new__(mcls, name: str, bases: tuple, namespace: dict):
        if namespace.get("_is_root"):
            return super().__new__(mcls, name, bases, namespace)
        if "__classcell__" in namespace:
            raise TypeError(f"{name}: a NamedTuple body cannot use super() or __class__; subclass it instead")
        fields = tuple(namespace.get("__annotations__", {}))
        defaults = [namespace[f] for f in fields if f in namespace]
        if any(f not in namespace for f in fields[len(fields) - len(defaults) :]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        record = _record_namespace(name, fields, defaults, namespace.get("__module__"))
        for key, value in namespace.items():
            if key not in fields and key not in _NOT_COPIED:
                record[key] = value
        record["__qualname__"] = namespace.get("__qualname__", name)
        record["__annotations__"] = dict(namespace.get("__annotations__", {}))
        return type.__new__(type, name, (tuple,), record)


class NamedTuple(metaclass=_NamedTupleMeta):
    """Subclass it with annotated fields, as :class:`typing.NamedTuple`; the result is a tuple subclass that
    behaves as a ``collections.namedtuple``."""

    _is_root = True
