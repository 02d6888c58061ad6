"""The OpenSSF model-signing format, through the ``model-signing`` package, offline.

The OpenSSF / Sigstore ``model-signing`` project (``pip install model-signing``)
signs a model as a Sigstore bundle: a DSSE envelope around an in-toto statement whose
predicate lists every file's digest. Bastion uses the package itself, so what it
writes is what the ``model_signing`` command line reads and the other way round:

* :func:`sign_openssf` signs with an elliptic-curve private key (P-256, P-384 or
  P-521; ``bastion artifacts keygen --algorithm ecdsa-p256`` makes one) using the
  package's file serialisation (one SHA-256 per file, ``.git*`` paths ignored, links
  refused, the signature file excluded when it lies inside the folder);
* :func:`verify_openssf` verifies such a bundle with the matching public key. The
  package's verdict is authoritative. When it reports a content mismatch (which it
  only does after the signature checked out), Bastion reads the signed statement
  from the same bytes the package verified and re-hashes the model with the same
  serialisation settings, to name each modified, added and missing file.

What does *not* work offline, and is therefore not offered: Sigstore keyless signing
and verification (an OIDC login, the Fulcio certificate authority and the Rekor
transparency log are all network services) and certificate-chain signing that needs
revocation checks. Ed25519 keys are not accepted by the package's private-key signer.

Examples
--------
>>> openssf_available() in (True, False)
True
"""

from __future__ import annotations

import base64
import json
import logging
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.artifacts.keys import (
    PrivateKey,
    PublicKey,
    key_algorithm,
    key_id,
    load_private_key,
    load_public_key,
)
from bastion.artifacts.manifest import ManifestDiff
from bastion.artifacts.signing import (
    VerifyResult,
    VerifyStatus,
    default_manifest_path,
    relative_inside,
)
from bastion.errors import UsageError

__all__ = [
    "OPENSSF_SUFFIX",
    "OpenSSFSignResult",
    "is_openssf_bundle",
    "openssf_available",
    "sign_openssf",
    "verify_openssf",
]

logger = logging.getLogger(__name__)

OPENSSF_SUFFIX = ".sig"
"""Default signature file: ``<model>.sig`` next to the model."""
_MAX_BUNDLE_BYTES = 256 * 1024 * 1024
_SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def openssf_available() -> bool:
    """True when the ``model_signing`` package (and its imports) can be loaded."""
    try:
        import model_signing  # noqa: F401
    except ImportError:
        return False
    return True


def _package() -> Any:
    try:
        import model_signing
    except ImportError as err:
        raise UsageError(
            f"The OpenSSF format needs the model-signing package ({err}); install it with "
            "`pip install model-signing pyopenssl`, or use the default Bastion format."
        ) from None
    return model_signing


@dataclass(frozen=True)
class OpenSSFSignResult:
    """Where the bundle went and which key signed it."""

    signature_path: Path
    key_id: str


def is_openssf_bundle(document: Any) -> bool:
    """True for a parsed JSON document that looks like a Sigstore bundle."""
    return isinstance(document, dict) and "dsseEnvelope" in document and "mediaType" in document


def _check_ec(key: PrivateKey | PublicKey, path: Path) -> None:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and (
        key.curve.name in _SUPPORTED_CURVES
    ):
        return
    raise UsageError(
        f"The OpenSSF format signs with ECDSA P-256/384/521 keys, but {path} is an "
        f"{key_algorithm(key)} key; make one with "
        "`bastion artifacts keygen OUT --algorithm ecdsa-p256`."
    )


def sign_openssf(
    path: Path,
    key_path: Path,
    *,
    signature_path: Path | None = None,
    passphrase: bytes | None = None,
    exclude: Collection[str] = (),
) -> OpenSSFSignResult:
    """Sign ``path`` (file or folder) into an OpenSSF model-signing bundle.

    Raises
    ------
    UsageError
        For a missing path, a non-EC key, a wrong passphrase, links in the folder or
        an unreadable file.
    """
    ms = _package()
    path, key_path = Path(path), Path(key_path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; check the path.")
    private_key = load_private_key(key_path, passphrase=passphrase)
    _check_ec(private_key, key_path)
    target = signature_path or default_manifest_path(path, OPENSSF_SUFFIX)
    ignored = list(exclude)
    inside = relative_inside(path, target)
    if inside:
        ignored.append(inside)
    hashing = ms.hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)
    config = ms.signing.Config().use_elliptic_key_signer(private_key=key_path, password=passphrase)
    try:
        config.set_hashing_config(hashing).sign(path, target)
    except (ValueError, OSError) as err:
        raise UsageError(f"model-signing could not sign {path}: {err}") from None
    kid = key_id(private_key.public_key())
    logger.info("signed %s in the OpenSSF format with key %s", path, kid)
    return OpenSSFSignResult(Path(target), kid)


