"""The ``supply_chain.artifact_integrity`` probe: signed, unsigned, tampered, forged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.artifacts.keys import KeyPair, generate_keypair, load_private_key
from bastion.artifacts.signing import default_manifest_path, sign_path
from bastion.catalog import load_catalog
from bastion.catalog.coverage import coverage
from bastion.errors import UsageError
from bastion.findings import Finding, Severity, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.supply_chain.integrity import ArtifactIntegrityProbe
from bastion.targets import FakeTarget
from bastion.testing import check_probe

ID = "supply_chain.artifact_integrity"


@pytest.fixture
def pair(tmp_path: Path) -> KeyPair:
    (tmp_path / "keys").mkdir()
    return generate_keypair(tmp_path / "keys" / "signer.key")


def _target(source: Path | None) -> FakeTarget:
    target = FakeTarget.linear(n_features=3, n_classes=2)
    target.source_path = source
    return target


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(200)))
    return model


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "tokenizer.json").write_text("{}")
    return folder


def _run(target: FakeTarget, **params: object) -> list[Finding]:
    return ArtifactIntegrityProbe(**params).run(target, None, ProbeContext())


def _sign(path: Path, pair: KeyPair, manifest: Path | None = None) -> None:
    sign_path(path, load_private_key(pair.private_path), manifest_path=manifest)


def test_contract_and_catalog_coverage() -> None:
    catalog = load_catalog()
    remedy_ids = ["supply_chain.sign_artifact"]
    assert check_probe(ArtifactIntegrityProbe, catalog, remedy_ids=remedy_ids) == []
    registry = Registry().with_plugins(probes={ID: ArtifactIntegrityProbe})
    rows = {r.id: r.probes for r in coverage(catalog, registry)}
    for entry in ("ML06", "FM9", "AML.M0013", "AML.M0014", "AML.T0010.003"):
        assert rows[entry] == [ID], entry


def test_without_a_source_path_the_finding_is_inconclusive() -> None:
    [finding] = _run(_target(None))
    assert finding.status is Status.INCONCLUSIVE and "source_path" in finding.summary


def test_an_unsigned_file_is_a_low_finding(tmp_path: Path, pair: KeyPair) -> None:
    [finding] = _run(_target(_model(tmp_path)), public_key=str(pair.public_path))
    assert finding.status is Status.VULNERABLE and finding.severity is Severity.LOW
    assert "unsigned" in finding.summary and "nothing proves" in finding.summary
    assert finding.variant == "source"
    assert "supply_chain.sign_artifact" in finding.remedies
    assert {"AML.M0013", "AML.M0014"} <= set(finding.catalog.atlas_mitigations)


def test_a_signed_file_verifies_with_the_producers_key(tmp_path: Path, pair: KeyPair) -> None:
    model = _model(tmp_path)
    _sign(model, pair)
    [finding] = _run(_target(model), public_key=str(pair.public_path))
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert finding.severity is Severity.NONE and finding.variant == "source"
    metrics = {m.name: m.value for m in finding.metrics}
    assert metrics["files_checked"] == 1 and metrics["changed_files"] == 0


def test_a_signature_without_a_configured_key_is_inconclusive(
    tmp_path: Path, pair: KeyPair
) -> None:
    model = _model(tmp_path)
    _sign(model, pair)
    # A public key lying next to the artifact is never picked up.
    (tmp_path / "model.safetensors.pub").write_bytes(pair.public_path.read_bytes())
    [finding] = _run(_target(model))
    assert finding.status is Status.INCONCLUSIVE
    assert "public_key" in finding.summary and pair.key_id[:16] in finding.summary
    assert "next to the artifact" in finding.summary


def test_a_tampered_file_is_an_important_finding_naming_it(tmp_path: Path, pair: KeyPair) -> None:
    model = _model(tmp_path)
    _sign(model, pair)
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01  # same size, one bit
    model.write_bytes(bytes(data))
    [finding] = _run(_target(model), public_key=str(pair.public_path))
    assert finding.status is Status.VULNERABLE and finding.severity is Severity.IMPORTANT
    assert "modified model.safetensors" in finding.summary
    assert finding.severity_rationale and "Tampering" in finding.severity_rationale[0]
    assert "supply_chain.sign_artifact" not in finding.remedies  # never re-sign tampering
    evidence = finding.evidence[0].data or {}
    assert evidence["changes"]["modified"] == ["model.safetensors"]


def test_every_changed_file_of_a_folder_is_named(tmp_path: Path, pair: KeyPair) -> None:
    folder = _folder(tmp_path)
    _sign(folder, pair)
    (folder / "weights.bin").write_bytes(b"\x00" * 2048)
    (folder / "custom_layer.py").write_text("import os\n")
    (folder / "tokenizer.json").unlink()
    [finding] = _run(_target(folder), public_key=str(pair.public_path))
    assert finding.severity is Severity.IMPORTANT
    for part in ("modified weights.bin", "added custom_layer.py", "missing tokenizer.json"):
        assert part in finding.summary
    assert {m.name: m.value for m in finding.metrics}["changed_files"] == 3


def test_a_different_key_is_an_important_finding(tmp_path: Path, pair: KeyPair) -> None:
    model = _model(tmp_path)
    _sign(model, pair)
    other = generate_keypair(tmp_path / "keys" / "other.key")
    [finding] = _run(_target(model), public_key=str(other.public_path))
    assert finding.status is Status.VULNERABLE and finding.severity is Severity.IMPORTANT
    assert "does not verify" in finding.summary and "not by the given key" in finding.summary
    assert {m.name: m.value for m in finding.metrics}["files_checked"] == 0


def test_a_forged_manifest_is_an_important_finding(tmp_path: Path, pair: KeyPair) -> None:
    model = _model(tmp_path)
    _sign(model, pair)
    model.write_bytes(b"attacker's model")
    manifest = default_manifest_path(model)
    document = json.loads(manifest.read_text())
    document["payload"]["files"][0]["size"] = len(b"attacker's model")
    manifest.write_text(json.dumps(document))
    [finding] = _run(_target(model), public_key=str(pair.public_path))
    assert finding.severity is Severity.IMPORTANT
    assert "altered or forged" in finding.summary


def test_manifest_and_paths_parameters(tmp_path: Path, pair: KeyPair) -> None:
    model, extra = _model(tmp_path), _folder(tmp_path)
    elsewhere = tmp_path / "sigs" / "model.manifest.json"
    elsewhere.parent.mkdir()
    _sign(model, pair, manifest=elsewhere)
    _sign(extra, pair)
    key = str(pair.public_path)
    findings = _run(_target(model), public_key=key, manifest=str(elsewhere), paths=[str(extra)])
    assert [f.status for f in findings] == [Status.NOT_VULNERABLE] * 2
    assert [f.variant for f in findings] == ["source", str(extra)]
    # Without the manifest parameter the model is unsigned where the probe looks.
    assert _run(_target(model), public_key=key)[0].severity is Severity.LOW
    with pytest.raises(UsageError, match="does not exist"):
        _run(_target(model), public_key=key, manifest=str(tmp_path / "nope.json"))
    with pytest.raises(UsageError, match="no file or folder"):
        _run(_target(None), paths=[str(tmp_path / "gone.bin")])
    with pytest.raises(UsageError, match="names the signature of one file"):
        _run(_target(None), manifest=str(elsewhere), paths=[str(model), str(extra)])
    with pytest.raises(UsageError, match="has no parameter"):
        _run(_target(model), public_keys=key)


def test_a_foreign_sig_file_is_inconclusive_not_a_forgery(tmp_path: Path, pair: KeyPair) -> None:
    model = _model(tmp_path)
    (tmp_path / "model.safetensors.sig").write_bytes(b"-----BEGIN PGP SIGNATURE-----\n")
    [finding] = _run(_target(model), public_key=str(pair.public_path))
    assert finding.status is Status.INCONCLUSIVE and "neither a Bastion" in finding.summary


def test_a_private_key_given_as_public_key_is_a_usage_error(tmp_path: Path, pair: KeyPair) -> None:
    model = _model(tmp_path)
    _sign(model, pair)
    with pytest.raises(UsageError, match="is a private key") as err:
        _run(_target(model), public_key=str(pair.private_path))
    assert pair.private_path.read_text() not in str(err.value)


def test_openssf_bundles_are_verified_offline(tmp_path: Path) -> None:
    openssf = pytest.importorskip("bastion.artifacts.openssf")
    if not openssf.openssf_available():
        pytest.skip("model-signing is not installed")
    pair = generate_keypair(tmp_path / "ec.key", algorithm="ecdsa-p256")
    folder = _folder(tmp_path)
    openssf.sign_openssf(folder, pair.private_path)
    target = _target(folder)
    [ok] = _run(target, public_key=str(pair.public_path))
    assert ok.status is Status.NOT_VULNERABLE and "openssf" in ok.summary
    assert "every file match" in ok.summary
    (folder / "weights.bin").write_bytes(b"\x01" * 2048)
    [bad] = _run(target, public_key=str(pair.public_path))
    assert bad.severity is Severity.IMPORTANT and "modified weights.bin" in bad.summary
