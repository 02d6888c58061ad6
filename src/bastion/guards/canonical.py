"""Canonical encodings shared by signed outputs and the audit log.

Two parties must produce byte-identical text for a signature or a hash chain to
check out, so everything signed or hashed goes through :func:`canonical_json`: keys
sorted, no insignificant whitespace, ASCII only, no NaN or infinities, floats in
Python's shortest round-trip form. Arrays become nested lists of Python numbers.
Callers that build the value with ``str`` keys themselves (the signer, the audit
log) use :func:`canonical_json_str_keys`, the same text without the walk that checks
the keys. Signed and audited times are written by :func:`utc_stamp`.

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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import numpy as np

from bastion.errors import UsageError

__all__ = [
    "array_digest",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "canonical_json_str_keys",
    "jsonable",
    "request_digest",
    "sha256_hex",
    "utc_stamp",
]


def jsonable(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars turned into plain Python numbers and lists.

    Dict keys become strings; tuples become lists.

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
    """Deterministic JSON text for signing and hashing (sorted keys, compact, ASCII).

    The text is ``json.dumps`` of :func:`jsonable` of ``value`` with sorted keys, no
    whitespace, ASCII only and no NaN; it is produced by one pass of the C encoder
    (NumPy values are converted as they are met), falling back to :func:`jsonable`
    only for what that pass cannot encode the same way: dicts with non-string keys,
    NumPy strings, non-finite numbers (the :class:`UsageError` then names the number)
    and values JSON has no form for.

    Raises
    ------
    UsageError
        If a float is NaN or infinite.
    TypeError
        If a value has no JSON form.
    """
    if _encodes_like_reference(value):
        try:
            return canonical_json_str_keys(value)
        except Exception:  # the reference path below raises what callers expect
            pass
    return _dumps(jsonable(value))


def canonical_json_str_keys(value: Any) -> str:
    """:func:`canonical_json` of a value whose dict keys are all exactly ``str``.

    The fast path for callers that build the value themselves (signed documents, audit
    entries): it skips the walk that looks for other keys. The caller guarantees that
    every dict key in ``value`` is of type ``str``. NumPy arrays and scalars are
    converted as they are met, except that a NumPy string (``np.str_``) is written
    whole, where :func:`canonical_json` drops its trailing NULs as :func:`jsonable`
    does: a text without a ``\\u0000`` escape is always the same as
    :func:`canonical_json`'s.

    Raises
    ------
    ValueError
        If a float is NaN or infinite (:func:`canonical_json` turns this into the
        :class:`UsageError` that names the number).
    TypeError
        If a value has no JSON form.
    """
    return "".join(_encode(value, 0))


def _numpy_default(value: Any) -> Any:
    """The JSON-encodable form of a NumPy array or scalar (the encoder's ``default``)."""
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype.kind in _PLAIN_KINDS else jsonable(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encodes_like_reference(value: Any) -> bool:
    """Whether the C encoder writes ``value`` as ``json.dumps(jsonable(value))`` would.

    Two things it writes differently: dict keys that are not ``str`` (numbers,
    booleans, None), which :func:`jsonable` turns into ``str`` first, and NumPy
    strings, which are ``str`` to the encoder but lose trailing NULs in
    :func:`jsonable`. This walks dicts, lists and tuples; a list of scalars is checked
    by the set of its element types, without a Python loop per element. A container
    met twice (shared or circular) also answers False: the reference path then gives
    the same text, or the same ``RecursionError``, as before.
    """
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not _STR_ONLY.issuperset(map(type, item)):
                return False
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        elif isinstance(item, np.str_):
            return False
        else:
            continue
        if id(item) in seen:
            return False
        seen.add(id(item))
        if not _SCALARS.issuperset(map(type, children)):
            stack.extend(c for c in children if type(c) not in _SCALARS)
    return True


def _dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
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


def utc_stamp(ts: float) -> str:
    """UNIX time ``ts`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC), the form signed and audited.

    The same text as ``datetime.fromtimestamp(ts, UTC).strftime(STAMP_FORMAT)``
    (microseconds rounded half to even), with the date and time of the last whole
    second formatted kept: a request then pays for one rounding and one f-string.

    Examples
    --------
    >>> utc_stamp(1_750_000_000.25)
    '2025-06-15T15:06:40.250000Z'
    """
    frac, whole = math.modf(ts)
    if not 0 <= ts < math.inf:
        return datetime.fromtimestamp(ts, UTC).strftime(STAMP_FORMAT)
    second = int(whole)
    micros = round(frac * 1e6)  # what datetime.fromtimestamp does, with the carry below
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    return f"{_second_text(second)}.{micros:06d}Z"


@lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime(_SECOND_FORMAT)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url text of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Bytes of unpadded (or padded) base64url ``text``; raises ``ValueError`` if malformed."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_LITTLE = np.little_endian
_SECOND_FORMAT = "%Y-%m-%dT%H:%M:%S"
STAMP_FORMAT = _SECOND_FORMAT + ".%fZ"
"""``strftime`` format of signed and audited timestamps (:func:`utc_stamp`)."""
_PLAIN_KINDS = frozenset("biuf")  # dtype kinds whose ``tolist`` is all JSON numbers/booleans
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR_ONLY = frozenset({str})


def _make_encoder() -> Callable[[Any, int], Sequence[str]]:
    """One reusable encoder with the canonical settings (``json.dumps`` builds one per call).

    Circular references are not tracked (they end in ``RecursionError``, as in
    :func:`jsonable`), so the encoder keeps no state between calls.
    """
    if c_make_encoder is not None:
        encoder: Callable[[Any, int], Sequence[str]] = c_make_encoder(
            None, _numpy_default, encode_basestring_ascii, None, ":", ",", True, False, False
        )
        return encoder
    slow = json.JSONEncoder(
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
        check_circular=False,
        default=_numpy_default,
    )
    return lambda value, _level: (slow.encode(value),)


_encode = _make_encoder()
