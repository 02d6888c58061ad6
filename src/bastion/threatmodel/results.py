"""The records a threat model is made of; their JSON form is ``threat-model.json``.

Every conclusion carries the description fields it rests on (:class:`FieldRef`), so a
reader can trace "ML05 applies" back to ``access.callers: [anyone]``.

Examples
--------
>>> r = Reason(text="anyone may query it", fields=[FieldRef(path="access.callers",
...            value=["anyone"])])
>>> r.cited()
'anyone may query it (access.callers: [anyone])'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.findings import Severity

__all__ = [
    "Adjustment",
    "ControlView",
    "DesignWarning",
    "Factor",
    "FieldRef",
    "MitigationView",
    "ProbeChoice",
    "ProbePlan",
    "Reason",
    "RiskFactors",
    "SeverityInputs",
    "ThreatModel",
    "ThreatResult",
]

RESULT_SCHEMA_VERSION = "1.0"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


class FieldRef(_Record):
    """A field of the description and its value."""

    path: str
    value: Any = None

    def text(self) -> str:
        """``"access.callers: [anyone]"``."""
        return f"{self.path}: {_show(self.value)}"


class Reason(_Record):
    """One statement and the fields it rests on."""

    text: str
    fields: list[FieldRef] = Field(default_factory=list)

    def cited(self) -> str:
        """The text followed by its fields in parentheses."""
        refs = "; ".join(f.text() for f in self.fields)
        return f"{self.text} ({refs})" if refs else self.text


class DesignWarning(_Record):
    """A contradiction or choice in the description that is a risk in itself."""

    code: str
    message: str
    fields: list[FieldRef] = Field(default_factory=list)


class Adjustment(_Record):
    """One change to an OWASP risk factor, and why."""

    delta: int
    reason: Reason


class Factor(_Record):
    """One OWASP risk factor (1-5) adjusted to the system."""

    name: Literal["exploitability", "detectability", "technical_impact"]
    base: int = Field(ge=1, le=5)
    base_source: str
    score: int = Field(ge=1, le=5)
    adjustments: list[Adjustment] = Field(default_factory=list)


class RiskFactors(_Record):
    """The three factors and the risk score derived from them.

    ``likelihood = (exploitability + (6 - detectability)) / 2`` and
    ``score = likelihood * technical_impact``, from 1 to 25.
    """

    exploitability: Factor
    detectability: Factor
    technical_impact: Factor
    likelihood: float
    score: float


class SeverityInputs(_Record):
    """The bug-bar impact the severity was rated from (see ``docs/severity.md``)."""

    effect: str
    extent: float
    effort: str
    security_decision: bool
    owasp: list[str]


class MitigationView(_Record):
    """An ATLAS mitigation as it bears on one threat or on the whole system."""

    id: str
    name: str
    url: str | None = None
    stated: Literal["yes", "partial", "no", "unstated"]
    status: Literal["yes", "partial", "no"]
    note: str = ""
    conflict: str = Field("", description="Why the stated status was lowered, if it was.")
    guards: list[str] = Field(default_factory=list)
    remedies: list[str] = Field(default_factory=list)


class ControlView(MitigationView):
    """A mitigation with the applicable threats it addresses."""

    addresses: list[str] = Field(default_factory=list)


class ThreatResult(_Record):
    """One OWASP entry or failure mode, analysed for the system."""

    id: str
    name: str
    kind: Literal["owasp", "failure_mode"]
    description: str
    url: str | None = None
    applies: bool
    reasons: list[Reason]
    related: list[str] = Field(default_factory=list, description="Threats of the other family.")
    risk: RiskFactors | None = None
    severity: Severity = Severity.NONE
    severity_inputs: SeverityInputs | None = None
    severity_rationale: list[str] = Field(default_factory=list)
    mitigations: list[MitigationView] = Field(default_factory=list)
    probes: list[str] = Field(default_factory=list)
    guards: list[str] = Field(default_factory=list)
    remedies: list[str] = Field(default_factory=list)
    rank: int | None = None

    @property
    def gaps(self) -> list[str]:
        """Ids of addressing mitigations that are not in place."""
        return [m.id for m in self.mitigations if m.status == "no"]


class ProbeChoice(_Record):
    """A probe the emitted assessment runs, and the applicable threats it checks."""

    id: str
    title: str
    checks: list[str]


class ProbePlan(_Record):
    """What ``--emit-assessment`` selects."""

    probes: list[ProbeChoice] = Field(default_factory=list)
    untested: list[str] = Field(
        default_factory=list, description="Applicable threats no installed probe checks."
    )


class ThreatModel(_Record):
    """Everything ``bastion threat-model`` concluded about one system."""

    schema_version: str = RESULT_SCHEMA_VERSION
    system: str
    summary: str = ""
    source: str
    generated_at: datetime
    bastion_version: str
    catalog_version: str
    threats: list[ThreatResult]
    controls: list[ControlView]
    warnings: list[DesignWarning] = Field(default_factory=list)
    plan: ProbePlan = Field(default_factory=ProbePlan)

    def get(self, threat_id: str) -> ThreatResult:
        """The result for one id (``ML01``, ``FM7``); KeyError when absent."""
        for t in self.threats:
            if t.id.upper() == threat_id.strip().upper():
                return t
        raise KeyError(threat_id)

    def applicable(self) -> list[ThreatResult]:
        """Threats that apply, in catalog order."""
        return [t for t in self.threats if t.applies]

    def ranked(self) -> list[ThreatResult]:
        """Applicable threats, highest risk first (by :attr:`ThreatResult.rank`)."""
        return sorted(self.applicable(), key=lambda t: t.rank or 0)
