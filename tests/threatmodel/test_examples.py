"""The example systems produce the threat models a security engineer would expect."""

from __future__ import annotations

import pytest

from bastion.findings import Severity
from bastion.plugins import Registry
from bastion.threatmodel.analysis import analyse
from bastion.threatmodel.loading import SystemFile
from bastion.threatmodel.results import ThreatModel

from .conftest import EXAMPLES

# name -> (must apply, must not apply)
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "public-image-api": (
        {"ML01", "FM1", "ML05", "FM5", "FM6", "FM16"},
        {"ML07", "ML08", "ML09", "FM7", "FM9", "FM12", "FM13"},
    ),
    "network-intrusion-detector": (
        {"ML01", "FM1", "ML02", "FM2", "ML08", "ML09"},
        {"ML05", "FM5", "ML07", "FM16", "FM12", "FM13"},
    ),
    "spam-filter": (
        {"ML02", "FM2", "ML08", "FM10", "ML01", "FM1"},
        {"ML05", "ML07", "ML09", "FM16", "FM12", "FM13"},
    ),
    "credit-model": (
        {"ML08", "ML04", "FM4", "ML03", "ML02", "ML09", "ML01"},
        {"ML05", "ML07", "FM16", "FM12", "FM13"},
    ),
    "face-recognition": (
        {"ML07", "FM9", "FM10", "ML01", "FM1", "FM7", "ML03", "ML04", "ML05", "FM5", "ML06"},
        {"ML02", "ML08", "FM12", "FM13"},
    ),
    "hospital-diagnosis": (
        {"ML09", "FM14", "FM16", "FM17"},
        {"ML01", "FM1", "ML05", "ML07", "ML08", "FM12", "FM13"},
    ),
    "cheque-digit-reader": (
        {"ML10", "ML01", "FM1", "FM7", "ML09", "FM16"},
        {"ML05", "ML07", "ML08", "FM12", "FM13"},
    ),
}


@pytest.fixture(scope="module")
def models(systems: dict[str, SystemFile]) -> dict[str, ThreatModel]:
    return {name: analyse(s, registry=Registry()) for name, s in systems.items()}


def test_every_example_has_expectations() -> None:
    assert sorted(EXPECTED) == EXAMPLES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_key_threats(models: dict[str, ThreatModel], name: str) -> None:
    tm = models[name]
    applies = {t.id for t in tm.applicable()}
    must, must_not = EXPECTED[name]
    assert must <= applies, f"{name}: missing {sorted(must - applies)}"
    assert not must_not & applies, f"{name}: unexpected {sorted(must_not & applies)}"
    assert len(tm.threats) == 27
    for t in tm.applicable():
        assert t.risk is not None and 1 <= t.risk.score <= 25
        assert t.severity is not Severity.NONE and t.severity_rationale
        assert t.rank is not None
    for t in tm.threats:
        if not t.applies:
            assert t.risk is None and t.severity is Severity.NONE and t.rank is None


def test_threat_models_are_distinct(models: dict[str, ThreatModel]) -> None:
    sets = {name: frozenset(t.id for t in tm.applicable()) for name, tm in models.items()}
    assert len(set(sets.values())) == len(sets)
    tops = {name: tm.ranked()[0].id for name, tm in models.items()}
    assert len(set(tops.values())) >= 4, tops


def test_top_risks_match_the_scenarios(models: dict[str, ThreatModel]) -> None:
    def top(name: str, n: int = 3) -> set[str]:
        return {t.id for t in models[name].ranked()[:n]}

    assert top("spam-filter") & {"ML08", "ML02", "FM2"}
    assert top("credit-model", 1) == {"ML08"}
    assert "ML01" in top("public-image-api", 2)
    assert top("face-recognition", 4) & {"ML07", "FM9", "FM10"}
    assert top("hospital-diagnosis", 2) & {"ML09"}


def test_severities_follow_the_stakes(models: dict[str, ThreatModel]) -> None:
    face = models["face-recognition"]
    # unverified public base model, security decision: the transfer attack is critical
    assert face.get("ML07").severity is Severity.CRITICAL
    assert face.get("ML06").severity is Severity.CRITICAL  # a torch.save file is loaded
    assert face.get("ML06").severity_inputs.effect == "code_execution"
    image = models["public-image-api"]
    assert image.get("ML01").severity <= Severity.IMPORTANT  # no security decision
    assert image.get("ML06").severity_inputs.effect == "tampering"
    credit = models["credit-model"]
    # only employees and internal systems query it, outputs rounded, access controlled
    assert credit.get("ML04").severity <= Severity.MODERATE


def test_design_warnings(models: dict[str, ThreatModel]) -> None:
    codes = {name: {w.code for w in tm.warnings} for name, tm in models.items()}
    assert "unreviewed-feedback" in codes["spam-filter"]
    assert {"code-on-load-artefact", "unverified-base-model", "plaintext-outputs"} <= codes[
        "face-recognition"
    ]
    assert "control-claim-conflict" in codes["face-recognition"]
    assert "code-on-load-artefact" in codes["network-intrusion-detector"]
    assert "unsigned-outputs" in codes["hospital-diagnosis"]
    face = models["face-recognition"]
    claim = next(c for c in face.controls if c.id == "AML.M0014")
    assert (claim.stated, claim.status) == ("yes", "partial")
