"""ATLAS mitigations: which address each threat, and which the system has in place.

Which mitigations address a threat comes from the catalog's cross-mappings
(``mappings.yaml``): the mitigations of every theme that names the threat. A theme that
also names failure modes is used only when one of them applies to the system, so the
physical-world theme (FM7, with multi-modal sensors) does not add AML.M0009 to ML01 for
a web API.

Whether a mitigation is in place comes from the description's ``controls`` (yes, partial
or no; left out means no). A claim the rest of the description contradicts is lowered,
and the contradiction becomes a design warning: claiming output obfuscation (AML.M0002)
while returning raw logits makes it at most partial.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> cat = load_catalog()
>>> mitigations_for("ML01", cat, applicable={"ML01", "FM1"})
['AML.M0003', 'AML.M0015', 'AML.M0010', 'AML.M0006', 'AML.M0002', 'AML.M0017']
>>> desc = minimal_description(controls={"AML.M0002": "yes"},
...                            outputs={"returns": ["logits"]})
>>> states, warnings = control_states(desc, Facts(desc), cat)
>>> states["AML.M0002"].status, states["AML.M0002"].stated, warnings[0].code
('partial', 'yes', 'control-claim-conflict')
>>> states["AML.M0015"].stated
'unstated'
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from bastion.catalog import Catalog, Kind, normalize_id
from bastion.threatmodel.facts import Facts
from bastion.threatmodel.results import DesignWarning
from bastion.threatmodel.schema import SystemDescription

__all__ = ["ControlState", "control_states", "mitigations_for"]

Status = Literal["yes", "partial", "no"]
_ORDER: dict[str, int] = {"no": 0, "partial": 1, "yes": 2}


@dataclass(frozen=True)
class ControlState:
    """A mitigation's stated and effective status."""

    id: str
    name: str
    stated: Literal["yes", "partial", "no", "unstated"]
    status: Status
    note: str = ""
    conflict: str = ""
    fields: tuple[str, ...] = ()


def mitigations_for(threat_id: str, catalog: Catalog, applicable: Collection[str]) -> list[str]:
    """ATLAS mitigations that address ``threat_id``, in the order the themes list them.

    Parameters
    ----------
    threat_id : str
        An OWASP or failure-mode id.
    catalog : Catalog
    applicable : collection of str
        Threat ids that apply to the system; themes naming failure modes none of which
        apply are left out, unless that would leave no theme at all (ML10 applying
        through unsigned parameters while reprogramming, FM6, does not apply).
    """
    wanted = {normalize_id(i) for i in applicable}
    rows = catalog.mappings_for(threat_id)
    kept = [
        r
        for r in rows
        if not r.failure_modes or {normalize_id(m) for m in r.failure_modes} & wanted
    ]
    found: list[str] = []
    for row in kept or rows:
        found.extend(m for m in row.atlas_mitigations if m not in found)
    return found


# A check returns (highest credible status, why, fields) or None when the claim stands.
Check = Callable[[SystemDescription, Facts], tuple[Status, str, tuple[str, ...]] | None]


def _obfuscation(d: SystemDescription, f: Facts) -> tuple[Status, str, tuple[str, ...]] | None:
    out = d.outputs
    if "logits" in out.returns or ("scores" in out.returns and out.score_decimals is None):
        return (
            "partial",
            "the model still returns raw logits or unrounded scores",
            (
                "outputs.returns",
                "outputs.score_decimals",
            ),
        )
    return None


def _query_limit(d: SystemDescription, f: Facts) -> tuple[Status, str, tuple[str, ...]] | None:
    if d.access.rate_limit is None:
        return "partial", "access.rate_limit states no per-caller limit", ("access.rate_limit",)
    return None


def _access(d: SystemDescription, f: Facts) -> tuple[Status, str, tuple[str, ...]] | None:
    if d.access.authentication == "none":
        return "no", "access.authentication is none", ("access.authentication",)
    return None


def _distribution(d: SystemDescription, f: Facts) -> tuple[Status, str, tuple[str, ...]] | None:
    if d.access.exposure == "on_device":
        return "no", "the model is deployed on devices", ("access.exposure",)
    return None


def _signing(d: SystemDescription, f: Facts) -> tuple[Status, str, tuple[str, ...]] | None:
    unsigned = [i for i, a in enumerate(d.artefacts) if a.kind == "model" and not a.signed]
    if unsigned:
        name = d.artefacts[unsigned[0]].name
        return (
            "partial",
            f"model artefact {name!r} is not signed",
            (f"artefacts.{unsigned[0]}.signed",),
        )
    return None


def _verification(d: SystemDescription, f: Facts) -> tuple[Status, str, tuple[str, ...]] | None:
    base = d.model.base_model
    if base is not None and not base.verified:
        return (
            "partial",
            f"the base model {base.name!r} was not verified",
            ("model.base_model.verified",),
        )
    return None


_CHECKS: dict[str, Check] = {
    "AML.M0002": _obfuscation,
    "AML.M0004": _query_limit,
    "AML.M0019": _access,
    "AML.M0017": _distribution,
    "AML.M0013": _signing,
    "AML.M0014": _verification,
}


def control_states(
    desc: SystemDescription, facts: Facts, catalog: Catalog
) -> tuple[dict[str, ControlState], list[DesignWarning]]:
    """Every ATLAS mitigation's stated and effective status, and the conflicts found."""
    states: dict[str, ControlState] = {}
    warnings: list[DesignWarning] = []
    for entry in catalog.entries(Kind.ATLAS_MITIGATION):
        claim = desc.controls.get(entry.id)
        if claim is None:
            states[entry.id] = ControlState(entry.id, entry.name, "unstated", "no")
            continue
        status: Status = claim.status
        conflict = ""
        fields: tuple[str, ...] = (f"controls.{entry.id}",)
        check = _CHECKS.get(entry.id)
        found = check(desc, facts) if check is not None and status != "no" else None
        if found is not None and _ORDER[found[0]] < _ORDER[status]:
            status, why, extra = found
            conflict = f"stated {claim.status}, but {why}; counted as {status}"
            fields = (*fields, *extra)
            warnings.append(
                DesignWarning(
                    code="control-claim-conflict",
                    message=f"{entry.id} {entry.name} is {conflict}.",
                    fields=facts.refs(*fields),
                )
            )
        states[entry.id] = ControlState(
            entry.id, entry.name, claim.status, status, claim.note, conflict, fields
        )
    return states, warnings
