"""Ed25519-signed manifests: keys, signing, and every way tampering must be caught."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from bastion.artifacts.keys import (
    KeyPair,
    generate_keypair,
    load_private_key,
    load_public_key,
    passphrase_from_env,
)
from bastion.artifacts.signing import (
    VerifyResult,
    VerifyStatus,
    read_signed_manifest,
    sign_path,
    verify_path,
)
from bastion.errors import UsageError


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    (tmp_path / "keys").mkdir()
    return generate_keypair(tmp_path / "keys" / "signing.key")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "sub" / "tokenizer.txt").write_text("a b c")
    return root


def _sign(model: Path, keys: KeyPair, **kwargs: Any) -> Path:
    return sign_path(model, load_private_key(keys.private_path), **kwargs).manifest_path


def _verify(model: Path, keys: KeyPair, **kwargs: Any) -> VerifyResult:
    return verify_path(model, load_public_key(keys.public_path), **kwargs)


# -- keys ------------------------------------------------------------------------------------
def test_private_key_is_0600_and_public_key_is_separate(keys: KeyPair) -> None:
    assert stat.S_IMODE(keys.private_path.stat().st_mode) == 0o600
    assert keys.public_path.name == "signing.key.pub"
    assert b"PRIVATE KEY" in keys.private_path.read_bytes()
    assert b"PRIVATE" not in keys.public_path.read_bytes()


def test_keygen_refuses_to_overwrite(keys: KeyPair) -> None:
    with pytest.raises(UsageError, match="already exists"):
        generate_keypair(keys.private_path)
    again = generate_keypair(keys.private_path, overwrite=True)
    assert again.key_id != keys.key_id


def test_encrypted_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "enc.key", passphrase=b"correct horse")
    assert b"ENCRYPTED" in pair.private_path.read_bytes()
    with pytest.raises(UsageError, match="encrypted"):
        load_private_key(pair.private_path)
    with pytest.raises(UsageError, match="passphrase is wrong"):
        load_private_key(pair.private_path, passphrase=b"wrong")
    load_private_key(pair.private_path, passphrase=b"correct horse")


def test_passphrase_comes_from_a_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_TEST_PASS", "s3cret")
    assert passphrase_from_env("BASTION_TEST_PASS") == b"s3cret"
    assert passphrase_from_env(None) is None
    monkeypatch.delenv("BASTION_TEST_PASS")
    with pytest.raises(UsageError, match="unset or empty"):
        passphrase_from_env("BASTION_TEST_PASS")


def test_public_key_loader_refuses_a_private_key(keys: KeyPair) -> None:
    with pytest.raises(UsageError, match="is a private key"):
        load_public_key(keys.private_path)


def test_ecdsa_key_is_refused_for_bastion_manifests(model: Path, tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "ec.key", algorithm="ecdsa-p256")
    with pytest.raises(UsageError, match="Ed25519"):
        sign_path(model, load_private_key(pair.private_path))


def test_key_material_never_reaches_the_logs(
    model: Path, keys: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _sign(model, keys)
    _verify(model, keys)
    pem_body = b"".join(keys.private_path.read_bytes().splitlines()[1:-1]).decode()
    assert pem_body not in caplog.text
    assert keys.key_id in caplog.text  # keys are named by id only


# -- sign and verify ------------------------------------------------------------------------
def test_untouched_folder_verifies(model: Path, keys: KeyPair) -> None:
    manifest = _sign(model, keys)
    assert manifest == model.parent / "model.manifest.json"
    result = _verify(model, keys)
    assert result.status is VerifyStatus.OK and result.files_checked == 3


def test_one_changed_byte_is_named(model: Path, keys: KeyPair) -> None:
    _sign(model, keys)
    data = bytearray((model / "weights.bin").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model / "weights.bin").write_bytes(bytes(data))
    result = _verify(model, keys)
    assert result.status is VerifyStatus.MISMATCH
    assert result.diff is not None and result.diff.modified == ("weights.bin",)


def test_added_and_deleted_files_are_named(model: Path, keys: KeyPair) -> None:
    _sign(model, keys)
    (model / "sub" / "tokenizer.txt").unlink()
    (model / "sub" / "hook.py").write_text("import os; os.system('id')")
    result = _verify(model, keys)
    assert result.diff is not None
    assert result.diff.added == ("sub/hook.py",) and result.diff.missing == ("sub/tokenizer.txt",)


def test_wrong_public_key_is_a_bad_signature(model: Path, keys: KeyPair, tmp_path: Path) -> None:
    _sign(model, keys)
    other = generate_keypair(tmp_path / "other.key")
    result = verify_path(model, load_public_key(other.public_path))
    assert result.status is VerifyStatus.BAD_SIGNATURE and "not by the given key" in result.reason
    assert result.diff is None  # an unverified manifest is never used to judge files


def test_rewritten_digest_in_manifest_is_a_bad_signature(model: Path, keys: KeyPair) -> None:
    manifest = _sign(model, keys)
    (model / "config.json").write_text('{"layers": 3}')
    document = json.loads(manifest.read_text())
    for entry in document["payload"]["files"]:  # the attacker "fixes" the hash
        if entry["path"] == "config.json":
            entry["sha256"] = hashlib.sha256(b'{"layers": 3}').hexdigest()
    manifest.write_text(json.dumps(document))
    result = _verify(model, keys)
    assert result.status is VerifyStatus.BAD_SIGNATURE and "altered or forged" in result.reason


def test_signature_swapped_in_from_another_manifest_fails(
    model: Path, keys: KeyPair, tmp_path: Path
) -> None:
    manifest = _sign(model, keys)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "x").write_text("x")
    decoy_manifest = _sign(decoy, keys)
    document = json.loads(manifest.read_text())
    document["signature"] = json.loads(decoy_manifest.read_text())["signature"]
    manifest.write_text(json.dumps(document))
    assert _verify(model, keys).status is VerifyStatus.BAD_SIGNATURE


def test_flipped_signature_bit_fails(model: Path, keys: KeyPair) -> None:
    manifest = _sign(model, keys)
    document = json.loads(manifest.read_text())
    raw = bytearray(base64.b64decode(document["signature"]["value"]))
    raw[0] ^= 0x80
    document["signature"]["value"] = base64.b64encode(bytes(raw)).decode()
    manifest.write_text(json.dumps(document))
    assert _verify(model, keys).status is VerifyStatus.BAD_SIGNATURE


def test_reformatted_manifest_still_verifies(model: Path, keys: KeyPair) -> None:
    manifest = _sign(model, keys)
    document = json.loads(manifest.read_text())
    reordered = {key: document[key] for key in reversed(list(document))}
    manifest.write_text(json.dumps(reordered, indent=7))
    assert _verify(model, keys).status is VerifyStatus.OK


@pytest.mark.parametrize("content", ["not json", "[]", '{"payload": {}}', ""])
def test_malformed_manifest_is_a_verification_failure(
    model: Path, keys: KeyPair, content: str
) -> None:
    manifest = _sign(model, keys)
    manifest.write_text(content)
    result = _verify(model, keys)
    assert result.status is VerifyStatus.BAD_SIGNATURE


def test_missing_manifest_is_a_usage_error(model: Path, keys: KeyPair) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        _verify(model, keys)


def test_manifest_inside_the_folder_is_excluded_and_listed(model: Path, keys: KeyPair) -> None:
    inside = model / "MANIFEST.json"
    _sign(model, keys, manifest_path=inside)
    assert read_signed_manifest(inside).manifest.excluded == ("MANIFEST.json",)
    assert _verify(model, keys, manifest_path=inside).status is VerifyStatus.OK


def test_sharded_signature_detects_change_in_a_later_shard(model: Path, keys: KeyPair) -> None:
    _sign(model, keys, shard_size=1024)
    with (model / "weights.bin").open("r+b") as handle:
        handle.seek(15_000)
        handle.write(b"\xff")
    result = _verify(model, keys)
    assert result.diff is not None and result.diff.modified == ("weights.bin",)


def test_single_file_sign_and_verify(model: Path, keys: KeyPair) -> None:
    target = model / "weights.bin"
    manifest = _sign(target, keys)
    assert manifest.name == "weights.bin.manifest.json"
    assert _verify(target, keys).status is VerifyStatus.OK
    target.write_bytes(b"swapped")
    assert _verify(target, keys).status is VerifyStatus.MISMATCH


def test_file_replaced_by_folder_is_a_mismatch(model: Path, keys: KeyPair) -> None:
    target = model / "config.json"
    _sign(target, keys)
    target.unlink()
    target.mkdir()
    assert _verify(target, keys).status is VerifyStatus.MISMATCH


def test_changed_link_target_is_named(model: Path, keys: KeyPair) -> None:
    (model / "current").symlink_to("weights.bin")
    _sign(model, keys)
    (model / "current").unlink()
    (model / "current").symlink_to("config.json")
    result = _verify(model, keys)
    assert result.diff is not None and result.diff.modified == ("current",)
