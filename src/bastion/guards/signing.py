"""``output.signature``: Ed25519-signed answers a downstream system can check.

Each allowed answer gets a ``signature`` field: a signed document and its Ed25519
signature (Bernstein et al. 2012, "High-speed high-security signatures";
RFC 8032). The document is

.. code-block:: json

    {"v": 1, "alg": "Ed25519", "kid": "<key id>", "request_id": "...",
     "request_digest": "sha256:...", "model": "digits", "model_version": "3",
     "output": [[0.9, 0.1]], "timestamp": "2025-05-01T12:00:00.123456Z"}

and the signature is over its canonical JSON (:func:`bastion.guards.canonical.canonical_json`:
sorted keys, compact, ASCII), base64url-encoded. ``request_digest`` is SHA-256 over
the validated input array (:func:`~bastion.guards.canonical.request_digest` with the
model's input dtype; put ``input.validation`` in the pipeline so the inputs are that
array); behind :class:`~bastion.guards.Guarded` it is the digest the pipeline records
in the audit entry, which it hands to the *after* hooks in the
``x-bastion-input-digest`` header, so the request is not hashed twice.
:func:`verify_signed_output` — and ``bastion verify-response`` — check the
signature, that the response's ``outputs`` are the signed ones, and optionally the
request, model and freshness, so a consumer can prove the answer was not altered
between the model and itself (OWASP ML09, output integrity). The guard runs last
(order 90), after obfuscation, so it signs exactly what the caller receives.

Examples
--------
>>> import numpy as np
>>> from bastion.guards.base import GuardRequest, GuardResponse
>>> from bastion.guards.signing_keys import generate_signing_key
>>> key = generate_signing_key()
>>> signer = OutputSigner(key)
>>> x = np.array([[0.5, 0.25]], dtype=np.float32)
>>> req = GuardRequest(principal="p", model="digits", inputs=x)
>>> decision = signer.after(req, GuardResponse(np.array([[0.75, 0.25]])))
>>> response = {"outputs": [[0.75, 0.25]], **decision.payload.fields}
>>> verify_signed_output(response, key.public_key(), inputs=[[0.5, 0.25]]).model
'digits'
>>> response["outputs"] = [[0.25, 0.75]]
>>> verify_signed_output(response, key.public_key())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.guards.errors.SignatureInvalid: The response's outputs differ from the signed output...
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Action, Decision, Guard, GuardMeta, GuardRequest, GuardResponse
from bastion.guards.canonical import (
    STAMP_FORMAT,
    array_digest,
    b64url_decode,
    b64url_encode,
    canonical_json,
    canonical_json_str_keys,
    jsonable,
    request_digest,
    utc_stamp,
)
from bastion.guards.errors import SignatureInvalid
from bastion.guards.outcome import Extras
from bastion.guards.pipeline import (
    INPUT_DIGEST_HEADER,
    MODEL_VERSION_HEADER,
    REQUEST_ID_HEADER,
    digest_inputs,
)
from bastion.guards.signing_keys import key_id

__all__ = ["OutputSigner", "SignedOutput", "sign_document", "verify_signed_output"]

_FIELDS = (
    "v",
    "alg",
    "kid",
    "request_id",
    "request_digest",
    "model",
    "model_version",
    "output",
    "timestamp",
)
_CLOCK_SKEW_S = 60.0
_NUMERIC_KINDS = frozenset("biuf")  # dtype kinds whose tolist() is JSON numbers and booleans


def sign_document(document: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """Base64url Ed25519 signature over the canonical JSON of ``document``."""
    return b64url_encode(key.sign(canonical_json(dict(document)).encode("ascii")))


@dataclass(frozen=True)
class SignedOutput:
    """A verified signed output."""

    request_id: str
    request_digest: str
    model: str
    model_version: str
    output: Any
    timestamp: datetime
    kid: str


class OutputSigner(Guard):
    """Signs every returned answer with Ed25519 over request digest, model, output and time.

    Citation: Bernstein et al. 2012 (Ed25519); see the module docstring.

    Parameters
    ----------
    key : Ed25519PrivateKey
        The gateway's signing key.
    clock : callable
        UNIX time (tests replace it).
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="output.signature",
        title="Ed25519-signed outputs",
        catalog=CatalogRefs(owasp=["ML09"], atlas_mitigations=["AML.M0019"]),
        order=90,
    )

    def __init__(self, key: Ed25519PrivateKey, *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError("output.signature needs an Ed25519PrivateKey (see signing_keys).")
        self.key = key
        self.kid = key_id(key.public_key())
        self._clock = clock

    def document(self, request: GuardRequest, outputs: np.ndarray) -> dict[str, Any]:
        """The document that gets signed for this request and output.

        Raises
        ------
        UsageError
            If an output is NaN or infinite (canonical JSON has no spelling for it).
        """
        return self._document(request, jsonable(np.asarray(outputs)))

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        """Attach ``{"signature": {"signed": doc, "signature": sig}}`` to the response."""
        outputs = np.asarray(response.outputs)
        # Numeric arrays become JSON numbers in one call; a non-finite one is refused
        # when the document is encoded, with the same UsageError as document() raises.
        output = outputs.tolist() if outputs.dtype.kind in _NUMERIC_KINDS else jsonable(outputs)
        doc = self._document(request, output)
        signature = b64url_encode(self.key.sign(_signed_text(doc)))
        return Decision(
            Action.ALLOW,
            payload=Extras(
                headers={}, fields={"signature": {"signed": doc, "signature": signature}}
            ),
        )

    def _document(self, request: GuardRequest, output: Any) -> dict[str, Any]:
        headers = request.headers
        return {
            "v": 1,
            "alg": "Ed25519",
            "kid": self.kid,
            "request_id": headers.get(REQUEST_ID_HEADER, ""),
            "request_digest": headers.get(INPUT_DIGEST_HEADER) or _digest(request.inputs),
            "model": request.model,
            "model_version": headers.get(MODEL_VERSION_HEADER, ""),
            "output": output,
            "timestamp": utc_stamp(self._clock()),
        }


def _signed_text(doc: dict[str, Any]) -> bytes:
    """The canonical JSON of a document built by :meth:`OutputSigner._document`, as bytes.

    Its keys are ``str`` and its output plain lists, so the unchecked encoder applies
    when the fields taken from the request are plain ``str`` too (always, behind the
    pipeline); a non-finite output is refused by :func:`canonical_json`, which names it.
    """
    if (
        type(doc["request_id"]) is str
        and type(doc["model"]) is str
        and type(doc["model_version"]) is str
        and type(doc["request_digest"]) is str
    ):
        try:
            return canonical_json_str_keys(doc).encode("ascii")
        except Exception:  # canonical_json below raises the error that names the value
            pass
    return canonical_json(doc).encode("ascii")


def _digest(inputs: Any) -> str:
    """The request digest when the pipeline did not supply it (the signer used alone)."""
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "iuf":
        return array_digest(inputs)
    return digest_inputs(inputs)


def _fail(message: str) -> SignatureInvalid:
    return SignatureInvalid(message)


def verify_signed_output(
    response: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    *,
    inputs: Any | None = None,
    dtype: str = "float32",
    model: str | None = None,
    max_age_s: float | None = None,
    now: float | None = None,
) -> SignedOutput:
    """Check a signed response; return what was signed.

    Parameters
    ----------
    response : mapping
        The response body (with ``signature`` and usually ``outputs``), or just its
        ``signature`` object.
    public_key : Ed25519PublicKey
        The gateway's public key.
    inputs : array-like or None
        The rows that were sent; when given, their digest must match.
    dtype : str
        The model's input dtype, for the digest.
    model : str or None
        When given, the signed model id must equal it.
    max_age_s : float or None
        When given, the signature must be at most this old (60 s of clock skew allowed).
    now : float or None
        UNIX time to check freshness against (default: now).

    Raises
    ------
    SignatureInvalid
        When anything does not check out; the message says what.
    """
    if not isinstance(response, Mapping):
        raise _fail("The response is not a JSON object.")
    envelope = response if "signed" in response else response.get("signature")
    if not isinstance(envelope, Mapping) or not isinstance(envelope.get("signed"), Mapping):
        raise _fail("The response carries no signature object with a 'signed' document.")
    doc = dict(envelope["signed"])
    missing = [f for f in _FIELDS if f not in doc]
    if missing:
        raise _fail(f"The signed document lacks {', '.join(missing)}.")
    if doc["v"] != 1 or doc["alg"] != "Ed25519":
        raise _fail(f"Unsupported signature version/algorithm {doc['v']!r}/{doc['alg']!r}.")
    if doc["kid"] != key_id(public_key):
        raise _fail(
            f"The output was signed with key {doc['kid']!r}, not with the given public key "
            f"({key_id(public_key)!r})."
        )
    signature = envelope.get("signature")
    try:
        raw = b64url_decode(signature) if isinstance(signature, str) else b""
        public_key.verify(raw, canonical_json(doc).encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError, UsageError):
        raise _fail("The signature does not verify: the signed document was altered.") from None
    if "outputs" in response and response is not envelope:
        try:
            same = canonical_json(response["outputs"]) == canonical_json(doc["output"])
        except (UsageError, TypeError, ValueError):
            same = False
        if not same:
            raise _fail("The response's outputs differ from the signed output; they were altered.")
    if inputs is not None and request_digest(inputs, dtype) != doc["request_digest"]:
        raise _fail("The signed output is for different inputs than the ones given.")
    if model is not None and doc["model"] != model:
        raise _fail(f"The output was signed for model {doc['model']!r}, not {model!r}.")
    try:
        stamp = datetime.strptime(doc["timestamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise _fail(f"The signed timestamp {doc['timestamp']!r} is malformed.") from None
    if max_age_s is not None:
        age = (time.time() if now is None else now) - stamp.timestamp()
        if age > max_age_s or age < -_CLOCK_SKEW_S:
            raise _fail(
                f"The signed output is {age:.0f} s old; at most {max_age_s:g} s is accepted."
            )
    return SignedOutput(
        request_id=str(doc["request_id"]),
        request_digest=str(doc["request_digest"]),
        model=str(doc["model"]),
        model_version=str(doc["model_version"]),
        output=doc["output"],
        timestamp=stamp,
        kid=str(doc["kid"]),
    )
