"""The :class:`Finding` record every probe returns.

A finding is the unit of everything downstream: the store persists findings, the
reports render them, ``runs diff`` compares them and the CI gate reads their
severity. Its JSON form is the report schema (``docs/report-schema.json``).

Examples
--------
>>> from bastion.findings import Finding, Metric, Status, Severity
>>> f = Finding(
...     probe_id="robustness.noise",
...     title="Accuracy under Gaussian noise",
...     target="digits-cnn",
...     status=Status.VULNERABLE,
...     severity=Severity.MODERATE,
...     summary="Accuracy falls from 0.97 to 0.41 at noise sigma 0.3.",
...     metrics=[Metric(name="accuracy@0.3", value=0.41, definition="share correct")],
... )
>>> f.is_vulnerable
True
>>> f.key
'robustness.noise|digits-cnn|'
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.findings.severity import Severity

__all__ = [
    "CatalogRefs",
    "Evidence",
    "Finding",
    "Interval",
    "Metric",
    "Reproduction",
    "Series",
    "Status",
]


class Status(StrEnum):
    """What a probe concluded.

    ``vulnerable``: the weakness was shown. ``not_vulnerable``: the probe ran and the
    weakness was not shown at the tested strength. ``inconclusive``: the probe ran
    but the result cannot be trusted either way (the reason is in the summary).
    ``error``: the probe could not run.
    """

    VULNERABLE = "vulnerable"
    NOT_VULNERABLE = "not_vulnerable"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Interval(BaseModel):
    """A confidence interval for a sampled rate."""

    model_config = ConfigDict(frozen=True)

    low: float
    high: float
    level: float = Field(0.95, description="Coverage probability, e.g. 0.95.")
    method: str = Field("wilson", description="How the interval was computed.")


class Metric(BaseModel):
    """One measured number, with what it means and how sure we are of it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Short machine name, e.g. 'accuracy@sigma=0.1'.")
    value: float | int | str | bool | None
    unit: str = Field("", description="Unit or scale, e.g. 'fraction', 'queries'.")
    definition: str = Field(description="What was measured and how, in one sentence.")
    interval: Interval | None = None
    n: int | None = Field(None, description="Sample size behind a rate.")


class Series(BaseModel):
    """A curve worth plotting, e.g. accuracy against noise strength."""

    model_config = ConfigDict(frozen=True)

    name: str
    x_label: str
    y_label: str
    x: list[float]
    y: list[float]
    y_low: list[float] | None = Field(None, description="Lower confidence bound per point.")
    y_high: list[float] | None = Field(None, description="Upper confidence bound per point.")


class Evidence(BaseModel):
    """A file or inline observation that backs the finding."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="'observation', 'file', 'image' or 'table'.")
    description: str
    path: str | None = Field(None, description="Path relative to the run's output folder.")
    data: dict[str, Any] | None = None


class CatalogRefs(BaseModel):
    """Catalog ids a finding maps to. Every id must exist in :mod:`bastion.catalog`."""

    model_config = ConfigDict(frozen=True)

    owasp: list[str] = Field(default_factory=list, description="e.g. ['ML01']")
    failure_modes: list[str] = Field(default_factory=list, description="e.g. ['FM1']")
    atlas_techniques: list[str] = Field(default_factory=list, description="e.g. ['AML.T0043']")
    atlas_mitigations: list[str] = Field(default_factory=list, description="e.g. ['AML.M0015']")
    cwe: list[str] = Field(default_factory=list, description="e.g. ['CWE-1039']")

    def all_ids(self) -> list[str]:
        """Every id, in a stable order."""
        return [
            *self.owasp,
            *self.failure_modes,
            *self.atlas_techniques,
            *self.atlas_mitigations,
            *self.cwe,
        ]


class Reproduction(BaseModel):
    """What someone needs to get the same finding again."""

    model_config = ConfigDict(frozen=True)

    seed: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


class Finding(BaseModel):
    """The result of one probe check against one target."""

    model_config = ConfigDict(frozen=True)

    probe_id: str
    title: str
    target: str = Field(description="Name of the assessed target.")
    status: Status
    severity: Severity = Severity.NONE
    summary: str = Field(description="One or two sentences a reader can act on.")
    variant: str = Field(
        "", description="Distinguishes several findings of one probe, e.g. a noise kind."
    )
    severity_rationale: list[str] = Field(
        default_factory=list, description="The severity rules that fired, in order."
    )
    metrics: list[Metric] = Field(default_factory=list)
    series: list[Series] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    catalog: CatalogRefs = Field(default_factory=CatalogRefs)
    remedies: list[str] = Field(
        default_factory=list, description="Ids of Bastion remedies or ATLAS mitigations."
    )
    reproduction: Reproduction = Field(default_factory=Reproduction)

    @property
    def is_vulnerable(self) -> bool:
        """True when the probe showed the weakness."""
        return self.status is Status.VULNERABLE

    @property
    def key(self) -> str:
        """Identity used to match the same finding across runs (probe, target, variant)."""
        return f"{self.probe_id}|{self.target}|{self.variant}"

    @property
    def fingerprint(self) -> str:
        """A short stable hash of :attr:`key`, used as SARIF partial fingerprint."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]

    def metric(self, name: str) -> Metric | None:
        """The metric called ``name``, or None."""
        return next((m for m in self.metrics if m.name == name), None)
