"""Targets: models behind one interface, with capabilities and query budgets."""

from bastion.targets.base import (
    Capability,
    SupportsEmbeddings,
    SupportsEndpoint,
    SupportsGradients,
    SupportsLogits,
    SupportsTraining,
    Target,
)
from bastion.targets.budget import QueryBudget
from bastion.targets.fake import FakeTarget
from bastion.targets.spec import InputSpec

__all__ = [
    "Capability",
    "FakeTarget",
    "InputSpec",
    "QueryBudget",
    "SupportsEmbeddings",
    "SupportsEndpoint",
    "SupportsGradients",
    "SupportsLogits",
    "SupportsTraining",
    "Target",
]