def _read_bundle(source: Path) -> bytes:
    try:
        size = source.stat().st_size
        if size > _MAX_BUNDLE_BYTES:
            raise UsageError(f"{source} is {size} bytes, too large for a signature bundle.")
        return source.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"The signature {source} does not exist; point to it with --manifest."
        ) from None
    except OSError as err:
        raise UsageError(f"Cannot read the signature {source}: {err.strerror}.") from None


def _signed_statement(raw: bytes) -> dict[str, Any]:
    envelope = json.loads(raw)["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    if not isinstance(statement, dict):
        raise ValueError("the signed statement is not a JSON object")
    return statement


def _file_of(name: str, method: str) -> str:
    return name.rsplit(":", 2)[0] if method == "shards" else name


def _diff(ms: Any, path: Path, statement: dict[str, Any]) -> ManifestDiff:
    """Name changed files: signed resources versus a fresh hash with the same settings."""
    args = statement["predicate"]["serialization"]
    method = args["method"]
    config = ms.hashing.Config().set_ignored_paths(
        paths=list(args.get("ignore_paths", [])), ignore_git_paths=False
    )
    common = {"hashing_algorithm": args["hash_type"], "allow_symlinks": args["allow_symlinks"]}
    if method == "shards":
        config.use_shard_serialization(shard_size=args["shard_size"], **common)
    else:
        config.use_file_serialization(**common)
    expected: dict[str, list[str]] = {}
    for resource in statement["predicate"]["resources"]:
        expected.setdefault(_file_of(resource["name"], method), []).append(resource["digest"])
    actual: dict[str, list[str]] = {}
    for item in config.hash(path).resource_descriptors():
        actual.setdefault(_file_of(item.identifier, method), []).append(item.digest.digest_hex)
    modified = sorted(
        name
        for name in expected.keys() & actual.keys()
        if sorted(expected[name]) != sorted(actual[name])
    )
    return ManifestDiff(
        tuple(modified),
        tuple(sorted(actual.keys() - expected.keys())),
        tuple(sorted(expected.keys() - actual.keys())),
    )


def verify_openssf(
    path: Path, public_key_path: Path, *, signature_path: Path | None = None
) -> VerifyResult:
    """Verify ``path`` against an OpenSSF bundle signed with an EC private key.

    Returns a :class:`~bastion.artifacts.signing.VerifyResult` (format ``openssf``).

    Raises
    ------
    UsageError
        When the model, the bundle or the key cannot be read, or the key is not EC.
    """
    ms = _package()
    path, public_key_path = Path(path), Path(public_key_path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; check the path.")
    public_key = load_public_key(public_key_path)
    _check_ec(public_key, public_key_path)
    source = signature_path or default_manifest_path(path, OPENSSF_SUFFIX)
    raw = _read_bundle(source)
    kid = key_id(public_key)

    def result(status: VerifyStatus, reason: str, diff: ManifestDiff | None = None) -> VerifyResult:
        return VerifyResult(status, reason, source, "openssf", kid, diff)

    # The package reads a copy of exactly the bytes parsed below, so the statement
    # used to name changed files is the one whose signature the package checked.
    with tempfile.TemporaryDirectory(prefix="bastion-openssf-") as folder:
        copy = Path(folder) / "bundle.sig"
        copy.write_bytes(raw)
        verifier = ms.verifying.Config().use_elliptic_key_verifier(public_key=public_key_path)
        try:
            verifier.verify(path, copy)
        except InvalidSignature:
            return result(
                VerifyStatus.BAD_SIGNATURE,
                "the bundle's signature is not valid for this key: it was altered or "
                "signed by another key.",
            )
        except OSError as err:
            raise UsageError(f"Cannot read {path}: {err.strerror or err}.") from None
        except ValueError as err:
            message = str(err)
            if not message.startswith("Signature mismatch"):
                return result(
                    VerifyStatus.BAD_SIGNATURE, f"model-signing refused to verify: {message}"
                )
        except Exception as err:  # a third-party boundary: anything else fails closed
            return result(
                VerifyStatus.BAD_SIGNATURE, f"the bundle could not be verified ({err!r})."
            )
        else:
            return result(
                VerifyStatus.OK,
                "the signature is valid and every file matches.",
                ManifestDiff((), (), ()),
            )
    # Reached only when the package reported "Signature mismatch", which it does after the
    # signature checked out (a future wording change would fail closed, as bad_signature).
    try:
        diff = _diff(ms, path, _signed_statement(raw))
    except Exception as err:  # naming the files is a courtesy; the verdict stands
        return result(VerifyStatus.MISMATCH, f"the files differ from the signed ones ({err!r}).")
    reason = (
        f"the signature is valid but the files differ: {len(diff.modified)} modified, "
        f"{len(diff.added)} added, {len(diff.missing)} missing."
    )
    return result(VerifyStatus.MISMATCH, reason, diff)
