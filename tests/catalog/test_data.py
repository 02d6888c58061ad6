"""The shipped catalog data: every seed id with the expected name and attributes."""

from __future__ import annotations

import re

import pytest

from bastion.catalog import (
    AtlasTechniqueEntry,
    Catalog,
    CweEntry,
    FailureModeEntry,
    Kind,
    OwaspEntry,
    load_catalog,
)
from bastion.catalog.loader import DATA_FILES, data_directory, read_yaml


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


OWASP = {
    "ML01": ("Adversarial Attack", (5, "easy"), (3, "moderate"), (5, "difficult")),
    "ML02": ("Data Poisoning Attack", (3, "moderate"), (2, "difficult"), (4, "moderate")),
    "ML03": ("Model Inversion Attack", (4, "moderate"), (2, "difficult"), (4, "moderate")),
    "ML04": ("Membership Inference Attack", (4, "moderate"), (3, "moderate"), (4, "moderate")),
    "ML05": ("Model Stealing", (4, "moderate"), (3, "moderate"), (4, "moderate")),
    "ML06": ("Corrupted Packages", (5, "easy"), (5, "easy"), (4, "moderate")),
    "ML07": ("Transfer Learning Attack", (5, "easy"), (1, "difficult"), (5, "difficult")),
    "ML08": ("Model Skewing", (5, "easy"), (2, "difficult"), (5, "difficult")),
    "ML09": ("Output Integrity Attack", (5, "easy"), (3, "moderate"), (3, "moderate")),
    "ML10": ("Neural Net Reprogramming", (5, "easy"), (3, "moderate"), (3, "moderate")),
}

# name, cia, knowledge, access control violated
FAILURE_MODES = {
    "FM1": ("Perturbation attack", ("integrity",), "both", False),
    "FM2": ("Poisoning attack", ("integrity",), "black-box", False),
    "FM3": ("Model inversion", ("confidentiality",), "both", False),
    "FM4": ("Membership inference", ("confidentiality",), "black-box", False),
    "FM5": ("Model stealing", ("confidentiality",), "black-box", False),
    "FM6": ("Reprogramming ML system", ("integrity", "availability"), "white-box", False),
    "FM7": ("Adversarial example in physical domain", ("integrity",), "white-box", False),
    "FM8": (
        "Malicious ML provider recovering training data",
        ("confidentiality",),
        "white-box",
        True,
    ),
    "FM9": ("Attacking the ML supply chain", ("integrity",), "white-box", True),
    "FM10": ("Backdoor ML", ("confidentiality", "integrity"), "white-box", True),
    "FM11": (
        "Exploit software dependencies",
        ("confidentiality", "integrity", "availability"),
        "black-box",
        True,
    ),
    "FM12": ("Reward hacking", (), None, None),
    "FM13": ("Side effects", (), None, None),
    "FM14": ("Distributional shifts", (), None, None),
    "FM15": ("Natural adversarial examples", (), None, None),
    "FM16": ("Common corruption", (), None, None),
    "FM17": ("Incomplete testing", (), None, None),
}

ATLAS_MITIGATIONS = {
    "AML.M0000": "Limit Release of Public Information",
    "AML.M0001": "Limit Model Artifact Release",
    "AML.M0002": "Passive ML Output Obfuscation",
    "AML.M0003": "Model Hardening",
    "AML.M0004": "Restrict Number of ML Model Queries",
    "AML.M0005": "Control Access to ML Models and Data at Rest",
    "AML.M0006": "Use Ensemble Methods",
    "AML.M0007": "Sanitize Training Data",
    "AML.M0008": "Validate ML Model",
    "AML.M0009": "Use Multi-Modal Sensors",
    "AML.M0010": "Input Restoration",
    "AML.M0011": "Restrict Library Loading",
    "AML.M0012": "Encrypt Sensitive Information",
    "AML.M0013": "Code Signing",
    "AML.M0014": "Verify ML Artifacts",
    "AML.M0015": "Adversarial Input Detection",
    "AML.M0016": "Vulnerability Scanning",
    "AML.M0017": "Model Distribution Methods",
    "AML.M0018": "User Training",
    "AML.M0019": "Control Access to ML Models and Data in Production",
}

ATLAS_TECHNIQUES = {
    "AML.T0043": "Craft Adversarial Data",
    "AML.T0015": "Evade ML Model",
    "AML.T0040": "ML Model Inference API Access",
    "AML.T0024": "Exfiltration via ML Inference API",
    "AML.T0024.000": "Infer Training Data Membership",
    "AML.T0024.001": "Invert ML Model",
    "AML.T0024.002": "Extract ML Model",
    "AML.T0020": "Poison Training Data",
    "AML.T0018": "Backdoor ML Model",
    "AML.T0010": "ML Supply Chain Compromise",
    "AML.T0011": "User Execution",
    "AML.T0029": "Denial of ML Service",
    "AML.T0034": "Cost Harvesting",
    "AML.T0031": "Erode ML Model Integrity",
    "AML.T0014": "Discover ML Model Family",
    "AML.T0013": "Discover ML Model Ontology",
}


