"""Canonical encodings shared by signed outputs and the audit log.

Two parties must produce byte-identical text for a signature or a hash chain to
check out, so everything signed or hashed goes through :func:`canonical_json`: keys
sorted, no insignificant whitespace, ASCII only, no NaN or infinities, floats in
Python's shortest round-trip form. Arrays become nested lists of Python numbers.

A request is identified by :func:`request_digest`: SHA-256 over the array's dtype,
shape and little-endian C-order bytes, so a client that casts its inputs to the
model's dtype (``float32`` unless the input spec says otherwise) computes the same
digest the server signed.

Examples
--------
>>> import numpy as np
>>> canonical_json({"b": 1, "a": [0.5, 2]})
'{"a":[0.5,2],"b":1}'
>>> request_digest([[0.0, 1.0]]) == request_digest(np.array([[0, 1]], dtype=np.float32))
True
>>> request_digest([[0.0, 1.0]])[:7]
'sha256:'
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

import numpy as np

from bastion.errors import UsageError

__all__ = [
    "array_digest",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "jsonable",
    "request_digest",
    "sha256_hex",
]


def jsonable(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars turned into plain Python numbers and lists.

    Raises
    ------
    UsageError
        If a float is NaN or infinite (canonical JSON has no spelling for them).
    """
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(
                f"Cannot encode the non-finite number {value!r} canonically; outputs and "
                "audit fields must be finite."
            )
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Deterministic JSON text for signing and hashing (sorted keys, compact, ASCII)."""
    return json.dumps(
        jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def sha256_hex(data: str | bytes) -> str:
    """Hex SHA-256 of ``data`` (text is encoded as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def array_digest(arr: np.ndarray) -> str:
    """``sha256:<hex>`` over dtype, shape and little-endian C-order bytes of ``arr``."""
    a = np.ascontiguousarray(arr)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not _LITTLE):
        a = a.astype(a.dtype.newbyteorder("<"))
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{','.join(str(s) for s in a.shape)}|".encode("ascii"))
    h.update(a.tobytes(order="C"))
    return f"sha256:{h.hexdigest()}"


def request_digest(inputs: Any, dtype: str = "float32") -> str:
    """The digest a signed output names for the request whose validated inputs were ``inputs``.

    Parameters
    ----------
    inputs : array-like
        The batch as sent, e.g. a list of rows.
    dtype : str
        The model's input dtype (its input spec's ``dtype``).
    """
    try:
        arr = np.asarray(inputs, dtype=np.dtype(dtype))
    except (TypeError, ValueError) as err:
        raise UsageError(
            f"Cannot compute a request digest: the inputs are not a rectangular array of "
            f"numbers ({err}); pass the same rows that were sent to the model."
        ) from err
    return array_digest(arr)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url text of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Bytes of unpadded (or padded) base64url ``text``; raises ``ValueError`` if malformed."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_LITTLE = np.little_endian
