"""diff_runs: every finding key lands in exactly one category."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bastion.findings import Finding, Metric, Severity, Status
from bastion.findings.run import RunRecord
from bastion.store import FieldChange, RunDiff, Store, diff_runs

FindingFactory = Callable[..., Finding]


def _run(findings: list[Finding]) -> RunRecord:
    return RunRecord.new(name="r", seed=0, config_fingerprint="x", findings=findings)


def _f(make: FindingFactory, probe: str, status: Status, **kw: Any) -> Finding:
    severity = kw.pop(
        "severity", Severity.MODERATE if status is Status.VULNERABLE else Severity.NONE
    )
    return make(probe_id=probe, status=status, severity=severity, **kw)


def _keys(diff: RunDiff, category: str) -> list[str]:
    return [d.key.split("|")[0] for d in getattr(diff, category)]


def test_categories(make_finding: FindingFactory) -> None:
    v, nv, err = Status.VULNERABLE, Status.NOT_VULNERABLE, Status.ERROR
    a = _run(
        [
            _f(make_finding, "regressed", nv),
            _f(make_finding, "fixed", v),
            _f(make_finding, "gone_vuln", v),
            _f(make_finding, "sev_change", v, severity=Severity.LOW),
            _f(
                make_finding,
                "metric_change",
                nv,
                metrics=[Metric(name="m", value=1, definition="d")],
            ),
            _f(make_finding, "status_change", nv),
            _f(make_finding, "same", v),
            _f(make_finding, "dropped_quiet", nv),
        ]
    )
    b = _run(
        [
            _f(make_finding, "brand_new", v),
            _f(make_finding, "regressed", v),
            _f(make_finding, "fixed", nv),
            _f(make_finding, "sev_change", v, severity=Severity.CRITICAL),
            _f(
                make_finding,
                "metric_change",
                nv,
                metrics=[Metric(name="m", value=2, definition="d")],
            ),
            _f(make_finding, "status_change", err),
            _f(make_finding, "same", v),
            _f(make_finding, "added_quiet", nv),
        ]
    )
    diff = diff_runs(a, b)
    assert _keys(diff, "new") == ["brand_new", "regressed"]
    assert _keys(diff, "fixed") == ["fixed", "gone_vuln"]
    assert _keys(diff, "changed") == ["sev_change", "metric_change", "status_change"]
    assert _keys(diff, "unchanged") == ["same"]
    assert _keys(diff, "added") == ["added_quiet"]
    assert _keys(diff, "removed") == ["dropped_quiet"]
    assert sum(diff.counts().values()) == 10
    assert diff.has_regressions
    changes = {d.key.split("|")[0]: d.changes for d in diff.changed}
    assert changes["sev_change"] == (FieldChange("severity", "low", "critical"),)
    assert changes["metric_change"] == (FieldChange("m", 1, 2),)
    assert changes["status_change"] == (FieldChange("status", "not_vulnerable", "error"),)
    gone = diff.fixed[1]
    assert gone.after is None and gone.before is not None and gone.changes == ()
    assert diff.new[0].before is None and diff.new[1].before is not None


def test_metric_changes_list_each_metric(make_finding: FindingFactory) -> None:
    def metrics(**values: Any) -> list[Metric]:
        return [Metric(name=k, value=v, definition="d") for k, v in values.items()]

    a = _run([make_finding(metrics=metrics(acc=0.4, same=1.0, dropped=3, nan=float("nan")))])
    b = _run([make_finding(metrics=metrics(acc=0.5, same=1.0, added="x", nan=float("nan")))])
    (delta,) = diff_runs(a, b).changed
    assert [str(c) for c in delta.changes] == [
        "acc: 0.4 → 0.5",
        "dropped: 3 → absent",
        "added: absent → x",
    ]


def test_identical_runs_have_only_unchanged(make_finding: FindingFactory) -> None:
    run = _run([make_finding(variant="a"), make_finding(variant="b", status=Status.ERROR)])
    diff = diff_runs(run, run)
    assert diff.counts() == {
        "new": 0,
        "fixed": 0,
        "changed": 0,
        "unchanged": 2,
        "added": 0,
        "removed": 0,
    }
    assert not diff.has_regressions


def test_repeated_keys_are_matched_by_occurrence(make_finding: FindingFactory) -> None:
    a = _run([make_finding(status=Status.VULNERABLE), make_finding(status=Status.VULNERABLE)])
    b = _run([make_finding(status=Status.VULNERABLE)])
    diff = diff_runs(a, b)
    assert [d.key for d in diff.unchanged] == ["robustness.noise|digits-cnn|"]
    assert [d.key for d in diff.fixed] == ["robustness.noise|digits-cnn|#2"]


def test_to_dict_is_strict_json(make_finding: FindingFactory) -> None:
    a = _run([make_finding(metrics=[Metric(name="r", value=float("inf"), definition="d")])])
    b = _run([make_finding(metrics=[Metric(name="r", value=0.5, definition="d")])])
    data = diff_runs(a, b).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["changed"][0]["changes"] == [
        {"field": "r", "before": "inf", "after": 0.5}
    ]
    assert data["a"] == a.run_id and data["b"] == b.run_id
    assert data["counts"]["changed"] == 1


def test_diff_of_runs_read_back_from_the_store(store: Store, make_finding: FindingFactory) -> None:
    a = _run([make_finding(status=Status.VULNERABLE, severity=Severity.LOW)])
    b = _run([make_finding(status=Status.NOT_VULNERABLE, severity=Severity.NONE)])
    store.save_run(a)
    store.save_run(b)
    diff = diff_runs(store.get_run(a.run_id), store.get_run(b.run_id))
    assert [d.key for d in diff.fixed] == ["robustness.noise|digits-cnn|"]
    assert diff.to_dict()["fixed"][0]["before"]["severity"] == "low"
