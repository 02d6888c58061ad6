"""Sign a manifest with Ed25519, and verify a file or folder against it.

The signed file (``<name>.manifest.json`` next to the signed path, by default) is
JSON with three fields::

    {"bastion_signed_manifest": 1,
     "payload":   {... Manifest.to_payload() ...},
     "signature": {"algorithm": "ed25519", "key_id": "<hex>", "value": "<base64>"}}

The signature covers ``b"bastion.manifest/v1\\x00"`` followed by the canonical JSON
(:mod:`bastion.canonical`) of the payload; the prefix keeps a manifest
signature from being valid as a signature over anything else made with the same
key. A verifier re-canonicalises the payload it parsed, so whitespace or key order
in the file do not matter, while any change to a value does.

Verification is in two steps, in this order: the signature must be valid for the
given public key, and only then is the payload trusted to describe what the files
should be; the path is re-hashed with the signed shard size and exclusions and
compared (:func:`bastion.artifacts.manifest.compare`). A bad signature is reported
without looking at the files, since an unsigned list of hashes proves nothing.

Examples
--------
>>> import tempfile, pathlib
>>> from bastion.artifacts.keys import generate_keypair, load_private_key, load_public_key
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> pair = generate_keypair(tmp / "k")
>>> model = tmp / "model"; model.mkdir(); _ = (model / "w.bin").write_bytes(b"\\x00" * 64)
>>> signed = sign_path(model, load_private_key(pair.private_path))
>>> signed.manifest_path.name
'model.manifest.json'
>>> verify_path(model, load_public_key(pair.public_path)).status
<VerifyStatus.OK: 'ok'>
>>> _ = (model / "w.bin").write_bytes(b"\\x01" * 64)
>>> result = verify_path(model, load_public_key(pair.public_path))
>>> result.status.value, result.diff.modified
('mismatch', ('w.bin',))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion.artifacts.keys import PrivateKey, PublicKey, key_algorithm, key_id
from bastion.artifacts.manifest import (
    MANIFEST_FORMAT,
    Manifest,
    ManifestDiff,
    build_manifest,
    compare,
)
from bastion.artifacts.tree_hash import DEFAULT_SHARD_SIZE, Listing
from bastion.canonical import canonical_json, parse_strict
from bastion.errors import UsageError

__all__ = [
    "SIGNATURE_CONTEXT",
    "SignResult",
    "SignedManifest",
    "VerifyResult",
    "VerifyStatus",
    "default_manifest_path",
    "read_signed_manifest",
    "relative_inside",
    "sign_manifest",
    "sign_path",
    "verify_path",
    "verify_signature",
    "write_signed_manifest",
]

logger = logging.getLogger(__name__)

SIGNATURE_CONTEXT = MANIFEST_FORMAT.encode("ascii") + b"\x00"
"""Domain-separation prefix of every signed message."""
_MAX_MANIFEST_BYTES = 256 * 1024 * 1024


class VerifyStatus(StrEnum):
    """Outcome of a verification."""

    OK = "ok"
    MISMATCH = "mismatch"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class SignedManifest:
    """A manifest with its signature, as stored on disk (not yet verified)."""

    manifest: Manifest
    key_id: str
    signature: bytes
    algorithm: str = "ed25519"

    def message(self) -> bytes:
        """The exact bytes the signature covers."""
        return SIGNATURE_CONTEXT + canonical_json(self.manifest.to_payload())


@dataclass(frozen=True)
class SignResult:
    """What :func:`sign_path` wrote."""

    manifest_path: Path
    manifest: Manifest
    key_id: str
    payload_sha256: str


@dataclass(frozen=True)
class VerifyResult:
    """What a verification found; ``diff`` is None when the signature failed."""

    status: VerifyStatus
    reason: str
    manifest_path: Path
    signature_format: str = "bastion"
    key_id: str | None = None
    diff: ManifestDiff | None = None
    files_checked: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "ok": self.ok,
            "reason": self.reason,
            "format": self.signature_format,
            "manifest": str(self.manifest_path),
            "key_id": self.key_id,
            "files_checked": self.files_checked,
            "changes": self.diff.to_dict() if self.diff is not None else None,
            **self.details,
        }


def default_manifest_path(path: Path, suffix: str = ".manifest.json") -> Path:
    """``<path>`` + ``suffix``, next to the signed file or folder."""
    path = Path(path)
    absolute = Path(os.path.normpath(path.absolute()))
    return absolute.with_name(absolute.name + suffix)


def relative_inside(root: Path, candidate: Path) -> str | None:
    """``candidate`` as a POSIX path relative to folder ``root``, or None if outside."""
    root_abs = Path(os.path.realpath(root))
    cand_abs = Path(os.path.realpath(candidate.parent)) / candidate.name
    if not root_abs.is_dir():
        return None
    try:
        return cand_abs.relative_to(root_abs).as_posix()
    except ValueError:
        return None


def _require_ed25519(key: PrivateKey | PublicKey) -> None:
    if not isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        raise UsageError(
            f"Bastion manifests are signed with Ed25519 but this is an {key_algorithm(key)} "
            "key; use an Ed25519 key (bastion artifacts keygen), or --format openssf for "
            "ECDSA keys."
        )


def sign_manifest(manifest: Manifest, private_key: PrivateKey) -> SignedManifest:
    """Sign ``manifest`` with an Ed25519 private key."""
    _require_ed25519(private_key)
    assert isinstance(private_key, ed25519.Ed25519PrivateKey)
    message = SIGNATURE_CONTEXT + canonical_json(manifest.to_payload())
    return SignedManifest(manifest, key_id(private_key.public_key()), private_key.sign(message))


def write_signed_manifest(signed: SignedManifest, path: Path) -> None:
    """Write ``signed`` as JSON to ``path`` (atomically: temp file, then rename)."""
    document = {
        "bastion_signed_manifest": 1,
        "payload": signed.manifest.to_payload(),
        "signature": {
            "algorithm": signed.algorithm,
            "key_id": signed.key_id,
            "value": base64.b64encode(signed.signature).decode("ascii"),
        },
    }
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise UsageError(f"Cannot write the manifest {path}: {err.strerror}.") from None


def read_signed_manifest(path: Path) -> SignedManifest:
    """Parse a signed manifest file; the signature is *not* checked here.

    Raises
    ------
    UsageError
        When the file is missing or unreadable (exit code 2).
    ValueError
        When its content is malformed (a verification failure, not a usage error).
    """
    try:
        size = path.stat().st_size
        if size > _MAX_MANIFEST_BYTES:
            raise ValueError(f"the manifest is {size} bytes, over the {_MAX_MANIFEST_BYTES} limit")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"The manifest {path} does not exist; sign first (bastion artifacts sign) or "
            "point to it with --manifest."
        ) from None
    except OSError as err:
        raise UsageError(f"Cannot read the manifest {path}: {err.strerror}.") from None
    try:
        document = parse_strict(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"the manifest is not valid JSON ({err})") from None
    if not isinstance(document, dict) or set(document) != {
        "bastion_signed_manifest",
        "payload",
        "signature",
    }:
        raise ValueError("the file is not a Bastion signed manifest")
    if document["bastion_signed_manifest"] != 1:
        raise ValueError("unsupported signed-manifest version")
    sig = document["signature"]
    if not isinstance(sig, dict) or set(sig) != {"algorithm", "key_id", "value"}:
        raise ValueError("the signature block needs algorithm, key_id and value")
    if sig["algorithm"] != "ed25519" or not isinstance(sig["key_id"], str):
        raise ValueError(f"unsupported signature algorithm {sig['algorithm']!r}")
    try:
        value = base64.b64decode(str(sig["value"]), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signature value is not base64") from None
    manifest = Manifest.from_payload(document["payload"])
    return SignedManifest(manifest, sig["key_id"], value, sig["algorithm"])


def verify_signature(signed: SignedManifest, public_key: PublicKey) -> str | None:
    """Check the signature; return None when valid, else one sentence saying why not."""
    _require_ed25519(public_key)
    assert isinstance(public_key, ed25519.Ed25519PublicKey)
    given = key_id(public_key)
    if not hmac.compare_digest(given.encode(), signed.key_id.encode()):
        return (
            f"the manifest was signed by key {signed.key_id[:16]}…, not by the given key "
            f"{given[:16]}…"
        )
    try:
        public_key.verify(signed.signature, signed.message())
    except InvalidSignature:
        return "the signature does not match the manifest: the manifest was altered or forged"
    return None


def sign_path(
    path: Path,
    private_key: PrivateKey,
    *,
    manifest_path: Path | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    workers: int | None = None,
    exclude: Collection[str] = (),
    progress: Callable[[int], None] | None = None,
    on_listing: Callable[[Listing], None] | None = None,
) -> SignResult:
    """Hash ``path`` (a file or folder), sign the manifest and write it.

    The manifest goes to ``manifest_path`` or ``<path>.manifest.json``; when it lies
    inside the folder it is excluded from the hashing (and listed as excluded).
    """
    _require_ed25519(private_key)
    path = Path(path)
    target = Path(manifest_path) if manifest_path is not None else default_manifest_path(path)
    inside = relative_inside(path, target)
    excluded = {*exclude, inside} if inside else set(exclude)
    manifest = build_manifest(
        path,
        shard_size=shard_size,
        workers=workers,
        exclude=excluded,
        progress=progress,
        on_listing=on_listing,
    )
    signed = sign_manifest(manifest, private_key)
    write_signed_manifest(signed, target)
    payload_digest = hashlib.sha256(canonical_json(manifest.to_payload())).hexdigest()
    logger.info("signed %d files with key %s into %s", len(manifest.files), signed.key_id, target)
    return SignResult(target, manifest, signed.key_id, payload_digest)


def verify_path(
    path: Path,
    public_key: PublicKey,
    *,
    manifest_path: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_listing: Callable[[Listing], None] | None = None,
) -> VerifyResult:
    """Verify ``path`` against its signed manifest with ``public_key``.

    Returns a :class:`VerifyResult`; ``status`` is ``ok``, ``mismatch`` (with the
    changed, added and missing paths) or ``bad_signature`` (with the reason).

    Raises
    ------
    UsageError
        When the manifest or the path cannot be read, or the key is not Ed25519.
    """
    _require_ed25519(public_key)
    path = Path(path)
    source = Path(manifest_path) if manifest_path is not None else default_manifest_path(path)
    try:
        signed = read_signed_manifest(source)
    except UsageError:  # a ValueError too, but an I/O problem rather than a bad manifest
        raise
    except ValueError as err:
        return VerifyResult(VerifyStatus.BAD_SIGNATURE, f"{err}.", source)
    problem = verify_signature(signed, public_key)
    if problem is not None:
        return VerifyResult(VerifyStatus.BAD_SIGNATURE, problem + ".", source, key_id=signed.key_id)
    expected = signed.manifest
    actual = build_manifest(
        path,
        shard_size=expected.shard_size,
        workers=workers,
        exclude=expected.excluded,
        strict=False,
        progress=progress,
        on_listing=on_listing,
    )
    if actual.root_kind != expected.root_kind:
        diff = ManifestDiff((path.name,), (), ())
        reason = f"a {expected.root_kind} was signed but {path} is a {actual.root_kind}."
        return VerifyResult(
            VerifyStatus.MISMATCH,
            reason,
            source,
            key_id=signed.key_id,
            diff=diff,
            files_checked=len(actual.files),
        )
    diff = compare(expected, actual)
    if diff.ok:
        status, reason = VerifyStatus.OK, "the signature is valid and every file matches."
    else:
        status = VerifyStatus.MISMATCH
        reason = (
            f"the signature is valid but the files differ: {len(diff.modified)} modified, "
            f"{len(diff.added)} added, {len(diff.missing)} missing."
        )
    return VerifyResult(
        status, reason, source, key_id=signed.key_id, diff=diff, files_checked=len(actual.files)
    )
