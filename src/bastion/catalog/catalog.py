"""The :class:`Catalog`: validated, read-only lookup over every catalog entry.

A catalog is built from entries and cross-mapping rows and checks them as it is built:
ids must be unique (ignoring case), every id a mapping row names must exist and sit in
the field of its own kind, every technique an ATLAS mitigation lists must exist, and
every sub-technique's parent must exist. Any problem raises
:class:`~bastion.errors.CatalogError`.

Lookups ignore case (``ml04`` finds ``ML04``) and an unknown id raises a
:class:`~bastion.errors.CatalogError` that suggests close matches.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> cat = load_catalog()
>>> cat.get("aml.m0015").name
'Adversarial Input Detection'
>>> cat.exists("ML99")
False
>>> "ML01" in cat.related("FM1")
True
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence

from bastion.catalog.entries import (
    AtlasMitigationEntry,
    AtlasTechniqueEntry,
    CatalogEntry,
    Kind,
    MappingRow,
    Source,
)
from bastion.errors import CatalogError, UsageError
from bastion.findings import CatalogRefs

__all__ = ["Catalog", "normalize_id"]

_OWASP_WITH_YEAR = re.compile(r"(ML\d\d):\d{4}")

_REFS_FIELD_KINDS: dict[str, Kind] = {
    "owasp": Kind.OWASP,
    "failure_modes": Kind.FAILURE_MODE,
    "atlas_techniques": Kind.ATLAS_TECHNIQUE,
    "atlas_mitigations": Kind.ATLAS_MITIGATION,
    "cwe": Kind.CWE,
}


def normalize_id(entry_id: str) -> str:
    """The lookup key of an id: trimmed, upper case, without an OWASP year suffix.

    Examples
    --------
    >>> normalize_id(" aml.t0024.001 ")
    'AML.T0024.001'
    >>> normalize_id("ML04:2023")
    'ML04'
    """
    key = str(entry_id).strip().upper()
    match = _OWASP_WITH_YEAR.fullmatch(key)
    return match.group(1) if match else key


def parse_kind(kind: str | Kind) -> Kind:
    """Read a kind name, raising :class:`UsageError` that lists the kinds when unknown."""
    try:
        return Kind(str(kind).strip().lower())
    except ValueError:
        allowed = ", ".join(k.value for k in Kind)
        raise UsageError(f"Unknown catalog kind {kind!r}; use one of: {allowed}.") from None


class Catalog:
    """Every catalog entry and the cross-mappings between them.

    Parameters
    ----------
    entries : sequence of CatalogEntry
        In catalog order (the order :meth:`entries` returns).
    mappings : sequence of MappingRow
        Cross-mapping rows; two ids are related when a row names both.
    version : str
        Version of the catalog data.
    sources : mapping of str to Source, optional
        Where each data file's facts come from, keyed by file stem.

    Raises
    ------
    CatalogError
        If an id is duplicated or a mapping names an id that does not exist.
    """

    def __init__(
        self,
        entries: Sequence[CatalogEntry],
        mappings: Sequence[MappingRow] = (),
        *,
        version: str,
        sources: Mapping[str, Source] | None = None,
    ) -> None:
        self._version = version
        self._sources = dict(sources or {})
        self._mappings = tuple(mappings)
        by_key: dict[str, CatalogEntry] = {}
        for entry in entries:
            key = normalize_id(entry.id)
            if key in by_key:
                raise CatalogError(
                    f"Catalog id {entry.id!r} is defined twice; give every entry a unique id."
                )
            by_key[key] = entry
        self._by_key = by_key
        self._order = {key: position for position, key in enumerate(by_key)}
        self._validate_atlas()
        self._validate_mappings()
        self._related = self._build_related()

    # -- validation ----------------------------------------------------------------
    def _validate_mappings(self) -> None:
        for row in self._mappings:
            for kind, entry_id in row.ids_by_kind():
                entry = self._by_key.get(normalize_id(entry_id))
                if entry is None:
                    raise CatalogError(
                        f"Mapping {row.theme!r} names {entry_id!r}, which is not in the "
                        "catalog; fix the id in mappings.yaml or add the entry."
                    )
                if entry.kind is not kind:
                    raise CatalogError(
                        f"Mapping {row.theme!r} lists {entry_id!r} as {kind.value}, but it is "
                        f"{entry.kind.value}; move it to the right field in mappings.yaml."
                    )

    def _validate_atlas(self) -> None:
        for entry in self._by_key.values():
            if isinstance(entry, AtlasMitigationEntry):
                for technique in entry.mitigates:
                    target = self._by_key.get(normalize_id(technique))
                    if not isinstance(target, AtlasTechniqueEntry):
                        raise CatalogError(
                            f"ATLAS mitigation {entry.id} lists {technique!r} under mitigates, "
                            "which is not a technique in the catalog; fix atlas.yaml."
                        )
            parent = entry.parent if isinstance(entry, AtlasTechniqueEntry) else None
            if parent is not None and parent not in self._by_key:
                raise CatalogError(
                    f"ATLAS sub-technique {entry.id} has no parent {parent} in the catalog; "
                    "add the parent technique to atlas.yaml."
                )

    def _build_related(self) -> dict[str, set[str]]:
        related: dict[str, set[str]] = {key: set() for key in self._by_key}

        def link(a: str, b: str) -> None:
            a, b = normalize_id(a), normalize_id(b)
            if a != b:
                related[a].add(b)
                related[b].add(a)

        for row in self._mappings:
            ids = row.ids()
            for i, first in enumerate(ids):
                for second in ids[i + 1 :]:
                    link(first, second)
        for entry in self._by_key.values():
            if isinstance(entry, AtlasTechniqueEntry) and entry.parent is not None:
                link(entry.id, entry.parent)
            if isinstance(entry, AtlasMitigationEntry):
                for technique in entry.mitigates:
                    link(entry.id, technique)
        return related

    # -- public API ----------------------------------------------------------------
    @property
    def version(self) -> str:
        """Version of the catalog data files."""
        return self._version

    @property
    def sources(self) -> dict[str, Source]:
        """Where each data file's facts come from, keyed by file stem (a copy)."""
        return dict(self._sources)

    @property
    def mappings(self) -> tuple[MappingRow, ...]:
        """The cross-mapping rows, in file order."""
        return self._mappings

    def exists(self, entry_id: str) -> bool:
        """True when ``entry_id`` (any case) is in the catalog."""
        return normalize_id(entry_id) in self._by_key

    def get(self, entry_id: str) -> CatalogEntry:
        """The entry with this id, in any case.

        Raises
        ------
        CatalogError
            If no entry has this id; the message suggests close matches.
        """
        key = normalize_id(entry_id)
        try:
            return self._by_key[key]
        except KeyError:
            raise CatalogError(self._unknown_message(entry_id)) from None

    def entries(self, kind: str | Kind | None = None) -> list[CatalogEntry]:
        """Entries in catalog order, all of them or those of one kind.

        Raises
        ------
        UsageError
            If ``kind`` is not one of the catalog's kinds.
        """
        if kind is None:
            return list(self._by_key.values())
        wanted = parse_kind(kind)
        return [entry for entry in self._by_key.values() if entry.kind is wanted]

    def unknown_ids(self, refs: CatalogRefs) -> list[str]:
        """The ids in ``refs`` that are not in the catalog, each once, in ``refs`` order."""
        unknown: list[str] = []
        for entry_id in refs.all_ids():
            if not self.exists(entry_id) and entry_id not in unknown:
                unknown.append(entry_id)
        return unknown

    def misfiled_ids(self, refs: CatalogRefs) -> list[str]:
        """Known ids in ``refs`` listed under the wrong field (e.g. ``FM1`` under ``owasp``).

        Each problem is described as ``"FM1 in owasp (it is failure_mode)"``.
        """
        problems: list[str] = []
        for field, kind in _REFS_FIELD_KINDS.items():
            for entry_id in getattr(refs, field):
                entry = self._by_key.get(normalize_id(entry_id))
                if entry is not None and entry.kind is not kind:
                    problems.append(f"{entry_id} in {field} (it is {entry.kind.value})")
        return problems

    def related(self, entry_id: str) -> list[str]:
        """Ids cross-mapped to ``entry_id``, in catalog order.

        Two ids are related when a row of ``mappings.yaml`` names both, when one is an
        ATLAS sub-technique of the other, or when ATLAS lists one as a mitigation of the
        other.

        Raises
        ------
        CatalogError
            If ``entry_id`` is not in the catalog.
        """
        key = normalize_id(self.get(entry_id).id)
        keys = sorted(self._related[key], key=self._order.__getitem__)
        return [self._by_key[k].id for k in keys]

    def mappings_for(self, entry_id: str) -> list[MappingRow]:
        """The mapping rows that name ``entry_id``."""
        key = normalize_id(self.get(entry_id).id)
        return [row for row in self._mappings if key in {normalize_id(i) for i in row.ids()}]

    def __contains__(self, entry_id: object) -> bool:
        return isinstance(entry_id, str) and self.exists(entry_id)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k.value}={len(self.entries(k))}" for k in Kind)
        return f"Catalog(version={self._version!r}, {counts})"

    # -- helpers -------------------------------------------------------------------
    def _unknown_message(self, entry_id: str) -> str:
        key = normalize_id(entry_id)
        close = [
            self._by_key[match].id
            for match in difflib.get_close_matches(key, list(self._by_key), n=3, cutoff=0.6)
        ]
        if not close:
            wanted = str(entry_id).strip().lower()
            close = [e.id for e in self._by_key.values() if wanted and wanted in e.name.lower()]
        hint = f" (close matches: {', '.join(close[:3])})" if close else ""
        return f"Unknown catalog id {entry_id!r}{hint}; run `bastion catalog` to list every id."
