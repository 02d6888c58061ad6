"""Comparing two runs finding by finding: what is new, fixed or changed.

Findings are matched by :attr:`Finding.key` (probe, target, variant). If one run
holds several findings with the same key, the n-th occurrence is matched with the
n-th occurrence in the other run (its key gets a ``#n`` suffix from the second on).

Every key in either run lands in exactly one category:

``new``
    vulnerable in B, and absent from A or not vulnerable there;
``fixed``
    vulnerable in A, and absent from B or not vulnerable there;
``changed``
    in both runs, in neither of the above, with a different status, severity or
    metric value (each difference is listed);
``unchanged``
    in both runs and equal on all of those;
``added`` / ``removed``
    present in only B / only A and not vulnerable (a probe that was added to or
    dropped from the plan and found nothing).

Examples
--------
>>> from bastion.findings import Finding, Metric, Severity, Status
>>> from bastion.findings.run import RunRecord
>>> from bastion.store.diff import diff_runs
>>> def make(status, value):
...     return Finding(probe_id="p", title="t", target="m", status=status,
...                    severity=Severity.LOW if status == "vulnerable" else Severity.NONE,
...                    summary="s", metrics=[Metric(name="acc", value=value, definition="d")])
>>> a = RunRecord.new(name="r", seed=0, config_fingerprint="x",
...                   findings=[make(Status.VULNERABLE, 0.4)])
>>> b = RunRecord.new(name="r", seed=0, config_fingerprint="x",
...                   findings=[make(Status.NOT_VULNERABLE, 0.9)])
>>> d = diff_runs(a, b)
>>> [x.key for x in d.fixed], d.new
(['p|m|'], ())
>>> [str(c) for c in d.fixed[0].changes]
['status: vulnerable → not_vulnerable', 'severity: low → none', 'acc: 0.4 → 0.9']
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from bastion.findings import Finding
from bastion.findings.run import RunRecord

__all__ = ["FieldChange", "FindingDelta", "RunDiff", "diff_runs"]

MetricValue = float | int | str | bool | None


@dataclass(frozen=True)
class FieldChange:
    """One difference between the two versions of a finding.

    Parameters
    ----------
    field : str
        ``"status"``, ``"severity"`` or a metric name.
    before, after : float, int, str, bool or None
        The value in run A and in run B (None when absent there).
    """

    field: str
    before: MetricValue
    after: MetricValue

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.before)} → {_show(self.after)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite floats as strings)."""
        return {"field": self.field, "before": _json(self.before), "after": _json(self.after)}


@dataclass(frozen=True)
class FindingDelta:
    """One finding key as it appears in run A and run B.

    Parameters
    ----------
    key : str
        The finding key (with ``#n`` for repeated keys).
    before : Finding or None
        The finding in run A, None if absent.
    after : Finding or None
        The finding in run B, None if absent.
    changes : tuple of FieldChange
        Differences in status, severity and metric values (empty when only one
        side exists).
    """

    key: str
    before: Finding | None
    after: Finding | None
    changes: tuple[FieldChange, ...] = ()

    @property
    def finding(self) -> Finding:
        """The most recent version: B's if present, else A's."""
        found = self.after if self.after is not None else self.before
        assert found is not None, "a delta always has at least one side"
        return found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: identity, each side's status and severity, the changes."""
        f = self.finding
        return {
            "key": self.key,
            "probe_id": f.probe_id,
            "target": f.target,
            "variant": f.variant,
            "title": f.title,
            "before": _side(self.before),
            "after": _side(self.after),
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class RunDiff:
    """How run B differs from run A, finding by finding (see :mod:`bastion.store.diff`)."""

    a_run_id: str
    b_run_id: str
    new: tuple[FindingDelta, ...] = ()
    fixed: tuple[FindingDelta, ...] = ()
    changed: tuple[FindingDelta, ...] = ()
    unchanged: tuple[FindingDelta, ...] = ()
    added: tuple[FindingDelta, ...] = ()
    removed: tuple[FindingDelta, ...] = ()

    categories: ClassVar[tuple[str, ...]] = (
        "new",
        "fixed",
        "changed",
        "unchanged",
        "added",
        "removed",
    )

    def counts(self) -> dict[str, int]:
        """Number of keys in each category."""
        return {name: len(getattr(self, name)) for name in self.categories}

    @property
    def has_regressions(self) -> bool:
        """True when B has a vulnerable finding that A did not."""
        return bool(self.new)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``unchanged`` is given as keys only."""
        out: dict[str, Any] = {"a": self.a_run_id, "b": self.b_run_id, "counts": self.counts()}
        for name in self.categories:
            deltas: tuple[FindingDelta, ...] = getattr(self, name)
            if name == "unchanged":
                out[name] = [d.key for d in deltas]
            else:
                out[name] = [d.to_dict() for d in deltas]
        return out


def _show(value: MetricValue) -> str:
    return "absent" if value is None else str(value)


def _json(value: MetricValue) -> MetricValue:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _side(f: Finding | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"status": f.status.value, "severity": f.severity.value, "summary": f.summary}


def _same(a: MetricValue, b: MetricValue) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _changes(a: Finding, b: Finding) -> tuple[FieldChange, ...]:
    out: list[FieldChange] = []
    if a.status != b.status:
        out.append(FieldChange("status", a.status.value, b.status.value))
    if a.severity != b.severity:
        out.append(FieldChange("severity", a.severity.value, b.severity.value))
    before = {m.name: m.value for m in a.metrics}
    after = {m.name: m.value for m in b.metrics}
    for name in [*before, *(n for n in after if n not in before)]:
        x, y = before.get(name), after.get(name)
        if not _same(x, y):
            out.append(FieldChange(name, x, y))
    return tuple(out)


def _by_key(findings: list[Finding]) -> dict[str, Finding]:
    seen: Counter[str] = Counter()
    out: dict[str, Finding] = {}
    for f in findings:
        seen[f.key] += 1
        n = seen[f.key]
        out[f.key if n == 1 else f"{f.key}#{n}"] = f
    return out


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """Compare run ``a`` (before) with run ``b`` (after).

    Parameters
    ----------
    a : RunRecord
        The earlier or baseline run.
    b : RunRecord
        The later run.

    Returns
    -------
    RunDiff
        Every finding key in exactly one category, in the order of ``b``'s findings
        followed by keys only ``a`` has.
    """
    before, after = _by_key(a.findings), _by_key(b.findings)
    buckets: dict[str, list[FindingDelta]] = {name: [] for name in RunDiff.categories}
    for key in [*after, *(k for k in before if k not in after)]:
        x, y = before.get(key), after.get(key)
        delta = FindingDelta(key, x, y, _changes(x, y) if x is not None and y is not None else ())
        x_vuln = x is not None and x.is_vulnerable
        y_vuln = y is not None and y.is_vulnerable
        if y_vuln and not x_vuln:
            buckets["new"].append(delta)
        elif x_vuln and not y_vuln:
            buckets["fixed"].append(delta)
        elif x is None:
            buckets["added"].append(delta)
        elif y is None:
            buckets["removed"].append(delta)
        elif delta.changes:
            buckets["changed"].append(delta)
        else:
            buckets["unchanged"].append(delta)
    return RunDiff(
        a_run_id=a.run_id,
        b_run_id=b.run_id,
        new=tuple(buckets["new"]),
        fixed=tuple(buckets["fixed"]),
        changed=tuple(buckets["changed"]),
        unchanged=tuple(buckets["unchanged"]),
        added=tuple(buckets["added"]),
        removed=tuple(buckets["removed"]),
    )
