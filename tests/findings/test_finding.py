import pytest

from bastion.errors import UsageError
from bastion.findings import (
    Finding,
    Metric,
    RunRecord,
    Severity,
    Status,
    wilson_interval,
)


def make(probe="p.x", target="t", status=Status.VULNERABLE, severity=Severity.LOW, variant=""):
    return Finding(
        probe_id=probe,
        title="T",
        target=target,
        status=status,
        severity=severity,
        summary="s",
        variant=variant,
        metrics=[Metric(name="m", value=0.5, definition="d")],
    )


def test_severity_order_and_parse():
    order = [Severity.NONE, Severity.LOW, Severity.MODERATE, Severity.IMPORTANT, Severity.CRITICAL]
    assert sorted(reversed(order)) == order
    assert Severity.parse(" Important ") is Severity.IMPORTANT
    with pytest.raises(UsageError, match="Unknown severity 'severe'"):
        Severity.parse("severe")


def test_finding_identity_is_probe_target_variant():
    a = make(variant="gaussian")
    b = make(variant="gaussian", severity=Severity.CRITICAL)
    c = make(variant="uniform")
    assert a.key == b.key != c.key
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert a.metric("m").value == 0.5 and a.metric("nope") is None


def test_finding_json_round_trip():
    f = make()
    assert Finding.model_validate_json(f.model_dump_json()) == f


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(45, 50, 0.786, 0.957), (0, 10, 0.0, 0.278), (10, 10, 0.722, 1.0)],
)
def test_wilson_interval_known_values(k, n, low, high):
    iv = wilson_interval(k, n)
    assert iv.low == pytest.approx(low, abs=1e-3)
    assert iv.high == pytest.approx(high, abs=1e-3)
    assert iv.low <= k / n <= iv.high


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(UsageError):
        wilson_interval(5, 3)
    with pytest.raises(UsageError):
        wilson_interval(1, 0)


def test_gate_counts_only_vulnerable_findings_at_or_above_threshold():
    rec = RunRecord.new(name="r", seed=0, config_fingerprint="x")
    rec.findings = [
        make(probe="a", severity=Severity.MODERATE),
        make(probe="b", severity=Severity.IMPORTANT),
        make(probe="c", status=Status.NOT_VULNERABLE, severity=Severity.CRITICAL),
    ]
    assert rec.findings[2].severity is Severity.CRITICAL  # stored as given
    gate = rec.evaluate_gate(Severity.IMPORTANT)
    assert not gate.passed and gate.failing == ["b|t|"]
    assert rec.evaluate_gate(Severity.CRITICAL).passed
    assert rec.evaluate_gate(None).passed
    assert rec.severity_counts() == {"critical": 0, "important": 1, "moderate": 1, "low": 0}
    assert rec.worst() is Severity.IMPORTANT
