"""Gateway metrics: latency histogram, drift and audit statistics, in Prometheus text.

The guard pipeline's :class:`~bastion.guards.events.MetricsSink` counts requests,
denials and flags; this module adds what only the HTTP layer sees — the end-to-end
latency of every request, bucketed — the state of each drift monitor, and how many
audit entries were written in how many transactions (group commit).

Every figure is this worker process's: with several workers, each scrape is answered
by one of them.

Examples
--------
>>> h = LatencyHistogram()
>>> h.observe("digits", 200, 0.0007)
>>> 'bastion_http_request_seconds_bucket{model="digits",le="0.001"} 1' in h.prometheus_text()
True
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

__all__ = ["BUCKETS", "LatencyHistogram", "audit_text", "drift_text"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds (seconds) of the latency buckets."""


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class LatencyHistogram:
    """Thread-safe cumulative histogram of request latency per model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._sum: dict[str, float] = {}
        self._total: dict[str, int] = {}

    def observe(self, model: str, status: int, seconds: float) -> None:
        """Record one request (the status is not a label, to keep cardinality low)."""
        i = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            counts = self._counts.setdefault(model, [0] * len(BUCKETS))
            if i < len(BUCKETS):
                counts[i] += 1
            self._sum[model] = self._sum.get(model, 0.0) + seconds
            self._total[model] = self._total.get(model, 0) + 1

    def prometheus_text(self) -> str:
        """The histogram in the Prometheus text format."""
        lines = [
            "# HELP bastion_http_request_seconds Request latency at the gateway.",
            "# TYPE bastion_http_request_seconds histogram",
        ]
        with self._lock:
            for model in sorted(self._counts):
                m = _esc(model)
                running = 0
                for bound, n in zip(BUCKETS, self._counts[model], strict=True):
                    running += n
                    lines.append(
                        f'bastion_http_request_seconds_bucket{{model="{m}",le="{bound:g}"}} '
                        f"{running}"
                    )
                lines.append(
                    f'bastion_http_request_seconds_bucket{{model="{m}",le="+Inf"}} '
                    f"{self._total[model]}"
                )
                lines.append(
                    f'bastion_http_request_seconds_sum{{model="{m}"}} {self._sum[model]:.9g}'
                )
                lines.append(
                    f'bastion_http_request_seconds_count{{model="{m}"}} {self._total[model]}'
                )
        return "\n".join(lines) + "\n"


def drift_text(monitors: dict[str, Any]) -> str:
    """Gauges of each model's drift monitor: rows seen, checks, alarms, last statistic."""
    lines = [
        "# HELP bastion_drift_rows_total Rows seen by the drift monitor.",
        "# TYPE bastion_drift_rows_total counter",
    ]
    rows, checks, alarms, stats, limits = [], [], [], [], []
    for model, mon in sorted(monitors.items()):
        m = _esc(model)
        rows.append(f'bastion_drift_rows_total{{model="{m}"}} {getattr(mon, "rows_seen", 0)}')
        checks.append(f'bastion_drift_checks_total{{model="{m}"}} {getattr(mon, "checks", 0)}')
        alarms.append(f'bastion_drift_alarms_total{{model="{m}"}} {getattr(mon, "alarms", 0)}')
        last = getattr(mon, "last_check", None)
        if last is not None:
            stats.append(f'bastion_drift_statistic{{model="{m}"}} {float(last.statistic):.6g}')
            limits.append(f'bastion_drift_threshold{{model="{m}"}} {float(last.threshold):.6g}')
    lines += rows
    lines += ["# TYPE bastion_drift_checks_total counter", *checks]
    lines += ["# TYPE bastion_drift_alarms_total counter", *alarms]
    lines += ["# TYPE bastion_drift_statistic gauge", *stats]
    lines += ["# TYPE bastion_drift_threshold gauge", *limits]
    return "\n".join(lines) + "\n"


def audit_text(audit: Any) -> str:
    """Counters of the audit log: entries appended and the transactions that held them.

    Examples
    --------
    >>> from bastion.guards.audit import AuditLog
    >>> from bastion.guards.db import GuardDB
    >>> log = AuditLog(GuardDB("sqlite://"))
    >>> _ = log.append({"request_id": "r1"})
    >>> "bastion_audit_entries_total 1" in audit_text(log)
    True
    """
    return (
        "# HELP bastion_audit_entries_total Audit entries appended by this worker.\n"
        "# TYPE bastion_audit_entries_total counter\n"
        f"bastion_audit_entries_total {int(getattr(audit, 'entries', 0))}\n"
        "# HELP bastion_audit_commits_total Transactions that appended them (group commit).\n"
        "# TYPE bastion_audit_commits_total counter\n"
        f"bastion_audit_commits_total {int(getattr(audit, 'batches', 0))}\n"
    )
