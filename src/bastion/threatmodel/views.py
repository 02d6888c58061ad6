"""What the HTML and Markdown threat-model reports show, computed once for both.

Examples
--------
>>> from bastion.threatmodel.analysis import analyse
>>> from bastion.threatmodel.samples import minimal_description
>>> page = build_page(analyse(minimal_description()))
>>> page.columns[0].id, page.rows[0].threat.id
('AML.M0001', 'ML01')
>>> [c.state for c in page.rows[0].cells][:3]
['none', 'gap', 'gap']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.findings import Severity
from bastion.threatmodel.results import ControlView, ThreatModel, ThreatResult

__all__ = ["Cell", "Column", "HeatCell", "MatrixRow", "Page", "build_page"]

_STATE = {"yes": "present", "partial": "partial", "no": "gap"}
_SYMBOL = {"present": "✓", "partial": "◐", "gap": "✗", "none": "", "na": "·"}
SEVERITIES = (Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW)


@dataclass(frozen=True)
class Column:
    """A mitigation column of the matrix."""

    id: str
    short: str
    name: str
    status: str


@dataclass(frozen=True)
class Cell:
    """One threat x mitigation cell: present, partial, gap, none (unrelated) or na."""

    state: str
    title: str

    @property
    def symbol(self) -> str:
        """A one-character mark for the state."""
        return _SYMBOL[self.state]


@dataclass(frozen=True)
class MatrixRow:
    """One threat and its cells, in column order."""

    threat: ThreatResult
    cells: list[Cell]

    @property
    def gaps(self) -> int:
        """Mitigations that address the threat but are missing."""
        return sum(1 for c in self.cells if c.state == "gap")


@dataclass(frozen=True)
class HeatCell:
    """One likelihood x impact square of the risk map."""

    likelihood: int
    impact: int
    threats: list[str]

    @property
    def level(self) -> str:
        """``high``, ``medium`` or ``low`` by the square's risk score."""
        score = self.likelihood * self.impact
        return "high" if score >= 15 else "medium" if score >= 8 else "low"


@dataclass
class Page:
    """Everything a report renders."""

    tm: ThreatModel
    ranked: list[ThreatResult]
    not_applicable: list[ThreatResult]
    columns: list[Column]
    rows: list[MatrixRow]
    heat: list[list[HeatCell]]
    severity_counts: list[tuple[str, int]]
    controls: list[ControlView]
    total_gaps: int = 0
    probes_total: int = field(default=0)


def _columns(tm: ThreatModel) -> list[Column]:
    used = {m.id for t in tm.threats for m in t.mitigations}
    return [
        Column(c.id, c.id.removeprefix("AML."), c.name, c.status)
        for c in sorted(tm.controls, key=lambda c: c.id)
        if c.id in used
    ]


def _row(threat: ThreatResult, columns: list[Column]) -> MatrixRow:
    by_id = {m.id: m for m in threat.mitigations}
    cells = []
    for col in columns:
        m = by_id.get(col.id)
        if m is None:
            cells.append(Cell("none", f"{col.id} does not address {threat.id}"))
        elif not threat.applies:
            cells.append(Cell("na", f"{threat.id} does not apply"))
        else:
            state = _STATE[m.status]
            verdict = {"present": "in place", "partial": "partly in place", "gap": "missing"}
            cells.append(Cell(state, f"{m.id} {m.name}: {verdict[state]} for {threat.id}"))
    return MatrixRow(threat, cells)


def _heat(ranked: list[ThreatResult]) -> list[list[HeatCell]]:
    grid: list[list[HeatCell]] = []
    for impact in range(5, 0, -1):
        row = []
        for likelihood in range(1, 6):
            ids = [
                t.id
                for t in ranked
                if t.risk is not None
                and t.risk.technical_impact.score == impact
                and min(5, max(1, round(t.risk.likelihood))) == likelihood
            ]
            row.append(HeatCell(likelihood, impact, ids))
        grid.append(row)
    return grid


def build_page(tm: ThreatModel) -> Page:
    """The view of one threat model shared by the HTML and Markdown reports."""
    ranked = tm.ranked()
    columns = _columns(tm)
    rows = [_row(t, columns) for t in [*ranked, *(t for t in tm.threats if not t.applies)]]
    counts = [(s.value, sum(1 for t in ranked if t.severity is s)) for s in SEVERITIES]
    return Page(
        tm=tm,
        ranked=ranked,
        not_applicable=[t for t in tm.threats if not t.applies],
        columns=columns,
        rows=rows,
        heat=_heat(ranked),
        severity_counts=counts,
        controls=sorted(tm.controls, key=lambda c: c.id),
        total_gaps=sum(r.gaps for r in rows),
        probes_total=len(tm.plan.probes),
    )
