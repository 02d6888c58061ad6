"""OWASP risk factors adjusted to one system, and the risk score that ranks threats.

The OWASP ML Top 10 (2023) rates every entry's *exploitability*, *detectability* and
*technical impact* from 1 to 5 for one sample scenario, and says the real rating depends
on the system. Bastion starts from those sample scores and moves each factor one step
per system fact that changes it, recording every step with its reason:

* **exploitability** (5 = easiest): who can reach the attack surface, whether the model
  itself is exposed, how much answers reveal, where data comes from, and whether most
  mitigations that address the threat are in place;
* **detectability** (5 = easiest for the defender to notice): whether the monitoring
  mitigations of the threat's family are in place and whether a person sees answers;
* **technical impact** (5 = worst): what the answers decide. The draft's labels for this
  factor describe the attacker's skill, so Bastion reads the score as the size of the
  harm and adjusts it by the stakes.

A failure mode takes the scores of the applicable OWASP entry mapped to it with the
highest risk (FM2 -> ML02 or ML08). Unintentional failures have no OWASP rating; they
start from Bastion's baseline: exploitability 4 (they happen without anyone trying),
detectability 2 (they fail silently), technical impact 3.

The risk score is ``likelihood * impact`` with
``likelihood = (exploitability + (6 - detectability)) / 2``, from 1 to 25.

Examples
--------
>>> from bastion.catalog import load_catalog
>>> from bastion.threatmodel.controls import control_states
>>> from bastion.threatmodel.facts import Facts
>>> from bastion.threatmodel.samples import minimal_description
>>> cat, desc = load_catalog(), minimal_description()
>>> facts = Facts(desc)
>>> states, _ = control_states(desc, facts, cat)
>>> r = risk_factors("ML05", facts, states, ["AML.M0004"], cat, applicable={"ML05"})
>>> r.exploitability.base, r.exploitability.score, r.score
(4, 3, 12.0)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from bastion.catalog import Catalog, Kind, OwaspEntry
from bastion.threatmodel.controls import ControlState
from bastion.threatmodel.facts import Fact, Facts
from bastion.threatmodel.families import DETECTION_CONTROLS, FAMILY
from bastion.threatmodel.results import Adjustment, Factor, Reason, RiskFactors

__all__ = ["base_scores", "risk_factors"]

FactorName = Literal["exploitability", "detectability", "technical_impact"]
_BASELINE = (4, 2, 3)


def _risk(e: int, d: int, i: int) -> float:
    return (e + (6 - d)) / 2 * i


def base_scores(
    threat_id: str, catalog: Catalog, applicable: Collection[str]
) -> tuple[tuple[int, int, int], str]:
    """The starting (exploitability, detectability, impact) and where they come from."""
    entry = catalog.get(threat_id)
    if isinstance(entry, OwaspEntry):
        candidates = [entry]
    else:
        related = [catalog.get(r) for r in catalog.related(threat_id)]
        owasp = [e for e in related if isinstance(e, OwaspEntry)]
        candidates = [e for e in owasp if e.id in applicable] or owasp
    if not candidates:
        return _BASELINE, "Bastion's baseline for failures OWASP does not rate"
    best = max(
        candidates,
        key=lambda e: _risk(
            e.exploitability.score, e.detectability.score, e.technical_impact.score
        ),
    )
    scores = (best.exploitability.score, best.detectability.score, best.technical_impact.score)
    return scores, f"OWASP {best.id} sample rating"


class _Builder:
    def __init__(self, name: FactorName, base: int, source: str) -> None:
        self.name, self.base, self.source = name, base, source
        self.steps: list[Adjustment] = []

    def move(self, delta: int, reason: Reason) -> None:
        self.steps.append(Adjustment(delta=delta, reason=reason))

    def when(self, fact: Fact, delta: int, *, negate: bool = False) -> None:
        if fact.holds != negate:
            self.move(delta, fact.reason)

    def build(self) -> Factor:
        score = max(1, min(5, self.base + sum(s.delta for s in self.steps)))
        return Factor(
            name=self.name,
            base=self.base,
            base_source=self.source,
            score=score,
            adjustments=self.steps,
        )


def _exploitability(
    b: _Builder, tid: str, f: Facts, states: dict[str, ControlState], mitigations: Sequence[str]
) -> None:
    family = FAMILY[tid]
    if family == "evasion":
        b.when(f.white_box, +1)
        b.when(f.any_inputs, -1, negate=True)
    elif family == "query":
        b.when(f.anonymous, +1)
        if tid in ("ML05", "FM5"):
            b.when(f.white_box, +1)
        b.when(f.outside_queries, -1, negate=True)
        b.when(f.rich_outputs, -1, negate=True)
    elif family == "poisoning":
        fb = f.desc.feedback
        unreviewed = bool(fb.sources) and fb.reviewed == "none"
        b.when(f.fact(unreviewed, "feedback reaches training unreviewed", "feedback.reviewed"), +1)
        b.when(
            f.fact(
                fb.reviewed == "all",
                "every piece of feedback is reviewed before training",
                "feedback.reviewed",
            ),
            -1,
        )
    elif family == "supply_chain":
        b.when(f.code_on_load, +1)
        base = f.desc.model.base_model
        public = base is not None and base.source == "public_hub" and not base.verified
        b.when(
            f.fact(public, "the base model comes unverified from a public hub", "model.base_model"),
            +1,
        )
    elif family == "output":
        b.when(
            f.fact(
                f.desc.outputs.channel == "plaintext",
                "answers travel in plaintext",
                "outputs.channel",
            ),
            +1,
        )
        b.when(f.fact(f.desc.outputs.signed, "answers are signed", "outputs.signed"), -1)
    elif family == "unintentional":
        b.when(f.outside_inputs, +1)
    present = [m for m in mitigations if states[m].status == "yes"]
    if mitigations and len(present) * 2 >= len(mitigations):
        b.move(
            -1,
            Reason(
                text=f"{len(present)} of the {len(mitigations)} mitigations that address it "
                "are in place",
                fields=f.refs(*(f"controls.{m}" for m in present)),
            ),
        )


def _detectability(b: _Builder, tid: str, f: Facts, states: dict[str, ControlState]) -> None:
    family = FAMILY[tid]
    watching = [m for m in DETECTION_CONTROLS[family] if states[m].status != "no"]
    if watching:
        b.move(
            +1,
            Reason(
                text=f"{', '.join(watching)} ({states[watching[0]].name}) would notice it",
                fields=f.refs(*(f"controls.{m}" for m in watching)),
            ),
        )
    if family in ("evasion", "poisoning", "unintentional", "output"):
        automation = f.desc.decisions.automation
        if automation == "fully_automated":
            b.when(
                f.fact(
                    True,
                    "answers are acted on with no person looking at them",
                    "decisions.automation",
                ),
                -1,
            )
        else:
            b.when(
                f.fact(True, f"a person sees answers ({automation})", "decisions.automation"), +1
            )


def _impact(b: _Builder, tid: str, f: Facts) -> None:
    family = FAMILY[tid]
    d = f.desc.decisions
    if family in ("query", "provider") and tid not in ("ML05", "FM5"):
        b.when(f.private_data, +1)
        sensitive = bool(f.desc.data.sensitive_attributes)
        b.when(
            f.fact(
                sensitive, "the data includes sensitive attributes", "data.sensitive_attributes"
            ),
            +1,
        )
    elif tid in ("ML05", "FM5"):
        b.when(
            f.fact(
                f.desc.model.origin == "downloaded",
                "the model is a public download, so a stolen copy gains little",
                "model.origin",
            ),
            -1,
        )
    else:
        b.when(f.high_stakes, +1)
        b.when(f.fact(d.safety, "wrong answers can hurt people", "decisions.safety"), +1)
    b.when(
        f.fact(
            d.automation == "advisory",
            "answers are advice a person decides on",
            "decisions.automation",
        ),
        -1,
    )


def risk_factors(
    threat_id: str,
    facts: Facts,
    states: dict[str, ControlState],
    mitigations: Sequence[str],
    catalog: Catalog,
    *,
    applicable: Collection[str],
) -> RiskFactors:
    """The three factors for ``threat_id`` adjusted to the system, and its risk score."""
    assert catalog.get(threat_id).kind in (Kind.OWASP, Kind.FAILURE_MODE)
    (e, d, i), source = base_scores(threat_id, catalog, applicable)
    ex, de, im = (
        _Builder("exploitability", e, source),
        _Builder("detectability", d, source),
        _Builder("technical_impact", i, source),
    )
    _exploitability(ex, threat_id, facts, states, mitigations)
    _detectability(de, threat_id, facts, states)
    _impact(im, threat_id, facts)
    fe, fd, fi = ex.build(), de.build(), im.build()
    likelihood = (fe.score + (6 - fd.score)) / 2
    return RiskFactors(
        exploitability=fe,
        detectability=fd,
        technical_impact=fi,
        likelihood=likelihood,
        score=likelihood * fi.score,
    )
