"""A realistic run record and a small catalog stub shared by the report tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.errors import CatalogError
from bastion.findings import (
    CatalogRefs,
    Evidence,
    Finding,
    Metric,
    Reproduction,
    Series,
    Severity,
    Status,
    wilson_interval,
)
from bastion.findings.run import (
    DatasetSummary,
    RunRecord,
    RunStatus,
    SkippedProbe,
    TargetSummary,
)

from ._png import write_gradient

IMAGE_PATH = "evidence/noise/adversarial-example.png"


@dataclass(frozen=True)
class StubEntry:
    id: str
    name: str
    kind: str
    description: str
    url: str | None = None


class StubCatalog:
    """The two methods reports use, over a handful of entries."""

    def __init__(self, entries: list[StubEntry]) -> None:
        self._entries = {e.id: e for e in entries}

    def exists(self, entry_id: str, /) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: str, /) -> StubEntry:
        try:
            return self._entries[entry_id]
        except KeyError:
            raise CatalogError(f"Unknown catalog id {entry_id!r}.") from None


OWASP_NAMES = {
    "ML01": "Input Manipulation Attack",
    "ML02": "Data Poisoning Attack",
    "ML03": "Model Inversion Attack",
    "ML04": "Membership Inference Attack",
    "ML05": "Model Theft",
    "ML06": "AI Supply Chain Attacks",
    "ML07": "Transfer Learning Attack",
    "ML08": "Model Skewing",
    "ML09": "Output Integrity Attack",
    "ML10": "Model Poisoning",
}


def stub_catalog() -> StubCatalog:
    entries = [
        StubEntry(
            oid,
            name,
            "owasp",
            f"{name}: a category of the OWASP ML Top 10.",
            f"https://owasp.org/www-project-machine-learning-security-top-10/docs/{oid}",
        )
        for oid, name in OWASP_NAMES.items()
    ]
    entries += [
        StubEntry("FM1", "Perturbation attack", "failure_mode", "Small input changes flip output."),
        StubEntry(
            "AML.T0043",
            "Craft Adversarial Data",
            "atlas_technique",
            "The adversary crafts inputs that the model misclassifies.",
            "https://atlas.mitre.org/techniques/AML.T0043",
        ),
        StubEntry(
            "AML.M0015",
            "Adversarial Input Detection",
            "atlas_mitigation",
            "Detect and block adversarial inputs before they reach the model.",
            "javascript:alert(1)",
        ),
        StubEntry(
            "CWE-1039",
            "Automated Recognition Mechanism with Inadequate Detection",
            "cwe",
            "The recogniser does not detect adversarial inputs.",
            "https://cwe.mitre.org/data/definitions/1039.html",
        ),
    ]
    return StubCatalog(entries)


@pytest.fixture
def catalog() -> StubCatalog:
    return stub_catalog()


def _repro(**params: object) -> Reproduction:
    return Reproduction(
        seed=7, parameters=dict(params), versions={"python": "3.11.9", "bastion-ml": "0.1.0"}
    )


def make_record() -> RunRecord:
    """Several findings of every status, with series, metrics, evidence and mappings."""
    evasion_refs = CatalogRefs(
        owasp=["ML01"],
        failure_modes=["FM1"],
        atlas_techniques=["AML.T0043"],
        atlas_mitigations=["AML.M0015"],
        cwe=["CWE-1039"],
    )
    sigmas = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4]
    correct = [485, 470, 431, 320, 205, 130]
    ivs = [wilson_interval(c, 500) for c in correct]
    noise = Finding(
        probe_id="robustness.noise",
        title="Accuracy under Gaussian noise",
        target="digits-cnn",
        variant="gaussian",
        status=Status.VULNERABLE,
        severity=Severity.IMPORTANT,
        summary="Accuracy falls from 0.97 to 0.41 at noise sigma 0.3 | well below the 0.8 floor.",
        severity_rationale=["accuracy drop > 0.3 at sigma <= 0.3 → important"],
        metrics=[
            Metric(
                name="accuracy@sigma=0.3",
                value=205 / 500,
                unit="fraction",
                definition="Share of 500 test images classified correctly after noise.",
                interval=ivs[4],
                n=500,
            ),
            Metric(
                name="clean_accuracy",
                value=0.97,
                unit="fraction",
                definition="Clean share.",
                interval=ivs[0],
                n=500,
            ),
            Metric(name="queries", value=3000, unit="queries", definition="Model calls made."),
        ],
        series=[
            Series(
                name="Accuracy against noise strength",
                x_label="noise sigma",
                y_label="accuracy",
                x=sigmas,
                y=[c / 500 for c in correct],
                y_low=[iv.low for iv in ivs],
                y_high=[iv.high for iv in ivs],
            )
        ],
        evidence=[
            Evidence(
                kind="image", description="An input misclassified at sigma 0.3", path=IMAGE_PATH
            ),
            Evidence(
                kind="table",
                description="Accuracy per class at sigma 0.3",
                data={"class": ["0", "1", "2"], "accuracy": [0.52, 0.31, 0.44]},
            ),
        ],
        catalog=evasion_refs,
        remedies=["adversarial_training", "AML.M0015"],
        reproduction=_repro(sigmas=sigmas, n_samples=500),
    )
    evasion = Finding(
        probe_id="evasion.pgd",
        title="Projected gradient descent evasion",
        target="digits-cnn",
        status=Status.VULNERABLE,
        severity=Severity.CRITICAL,
        summary="PGD with eps 8/255 flips 96% of correctly classified inputs.",
        metrics=[
            Metric(
                name="attack_success_rate",
                value=0.96,
                unit="fraction",
                definition="Share of inputs whose label flips.",
                interval=wilson_interval(480, 500),
                n=500,
            )
        ],
        series=[
            Series(
                name="Success against eps",
                x_label="eps",
                y_label="success rate",
                x=[0.01, 0.02, 0.03],
                y=[0.4, 0.8, 0.96],
            )
        ],
        catalog=evasion_refs,
        remedies=["adversarial_training"],
        reproduction=_repro(eps=0.031, steps=40),
    )
    granularity = Finding(
        probe_id="exposure.output_granularity",
        title="Output granularity",
        target="digits-api",
        status=Status.VULNERABLE,
        severity=Severity.MODERATE,
        summary="The API returns full probability vectors with 6 decimals.",
        evidence=[
            Evidence(
                kind="observation",
                description="A sample response",
                data={"probabilities": [0.912345, 0.087655], "decimals": 6},
            ),
            Evidence(kind="image", description="A missing image", path="evidence/none.png"),
        ],
        catalog=CatalogRefs(owasp=["ML05", "ML03"], atlas_techniques=["AML.T9999"]),
        remedies=["output_obfuscation"],
        reproduction=_repro(),
    )
    limits = Finding(
        probe_id="exposure.query_limits",
        title="Query limits",
        target="digits-api",
        status=Status.VULNERABLE,
        severity=Severity.LOW,
        summary="No query budget is enforced.",
        catalog=CatalogRefs(owasp=["ML05"]),
        reproduction=_repro(),
    )
    membership = Finding(
        probe_id="privacy.membership",
        title="Membership inference",
        target="digits-cnn",
        status=Status.INCONCLUSIVE,
        summary="Attack AUC 0.55 with an interval that includes 0.5; more samples needed.",
        catalog=CatalogRefs(owasp=["ML04"]),
        reproduction=_repro(n_shadow=4),
    )
    broken = Finding(
        probe_id="extraction.copycat",
        title="Model extraction",
        target="digits-api",
        status=Status.ERROR,
        summary="The target timed out after 30 s on batch 3.",
        catalog=CatalogRefs(owasp=["ML05"]),
    )
    clean = Finding(
        probe_id="robustness.noise",
        title="Accuracy under salt-and-pepper noise",
        target="digits-cnn",
        variant="salt_pepper",
        status=Status.NOT_VULNERABLE,
        summary="Accuracy stays above 0.9 at every tested amount.",
        catalog=CatalogRefs(owasp=["ML01"]),
    )
    findings = [noise, evasion, granularity, limits, membership, broken, clean]
    record = RunRecord(
        run_id="a1b2c3d4e5f6",
        name="digits nightly",
        started_at=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        finished_at=datetime(2024, 5, 1, 12, 3, 7, tzinfo=UTC),
        status=RunStatus.COMPLETED,
        seed=7,
        config_fingerprint="9f86d081884c",
        bastion_version="0.1.0",
        targets=[
            TargetSummary(
                name="digits-cnn",
                kind="torch",
                dataset="digits",
                classes=[str(i) for i in range(10)],
                input_shape=[1, 8, 8],
                capabilities=["labels", "probabilities", "gradients"],
                security_decision=True,
            ),
            TargetSummary(
                name="digits-api",
                kind="http",
                dataset="digits",
                classes=[str(i) for i in range(10)],
                input_shape=[64],
                capabilities=["labels", "probabilities"],
                query_budget=10000,
            ),
        ],
        datasets=[
            DatasetSummary(
                name="digits", n_train=1437, n_test=360, n_classes=10, row_shape=[1, 8, 8]
            )
        ],
        planned=[f"{f.probe_id}@{f.target}" for f in findings] + ["supply.scan@digits-api"],
        completed=[f"{f.probe_id}@{f.target}" for f in findings],
        skipped=[
            SkippedProbe(
                probe_id="evasion.pgd",
                target="digits-api",
                reason="evasion.pgd needs gradients; this target is an http target",
            )
        ],
        findings=findings,
        options={"fail_on": "important", "max_queries": 10000},
    )
    return record.model_copy(update={"gate": record.evaluate_gate(Severity.IMPORTANT)})


@pytest.fixture
def record() -> RunRecord:
    return make_record()


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    """A report folder holding the evidence image the record points at."""
    write_gradient(tmp_path / IMAGE_PATH)
    return tmp_path
