"""The bug-bar severity of each applicable threat, rated with :func:`bastion.catalog.severity.rate`.

A threat model proves nothing by itself, so Bastion rates the credible case for this
system, with the same rules a finding gets (``docs/severity.md``), from an ``Impact``
built as follows (the choices are recorded in the rationale):

* **effect** - the threat's family (:data:`bastion.threatmodel.families.EFFECTS`);
  code execution for ML06, FM9 and FM11 when an artefact runs code when loaded;
* **extent** - the share of the threat left open by the mitigations that address it:
  1.0, halved by each mitigation in place and cut by a quarter by each partial one. This
  is a deliberately simple model (mitigations are treated as independent and equally
  strong); it only decides the band (strong >= 0.5, partial >= 0.1, weak);
* **effort** - low when the surface is open to anyone (anonymous queries, a model on
  devices, unreviewed public feedback, plaintext outputs, an unverified public base
  model, a world that brings the failure about by itself), high when only insiders
  reach it, medium otherwise;
* **security decision** - ``decisions.security``;
* **OWASP ids** - the threat itself; a failure mode is rated once through each
  applicable OWASP entry mapped to it (with the harder of the two effort readings, so
  FM2 through ML08 is no easier than ML08 itself) and the worst rating counts, so ML07's
  and ML08's "easy to exploit, hard to detect" rule reaches the failure modes too.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.threatmodel.controls import control_states
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> cat, desc = load_catalog(), minimal_description()
>>> facts = Facts(desc)
>>> states, _ = control_states(desc, facts, cat)
>>> inputs, rating = rate_threat("ML01", facts, states, ["AML.M0003"], cat, {"ML01"})
>>> inputs.effect, inputs.extent, inputs.effort, rating.severity.value
('evasion', 1.0, 'medium', 'important')
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bastion.catalog import Catalog, OwaspEntry
from bastion.catalog.severity import Effect, Effort, Impact, SeverityRating, rate
from bastion.threatmodel.controls import ControlState
from bastion.threatmodel.facts import Facts
from bastion.threatmodel.families import CODE_EXECUTION_THREATS, EFFECTS, FAMILY
from bastion.threatmodel.results import SeverityInputs

__all__ = ["rate_threat", "residual_extent", "threat_effort"]

_FACTOR = {"yes": 0.5, "partial": 0.75, "no": 1.0}


def residual_extent(mitigations: Sequence[str], states: dict[str, ControlState]) -> float:
    """1.0 times 0.5 per mitigation in place and 0.75 per partial one."""
    extent = 1.0
    for m in mitigations:
        extent *= _FACTOR[states[m].status]
    return extent


def threat_effort(threat_id: str, f: Facts) -> tuple[Effort, str]:
    """The attacker's effort for this system, and the reason in words."""
    family = FAMILY[threat_id]
    d = f.desc
    if family == "evasion":
        if f.white_box or (f.anonymous and threat_id != "FM7"):
            why = f.white_box.reason if f.white_box else f.anonymous.reason
            return Effort.LOW, why.text
        if not f.any_inputs:
            return Effort.HIGH, f.any_inputs.reason.text
    elif family == "query":
        if f.anonymous or f.white_box:
            return Effort.LOW, (f.anonymous if f.anonymous else f.white_box).reason.text
        if not f.outside_queries:
            return Effort.HIGH, f.outside_queries.reason.text
    elif family == "poisoning":
        return _poisoning_effort(threat_id, f)
    elif family == "supply_chain":
        base = d.model.base_model
        if (base is not None and base.source == "public_hub" and not base.verified) or any(
            a.stored == "public_hub" and not a.signed for a in d.artefacts
        ):
            return Effort.LOW, "an unverified artefact comes from a public hub"
    elif family == "output":
        if d.outputs.channel == "plaintext":
            return Effort.LOW, "answers travel in plaintext"
        if d.outputs.signed and d.outputs.channel == "mutual_tls":
            return Effort.HIGH, "answers are signed and travel over mutual TLS"
    elif family == "unintentional" and (f.outside_inputs or d.inputs.physical_world):
        return Effort.LOW, "the world brings these conditions about without an attacker"
    return Effort.MEDIUM, "no system fact makes the attack unusually cheap or costly"


