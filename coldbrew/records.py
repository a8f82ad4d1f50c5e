"""``NamedTuple`` for the serving path, without importing :mod:`typing` at start-up.

``typing`` costs a few milliseconds of a Lambda cold start (bench/results/floor.md), and the serving path only
needs it for its ``NamedTuple`` class syntax. Modules write::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from coldbrew.records import NamedTuple

so type checkers see :class:`typing.NamedTuple` and the running code gets :func:`collections.namedtuple` (whose
module the interpreter has already loaded for ``re`` and ``json``). A class body may hold annotated fields (with
trailing defaults), a docstring, methods, properties and static methods; like ``typing.NamedTuple`` it may not use
``super()`` (subclass the result for that). Base layer: the standard library only.
"""

from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as true)

if TYPE_CHECKING:
    from typing import Any

_NOT_COPIED = frozenset({"__module__", "__qualname__", "__annotations__", "__dict__", "__weakref__", "_is_root"})


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
        make: Any = namedtuple  # called with computed fields, which type checkers cannot follow
        cls = make(name, fields, defaults=defaults, module=namespace.get("__module__"))
        for key, value in namespace.items():
            if key not in fields and key not in _NOT_COPIED:
                setattr(cls, key, value)
        cls.__qualname__ = namespace.get("__qualname__", name)
        cls.__annotations__ = dict(namespace.get("__annotations__", {}))
        return cls


class NamedTuple(metaclass=_NamedTupleMeta):
    """Subclass it with annotated fields, as :class:`typing.NamedTuple`; the result is a ``collections.namedtuple``."""

    _is_root = True
