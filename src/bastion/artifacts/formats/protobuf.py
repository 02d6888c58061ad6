"""A minimal protobuf wire-format reader over a byte window (no schema, no copies).

It yields ``(field number, wire type, value)`` where a varint is an ``int``, a
length-delimited field is its ``(start, end)`` span (to be walked as a sub-message or
decoded as text by the caller) and fixed-width fields are raw ``bytes``. Groups
(wire types 3 and 4, unused by ONNX) and malformed input raise :class:`WireError`.

Examples
--------
>>> from bastion.artifacts.context import Window
>>> data = bytes([0x08, 0x07, 0x12, 0x02]) + b"hi"
>>> list(fields(Window(data, 0, len(data)), 0, len(data)))
[(1, 0, 7), (2, 2, (4, 6))]
"""

from __future__ import annotations

from collections.abc import Iterator

from bastion.artifacts.context import Window

__all__ = ["WireError", "fields"]

_MAX_FIELDS = 50_000_000


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(w: Window, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    buf, base = w.buf, w.start
    while True:
        if pos >= end or shift > 63:
            raise WireError("a varint is truncated or too long")
        byte = buf[base + pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(
    w: Window, start: int, end: int
) -> Iterator[tuple[int, int, int | bytes | tuple[int, int]]]:
    """The fields of the message in ``w[start:end]`` (offsets relative to the window)."""
    pos, count = start, 0
    while pos < end:
        count += 1
        if count > _MAX_FIELDS:
            raise WireError("too many fields")
        key, pos = _varint(w, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(w, pos, end)
            yield number, wire, value
        elif wire == 2:
            size, pos = _varint(w, pos, end)
            if pos + size > end:
                raise WireError("a length-delimited field runs past its message")
            yield number, wire, (pos, pos + size)
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise WireError("a fixed-width field is truncated")
            yield number, wire, w.head(size, pos)
            pos += size
        else:
            raise WireError(f"unsupported wire type {wire}")
