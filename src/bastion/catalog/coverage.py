"""Which catalog entries Bastion's plugins cover, computed live from a plugin registry.

Coverage is never stored: each probe, guard and remedy names the catalog ids it deals
with in its own metadata (``meta.catalog``, a :class:`~bastion.findings.CatalogRefs`),
and :func:`coverage` reads them from whatever :class:`~bastion.plugins.Registry` it is
given, so newly installed plugins show up at once. A plugin covers an entry when it
names the entry's id directly, in any case, in any field of its ``meta.catalog``.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.catalog.coverage import coverage, summarize
>>> from bastion.plugins import Registry
>>> rows = coverage(load_catalog(), Registry())
>>> rows[0].id, rows[0].probes
('ML01', [])
>>> summarize(rows).with_probe
0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.catalog.catalog import Catalog, normalize_id
from bastion.catalog.entries import Kind
from bastion.findings import CatalogRefs

if TYPE_CHECKING:  # the registry imports the plugin base classes; keep the catalog light
    from bastion.plugins import Registry

__all__ = ["CoverageRow", "CoverageSummary", "coverage", "dangling_references", "summarize"]


@dataclass(frozen=True)
class CoverageRow:
    """One catalog entry and the plugins that reference it directly."""

    id: str
    name: str
    kind: Kind
    probes: list[str] = field(default_factory=list)
    guards: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        """True when at least one probe, guard or remedy references the entry."""
        return bool(self.probes or self.guards or self.remedies)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


@dataclass(frozen=True)
class CoverageSummary:
    """Counts over coverage rows."""

    entries: int
    with_probe: int
    with_guard: int
    with_remedy: int
    with_any: int

    def sentence(self) -> str:
        """The counts in one line, e.g. for the CLI."""
        return (
            f"{self.with_probe} of {self.entries} entries have a probe, "
            f"{self.with_guard} have a guard, {self.with_remedy} have a remedy; "
            f"{self.entries - self.with_any} have none."
        )


def _catalog_of(plugin: type) -> CatalogRefs:
    meta = getattr(plugin, "meta", None)
    refs = getattr(meta, "catalog", None)
    return refs if isinstance(refs, CatalogRefs) else CatalogRefs()


def _index(plugins: Mapping[str, type]) -> dict[str, list[str]]:
    """Normalised catalog id -> plugin ids that name it, in registry order."""
    index: dict[str, list[str]] = {}
    for plugin_id, plugin in plugins.items():
        for entry_id in _catalog_of(plugin).all_ids():
            users = index.setdefault(normalize_id(entry_id), [])
            if plugin_id not in users:
                users.append(plugin_id)
    return index


def coverage(
    catalog: Catalog, registry: Registry, *, kind: str | Kind | None = None
) -> list[CoverageRow]:
    """Every catalog entry (or those of one kind) with the plugins that reference it.

    Parameters
    ----------
    catalog : Catalog
    registry : Registry
        Plugins to read; their ``meta.catalog`` is read on every call.
    kind : str or Kind, optional
        Restrict the rows to one kind of entry.

    Returns
    -------
    list of CoverageRow
        In catalog order; plugin ids in registry order.
    """
    probes = _index(registry.probes)
    guards = _index(registry.guards)
    remedies = _index(registry.remedies)
    rows = []
    for entry in catalog.entries(kind):
        key = normalize_id(entry.id)
        rows.append(
            CoverageRow(
                id=entry.id,
                name=entry.name,
                kind=entry.kind,
                probes=list(probes.get(key, [])),
                guards=list(guards.get(key, [])),
                remedies=list(remedies.get(key, [])),
            )
        )
    return rows


def summarize(rows: Iterable[CoverageRow]) -> CoverageSummary:
    """Count entries with a probe, a guard, a remedy and any plugin at all."""
    rows = list(rows)
    return CoverageSummary(
        entries=len(rows),
        with_probe=sum(1 for r in rows if r.probes),
        with_guard=sum(1 for r in rows if r.guards),
        with_remedy=sum(1 for r in rows if r.remedies),
        with_any=sum(1 for r in rows if r.covered),
    )


def dangling_references(catalog: Catalog, registry: Registry) -> dict[str, list[str]]:
    """Catalog ids plugins name that the catalog does not hold.

    Returns
    -------
    dict
        ``"probe:<id>"``, ``"guard:<id>"`` or ``"remedy:<id>"`` -> unknown ids; plugins
        whose references are all known are left out.
    """
    found: dict[str, list[str]] = {}
    groups: dict[str, Mapping[str, type]] = {
        "probe": registry.probes,
        "guard": registry.guards,
        "remedy": registry.remedies,
    }
    for group, plugins in groups.items():
        for plugin_id, plugin in plugins.items():
            unknown = catalog.unknown_ids(_catalog_of(plugin))
            if unknown:
                found[f"{group}:{plugin_id}"] = unknown
    return found
