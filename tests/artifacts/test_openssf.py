"""The OpenSSF model-signing format: interoperability with the package, offline."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest

from bastion.artifacts.keys import KeyPair, generate_keypair
from bastion.artifacts.openssf import sign_openssf, verify_openssf
from bastion.artifacts.signing import VerifyStatus
from bastion.errors import UsageError

model_signing = pytest.importorskip("model_signing")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: private-key signing is offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def ec_keys(tmp_path: Path) -> KeyPair:
    return generate_keypair(tmp_path / "ec.key", algorithm="ecdsa-p256", passphrase=b"pw")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"\x07" * 4096)
    (root / "sub" / "config.json").write_text("{}")
    return root


def test_bastion_signature_verifies_with_the_package_itself(model: Path, ec_keys: KeyPair) -> None:
    result = sign_openssf(model, ec_keys.private_path, passphrase=b"pw")
    assert result.signature_path == model.parent / "model.sig"
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=ec_keys.public_path
    ).verify(model, result.signature_path)
    assert verify_openssf(model, ec_keys.public_path).status is VerifyStatus.OK


def test_package_signature_verifies_with_bastion(model: Path, ec_keys: KeyPair) -> None:
    bundle = model.parent / "made-by-package.sig"
    model_signing.signing.Config().use_elliptic_key_signer(
        private_key=ec_keys.private_path, password=b"pw"
    ).sign(model, bundle)
    result = verify_openssf(model, ec_keys.public_path, signature_path=bundle)
    assert result.status is VerifyStatus.OK and result.signature_format == "openssf"


def test_tampering_is_named_file_by_file(model: Path, ec_keys: KeyPair) -> None:
    sign_openssf(model, ec_keys.private_path, passphrase=b"pw")
    (model / "weights.bin").write_bytes(b"\x08" + b"\x07" * 4095)
    (model / "sub" / "config.json").unlink()
    (model / "extra.py").write_text("x = 1")
    result = verify_openssf(model, ec_keys.public_path)
    assert result.status is VerifyStatus.MISMATCH and result.diff is not None
    assert result.diff.modified == ("weights.bin",)
    assert result.diff.missing == ("sub/config.json",)
    assert result.diff.added == ("extra.py",)


def test_wrong_key_is_a_bad_signature(model: Path, ec_keys: KeyPair, tmp_path: Path) -> None:
    sign_openssf(model, ec_keys.private_path, passphrase=b"pw")
    other = generate_keypair(tmp_path / "other.key", algorithm="ecdsa-p256")
    result = verify_openssf(model, other.public_path)
    assert result.status is VerifyStatus.BAD_SIGNATURE and result.diff is None


def test_rewritten_statement_is_a_bad_signature(model: Path, ec_keys: KeyPair) -> None:
    signature = sign_openssf(model, ec_keys.private_path, passphrase=b"pw").signature_path
    (model / "weights.bin").write_bytes(b"evil")
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"] = []  # drop every resource the attacker changed
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    assert verify_openssf(model, ec_keys.public_path).status is VerifyStatus.BAD_SIGNATURE


def test_ed25519_key_is_refused_with_advice(model: Path, tmp_path: Path) -> None:
    ed = generate_keypair(tmp_path / "ed.key")
    with pytest.raises(UsageError, match="ecdsa-p256"):
        sign_openssf(model, ed.private_path)


def test_links_are_refused_by_the_package(model: Path, ec_keys: KeyPair) -> None:
    (model / "alias").symlink_to("weights.bin")
    with pytest.raises(UsageError, match="symlink"):
        sign_openssf(model, ec_keys.private_path, passphrase=b"pw")
