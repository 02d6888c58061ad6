"""Controls, risk factors, bug-bar severities and the plugins read live from a registry."""

from __future__ import annotations

from typing import Any

from bastion.catalog import Catalog
from bastion.findings import Severity
from bastion.plugins import Registry
from bastion.threatmodel.analysis import analyse
from bastion.threatmodel.controls import control_states, mitigations_for
from bastion.threatmodel.facts import Facts
from bastion.threatmodel.samples import minimal_description, minimal_description_data
from bastion.threatmodel.schema import SystemDescription

from .conftest import stub_probe


def _desc(**sections: Any) -> SystemDescription:
    return SystemDescription.model_validate(minimal_description_data(**sections))


def test_mitigations_come_from_the_catalog_themes(catalog: Catalog) -> None:
    digital = mitigations_for("ML01", catalog, {"ML01", "FM1"})
    physical = mitigations_for("ML01", catalog, {"ML01", "FM1", "FM7"})
    assert "AML.M0009" not in digital and "AML.M0009" in physical
    for m in digital:
        assert any(m in row.atlas_mitigations for row in catalog.mappings_for("ML01"))
    assert mitigations_for("FM12", catalog, {"FM12"}) == []
    # ML10 through unsigned parameters still gets the parameter-tampering mitigations
    assert "AML.M0014" in mitigations_for("ML10", catalog, {"ML10"})


def test_unstated_controls_count_as_missing(catalog: Catalog) -> None:
    desc = minimal_description()
    states, warnings = control_states(desc, Facts(desc), catalog)
    assert len(states) == 20 and not warnings
    assert states["AML.M0004"].status == "yes"
    assert (states["AML.M0015"].stated, states["AML.M0015"].status) == ("unstated", "no")


def test_contradicted_claims_are_lowered_with_a_warning(catalog: Catalog) -> None:
    desc = _desc(
        access={"exposure": "on_device", "callers": ["anyone"], "authentication": "none"},
        controls={"AML.M0019": "yes", "AML.M0017": "partial", "AML.M0004": "yes"},
    )
    states, warnings = control_states(desc, Facts(desc), catalog)
    assert states["AML.M0019"].status == "no"
    assert states["AML.M0017"].status == "no"
    assert states["AML.M0004"].status == "partial"  # no rate limit stated
    assert {w.code for w in warnings} == {"control-claim-conflict"}
    paths = {f.path for w in warnings for f in w.fields}
    assert {"access.authentication", "access.exposure", "access.rate_limit"} <= paths


def test_more_controls_never_raise_a_severity() -> None:
    bare = analyse(_desc(controls={}), registry=Registry())
    every = {f"AML.M{n:04d}": "yes" for n in range(20)}
    hardened = analyse(_desc(controls=every), registry=Registry())
    for before, after in zip(bare.threats, hardened.threats, strict=True):
        assert after.severity <= before.severity, before.id
        if before.risk and after.risk:
            assert after.risk.score <= before.risk.score, before.id
    assert hardened.get("ML01").severity < bare.get("ML01").severity
    assert not hardened.get("ML01").gaps and bare.get("ML01").gaps


def test_risk_factors_move_with_the_system() -> None:
    open_api = _desc(
        access={"exposure": "public_api", "callers": ["anyone"], "authentication": "none"},
        outputs={"returns": ["label", "logits"]},
    )
    closed = _desc(
        access={
            "exposure": "internal_service",
            "callers": ["employees"],
            "authentication": "user_accounts",
        },
        outputs={"returns": ["label"]},
        data={"sources": ["in_house"], "personal_data": True, "retention": "1 year"},
    )
    a = analyse(open_api, registry=Registry()).get("ML05")
    assert a.risk is not None and a.risk.exploitability.score == 5
    assert any(adj.delta > 0 for adj in a.risk.exploitability.adjustments)
    b = analyse(closed, registry=Registry()).get("ML04")
    assert b.applies and b.risk is not None
    assert b.risk.exploitability.score < b.risk.exploitability.base
    assert all(adj.reason.fields for adj in b.risk.exploitability.adjustments)
    assert b.risk.exploitability.base_source == "OWASP ML04 sample rating"


def test_unintentional_failures_use_the_documented_baseline() -> None:
    fm14 = analyse(minimal_description(), registry=Registry()).get("FM14")
    assert fm14.risk is not None
    assert fm14.risk.exploitability.base_source.startswith("Bastion's baseline")
    assert (fm14.risk.exploitability.base, fm14.risk.detectability.base) == (4, 2)


def test_severity_uses_the_bug_bar_and_records_its_inputs() -> None:
    security = _desc(decisions={"security": True, "automation": "fully_automated"})
    tm = analyse(security, registry=Registry())
    ml01 = tm.get("ML01")
    assert ml01.severity_inputs is not None and ml01.severity_inputs.security_decision
    assert any("security decision" in line for line in ml01.severity_rationale)
    plain = analyse(minimal_description(), registry=Registry()).get("ML01")
    assert ml01.severity >= plain.severity
    assert tm.get("FM6").severity_inputs.security_decision is False


def test_failure_modes_are_rated_through_their_owasp_entries() -> None:
    desc = _desc(
        feedback={"sources": ["end_users"], "retraining": "scheduled", "reviewed": "none"},
    )
    tm = analyse(desc, registry=Registry())
    ml08, fm2 = tm.get("ML08"), tm.get("FM2")
    assert ml08.applies and fm2.applies
    # ML08 is easy to exploit and hard to detect: the raise reaches FM2 through it
    assert any("ML08" in line for line in fm2.severity_rationale)
    assert fm2.severity_inputs is not None and fm2.severity_inputs.owasp in (["ML02"], ["ML08"])


def test_code_on_load_artefacts_make_supply_chain_critical() -> None:
    pickled = _desc(artefacts=[{"name": "m", "kind": "model", "format": "pickle"}])
    tm = analyse(pickled, registry=Registry())
    for tid in ("ML06", "FM11"):
        assert tm.get(tid).severity is Severity.CRITICAL
        assert tm.get(tid).severity_inputs.effect == "code_execution"


def test_plugins_are_read_live_from_the_registry(stub_registry: Registry) -> None:
    tm = analyse(minimal_description(), registry=stub_registry)
    ml01 = tm.get("ML01")
    assert ml01.probes == ["stub.evasion"]
    assert "remedy.adv_training" in ml01.remedies
    ml05 = tm.get("ML05")
    assert "guard.budget" in ml05.guards  # the guard implements AML.M0004, which ML05 needs
    budget = next(c for c in tm.controls if c.id == "AML.M0004")
    assert budget.guards == ["guard.budget"] and "ML05" in budget.addresses
    # the plan: probes naming an applicable threat, and only those
    assert [p.id for p in tm.plan.probes] == ["stub.evasion"]
    assert tm.plan.probes[0].checks == ["ML01", "FM1"]
    assert "ML05" in tm.plan.untested and "ML01" not in tm.plan.untested
    # a probe added later shows up without any change to the threat model code
    more = stub_registry.with_plugins(
        probes={"stub.theft": stub_probe("stub.theft", owasp=["ML05"])}
    )
    assert "stub.theft" in [p.id for p in analyse(minimal_description(), registry=more).plan.probes]


def test_ranking_is_by_severity_then_risk() -> None:
    tm = analyse(minimal_description(), registry=Registry())
    ranked = tm.ranked()
    assert [t.rank for t in ranked] == list(range(1, len(ranked) + 1))
    keys = [(-t.severity.rank, -(t.risk.score if t.risk else 0)) for t in ranked]
    assert keys == sorted(keys)
