"""The evasion.tabular probe: the intrusion demo (OWASP ML01 scenario #2) and fallbacks."""

from __future__ import annotations

import pytest

from bastion.catalog import load_catalog
from bastion.errors import UsageError
from bastion.findings import Severity, Status
from bastion.probes import ProbeContext
from bastion.probes.evasion.tabular import TabularEvasionProbe
from bastion.testing import check_probe
from tests.attacks.blackbox_models import (
    cancer,
    cancer_target,
    digits_target,
    intrusion,
    intrusion_target,
    one_thread,  # noqa: F401 - autouse fixture
)


def test_contract_and_applicability() -> None:
    assert check_probe(TabularEvasionProbe, load_catalog()) == []
    reason = TabularEvasionProbe().not_applicable_reason(digits_target())
    assert reason and "1-D input spec" in reason
    assert TabularEvasionProbe().not_applicable_reason(intrusion_target()) is None


def test_intrusion_detector_is_evaded_without_touching_immutable_fields() -> None:
    data, _ = intrusion()
    target = intrusion_target()
    probe = TabularEvasionProbe(target_class="benign", n_samples=80, budgets=[0.001, 0.01])
    (f,) = probe.run(target, data, ProbeContext(seed=0, security_decision=True))
    assert f.status is Status.VULNERABLE and f.severity is Severity.CRITICAL
    assert f.metric("valid_rows").value == 1.0
    assert f.metric("violations_immutable").value == 0
    assert f.metric("method").value == "constrained-pgd"
    assert f.metric("attack_success_rate@0.01").value > 0.6
    check, table, units = f.evidence
    assert units.data and units.data["units"] == "range" and units.data["requested"] == "auto"
    assert "fractions of each feature's range" in f.summary
    assert check.data and check.data["valid_rows"] == check.data["rows"] == 80
    rows = table.data["rows"] if table.data else []
    immutable = [r for r in rows if r[1]]
    assert {r[0] for r in immutable} == {"dst_port", "proto_tcp", "proto_udp", "proto_icmp"}
    for r in immutable:
        assert r[2] == r[3] and r[4] == r[5]
    assert any(r[2] != r[3] for r in rows if not r[1])


def test_sklearn_target_uses_the_black_box_fallback() -> None:
    data, _ = cancer()
    target = cancer_target()
    probe = TabularEvasionProbe(n_samples=20, n_queries=80, budgets=[0.1])
    (f,) = probe.run(target, data, ProbeContext(seed=0))
    assert f.metric("method").value == "constrained-square"
    assert "black-box fallback" in f.summary
    assert f.metric("valid_rows").value == 1.0


def test_bad_target_class_is_refused() -> None:
    data, _ = intrusion()
    with pytest.raises(UsageError, match="'target_class'"):
        TabularEvasionProbe(target_class="friendly").run(intrusion_target(), data, ProbeContext())
