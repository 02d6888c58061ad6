"""Applicability rules: complete, traceable, and each decided by the fields it cites."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.catalog import Catalog, Kind
from bastion.threatmodel.facts import Facts
from bastion.threatmodel.loading import SystemFile
from bastion.threatmodel.rules import RULES, applicability
from bastion.threatmodel.samples import minimal_description, minimal_description_data
from bastion.threatmodel.schema import SystemDescription


def _desc(**changes: Any) -> SystemDescription:
    """The sample with nested changes, e.g. ``model__origin="downloaded"``."""
    data = minimal_description_data()
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return SystemDescription.model_validate(data)


def _applies(desc: SystemDescription) -> set[str]:
    return {k for k, v in applicability(Facts(desc)).items() if v.applies}


def test_rules_cover_exactly_the_catalog(catalog: Catalog) -> None:
    ids = [e.id for e in catalog.entries(Kind.OWASP)] + [
        e.id for e in catalog.entries(Kind.FAILURE_MODE)
    ]
    assert sorted(RULES) == sorted(ids)
    assert len(ids) == 27


def test_every_reason_cites_real_fields_in_every_example(systems: dict[str, SystemFile]) -> None:
    for name, system in systems.items():
        desc = system.description
        for tid, result in applicability(Facts(desc)).items():
            assert result.reasons, f"{name}: {tid} has no reason"
            for reason in result.reasons:
                assert reason.text.strip() and not reason.text.endswith(".")
                for ref in reason.fields:
                    assert desc.value_at(ref.path) == ref.value, f"{name} {tid} {ref.path}"


def test_reinforcement_learning_modes_only_for_rl_agents() -> None:
    plain = applicability(Facts(minimal_description()))
    for tid in ("FM12", "FM13"):
        assert not plain[tid].applies
        assert "not a reinforcement-learning agent" in plain[tid].reasons[0].text
        assert plain[tid].reasons[0].fields[0].path == "model.learning"
    rl = _applies(_desc(model__learning="reinforcement", model__task="control"))
    assert {"FM12", "FM13"} <= rl
    assert "FM15" not in rl  # natural adversarial examples concern discriminative models


@pytest.mark.parametrize(
    ("changes", "gained"),
    [
        ({"model__origin": "downloaded", "model__base_model": {"name": "b", "source": "public_hub"}},
         {"ML07", "FM9", "FM10"}),
        ({"data__sources": ["user_generated"]}, {"ML02", "FM2", "FM10"}),
        ({"feedback__sources": ["end_users"], "feedback__retraining": "scheduled"},
         {"ML08", "ML02", "FM2"}),
        ({"data__personal_data": True}, {"ML03", "ML04", "FM3", "FM4"}),
        ({"outputs__passes_through": ["erp"]}, {"ML09"}),
        ({"inputs__physical_world": True}, {"FM7"}),
        ({"access__hosted_by": "ml_vendor", "data__confidential": True}, {"FM8", "ML03"}),
    ],
)  # fmt: skip
def test_a_field_change_turns_threats_on(changes: dict[str, Any], gained: set[str]) -> None:
    before, after = _applies(minimal_description()), _applies(_desc(**changes))
    assert not gained & before
    assert gained <= after


def test_closing_access_turns_query_threats_off() -> None:
    base = _applies(_desc(data__personal_data=True))
    assert {"ML03", "ML04", "ML05", "FM5", "FM6"} <= base
    closed = _applies(
        _desc(
            data__personal_data=True,
            access={
                "exposure": "internal_service",
                "callers": ["internal_systems"],
                "authentication": "mutual_tls",
            },
        )
    )
    assert not {"ML03", "ML04", "ML05", "FM3", "FM4", "FM5", "FM6"} & closed


def test_inputs_from_internal_systems_only_turn_evasion_off() -> None:
    result = applicability(Facts(_desc(inputs__supplied_by=["internal_systems"])))
    assert not result["FM1"].applies and not result["ML01"].applies
    assert result["FM1"].reasons[0].fields[0].path == "inputs.supplied_by"


def test_supply_chain_and_dependency_threats_always_apply() -> None:
    for desc in (minimal_description(), _desc(model__framework="onnx")):
        assert {"ML06", "FM11", "FM14", "FM17"} <= _applies(desc)


def test_common_corruption_depends_on_the_modality() -> None:
    assert "FM16" in _applies(minimal_description())
    assert "FM16" not in _applies(_desc(inputs__modality="network_traffic"))
    assert "FM16" in _applies(_desc(inputs__modality="tabular", inputs__physical_world=True))


def test_ml10_applies_through_unsigned_parameters() -> None:
    artefacts = [{"name": "m", "kind": "model", "format": "onnx", "signed": True}]
    off = _applies(_desc(model__type="linear", artefacts=artefacts))
    assert "ML10" not in off
    unsigned = [{"name": "m", "kind": "model", "format": "onnx", "signed": False}]
    assert "ML10" in _applies(_desc(model__type="linear", artefacts=unsigned))
