"""Symbolic values of the pickle interpreter: what a stack slot *would* hold on load.

Plain data (ints, floats, small strings and bytes, tuples, lists, dicts) is held as
Python values; everything the loader would *create by calling something* is a
:class:`Obj` naming the callable; imported names are :class:`Global`. Nothing here is
ever called or imported.

Examples
--------
>>> from bastion.artifacts.pickle_values import Global, Obj
>>> g = Global("collections", "OrderedDict", offset=2, allowed=True)
>>> str(g), Obj(g, (), offset=40, how="REDUCE").type_name
('collections:OrderedDict', 'collections:OrderedDict')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Blob", "Global", "Obj", "PersistentRef", "SymFrozenSet", "SymSet", "Unknown"]


@dataclass(eq=False, slots=True)
class Global:
    """A ``(module, name)`` the loader would import, and whether it was allowed."""

    module: str
    name: str
    offset: int
    allowed: bool

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"


@dataclass(eq=False, slots=True)
class Obj:
    """The result of calling ``callee`` (REDUCE, NEWOBJ, OBJ, INST), plus BUILD state.

    ``cls`` is the class the object is an instance of when the pickle says so
    (NEWOBJ's class, ``copyreg._reconstructor``'s first argument); otherwise the
    callee.
    """

    callee: Global
    args: Any
    offset: int
    how: str
    cls: Global | None = None
    state: Any = None
    built: bool = field(default=False)

    @property
    def type_name(self) -> str:
        """``module:name`` of the class (or of the callee)."""
        return str(self.cls or self.callee)


@dataclass(eq=False, slots=True)
class Blob:
    """A string or bytes value too large to keep: its kind and size only."""

    kind: str
    size: int


@dataclass(eq=False, slots=True)
class Unknown:
    """A value the scanner cannot know (extension code, out-of-band buffer...)."""

    reason: str


@dataclass(eq=False, slots=True)
class PersistentRef:
    """A persistent id: the loader's ``persistent_load`` decides what it becomes."""

    pid: Any
    offset: int


class SymSet(list[Any]):
    """A set or frozenset under construction (a list, since members may be unhashable)."""


class SymFrozenSet(tuple[Any, ...]):
    """A frozenset (a tuple, so it stays hashable as a dict key like the real one)."""