def _poisoning_effort(threat_id: str, f: Facts) -> tuple[Effort, str]:
    d, fb = f.desc, f.desc.feedback
    public_feedback = [s for s in fb.sources if s in ("end_users", "partners")]
    unreviewed = bool(public_feedback) and fb.reviewed == "none"
    if unreviewed or (fb.online_learning and f.outside_inputs):
        return Effort.LOW, "anyone who sends feedback steers retraining, and nobody reviews it"
    if threat_id == "ML08":
        if fb.reviewed == "all" or all(s == "analysts" for s in fb.sources):
            return Effort.HIGH, "only reviewed or insiders' feedback reaches retraining"
        return Effort.MEDIUM, "feedback comes from outside but is partly reviewed or indirect"
    open_sources = [s for s in d.data.sources if s in ("scraped", "user_generated")]
    if open_sources:
        return Effort.LOW, f"anyone can place data in the {', '.join(open_sources)} sources"
    base = d.model.base_model
    public_base = base is not None and base.source == "public_hub" and not base.verified
    if threat_id == "FM10" and public_base:
        return Effort.LOW, "anyone can publish a backdoored model on a public hub"
    if not (f.untrusted_data or f.feedback_trains or f.external_model):
        return Effort.HIGH, "only insiders reach the training data"
    return Effort.MEDIUM, "training data or feedback comes from outside, through vetted channels"


_HARDNESS = {Effort.LOW: 0, Effort.MEDIUM: 1, Effort.HIGH: 2}


def _paths(threat_id: str, catalog: Catalog, applicable: Collection[str]) -> list[str | None]:
    """The OWASP entries a threat is rated through: itself, or for a failure mode the
    applicable OWASP entries mapped to it (None when there are none)."""
    entry = catalog.get(threat_id)
    if isinstance(entry, OwaspEntry):
        return [entry.id]
    related = [r for r in catalog.related(threat_id) if r in applicable]
    paths: list[str | None] = [r for r in related if isinstance(catalog.get(r), OwaspEntry)]
    return paths or [None]


def _path_effort(threat_id: str, path: str | None, facts: Facts) -> tuple[Effort, str]:
    """The harder of the threat's own effort and that of the OWASP entry it goes through."""
    own = threat_effort(threat_id, facts)
    if path is None or path == threat_id:
        return own
    other = threat_effort(path, facts)
    return other if _HARDNESS[other[0]] > _HARDNESS[own[0]] else own


def rate_threat(
    threat_id: str,
    facts: Facts,
    states: dict[str, ControlState],
    mitigations: Sequence[str],
    catalog: Catalog,
    applicable: Collection[str],
) -> tuple[SeverityInputs, SeverityRating]:
    """The bug-bar inputs chosen for ``threat_id`` and the rating they give.

    A failure mode mapped to several applicable OWASP entries (FM2 to ML02 and ML08) is
    rated once through each, with the harder of the two effort readings and that
    entry's OWASP risk factors, and the worst rating counts.
    """
    effect = EFFECTS[threat_id]
    if threat_id in CODE_EXECUTION_THREATS and facts.code_on_load:
        effect = Effect.CODE_EXECUTION
    extent = residual_extent(mitigations, states)
    # Reprogramming borrows the model for another task; it does not evade its decision.
    security = facts.desc.decisions.security and threat_id != "FM6"
    rated: list[tuple[int, int, Effort, str, list[str], SeverityRating]] = []
    for path in _paths(threat_id, catalog, applicable):
        effort, why = _path_effort(threat_id, path, facts)
        owasp = [path] if path else []
        rating = rate(Impact(effect, extent, effort, security), owasp=owasp, catalog=catalog)
        rated.append((rating.severity.rank, -len(rated), effort, why, owasp, rating))
    _, _, effort, effort_why, owasp, rating = max(rated, key=lambda r: (r[0], r[1]))

    present = [m for m in mitigations if states[m].status != "no"]
    effect_text = f"Rated as {effect.value.replace('_', ' ')}"
    if effect is Effect.CODE_EXECUTION:
        effect_text += f" because {facts.code_on_load.reason.text}"
    left_open = f"{', '.join(present)} in place" if present else "no mitigation in place"
    preface = [
        f"{effect_text}.",
        f"Extent {extent:.3g}: the share of the threat left open with {left_open}.",
        f"Effort {effort.value}: {effort_why}.",
    ]
    if len(rated) > 1:
        preface.append(
            f"Worst of {len(rated)} paths, through "
            + ", ".join(p for r in rated for p in r[4])
            + f"; this one goes through {owasp[0]}."
        )
    inputs = SeverityInputs(
        effect=effect.value,
        extent=extent,
        effort=effort.value,
        security_decision=security,
        owasp=owasp,
    )
    return inputs, SeverityRating(rating.severity, [*preface, *rating.rationale])
