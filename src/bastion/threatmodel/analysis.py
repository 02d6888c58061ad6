"""From a system description to a :class:`~bastion.threatmodel.results.ThreatModel`.

:func:`analyse` runs every step in order: derive the facts, decide which OWASP entries
and failure modes apply, read the controls, rate each applicable threat (OWASP risk
factors and bug-bar severity), rank them, and look up the installed probes, guards and
remedies that test or implement each one.

Examples
--------
>>> from bastion.threatmodel.samples import minimal_description
>>> tm = analyse(minimal_description())
>>> [t.id for t in tm.ranked()][:3]
['ML01', 'FM1', 'ML05']
>>> tm.get("FM12").applies
False
>>> "robustness.noise" in [p.id for p in tm.plan.probes]
True
"""

from __future__ import annotations

from datetime import UTC, datetime

from bastion import __version__
from bastion.catalog import Catalog, Kind, load_catalog
from bastion.errors import CatalogError
from bastion.plugins import Registry, default_registry
from bastion.threatmodel.contradictions import design_risks
from bastion.threatmodel.controls import ControlState, control_states, mitigations_for
from bastion.threatmodel.coverage import PluginIndex
from bastion.threatmodel.facts import Facts
from bastion.threatmodel.loading import SystemFile
from bastion.threatmodel.results import (
    ControlView,
    MitigationView,
    ProbeChoice,
    ProbePlan,
    ThreatModel,
    ThreatResult,
)
from bastion.threatmodel.risk import risk_factors
from bastion.threatmodel.rules import RULES, applicability
from bastion.threatmodel.schema import SystemDescription
from bastion.threatmodel.severity import rate_threat

__all__ = ["analyse"]

_KINDS = {Kind.OWASP: "owasp", Kind.FAILURE_MODE: "failure_mode"}


def _mitigation(state: ControlState, index: PluginIndex, catalog: Catalog) -> MitigationView:
    return MitigationView(
        id=state.id,
        name=state.name,
        url=catalog.get(state.id).url,
        stated=state.stated,
        status=state.status,
        note=state.note,
        conflict=state.conflict,
        guards=index.guards_for([state.id]),
        remedies=index.remedies_for([state.id]),
    )


def analyse(
    system: SystemFile | SystemDescription,
    *,
    catalog: Catalog | None = None,
    registry: Registry | None = None,
    now: datetime | None = None,
) -> ThreatModel:
    """Analyse one system.

    Parameters
    ----------
    system : SystemFile or SystemDescription
        A loaded file (its name is recorded as the source) or a description.
    catalog : Catalog, optional
        The shipped catalog by default.
    registry : Registry, optional
        Installed plugins by default; probes, guards and remedies are read from it live.
    now : datetime, optional
        Timestamp of the analysis (for reproducible output in tests).

    Raises
    ------
    CatalogError
        If the catalog holds an OWASP entry or failure mode no rule covers.
    """
    catalog = catalog or load_catalog()
    registry = registry if registry is not None else default_registry()
    if isinstance(system, SystemFile):
        desc, source = system.description, system.source
    else:
        desc, source = system, "<description>"
    facts = Facts(desc)
    results = applicability(facts)
    entries = [*catalog.entries(Kind.OWASP), *catalog.entries(Kind.FAILURE_MODE)]
    missing = [e.id for e in entries if e.id not in RULES]
    if missing:
        raise CatalogError(
            f"No threat-model rule covers {', '.join(missing)}; add one to "
            "bastion.threatmodel.rules."
        )
    applicable = {tid for tid, r in results.items() if r.applies}
    states, control_warnings = control_states(desc, facts, catalog)
    index = PluginIndex.build(catalog, registry)

    threats: list[ThreatResult] = []
    for entry in entries:
        tid, result = entry.id, results[entry.id]
        mitigations = mitigations_for(tid, catalog, applicable)
        other = Kind.FAILURE_MODE if entry.kind is Kind.OWASP else Kind.OWASP
        fields: dict[str, object] = {}
        if result.applies:
            inputs, rating = rate_threat(tid, facts, states, mitigations, catalog, applicable)
            fields = {
                "risk": risk_factors(
                    tid, facts, states, mitigations, catalog, applicable=applicable
                ),
                "severity": rating.severity,
                "severity_inputs": inputs,
                "severity_rationale": rating.rationale,
            }
        threats.append(
            ThreatResult.model_validate(
                {
                    "id": tid,
                    "name": entry.name,
                    "kind": _KINDS[entry.kind],
                    "description": entry.description,
                    "url": entry.url,
                    "applies": result.applies,
                    "reasons": result.reasons,
                    "related": [r for r in catalog.related(tid) if catalog.get(r).kind is other],
                    "mitigations": [_mitigation(states[m], index, catalog) for m in mitigations],
                    "probes": index.probes_for(tid),
                    "guards": index.guards_for([tid, *mitigations]),
                    "remedies": index.remedies_for([tid, *mitigations]),
                    **fields,
                }
            )
        )
    threats = _ranked(threats)
    controls = [
        ControlView(
            **_mitigation(state, index, catalog).model_dump(),
            addresses=[
                t.id for t in threats if t.applies and any(m.id == mid for m in t.mitigations)
            ],
        )
        for mid, state in states.items()
    ]
    return ThreatModel(
        system=desc.name,
        summary=desc.summary,
        source=source,
        generated_at=now or datetime.now(UTC),
        bastion_version=__version__,
        catalog_version=catalog.version,
        threats=threats,
        controls=controls,
        warnings=[*design_risks(desc, facts), *control_warnings],
        plan=_plan(threats, registry),
    )


def _ranked(threats: list[ThreatResult]) -> list[ThreatResult]:
    order = {t.id: i for i, t in enumerate(threats)}
    live = sorted(
        (t for t in threats if t.applies),
        key=lambda t: (-t.severity.rank, -(t.risk.score if t.risk else 0), order[t.id]),
    )
    ranks = {t.id: i + 1 for i, t in enumerate(live)}
    return [t.model_copy(update={"rank": ranks.get(t.id)}) for t in threats]


def _plan(threats: list[ThreatResult], registry: Registry) -> ProbePlan:
    live = [t for t in threats if t.applies]
    choices = []
    for pid, probe in registry.probes.items():
        checks = [t.id for t in live if pid in t.probes]
        if checks:
            choices.append(ProbeChoice(id=pid, title=probe.meta.title, checks=checks))
    return ProbePlan(probes=choices, untested=[t.id for t in live if not t.probes])
