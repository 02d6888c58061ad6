"""Tests of the shared pieces of :class:`bastion.probes.base.Probe`."""

from __future__ import annotations

from bastion.catalog.severity import Effect
from bastion.findings import Severity, Status
from bastion.probes.context import ProbeContext
from bastion.probes.robustness.noise import NoiseRobustnessProbe
from bastion.targets.fake import FakeTarget


def _target() -> FakeTarget:
    return FakeTarget.linear(n_features=4, n_classes=3)


def test_vulnerable_finding_rates_and_keeps_the_rationale() -> None:
    probe = NoiseRobustnessProbe()
    finding = probe.vulnerable_finding(
        _target(), ProbeContext(seed=3), effect=Effect.DEGRADATION, extent=0.6, summary="s"
    )
    assert finding.status is Status.VULNERABLE
    assert finding.severity is not Severity.NONE
    assert finding.severity_rationale
    assert finding.probe_id == "robustness.noise"
    assert finding.reproduction.seed == 3
    assert finding.remedies == list(probe.meta.remedies)


def test_security_decision_never_lowers_severity() -> None:
    probe = NoiseRobustnessProbe()
    for extent in (0.05, 0.4, 1.0):
        plain = probe.vulnerable_finding(
            _target(), ProbeContext(), effect=Effect.DEGRADATION, extent=extent, summary="s"
        )
        decision = probe.vulnerable_finding(
            _target(),
            ProbeContext(security_decision=True),
            effect=Effect.DEGRADATION,
            extent=extent,
            summary="s",
        )
        assert decision.severity.rank >= plain.severity.rank
    assert decision.severity.rank > plain.severity.rank or plain.severity is Severity.CRITICAL


def test_extent_outside_unit_interval_is_clipped() -> None:
    probe = NoiseRobustnessProbe()
    high = probe.vulnerable_finding(
        _target(), ProbeContext(), effect=Effect.DEGRADATION, extent=7.0, summary="s"
    )
    one = probe.vulnerable_finding(
        _target(), ProbeContext(), effect=Effect.DEGRADATION, extent=1.0, summary="s"
    )
    assert high.severity is one.severity
