"""Plugin discovery by entry points.

Probes, guards, remedies and target adapters register under the entry-point groups
``bastion.probes``, ``bastion.guards``, ``bastion.remedies`` and ``bastion.targets``
(see ``pyproject.toml``); third-party packages add their own the same way. A
:class:`Registry` is an ordinary object: tests build one with extra plugins instead
of mutating a global.

Examples
--------
>>> from bastion.plugins import Registry
>>> reg = Registry.from_entry_points()
>>> "robustness.noise" in reg.probes
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from bastion.errors import UsageError
from bastion.guards.base import Guard
from bastion.probes.base import Probe
from bastion.remedies.base import Remedy
from bastion.targets.base import Target

__all__ = ["GROUPS", "Registry", "default_registry"]

log = logging.getLogger(__name__)

GROUPS = {
    "probes": "bastion.probes",
    "guards": "bastion.guards",
    "remedies": "bastion.remedies",
    "targets": "bastion.targets",
}


def _load(group: str, base: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in entry_points(group=group):
        obj = ep.load()
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise UsageError(
                f"Entry point {ep.name!r} in group {group!r} is {obj!r}, not a {base.__name__} "
                "subclass; fix the plugin's pyproject.toml."
            )
        found[ep.name] = obj
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Registry:
    """The plugins known to one Bastion process."""

    probes: dict[str, type[Probe]] = field(default_factory=dict)
    guards: dict[str, type[Guard]] = field(default_factory=dict)
    remedies: dict[str, type[Remedy]] = field(default_factory=dict)
    targets: dict[str, type[Target]] = field(default_factory=dict)

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Load every installed plugin."""
        return cls(
            probes=_load(GROUPS["probes"], Probe),
            guards=_load(GROUPS["guards"], Guard),
            remedies=_load(GROUPS["remedies"], Remedy),
            targets=_load(GROUPS["targets"], Target),
        )

    def probe(self, probe_id: str) -> type[Probe]:
        """The probe class with this id, or a :class:`UsageError` listing the known ids."""
        try:
            return self.probes[probe_id]
        except KeyError:
            known = ", ".join(self.probes) or "none"
            raise UsageError(
                f"No probe {probe_id!r} is installed; known probes: {known}."
            ) from None

    def with_plugins(
        self,
        *,
        probes: dict[str, type[Probe]] | None = None,
        guards: dict[str, type[Guard]] | None = None,
        remedies: dict[str, type[Remedy]] | None = None,
    ) -> Registry:
        """A copy with extra plugins (for tests and embedding)."""
        return Registry(
            probes={**self.probes, **(probes or {})},
            guards={**self.guards, **(guards or {})},
            remedies={**self.remedies, **(remedies or {})},
            targets=dict(self.targets),
        )


@cache
def default_registry() -> Registry:
    """The registry of installed plugins, loaded once per process (read-only)."""
    return Registry.from_entry_points()
