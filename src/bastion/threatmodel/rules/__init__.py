"""Applicability rules: for each OWASP ML Top 10 entry and failure mode, does it apply?

:data:`RULES` maps every id of those two catalog families to a rule; a test checks that
it covers exactly the catalog's ids, so a catalog change cannot leave a threat unrated.

Examples
--------
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> result = applicability(Facts(minimal_description()))
>>> len(result), result["FM12"].applies
(27, False)
"""

from __future__ import annotations

from bastion.threatmodel.facts import Facts
from bastion.threatmodel.rules.base import Applicability, Rule
from bastion.threatmodel.rules.intentional import INTENTIONAL
from bastion.threatmodel.rules.owasp import OWASP
from bastion.threatmodel.rules.unintentional import UNINTENTIONAL

__all__ = ["RULES", "Applicability", "Rule", "applicability"]

RULES: dict[str, Rule] = {**OWASP, **INTENTIONAL, **UNINTENTIONAL}


def applicability(facts: Facts) -> dict[str, Applicability]:
    """Run every rule on one description's facts."""
    return {threat_id: rule(facts) for threat_id, rule in RULES.items()}
