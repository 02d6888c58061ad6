"""Ed25519 keys for signed outputs and audit checkpoints: make, save, load, fingerprint.

Private keys are PKCS#8 PEM files (unencrypted, written with mode 0600); public keys
are SubjectPublicKeyInfo PEM. A gateway reads its private key from the file named by
``BASTION_SIGNING_KEY_FILE`` (or the PEM text in ``BASTION_SIGNING_KEY``), never from
its config file. A key is identified by :func:`key_id`, the first 16 hex digits of
SHA-256 over the raw 32-byte public key.

Examples
--------
>>> key = generate_signing_key()
>>> pem = public_key_pem(key.public_key())
>>> key_id(load_public_key(pem)) == key_id(key.public_key())
True
>>> len(key_id(key.public_key()))
16
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.errors import UsageError

__all__ = [
    "SIGNING_KEY_ENV",
    "SIGNING_KEY_FILE_ENV",
    "generate_signing_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
    "signing_key_from_env",
    "write_signing_key",
]

SIGNING_KEY_ENV = "BASTION_SIGNING_KEY"
"""Environment variable holding an Ed25519 private key as PEM text."""

SIGNING_KEY_FILE_ENV = "BASTION_SIGNING_KEY_FILE"
"""Environment variable naming a PEM file with the Ed25519 private key."""


def generate_signing_key() -> Ed25519PrivateKey:
    """A new random Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key (unencrypted: protect the file)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(source: str | bytes | Path, what: str) -> bytes:
    if isinstance(source, bytes):
        return source
    text = str(source)
    if "-----BEGIN" in text:
        return text.encode("ascii", errors="replace")
    path = Path(text).expanduser()
    try:
        return path.read_bytes()
    except OSError as err:
        raise UsageError(
            f"Cannot read the {what} file {path} ({err.strerror or err}); give the path of a PEM "
            "file."
        ) from err


def load_private_key(source: str | bytes | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM bytes, PEM text or a PEM file path."""
    data = _read(source, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise UsageError(
            "The signing key is not an unencrypted PEM private key; create one with "
            "`bastion keys signing-key --out signing.pem`."
        ) from err
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(
            f"The signing key is a {type(key).__name__}; Bastion signs with Ed25519 keys."
        )
    return key


def load_public_key(source: str | bytes | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a private-key PEM yields its public half)."""
    data = _read(source, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return load_private_key(data).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"The public key is a {type(key).__name__}; Bastion verifies Ed25519.")
    return key


def write_signing_key(path: str | Path, key: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
    """Write a private key to ``path`` (mode 0600) and its public key to ``path.pub``.

    Refuses to overwrite an existing file.
    """
    target = Path(path).expanduser()
    key = key or generate_signing_key()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{target} already exists; choose another path or remove it.") from None
    except OSError as err:
        raise UsageError(f"Cannot write {target} ({err.strerror or err}).") from err
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    Path(f"{target}.pub").write_bytes(public_key_pem(key.public_key()))
    return key


def signing_key_from_env(environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey | None:
    """The private key from ``BASTION_SIGNING_KEY_FILE`` or ``BASTION_SIGNING_KEY``, or None."""
    env = os.environ if environ is None else environ
    if env.get(SIGNING_KEY_FILE_ENV):
        return load_private_key(Path(env[SIGNING_KEY_FILE_ENV]))
    if env.get(SIGNING_KEY_ENV):
        return load_private_key(env[SIGNING_KEY_ENV].encode("ascii", errors="replace"))
    return None
