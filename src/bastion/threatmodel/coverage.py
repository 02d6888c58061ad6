"""Which installed probes, guards and remedies test or implement each threat.

Read live from a :class:`~bastion.plugins.Registry` through
:func:`bastion.catalog.coverage.coverage`, never from a list in this package: a probe
tests a threat when its ``meta.catalog`` names the threat's id; a guard or remedy
implements a threat's defence when it names the threat or one of the ATLAS mitigations
that address it.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.plugins import default_registry
>>> index = PluginIndex.build(load_catalog(), default_registry())
>>> "robustness.noise" in index.probes_for("ML01")
True
>>> index.probes_for("FM12")
[]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bastion.catalog import Catalog, normalize_id
from bastion.catalog.coverage import CoverageRow, coverage
from bastion.plugins import Registry

__all__ = ["PluginIndex"]


@dataclass(frozen=True)
class PluginIndex:
    """Catalog id -> plugins that name it, and each probe's title."""

    rows: dict[str, CoverageRow]
    probe_titles: dict[str, str]

    @classmethod
    def build(cls, catalog: Catalog, registry: Registry) -> PluginIndex:
        """Index every catalog entry against every plugin in ``registry``."""
        rows = {normalize_id(r.id): r for r in coverage(catalog, registry)}
        titles = {pid: probe.meta.title for pid, probe in registry.probes.items()}
        return cls(rows, titles)

    def _row(self, entry_id: str) -> CoverageRow | None:
        return self.rows.get(normalize_id(entry_id))

    def probes_for(self, threat_id: str) -> list[str]:
        """Probes whose metadata names ``threat_id``."""
        row = self._row(threat_id)
        return list(row.probes) if row else []

    def guards_for(self, ids: Iterable[str]) -> list[str]:
        """Guards naming any of ``ids``, each once, in the order found."""
        found: list[str] = []
        for entry_id in ids:
            row = self._row(entry_id)
            found.extend(g for g in (row.guards if row else []) if g not in found)
        return found

    def remedies_for(self, ids: Iterable[str]) -> list[str]:
        """Remedies naming any of ``ids``, each once, in the order found."""
        found: list[str] = []
        for entry_id in ids:
            row = self._row(entry_id)
            found.extend(r for r in (row.remedies if row else []) if r not in found)
        return found
