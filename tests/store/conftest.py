"""Fixtures for store tests: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bastion.findings import (
    CatalogRefs,
    Evidence,
    Finding,
    Interval,
    Metric,
    Reproduction,
    Series,
    Severity,
    Status,
)
from bastion.findings.run import (
    DatasetSummary,
    GateResult,
    RunRecord,
    RunStatus,
    SkippedProbe,
    TargetSummary,
)
from bastion.store import Store, open_store
from bastion.store.testing import (
    postgres_test_url,
    postgres_unreachable_reason,
    temporary_schema,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty store: a SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.db'}"
        return
    server = postgres_test_url()
    reason = postgres_unreachable_reason(server)
    if reason is not None:
        pytest.skip(reason)
    with temporary_schema(server) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, empty store, closed after the test."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


FindingFactory = Callable[..., Finding]


@pytest.fixture
def make_finding() -> FindingFactory:
    """Build a finding; keyword arguments override the defaults."""

    def build(**overrides: Any) -> Finding:
        fields: dict[str, Any] = {
            "probe_id": "robustness.noise",
            "title": "Accuracy under Gaussian noise",
            "target": "digits-cnn",
            "status": Status.VULNERABLE,
            "severity": Severity.MODERATE,
            "summary": "Accuracy falls from 0.97 to 0.41 at sigma 0.3.",
            "metrics": [Metric(name="accuracy@0.3", value=0.41, definition="share correct")],
        }
        fields.update(overrides)
        return Finding(**fields)

    return build


@pytest.fixture
def full_record(make_finding: FindingFactory) -> RunRecord:
    """A run with every field of RunRecord and Finding set to a non-default value."""
    rich = make_finding(
        variant="gaussian",
        severity=Severity.IMPORTANT,
        severity_rationale=["security decision", "rate above 0.5"],
        metrics=[
            Metric(
                name="accuracy@0.3",
                value=0.41,
                unit="fraction",
                definition="Share of noisy test inputs classified correctly.",
                interval=Interval(low=0.3712, high=0.4497, level=0.95, method="wilson"),
                n=600,
            ),
            Metric(name="queries", value=1200, unit="queries", definition="Model calls."),
            Metric(name="label", value="seven", definition="Most confused class."),
            Metric(name="flipped", value=True, definition="Any prediction flipped."),
            Metric(name="unknown", value=None, definition="Not measured."),
        ],
        series=[
            Series(
                name="accuracy vs sigma",
                x_label="sigma",
                y_label="accuracy",
                x=[0.0, 0.1, 0.2, 0.3],
                y=[0.97, 0.9, 0.7, 0.41],
                y_low=[0.95, 0.87, 0.66, 0.37],
                y_high=[0.98, 0.92, 0.74, 0.45],
            )
        ],
        evidence=[
            Evidence(kind="file", description="Adversarial examples", path="ev/adv.npz"),
            Evidence(kind="table", description="Confusions", data={"7": {"1": 12, "9": 3}}),
        ],
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM1"],
            atlas_techniques=["AML.T0043"],
            atlas_mitigations=["AML.M0015"],
            cwe=["CWE-1039"],
        ),
        remedies=["adversarial_training", "AML.M0015"],
        reproduction=Reproduction(
            seed=1234, parameters={"sigmas": [0.1, 0.2, 0.3], "n": 600}, versions={"torch": "2"}
        ),
    )
    quiet = make_finding(
        probe_id="exposure.query_limits",
        title="Query limits",
        status=Status.NOT_VULNERABLE,
        severity=Severity.NONE,
        summary="A budget of 1000 queries is enforced.",
        metrics=[],
    )
    started = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    return RunRecord(
        run_id="a1b2c3d4e5f6",
        name="nightly ✓",
        started_at=started,
        finished_at=started + timedelta(minutes=3, seconds=2),
        status=RunStatus.COMPLETED,
        seed=2**40,
        config_fingerprint="sha256:feedface",
        bastion_version="0.1.0",
        targets=[
            TargetSummary(
                name="digits-cnn",
                kind="torch",
                dataset="digits",
                classes=[str(i) for i in range(10)],
                input_shape=[1, 8, 8],
                capabilities=["probabilities", "gradients"],
                query_budget=1000,
                security_decision=True,
                description="A small CNN.",
            )
        ],
        datasets=[
            DatasetSummary(
                name="digits", n_train=1437, n_test=360, n_classes=10, row_shape=[1, 8, 8]
            )
        ],
        planned=["robustness.noise@digits-cnn", "exposure.query_limits@digits-cnn"],
        completed=["robustness.noise@digits-cnn", "exposure.query_limits@digits-cnn"],
        skipped=[
            SkippedProbe(
                probe_id="privacy.membership", target="digits-cnn", reason="needs training data"
            )
        ],
        findings=[rich, quiet],
        gate=GateResult(fail_on=Severity.MODERATE, passed=False, failing=[rich.key]),
        options={"probes": "all", "exclude": ["x"], "nested": {"b": 1, "a": [1.5, None]}},
    )
