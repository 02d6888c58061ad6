"""supply_chain.sign_artifact: sign the model file, verified by supply_chain.artifact_integrity."""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import skops.io
import typer
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from bastion.artifacts.keys import KeyPair, generate_keypair, load_public_key
from bastion.artifacts.signing import verify_path
from bastion.catalog import load_catalog
from bastion.catalog.coverage import coverage
from bastion.cli import harden_cmd
from bastion.data.dataset import Dataset
from bastion.errors import TargetError, UsageError
from bastion.findings import Severity, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.supply_chain.integrity import ArtifactIntegrityProbe
from bastion.remedies.sign_artifact import SignArtifact
from bastion.runs.harden import HardenOutcome, HardenRequest, run_harden
from bastion.runs.jobs import AssessmentJob
from bastion.store import open_store
from bastion.targets import FakeTarget, InputSpec
from bastion.targets.loading import load_target
from bastion.targets.sklearn_target import SklearnTarget

ID = "supply_chain.sign_artifact"
PROBE = "supply_chain.artifact_integrity"
SPEC = InputSpec(shape=(4,), lower=0.0, upper=1.0)
PASSPHRASE = "correct horse battery staple 7f3a"


def _data(n: int = 40) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64)
    return Dataset("toy", x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], classes=["a", "b"])


def _skops_target(tmp_path: Path) -> SklearnTarget:
    data = _data()
    est = LogisticRegression().fit(data.x_train, data.y_train)
    path = tmp_path / "model.skops"
    skops.io.dump(est, path)
    target = load_target(
        path,
        kind="sklearn",
        input_spec=SPEC,
        classes=["a", "b"],
        options={"trusted": skops.io.get_untrusted_types(file=path)},
    )
    assert isinstance(target, SklearnTarget) and target.source_path == path
    return target


@pytest.fixture
def pair(tmp_path: Path) -> KeyPair:
    (tmp_path / "keys").mkdir()
    return generate_keypair(tmp_path / "keys" / "signer.key")


def _registry() -> Registry:
    return Registry().with_plugins(
        probes={PROBE: ArtifactIntegrityProbe}, remedies={ID: SignArtifact}
    )


def test_keeps_the_remedy_contract_and_covers_signing() -> None:
    from bastion.testing import check_remedy

    catalog = load_catalog()
    assert check_remedy(SignArtifact, catalog, probe_ids=[PROBE]) == []
    assert SignArtifact.meta.verified_by == (PROBE,)
    rows = {r.id: r.remedies for r in coverage(catalog, _registry())}
    for entry in ("ML06", "FM9", "AML.M0013", "AML.M0014"):
        assert rows[entry] == [ID], entry


def test_signs_next_to_the_file_and_returns_the_same_target(tmp_path: Path, pair: KeyPair) -> None:
    target = _skops_target(tmp_path)
    before = target.source_path.read_bytes()
    result = SignArtifact(private_key=str(pair.private_path)).apply(target, _data(), ProbeContext())
    assert result.target is target and target.source_path.read_bytes() == before
    ch = result.changes
    assert Path(ch["manifest"]) == tmp_path / "model.skops.manifest.json"
    assert ch["key_id"] == pair.key_id and ch["files"] == 1 and ch["format"] == "bastion"
    assert ch["bytes"] == len(before) and len(ch["payload_sha256"]) == 64
    assert ch["public_key"] == str(pair.public_path) and ch["scanned"] is True
    assert verify_path(target.source_path, load_public_key(pair.public_path)).ok
    assert f"{PROBE}:public_key={pair.public_path}" in result.notes


def test_key_material_never_appears_in_changes_notes_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNER_PASS", PASSPHRASE)
    pair = generate_keypair(tmp_path / "enc.key", passphrase=PASSPHRASE.encode())
    pem = pair.private_path.read_text()
    body = "".join(pem.splitlines()[1:-1])
    target = _skops_target(tmp_path)
    with caplog.at_level(logging.DEBUG):
        result = SignArtifact(
            private_key=str(pair.private_path), passphrase_env="SIGNER_PASS"
        ).apply(target, _data(), ProbeContext())
        findings = ArtifactIntegrityProbe(public_key=str(pair.public_path)).run(
            target, None, ProbeContext()
        )
    assert findings[0].status is Status.NOT_VULNERABLE
    seen = json.dumps(result.changes) + result.notes + caplog.text
    seen += json.dumps([f.model_dump(mode="json") for f in findings])
    seen += Path(result.changes["manifest"]).read_text()
    for secret in (body, body[:40], PASSPHRASE):
        assert secret not in seen
    # The private key's path appears nowhere (only as the prefix of its public half's).
    assert re.search(re.escape(str(pair.private_path)) + r"(?!\.pub)", seen) is None
    assert pair.key_id in seen  # only the key id names the key


def test_a_passphrase_in_the_parameters_is_refused_without_echoing_it(
    tmp_path: Path, pair: KeyPair
) -> None:
    target = _skops_target(tmp_path)
    with pytest.raises(UsageError, match="passphrase_env") as err:
        SignArtifact(private_key=str(pair.private_path), passphrase=PASSPHRASE).apply(
            target, _data(), ProbeContext()
        )
    assert PASSPHRASE not in str(err.value)
    with pytest.raises(UsageError, match="needs the 'private_key' parameter"):
        SignArtifact().apply(target, _data(), ProbeContext())
    with pytest.raises(UsageError, match="UNSET_SIGNER_PASS"):
        SignArtifact(private_key=str(pair.private_path), passphrase_env="UNSET_SIGNER_PASS").apply(
            target, _data(), ProbeContext()
        )


