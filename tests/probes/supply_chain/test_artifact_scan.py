"""The ``supply_chain.artifact_scan`` probe."""

from __future__ import annotations

import pickle
from pathlib import Path

from bastion.catalog import load_catalog
from bastion.findings import Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.supply_chain.artifact_scan import ArtifactScanProbe
from bastion.targets import FakeTarget
from bastion.testing import check_probe


class _Bar:
    def __init__(self) -> None:
        self.done = 0.0

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, amount: float = 1) -> None:
        self.done += amount

    def update(self, **kwargs: object) -> None:
        return None


def test_contract_and_registry() -> None:
    assert check_probe(ArtifactScanProbe, load_catalog()) == []
    registry = Registry().with_plugins(probes={"supply_chain.artifact_scan": ArtifactScanProbe})
    assert registry.probe("supply_chain.artifact_scan") is ArtifactScanProbe


def test_without_a_source_path_the_finding_is_inconclusive() -> None:
    target = FakeTarget.linear(n_features=3, n_classes=2)
    [finding] = ArtifactScanProbe().run(target, None, ProbeContext())
    assert finding.status is Status.INCONCLUSIVE and "source_path" in finding.summary


def test_scans_the_source_path_and_extra_paths(tmp_path: Path) -> None:
    model, extra = tmp_path / "model.pkl", tmp_path / "extra.pkl"
    model.write_bytes(pickle.dumps({"w": [1.0]}))
    extra.write_bytes(b"cposix\nsystem\n(S'id'\ntR.")
    target = FakeTarget.linear(n_features=3, n_classes=2)
    target.source_path = model  # type: ignore[attr-defined]
    bar = _Bar()
    findings = ArtifactScanProbe(paths=[str(extra)]).run(
        target, None, ProbeContext(progress=lambda **_: bar)
    )
    assert [f.status for f in findings] == [Status.NOT_VULNERABLE, Status.VULNERABLE]
    bad = findings[1]
    assert bad.severity.value == "critical" and "posix:system" in bad.summary
    assert bad.variant == str(extra) and "ML06" in bad.catalog.owasp
    assert bar.done == 2
    allowed = ArtifactScanProbe(paths=[str(extra)], allow=["posix:system"]).run(
        target, None, ProbeContext()
    )
    assert allowed[1].status is Status.NOT_VULNERABLE
