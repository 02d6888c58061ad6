"""Findings: what probes return and everything downstream consumes."""

from bastion.findings.finding import (
    CatalogRefs,
    Evidence,
    Finding,
    Interval,
    Metric,
    Reproduction,
    Series,
    Status,
)
from bastion.findings.severity import Severity
from bastion.findings.stats import wilson_interval

__all__ = [
    "CatalogRefs",
    "Evidence",
    "Finding",
    "Interval",
    "Metric",
    "Reproduction",
    "Series",
    "Severity",
    "Status",
    "wilson_interval",
]
from bastion.findings.run import (
    SCHEMA_VERSION,
    DatasetSummary,
    GateResult,
    RunRecord,
    RunStatus,
    SkippedProbe,
    TargetSummary,
)

__all__ += [
    "SCHEMA_VERSION",
    "DatasetSummary",
    "GateResult",
    "RunRecord",
    "RunStatus",
    "SkippedProbe",
    "TargetSummary",
]