def test_refuses_to_replace_a_signature_or_sign_an_unsafe_file(
    tmp_path: Path, pair: KeyPair
) -> None:
    target = _skops_target(tmp_path)
    remedy = SignArtifact(private_key=str(pair.private_path))
    remedy.apply(target, _data(), ProbeContext())
    target.source_path.write_bytes(target.source_path.read_bytes() + b"\x00")  # tampered
    with pytest.raises(UsageError, match="already has a signature"):
        remedy.apply(target, _data(), ProbeContext())
    remedy = SignArtifact(private_key=str(pair.private_path), overwrite=True)
    assert remedy.apply(target, _data(), ProbeContext()).changes["files"] == 1

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cposix\nsystem\n(S'id'\ntR.")
    fake = FakeTarget.linear(n_features=4, n_classes=2)
    fake.source_path = evil
    with pytest.raises(TargetError, match="did not scan clean"):
        SignArtifact(private_key=str(pair.private_path)).apply(fake, _data(), ProbeContext())
    assert not (tmp_path / "evil.pkl.manifest.json").exists()
    fake.source_path = None
    with pytest.raises(TargetError, match="no source_path"):
        SignArtifact(private_key=str(pair.private_path)).apply(fake, _data(), ProbeContext())


def test_output_dir_and_a_clean_pickle(tmp_path: Path, pair: KeyPair) -> None:
    model = tmp_path / "weights.pkl"
    model.write_bytes(pickle.dumps({"w": [0.5, 0.25]}))
    target = FakeTarget.linear(n_features=4, n_classes=2)
    target.source_path = model
    out = tmp_path / "signatures"
    result = SignArtifact(private_key=str(pair.private_path), output_dir=str(out)).apply(
        target, _data(), ProbeContext()
    )
    assert Path(result.changes["manifest"]) == out / "weights.pkl.manifest.json"
    assert "manifest=" in result.notes
    [f] = ArtifactIntegrityProbe(
        public_key=str(pair.public_path), manifest=result.changes["manifest"]
    ).run(target, None, ProbeContext())
    assert f.status is Status.NOT_VULNERABLE


def test_openssf_format_with_an_ecdsa_key(tmp_path: Path) -> None:
    from bastion.artifacts.openssf import openssf_available

    if not openssf_available():
        pytest.skip("model-signing is not installed")
    pair = generate_keypair(tmp_path / "ec.key", algorithm="ecdsa-p256")
    target = _skops_target(tmp_path)
    result = SignArtifact(private_key=str(pair.private_path), format="openssf").apply(
        target, _data(), ProbeContext()
    )
    assert Path(result.changes["manifest"]).name == "model.skops.sig"
    assert result.changes["files"] == 1 and result.changes["key_id"] == pair.key_id
    [f] = ArtifactIntegrityProbe(public_key=str(pair.public_path)).run(target, None, ProbeContext())
    assert f.status is Status.NOT_VULNERABLE, f.summary


def _harden(tmp_path: Path, pair: KeyPair, probe_params: dict[str, object]) -> HardenOutcome:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    target = _skops_target(tmp_path)
    request = HardenRequest(
        name="t",
        job=AssessmentJob(target, _data()),
        remedy=SignArtifact(private_key=str(pair.private_path)),
        fingerprint="f",
        probe_params={PROBE: probe_params},
        output_dir=tmp_path / "report",
    )
    try:
        return run_harden(request, store=store, registry=_registry())
    finally:
        store.close()


def test_harden_verifies_signing_with_the_integrity_probe(tmp_path: Path, pair: KeyPair) -> None:
    out = _harden(tmp_path, pair, {"public_key": str(pair.public_path)})
    assert out.verified and out.exit_code == 0, out.reason
    [change] = out.changes
    assert change.variant == "source" and change.before.severity is Severity.LOW
    assert change.after is not None and change.after.status is Status.NOT_VULNERABLE
    assert "no longer vulnerable" in out.reason
    assert out.after.options["remedy"]["changes"]["key_id"] == pair.key_id


def test_harden_without_the_public_key_is_not_verified(tmp_path: Path, pair: KeyPair) -> None:
    out = _harden(tmp_path, pair, {})
    assert not out.verified and "became inconclusive" in out.reason


def test_bastion_harden_command_passes_the_public_key_to_the_probe(
    tmp_path: Path, pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data()
    est = LogisticRegression().fit(data.x_train, data.y_train)
    skops.io.dump(est, tmp_path / "model.skops")
    np.savez(
        tmp_path / "data.npz",
        x_train=data.x_train,
        y_train=data.y_train,
        x_test=data.x_test,
        y_test=data.y_test,
    )
    config = tmp_path / "assess.yaml"
    config.write_text(
        "name: signed\n"
        f"data: {{path: {tmp_path / 'data.npz'}}}\n"
        f"targets:\n  - {{name: clf, kind: sklearn, path: {tmp_path / 'model.skops'}}}\n"
        f"probes:\n  - id: {PROBE}\n"
    )
    monkeypatch.setattr(harden_cmd, "harden_registry", _registry)  # before the entry points
    app = typer.Typer()
    harden_cmd.register(app)
    app.command("noop")(lambda: None)
    args = ["harden", str(config), "--remedy", ID, "-q"]
    args += ["--param", f"private_key={pair.private_path}"]
    args += ["--probe-param", f"{PROBE}:public_key={pair.public_path}"]
    args += ["--store", f"sqlite:///{tmp_path / 's.db'}", "-o", str(tmp_path / "report")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Verified" in result.output and "no longer vulnerable" in result.output
    assert (tmp_path / "model.skops.manifest.json").is_file()
