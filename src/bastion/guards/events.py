"""Event sinks: where the pipeline reports each finished request.

After every request — allowed, denied or withheld for review — :class:`Guarded`
hands the :class:`~bastion.guards.outcome.GuardOutcome` (which carries every event
the guards raised) to each sink *before* it returns. A sink whose ``critical`` flag
is set must succeed or the response is not released: the tamper-evident audit log
(:class:`~bastion.guards.audit.AuditLog`) is critical, so no answer leaves without
its audit entry. Non-critical sinks (metrics, logs) never block a response; their
failures are logged.

Examples
--------
>>> import numpy as np
>>> from bastion.guards.outcome import GuardOutcome
>>> sink = MetricsSink()
>>> sink.record(GuardOutcome(request_id="r1", model="m", model_version="", principal="p",
...                          http_status=429, outputs=None, decided_by="access.rate_limit"))
>>> sink.snapshot()["denials"]
{('m', 'access.rate_limit'): 1}
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any, Protocol, runtime_checkable

from bastion.guards.outcome import GuardOutcome

__all__ = ["EventSink", "LoggingSink", "MemorySink", "MetricsSink"]

log = logging.getLogger(__name__)


@runtime_checkable
class EventSink(Protocol):
    """Receives every finished request; ``critical`` sinks must not fail silently."""

    critical: bool

    def record(self, outcome: GuardOutcome) -> None:
        """Record one finished request (called before the response is released)."""
        ...


class MemorySink:
    """Keeps every outcome in a list (tests, notebooks)."""

    critical = False

    def __init__(self) -> None:
        self.outcomes: list[GuardOutcome] = []
        self._lock = threading.Lock()

    def record(self, outcome: GuardOutcome) -> None:
        """Append the outcome."""
        with self._lock:
            self.outcomes.append(outcome)


class LoggingSink:
    """Writes one structured JSON log line per denied, withheld or flagged request.

    Only ids, statuses, reasons and digests are logged, never inputs or credentials.
    """

    critical = False

    def __init__(self, logger: logging.Logger | None = None, *, log_allowed: bool = False) -> None:
        self.logger = logger or log
        self.log_allowed = log_allowed

    def record(self, outcome: GuardOutcome) -> None:
        """Log the outcome when it is not a plain allow (or always, with ``log_allowed``)."""
        if outcome.allowed and not outcome.events and not self.log_allowed:
            return
        if not self.logger.isEnabledFor(logging.INFO):
            return
        line = {
            "request_id": outcome.request_id,
            "model": outcome.model,
            "principal": outcome.principal,
            "status": outcome.http_status,
            "decision": outcome.decision,
            "decided_by": outcome.decided_by,
            "reason": outcome.reason,
            "events": [
                {"guard": e.get("guard"), "reason": e.get("reason")} for e in outcome.events
            ],
            "latency_ms": round(outcome.latency_s * 1000, 3),
        }
        self.logger.info("%s", json.dumps(line, sort_keys=True, default=str))


class MetricsSink:
    """Thread-safe counters of requests, denials and flags, with Prometheus text output.

    Counters: requests by (model, status), denials by (model, guard), flags by
    (model, guard), and the total time spent in the pipeline per model.
    """

    critical = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, int]] = Counter()
        self._denials: Counter[tuple[str, str]] = Counter()
        self._flags: Counter[tuple[str, str]] = Counter()
        self._latency: dict[str, float] = {}

    def record(self, outcome: GuardOutcome) -> None:
        """Count the outcome."""
        model = outcome.model
        denied_by = outcome.decided_by if outcome.decided_by and not outcome.allowed else None
        flagged = (
            [str(e.get("guard")) for e in outcome.events if e.get("action") == "flag"]
            if outcome.events
            else ()
        )
        with self._lock:
            self._requests[(model, outcome.http_status)] += 1
            latency = self._latency
            latency[model] = latency.get(model, 0.0) + outcome.latency_s
            if denied_by:
                self._denials[(model, denied_by)] += 1
            for guard in flagged:
                self._flags[(model, guard)] += 1

    def snapshot(self) -> dict[str, dict[Any, Any]]:
        """A copy of every counter."""
        with self._lock:
            return {
                "requests": dict(self._requests),
                "denials": dict(self._denials),
                "flags": dict(self._flags),
                "latency_seconds_sum": dict(self._latency),
            }

    def prometheus_text(self) -> str:
        """The counters in the Prometheus text exposition format (version 0.0.4)."""
        snap = self.snapshot()
        lines = [
            "# HELP bastion_requests_total Requests through the guard pipeline.",
            "# TYPE bastion_requests_total counter",
        ]
        for (model, status), n in sorted(snap["requests"].items()):
            lines.append(f'bastion_requests_total{{model="{_esc(model)}",status="{status}"}} {n}')
        lines += [
            "# HELP bastion_denials_total Requests denied or withheld, by deciding guard.",
            "# TYPE bastion_denials_total counter",
        ]
        for (model, guard), n in sorted(snap["denials"].items()):
            lines.append(
                f'bastion_denials_total{{model="{_esc(model)}",guard="{_esc(guard)}"}} {n}'
            )
        lines += [
            "# HELP bastion_flags_total Requests let through with a flag, by guard.",
            "# TYPE bastion_flags_total counter",
        ]
        for (model, guard), n in sorted(snap["flags"].items()):
            lines.append(f'bastion_flags_total{{model="{_esc(model)}",guard="{_esc(guard)}"}} {n}')
        lines += [
            "# HELP bastion_pipeline_seconds_sum Time spent in the guard pipeline.",
            "# TYPE bastion_pipeline_seconds_sum counter",
        ]
        for model, s in sorted(snap["latency_seconds_sum"].items()):
            lines.append(f'bastion_pipeline_seconds_sum{{model="{_esc(model)}"}} {s:.9g}')
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
