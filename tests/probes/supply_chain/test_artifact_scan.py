"""The ``supply_chain.artifact_scan`` probe."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from bastion.catalog import load_catalog
from bastion.findings import Severity, Status
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
    assert [f.status for f in findings] == [Status.VULNERABLE, Status.VULNERABLE]
    clean, bad = findings
    # The model file scans clean, but it is a pickle: a low finding about the format.
    assert clean.severity is Severity.LOW and "pickle-based" in clean.summary
    assert clean.variant == "source" and (clean.evidence[0].data or {})["pickle_based"] is True
    assert bad.severity.value == "critical" and "posix:system" in bad.summary
    assert bad.variant == str(extra) and "ML06" in bad.catalog.owasp
    assert bar.done == 2
    allowed = ArtifactScanProbe(paths=[str(extra)], allow=["posix:system"]).run(
        target, None, ProbeContext()
    )
    assert allowed[1].status is Status.VULNERABLE and allowed[1].severity is Severity.LOW


def test_formats_without_code_are_not_vulnerable(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    net = torch.nn.Linear(3, 2)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    torch.jit.save(torch.jit.script(net), str(tmp_path / "ts.pt"))
    target = FakeTarget.linear(n_features=3, n_classes=2)
    for name in ("w.safetensors", "ts.pt"):
        target.source_path = tmp_path / name  # type: ignore[attr-defined]
        [finding] = ArtifactScanProbe().run(target, None, ProbeContext())
        assert finding.status is Status.NOT_VULNERABLE, (name, finding.summary)
        assert finding.variant == "source" and "not pickle-based" in finding.summary


def test_a_source_folder_gets_one_stable_variant_per_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "b.bin").write_bytes(b"cbuiltins\neval\n(S'1'\ntR.")
    target = FakeTarget.linear(n_features=3, n_classes=2)
    target.source_path = tmp_path  # type: ignore[attr-defined]
    findings = ArtifactScanProbe().run(target, None, ProbeContext())
    assert sorted((f.variant, f.severity.value) for f in findings) == [
        ("source/b.bin", "critical"),
        ("source/sub/a.pkl", "low"),
    ]
