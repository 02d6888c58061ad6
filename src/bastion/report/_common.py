"""Formatting, ordering and file helpers shared by the report renderers.

Examples
--------
>>> from bastion.report._common import format_number, format_interval
>>> from bastion.findings import Interval
>>> format_number(0.41237), format_number(12), format_number(123456.7)
('0.4124', '12', '123,457')
>>> format_interval(Interval(low=0.786, high=0.957))
'[0.786, 0.957] 95% Wilson'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bastion.errors import UsageError
from bastion.findings import Finding, Interval, Metric, Severity, Status
from bastion.findings.run import RunRecord

__all__ = [
    "OWASP_IDS",
    "SEVERITY_ORDER",
    "STATUS_ORDER",
    "GateView",
    "format_datetime",
    "format_duration",
    "format_interval",
    "format_number",
    "format_value",
    "gate_view",
    "severity_label",
    "sort_findings",
    "status_label",
    "to_utc",
    "write_text",
]

#: Severities a vulnerable finding can have, worst first.
SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.CRITICAL,
    Severity.IMPORTANT,
    Severity.MODERATE,
    Severity.LOW,
)

#: Statuses in the order reports list them: what needs attention first.
STATUS_ORDER: tuple[Status, ...] = (
    Status.VULNERABLE,
    Status.ERROR,
    Status.INCONCLUSIVE,
    Status.NOT_VULNERABLE,
)

#: The OWASP Machine Learning Security Top 10 categories, in order.
OWASP_IDS: tuple[str, ...] = tuple(f"ML{i:02d}" for i in range(1, 11))

_STATUS_LABELS = {
    Status.VULNERABLE: "Vulnerable",
    Status.NOT_VULNERABLE: "Not vulnerable",
    Status.INCONCLUSIVE: "Inconclusive",
    Status.ERROR: "Error",
}


def severity_label(severity: Severity) -> str:
    """``"Critical"`` for :attr:`Severity.CRITICAL`, and so on."""
    return severity.value.capitalize()


def status_label(status: Status) -> str:
    """``"Not vulnerable"`` for :attr:`Status.NOT_VULNERABLE`, and so on."""
    return _STATUS_LABELS[status]


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in reading order: vulnerable first, worst severity first, then by id."""
    rank = {status: i for i, status in enumerate(STATUS_ORDER)}
    return sorted(
        findings,
        key=lambda f: (rank[f.status], -f.severity.rank, f.probe_id, f.target, f.variant),
    )


def format_number(value: float, digits: int = 4) -> str:
    """A number for people: integers as they are, others to ``digits`` significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10**digits else str(int(value))
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    if abs(value) >= 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.2e}"


def format_value(metric: Metric) -> str:
    """A metric's value as text, ``"—"`` when it has none."""
    value = metric.value
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return format_number(value)


def format_interval(interval: Interval | None) -> str:
    """``"[low, high] 95% Wilson"``, or an empty string when there is no interval."""
    if interval is None:
        return ""
    level = format_number(interval.level * 100, digits=3)
    method = interval.method[:1].upper() + interval.method[1:]
    low, high = format_number(interval.low), format_number(interval.high)
    return f"[{low}, {high}] {level}% {method}".rstrip()


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_datetime(moment: datetime | None) -> str:
    """``"2024-05-01 12:00:03 UTC"``, or ``"—"`` for None."""
    if moment is None:
        return "—"
    return to_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(start: datetime, end: datetime | None) -> str:
    """Elapsed time as ``"1 h 02 min"``, ``"3 min 07 s"`` or ``"4.2 s"``; ``"—"`` if unfinished."""
    if end is None:
        return "—"
    seconds = max(0.0, (to_utc(end) - to_utc(start)).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class GateView:
    """The CI gate as a report states it.

    ``state`` is ``"passed"``, ``"failed"`` or ``"not-set"``; ``text`` is one line.
    """

    state: str
    text: str


def gate_view(record: RunRecord) -> GateView:
    """Describe the record's gate result in one line."""
    gate = record.gate
    if gate.fail_on is None:
        return GateView("not-set", "No gate: fail_on was not set")
    level = gate.fail_on.value
    if gate.passed:
        return GateView("passed", f"Gate passed: no vulnerable finding at or above {level}")
    count = len(gate.failing)
    noun = "finding" if count == 1 else "findings"
    return GateView("failed", f"Gate failed: {count} vulnerable {noun} at or above {level}")


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path``, creating parent folders; return the path.

    Raises
    ------
    UsageError
        If the file cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(
            f"Cannot write the report file {str(path)!r} ({reason}); "
            "choose an output folder you can write to."
        ) from None
    return path
