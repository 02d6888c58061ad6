"""The :class:`Remedy` contract: harden a target, then prove it with the same probes.

A remedy takes a target and data and returns a :class:`RemedyResult`: the hardened
target and a record of what changed. :attr:`RemedyMeta.verified_by` names the probes
that found the weakness; ``bastion harden`` re-runs exactly those and reports
before/after.

Examples
--------
>>> from bastion.remedies.base import RemedyMeta
>>> from bastion.findings import CatalogRefs
>>> RemedyMeta(id="remedy.example", title="Example", catalog=CatalogRefs(),
...            verified_by=("robustness.noise",)).verified_by
('robustness.noise',)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bastion.data.dataset import Dataset
from bastion.findings import CatalogRefs
from bastion.probes.context import ProbeContext
from bastion.targets.base import Capability, Target

__all__ = ["Remedy", "RemedyMeta", "RemedyResult"]


@dataclass(frozen=True)
class RemedyMeta:
    """Declared metadata of a remedy; checked by :mod:`bastion.testing`."""

    id: str
    title: str
    catalog: CatalogRefs
    verified_by: tuple[str, ...]
    needs: frozenset[Capability] = field(default_factory=frozenset)


@dataclass(frozen=True)
class RemedyResult:
    """A hardened target and what was done to get it."""

    target: Target
    changes: dict[str, Any]
    notes: str = ""


class Remedy(ABC):
    """Base class of remedies."""

    meta: ClassVar[RemedyMeta]

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        """Return a hardened copy of ``target``; never modify ``target`` in place."""
