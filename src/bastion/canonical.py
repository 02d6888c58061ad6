"""Canonical JSON (RFC 8785, JCS): one byte string per value, so a signature means one thing.

A signature or a hash chain covers bytes, not objects. Two writers that serialise the
same value must produce the same bytes, and a verifier must be able to rebuild those
bytes from a parsed document whatever whitespace or key order it arrived in. Every
signed or hashed structure in Bastion -- artifact manifests, signed model outputs,
audit-log entries -- goes through :func:`canonical_json`, an implementation of the
JSON Canonicalization Scheme (RFC 8785):

* objects with string keys sorted by their UTF-16 code units, no whitespace;
* strings as UTF-8 with only the escapes JSON requires (no lone surrogates);
* integers exactly, within ±(2**53 - 1), the range a JSON number keeps exact;
* other numbers as ECMAScript's ``Number.prototype.toString`` writes them (shortest
  round-trip digits; ``1.0`` is ``1``, ``1e-7`` is ``1e-7``, ``1e21`` is ``1e+21``);
  NaN and infinities are refused, since JSON has no spelling for them.

NumPy arrays and scalars are accepted and written as the nested lists and numbers
they hold (:func:`jsonable`).

:func:`parse_strict` is the matching reader for untrusted documents: it refuses
duplicate keys (where two parsers could disagree on which one wins), ``NaN`` and
``Infinity``, and floats unless asked to accept them.

Examples
--------
>>> canonical_json({"b": [1, True, None], "a": "é"})
b'{"a":"\\xc3\\xa9","b":[1,true,null]}'
>>> canonical_json([0.5, 2.0, 1e21, 1e-7, -0.0, 123456789.125])
b'[0.5,2,1e+21,1e-7,0,123456789.125]'
>>> parse_strict('{"a": 1, "a": 2}')
Traceback (most recent call last):
...
ValueError: duplicate key 'a' in JSON object
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["canonical_json", "es_number", "jsonable", "parse_strict"]

_MAX_SAFE_INT = 2**53 - 1


def jsonable(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars turned into plain Python lists and numbers.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"p": np.array([0.25, 1.0], dtype=np.float32), "n": np.int64(3)})
    {'p': [0.25, 1.0], 'n': 3}
    """
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def es_number(value: float) -> str:
    """``value`` as ECMAScript's ``Number.prototype.toString`` writes it (RFC 8785 §3.2.2.3).

    Raises
    ------
    ValueError
        If ``value`` is NaN or infinite.

    Examples
    --------
    >>> [es_number(v) for v in (1.0, 0.1, 1e21, 1e20, 1.5e-7, 0.000001, 5e-324)]
    ['1', '0.1', '1e+21', '100000000000000000000', '1.5e-7', '0.000001', '5e-324']
    """
    if not math.isfinite(value):
        raise ValueError(f"the non-finite number {value!r} has no canonical JSON form")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + es_number(-value)
    # repr gives the shortest digits that round-trip; only the layout differs from ES.
    mantissa, _, exp_text = repr(value).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # position of the decimal point relative to the first significant digit
    point = len(whole) + (int(exp_text) if exp_text else 0)
    point -= len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exponent = f"{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{exponent}"


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", errors="strict")


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError(f"integer {value} is outside the range canonical JSON keeps exact")
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(es_number(value))
    elif isinstance(value, str):
        value.encode("utf-8", errors="strict")  # refuses lone surrogates
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON object keys must be strings; got {key!r}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            _encode(key, out)
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"canonical JSON cannot encode a {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` to canonical JSON (RFC 8785), UTF-8 encoded.

    Parameters
    ----------
    value
        Nested dicts (string keys), lists/tuples, strings, numbers, booleans, None,
        NumPy arrays and scalars.

    Returns
    -------
    bytes
        The canonical encoding.

    Raises
    ------
    TypeError
        For a type JSON cannot hold or a non-string object key.
    ValueError
        For NaN or an infinity, an integer beyond ±(2**53 - 1), or a string that is
        not valid Unicode.
    """
    out: list[str] = []
    _encode(jsonable(value), out)
    return "".join(out).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r} in JSON object")
        result[key] = value
    return result


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text} is not allowed here")


def parse_strict(text: str | bytes, *, floats: bool = False) -> Any:
    """Parse JSON that may be hostile: no duplicate keys, NaN or Infinity.

    Parameters
    ----------
    text : str or bytes
    floats : bool
        Accept non-integer numbers (manifests have none, signed outputs do).

    Raises
    ------
    ValueError
        If the text is not JSON or uses anything outside what is allowed.
    """
    return json.loads(
        text,
        object_pairs_hook=_no_duplicates,
        parse_float=float if floats else _no_float,
        parse_constant=_no_float,
    )
