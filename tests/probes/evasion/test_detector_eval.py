"""evasion.detector_adaptive: feature squeezing against an adaptive (BPDA) attacker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bastion.catalog import load_catalog
from bastion.errors import MissingCapabilityError, UsageError
from bastion.findings import Finding, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.evasion.detector_eval import DetectorAdaptiveProbe
from bastion.targets import FakeTarget
from bastion.testing import check_probe
from tests.remedies.models import digits, digits_cnn, one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


FAST = {
    "median": None,
    "n_samples": 80,
    "n_calibration": 100,
    "steps": 15,
    "budgets": [0.1, 0.3],
    "penalties": [0.0, 10.0],
}


def _value(f: Finding, name: str) -> float:
    m = f.metric(name)
    assert m is not None, name
    return float(m.value)  # type: ignore[arg-type]


def test_keeps_the_probe_contract() -> None:
    assert check_probe(DetectorAdaptiveProbe, load_catalog()) == []
    reg = Registry().with_plugins(probes={"evasion.detector_adaptive": DetectorAdaptiveProbe})
    assert reg.probe("evasion.detector_adaptive") is DetectorAdaptiveProbe


def test_adaptive_attack_beats_the_static_detection_rate() -> None:
    [f] = DetectorAdaptiveProbe(**FAST).run(digits_cnn(), digits(), ProbeContext(seed=0))
    assert f.status is Status.VULNERABLE and f.variant == "squeezing-linf"
    fpr = f.metric("false_positive_rate")
    assert fpr is not None and fpr.interval is not None and fpr.n == 80
    assert _value(f, "detection_rate_adaptive@0.3") < _value(f, "detection_rate_static@0.3")
    assert _value(f, "evasion_rate_adaptive@0.3") > 0.5
    assert _value(f, "evasion_rate_adaptive@0.1") <= _value(f, "evasion_rate_adaptive@0.3")
    assert "false-positive rate" in f.summary and "adaptive" in f.summary
    names = {s.name for s in f.series}
    assert any("static" in n for n in names) and any("adaptive" in n for n in names)
    assert "raw units, pixels in [0, 1]" in f.summary
    notes = " ".join(e.description for e in f.evidence)
    assert "BPDA" in notes and "without EoT" in notes


def test_inconclusive_without_bounds_and_errors() -> None:
    with pytest.raises(MissingCapabilityError):
        DetectorAdaptiveProbe(**FAST).run(
            FakeTarget.linear(n_features=64, n_classes=10, labels_only=True),
            digits(),
            ProbeContext(),
        )
    with pytest.raises(UsageError):
        DetectorAdaptiveProbe(fpr=0.9).validated_params()
