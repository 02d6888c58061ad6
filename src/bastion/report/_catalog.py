"""How the renderers look up catalog ids, tolerating ids the catalog does not know.

Renderers accept any object with ``get(id)`` and ``exists(id)`` (the API of
:func:`bastion.catalog.load_catalog`), so tests can pass a small stub. A missing id,
or a catalog that cannot be loaded at all, never stops a report: the id is shown
on its own.

Examples
--------
>>> from bastion.report._catalog import EntryView, lookup
>>> class Entry:
...     id, name, kind = "ML01", "Input Manipulation Attack", "owasp"
...     description, url = "Crafted inputs change the output.", "https://owasp.org/"
>>> class Stub:
...     def exists(self, entry_id): return entry_id == "ML01"
...     def get(self, entry_id): return Entry()
>>> lookup(Stub(), "ML01").label
'ML01 Input Manipulation Attack'
>>> lookup(Stub(), "ML99").label
'ML99'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bastion.errors import BastionError

__all__ = ["CatalogEntryLike", "CatalogLike", "EntryView", "lookup", "resolve_catalog"]

log = logging.getLogger(__name__)


class CatalogEntryLike(Protocol):
    """The fields of a catalog entry the reports use."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def url(self) -> str | None: ...


class CatalogLike(Protocol):
    """What the reports need from a catalog."""

    def get(self, entry_id: str, /) -> CatalogEntryLike: ...

    def exists(self, entry_id: str, /) -> bool: ...


class _EmptyCatalog:
    """Stands in when no catalog can be loaded: every id renders on its own."""

    def get(self, entry_id: str, /) -> CatalogEntryLike:
        raise KeyError(entry_id)

    def exists(self, entry_id: str, /) -> bool:
        return False


@dataclass(frozen=True)
class EntryView:
    """A catalog id with whatever the catalog knows about it.

    ``name``, ``description`` and ``url`` are empty when the id is unknown.
    """

    id: str
    name: str = ""
    kind: str = ""
    description: str = ""
    url: str = ""

    @property
    def known(self) -> bool:
        """True when the catalog had an entry for this id."""
        return bool(self.name)

    @property
    def label(self) -> str:
        """``"ML01 Input Manipulation Attack"``, or the bare id when unknown."""
        return f"{self.id} {self.name}" if self.name else self.id


def resolve_catalog(catalog: CatalogLike | None) -> CatalogLike:
    """Return ``catalog``, or the built-in catalog when it is None.

    When the built-in catalog cannot be imported or loaded, a warning is logged and
    an empty catalog is returned, so reports still render with bare ids.
    """
    if catalog is not None:
        return catalog
    try:
        from bastion.catalog import load_catalog  # type: ignore[attr-defined, unused-ignore]

        loaded: CatalogLike = load_catalog()
    except (ImportError, BastionError) as err:
        log.warning("Catalog unavailable (%s); reports will show bare catalog ids.", err)
        return _EmptyCatalog()
    return loaded


def lookup(catalog: CatalogLike, entry_id: str) -> EntryView:
    """Describe ``entry_id`` from ``catalog``; never raises for an unknown id."""
    try:
        if not catalog.exists(entry_id):
            return EntryView(id=entry_id)
        entry = catalog.get(entry_id)
    except (BastionError, LookupError):
        return EntryView(id=entry_id)
    kind = getattr(entry, "kind", "")
    return EntryView(
        id=entry_id,
        name=str(getattr(entry, "name", "") or ""),
        kind=str(getattr(kind, "value", kind) or ""),
        description=str(getattr(entry, "description", "") or ""),
        url=str(getattr(entry, "url", "") or ""),
    )
