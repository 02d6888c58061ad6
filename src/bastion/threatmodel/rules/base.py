"""What an applicability rule returns, and helpers to build it.

Examples
--------
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> f = Facts(minimal_description())
>>> a = when_all(f.outside_inputs, f.rich_outputs)
>>> a.applies, len(a.reasons)
(True, 2)
>>> when_any(f.feedback_trains, f.untrusted_data).applies
False
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bastion.threatmodel.facts import Fact, Facts
from bastion.threatmodel.results import Reason

__all__ = ["Applicability", "Rule", "always", "when_all", "when_any", "with_context"]


@dataclass(frozen=True)
class Applicability:
    """Whether a threat applies to the system, and the reasons either way."""

    applies: bool
    reasons: list[Reason] = field(default_factory=list)


#: A rule reads the facts of one description.
Rule = Callable[[Facts], Applicability]


def when_all(*facts: Fact) -> Applicability:
    """Applies when every fact holds; if not, the reasons are the facts that fail."""
    failing = [f.reason for f in facts if not f.holds]
    if failing:
        return Applicability(False, failing)
    return Applicability(True, [f.reason for f in facts])


def when_any(*facts: Fact) -> Applicability:
    """Applies when a fact holds; the reasons are those that hold (or all, if none do)."""
    holding = [f.reason for f in facts if f.holds]
    if holding:
        return Applicability(True, holding)
    return Applicability(False, [f.reason for f in facts])


def always(reason: Reason, *context: Fact) -> Applicability:
    """Applies to every system; ``context`` facts that hold are added as reasons."""
    return Applicability(True, [reason, *(f.reason for f in context if f.holds)])


def with_context(result: Applicability, *context: Fact, note: str = "") -> Applicability:
    """Add holding ``context`` facts to an applicable result, or ``note`` to one that
    does not apply."""
    if result.applies:
        return Applicability(True, [*result.reasons, *(f.reason for f in context if f.holds)])
    if note:
        return Applicability(False, [*result.reasons, Reason(text=note)])
    return result
