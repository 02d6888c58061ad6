"""The :class:`RunRecord`: one assessment run and everything it found.

The store persists run records, the reports render them, and ``bastion runs diff``
compares two of them. Its JSON form (``RunRecord.model_json_schema()``) is the
documented report schema, ``docs/report-schema.json``.

Examples
--------
>>> from bastion.findings.run import RunRecord
>>> rec = RunRecord.new(name="demo", seed=0, config_fingerprint="abc")
>>> rec.status.value, len(rec.run_id)
('running', 12)
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from bastion.findings.finding import Finding, Status
from bastion.findings.severity import Severity

__all__ = [
    "SCHEMA_VERSION",
    "DatasetSummary",
    "GateResult",
    "RunRecord",
    "RunStatus",
    "SkippedProbe",
    "TargetSummary",
]

SCHEMA_VERSION = "1.0"


class RunStatus(StrEnum):
    """Lifecycle of a run."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class TargetSummary(BaseModel):
    """A target as it was assessed."""

    name: str
    kind: str
    dataset: str = Field(description="Name of the dataset it was assessed with.")
    classes: list[str]
    input_shape: list[int]
    capabilities: list[str]
    query_budget: int | None = None
    security_decision: bool = False
    description: str = ""


class DatasetSummary(BaseModel):
    """A dataset as it was used."""

    name: str
    n_train: int
    n_test: int
    n_classes: int
    row_shape: list[int]
    description: str = ""


class SkippedProbe(BaseModel):
    """A probe the plan left out, and why."""

    probe_id: str
    target: str
    reason: str


class GateResult(BaseModel):
    """The CI gate: did any vulnerable finding reach ``fail_on``?"""

    fail_on: Severity | None = None
    passed: bool = True
    failing: list[str] = Field(default_factory=list, description="Keys of the findings at fault.")


class RunRecord(BaseModel):
    """One assessment run."""

    schema_version: str = SCHEMA_VERSION
    run_id: str
    name: str
    started_at: datetime
    finished_at: datetime | None = None
    status: RunStatus = RunStatus.RUNNING
    seed: int = 0
    config_fingerprint: str = ""
    bastion_version: str = ""
    targets: list[TargetSummary] = Field(default_factory=list)
    datasets: list[DatasetSummary] = Field(default_factory=list)
    planned: list[str] = Field(
        default_factory=list, description="'probe_id@target' for every planned probe run."
    )
    completed: list[str] = Field(
        default_factory=list, description="'probe_id@target' for every finished probe run."
    )
    skipped: list[SkippedProbe] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    gate: GateResult = Field(default_factory=GateResult)
    options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(cls, *, name: str, seed: int, config_fingerprint: str, **fields: Any) -> RunRecord:
        """A fresh running record with a random 12-hex-digit id."""
        from bastion import __version__

        return cls(
            run_id=secrets.token_hex(6),
            name=name,
            started_at=datetime.now(UTC),
            seed=seed,
            config_fingerprint=config_fingerprint,
            bastion_version=__version__,
            **fields,
        )

    def severity_counts(self) -> dict[str, int]:
        """Vulnerable findings per severity, from critical down, zeros included."""
        counts = Counter(f.severity.value for f in self.findings if f.is_vulnerable)
        order = [Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW]
        return {s.value: counts.get(s.value, 0) for s in order}

    def status_counts(self) -> dict[str, int]:
        """Findings per status, zeros included."""
        counts = Counter(f.status.value for f in self.findings)
        return {s.value: counts.get(s.value, 0) for s in Status}

    def worst(self) -> Severity:
        """Highest severity among vulnerable findings (``none`` if there are none)."""
        return max((f.severity for f in self.findings if f.is_vulnerable), default=Severity.NONE)

    def evaluate_gate(self, fail_on: Severity | None) -> GateResult:
        """Apply the gate; findings with status ``error`` never pass a gate silently."""
        if fail_on is None:
            return GateResult(fail_on=None, passed=True)
        failing = [f.key for f in self.findings if f.is_vulnerable and f.severity >= fail_on]
        return GateResult(fail_on=fail_on, passed=not failing, failing=failing)
