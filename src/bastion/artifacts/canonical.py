"""Canonical JSON: one byte string per value, so a signature means one thing.

A signature covers bytes, not objects. Two writers that serialise the same manifest
must produce the same bytes, and a verifier must be able to rebuild those bytes from
the parsed file whatever whitespace or key order it arrived in. This module writes
the subset of the JSON Canonicalization Scheme (RFC 8785, JCS) that manifests use:

* objects with string keys sorted by their UTF-16 code units (what JCS prescribes);
* arrays, strings, ``true``/``false``/``null``;
* integers within ±(2**53 - 1), the range JCS numbers represent exactly.

Floats are refused rather than approximated, strings must be valid Unicode (no lone
surrogates), and there is no whitespace. On that subset the output is byte-for-byte
what any JCS implementation writes.

:func:`parse_strict` is the matching reader for untrusted files: it refuses duplicate
keys (where two parsers could disagree on which one wins), floats, ``NaN`` and
``Infinity``.

Examples
--------
>>> canonical_json({"b": [1, True, None], "a": "é"})
b'{"a":"\\xc3\\xa9","b":[1,true,null]}'
>>> parse_strict('{"a": 1, "a": 2}')
Traceback (most recent call last):
...
ValueError: duplicate key 'a' in JSON object
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json", "parse_strict"]

_MAX_SAFE_INT = 2**53 - 1


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
    """Serialise ``value`` to canonical JSON (RFC 8785 subset), UTF-8 encoded.

    Parameters
    ----------
    value
        Nested dicts (string keys), lists/tuples, strings, integers, booleans, None.

    Returns
    -------
    bytes
        The canonical encoding.

    Raises
    ------
    TypeError
        For a float or any other type outside the subset.
    ValueError
        For an integer beyond ±(2**53 - 1) or a string that is not valid Unicode.
    """
    out: list[str] = []
    _encode(value, out)
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


def parse_strict(text: str | bytes) -> Any:
    """Parse JSON that may be hostile: no duplicate keys, floats, NaN or Infinity.

    Raises
    ------
    ValueError
        If the text is not JSON or uses anything outside the canonical subset.
    """
    return json.loads(
        text,
        object_pairs_hook=_no_duplicates,
        parse_float=_no_float,
        parse_constant=_no_float,
    )