def test_owasp_entries(cat: Catalog) -> None:
    entries = cat.entries(Kind.OWASP)
    assert [e.id for e in entries] == list(OWASP)
    for entry in entries:
        assert isinstance(entry, OwaspEntry)
        name, exploit, detect, impact = OWASP[entry.id]
        assert entry.name == name
        assert (entry.exploitability.score, entry.exploitability.rating) == exploit
        assert (entry.detectability.score, entry.detectability.rating) == detect
        assert (entry.technical_impact.score, entry.technical_impact.rating) == impact
        assert entry.year == 2023
        assert 3 <= len(entry.prevention) <= 8


def test_owasp_newer_names(cat: Catalog) -> None:
    newer = {e.id: e.attributes["newer_name"] for e in cat.entries("owasp")}
    assert newer["ML10"] == "Model Poisoning"
    assert newer["ML01"] == "Input Manipulation Attack"
    assert newer["ML02"] is None


def test_failure_modes_in_document_order(cat: Catalog) -> None:
    entries = cat.entries(Kind.FAILURE_MODE)
    assert [e.id for e in entries] == list(FAILURE_MODES)
    for entry in entries:
        assert isinstance(entry, FailureModeEntry)
        name, cia, knowledge, violated = FAILURE_MODES[entry.id]
        assert entry.name == name
        assert entry.cia == cia
        assert entry.knowledge == knowledge
        assert entry.access_control_violated is violated
        assert entry.intentional is (entry.number <= 11)
        assert entry.safety is (not entry.intentional)
    stated = [e.id for e in entries if isinstance(e, FailureModeEntry) and e.knowledge_stated]
    assert stated == ["FM1", "FM2", "FM3", "FM4"]


def test_atlas_mitigations(cat: Catalog) -> None:
    found = {e.id: e.name for e in cat.entries(Kind.ATLAS_MITIGATION)}
    assert found == ATLAS_MITIGATIONS
    assert cat.get("AML.M0004").attributes["current_name"] == "Restrict Number of AI Model Queries"


def test_atlas_techniques(cat: Catalog) -> None:
    found = {e.id: e.name for e in cat.entries(Kind.ATLAS_TECHNIQUE)}
    for technique_id, name in ATLAS_TECHNIQUES.items():
        assert found.get(technique_id) == name, technique_id
    for entry in cat.entries(Kind.ATLAS_TECHNIQUE):
        assert isinstance(entry, AtlasTechniqueEntry)
        assert re.fullmatch(r"AML\.T\d{4}(\.\d{3})?", entry.id)
        assert bool(entry.tactics) is (entry.parent is None), entry.id


def test_cwe_1039(cat: Catalog) -> None:
    entry = cat.get("CWE-1039")
    assert isinstance(entry, CweEntry)
    assert entry.name.startswith("Inadequate Detection or Handling of Adversarial Input")
    assert len(entry.mitigations) == 7
    assert len(entry.detection_methods) == 3
    assert {c.scope for c in entry.consequences} == {"integrity", "availability", "confidentiality"}
    assert [p.id for p in entry.child_of] == ["CWE-693", "CWE-697"]


def test_every_mapping_id_exists_with_its_kind(cat: Catalog) -> None:
    assert cat.mappings
    for row in cat.mappings:
        assert len(row.ids()) >= 2, row.theme
        for kind, entry_id in row.ids_by_kind():
            assert cat.exists(entry_id), (row.theme, entry_id)
            assert cat.get(entry_id).kind is kind, (row.theme, entry_id)


def test_every_entry_is_mapped_except_reinforcement_learning_failures(cat: Catalog) -> None:
    mapped = {entry_id for row in cat.mappings for entry_id in row.ids()}
    unmapped = [e.id for e in cat.entries() if e.id not in mapped]
    assert unmapped == ["FM12", "FM13"]


def test_brief_example_mapping(cat: Catalog) -> None:
    row = cat.mappings_for("FM1")[0]
    assert row.owasp == ("ML01",)
    assert {"AML.M0003", "AML.M0015", "AML.M0010"} <= set(row.atlas_mitigations)
    assert "AML.T0043" in row.atlas_techniques
    assert row.cwe == ("CWE-1039",)


def test_descriptions_are_short(cat: Catalog) -> None:
    for entry in cat.entries():
        sentences = re.findall(r"[.!?](?:\s|$)", entry.description.strip())
        assert 1 <= len(sentences) <= 3, entry.id
        assert entry.description[0].isupper(), entry.id


def test_urls(cat: Catalog) -> None:
    for entry in cat.entries():
        assert entry.url is not None and entry.url.startswith("https://"), entry.id
        if entry.kind in (Kind.ATLAS_MITIGATION, Kind.ATLAS_TECHNIQUE):
            assert entry.url.endswith("/" + entry.id)


@pytest.mark.parametrize("name", [*DATA_FILES, "severity.yaml"])
def test_every_data_file_is_versioned(name: str) -> None:
    data = read_yaml(data_directory(), name)
    assert data["version"] == "1.0.0"
    assert data["source"]["title"]
