"""Signing keys: generate, write, load, and name them without ever showing them.

Two kinds of key pairs, both from ``cryptography``:

``ed25519``
    the default, used by Bastion's own manifests (:mod:`bastion.artifacts.signing`);
``ecdsa-p256``
    NIST P-256, the curve the OpenSSF model-signing format accepts for private-key
    signing (:mod:`bastion.artifacts.openssf`).

A private key is written as PKCS#8 PEM with file mode ``0600`` from the moment the
file exists (``O_CREAT | O_EXCL`` with that mode, never chmod after writing). It is
encrypted when a passphrase is given; passphrases come from an environment
variable named by the caller (:func:`passphrase_from_env`), never from the command
line, where they would land in shell history and in ``ps``. The public key is
SubjectPublicKeyInfo PEM, written next to it with ``.pub`` appended.

A key is named in manifests and logs only by its *key id*: the SHA-256 of the public
key's DER encoding, in hex. Nothing in this module logs key material.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> pair = generate_keypair(folder / "signing.key")
>>> oct(pair.private_path.stat().st_mode & 0o777)
'0o600'
>>> key_id(load_public_key(pair.public_path)) == pair.key_id
True
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bastion.errors import UsageError

__all__ = [
    "KeyAlgorithm",
    "KeyPair",
    "PrivateKey",
    "PublicKey",
    "generate_keypair",
    "key_algorithm",
    "key_id",
    "load_private_key",
    "load_public_key",
    "passphrase_from_env",
    "public_path_for",
]

logger = logging.getLogger(__name__)

KeyAlgorithm = Literal["ed25519", "ecdsa-p256"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

_MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class KeyPair:
    """Where :func:`generate_keypair` wrote a key pair, and the pair's key id."""

    private_path: Path
    public_path: Path
    key_id: str
    algorithm: KeyAlgorithm


def public_path_for(private_path: Path) -> Path:
    """The public key's path for a private key path: the same name plus ``.pub``."""
    return private_path.with_name(private_path.name + ".pub")


def key_id(public_key: PublicKey) -> str:
    """The SHA-256 of the public key's DER SubjectPublicKeyInfo, in hex."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def key_algorithm(key: PrivateKey | PublicKey) -> KeyAlgorithm | str:
    """``"ed25519"``, ``"ecdsa-p256"``, or a description of an unsupported key."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ecdsa-p256" if key.curve.name == "secp256r1" else f"ecdsa-{key.curve.name}"
    return type(key).__name__


def passphrase_from_env(variable: str | None) -> bytes | None:
    """Read a passphrase from the environment variable named ``variable``.

    Returns None when ``variable`` is None. An unset or empty variable is an error,
    so a typo never silently produces an unencrypted key.
    """
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise UsageError(
            f"The passphrase variable {variable} is unset or empty; export it before "
            "running the command, or leave out --passphrase-env."
        )
    return value.encode("utf-8")


def _write_new(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``data`` to a file created with ``mode``; replace atomically if allowed."""
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; choose another name or pass --force.")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, mode)
    except OSError as err:
        raise UsageError(f"Cannot create {path}: {err.strerror}; check the folder.") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise UsageError(f"Cannot write {path}: {err.strerror}; check the folder.") from None


def generate_keypair(
    private_path: Path,
    *,
    algorithm: KeyAlgorithm = "ed25519",
    passphrase: bytes | None = None,
    overwrite: bool = False,
) -> KeyPair:
    """Generate a key pair and write it to ``private_path`` and ``private_path.pub``.

    Parameters
    ----------
    private_path
        Where the private key goes (mode ``0600``); the public key gets ``.pub`` added.
    algorithm
        ``"ed25519"`` (Bastion manifests) or ``"ecdsa-p256"`` (OpenSSF format).
    passphrase
        Encrypts the private key (PKCS#8, best available encryption) when given.
    overwrite
        Replace existing files instead of refusing.

    Returns
    -------
    KeyPair
        The two paths and the key id.
    """
    private_path = Path(private_path)
    public_path = public_path_for(private_path)
    if not private_path.parent.is_dir():
        raise UsageError(f"The folder {private_path.parent} does not exist; create it first.")
    key: PrivateKey
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise UsageError(f"Unknown key algorithm {algorithm!r}; use 'ed25519' or 'ecdsa-p256'.")
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists():
                raise UsageError(f"{path} already exists; choose another name or pass --force.")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600, overwrite=overwrite)
    _write_new(public_path, public_pem, 0o644, overwrite=overwrite)
    kid = key_id(key.public_key())
    logger.info("wrote a %s key pair, key id %s", algorithm, kid)
    return KeyPair(private_path, public_path, kid, algorithm)


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > _MAX_KEY_FILE:
            raise UsageError(f"{path} is {size} bytes, too large to be a {what}; check the path.")
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"The {what} {path} does not exist; check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"The {what} {path} is a folder; give the key file.") from None
    except OSError as err:
        raise UsageError(f"Cannot read the {what} {path}: {err.strerror}.") from None


def load_private_key(path: Path, *, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PEM private key (Ed25519 or an elliptic-curve key).

    Raises
    ------
    UsageError
        When the file is missing, is not a private key, is encrypted and no
        passphrase was given, or the passphrase is wrong. The message never
        contains key bytes.
    """
    path = Path(path)
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise UsageError(
                f"The private key {path} is encrypted; name the variable holding its "
                "passphrase with --passphrase-env."
            ) from None
        raise UsageError(
            f"The private key {path} is not encrypted; leave out --passphrase-env."
        ) from None
    except ValueError:
        raise UsageError(
            f"{path} is not a PEM private key, or the passphrase is wrong; check both."
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise UsageError(
            f"{path} holds a {type(key).__name__}; Bastion signs with Ed25519 or ECDSA "
            "keys, make one with `bastion artifacts keygen`."
        )
    return key


def load_public_key(path: Path) -> PublicKey:
    """Load a PEM public key (SubjectPublicKeyInfo), Ed25519 or elliptic-curve.

    Raises
    ------
    UsageError
        When the file is missing or holds no supported public key (a private key
        given by mistake included).
    """
    path = Path(path)
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        raise UsageError(
            f"{path} is a private key; verification needs the public key "
            f"({public_path_for(path).name}), which is safe to share."
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise UsageError(f"{path} is not a PEM public key; check the path.") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise UsageError(
            f"{path} holds a {type(key).__name__}; Bastion verifies Ed25519 or ECDSA keys."
        )
    return key
