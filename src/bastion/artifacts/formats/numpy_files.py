"""NumPy ``.npy`` files (and the members of ``.npz`` archives).

The header is a Python literal, read with :func:`ast.literal_eval` (never ``eval``).
An array of plain numbers must hold exactly ``prod(shape) * itemsize`` bytes: its bytes
are hashed, not parsed; extra bytes are an anomaly (hidden data), missing ones mean a
truncated file. An array with Python objects is a pickle after the header, which
``numpy.load(allow_pickle=True)`` would unpickle: it is scanned like any pickle.

Examples
--------
>>> import io, numpy as np
>>> from bastion.artifacts.scanner import scan_bytes
>>> buf = io.BytesIO(); np.save(buf, np.arange(6.0).reshape(2, 3))
>>> r = scan_bytes(buf.getvalue())
>>> r.formats, r.safe
(['npy'], True)
"""

from __future__ import annotations

import ast
import math
import struct

import numpy as np

from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category

__all__ = ["scan_npy"]


def _header(
    ctx: ScanContext, w: Window, member: tuple[str, ...]
) -> tuple[dict[str, object], int] | None:
    head = w.head(12)
    major = head[6] if len(head) > 6 else 0
    if major == 1 and len(head) >= 10:
        hlen, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3) and len(head) >= 12:
        hlen, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        ctx.issue(
            Category.UNPROVABLE,
            f"unsupported .npy version {major}; could not be proven safe",
            member,
        )
        return None
    if hlen > ctx.limits.max_header_bytes or start + hlen > w.size:
        ctx.issue(
            Category.UNPROVABLE,
            "the .npy header is truncated or too large; could not be proven safe",
            member,
        )
        return None
    text = w.head(hlen, start).decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"the .npy header is not a literal ({err}); could not be proven safe",
            member,
        )
        return None
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        ctx.issue(
            Category.UNPROVABLE, "the .npy header lacks descr, fortran_order or shape", member
        )
        return None
    return header, start + hlen


def scan_npy(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Check one ``.npy`` stream (see the module notes)."""
    from bastion.artifacts.formats.pickles import scan_pickle

    parsed = _header(ctx, w, member)
    if parsed is None:
        return
    header, data_start = parsed
    shape = header["shape"]
    try:
        dtype = np.dtype(header["descr"])  # type: ignore[call-overload]
    except (TypeError, ValueError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"the .npy dtype is not valid ({err}); could not be proven safe",
            member,
        )
        return
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        ctx.issue(Category.UNPROVABLE, "the .npy shape is not a tuple of sizes", member)
        return
    data = w.sub(data_start, w.size)
    if dtype.hasobject:
        ctx.format("npy-object")
        ctx.note("an object array (a pickle after the .npy header) was scanned as a pickle")
        scan_pickle(ctx, data, member, depth=depth + 1)
        return
    expected = math.prod(shape) * dtype.itemsize
    if data.size < expected:
        ctx.issue(
            Category.UNPROVABLE,
            f"the array needs {expected} bytes but the file has {data.size} (truncated)",
            member,
            offset=data_start,
        )
    elif data.size > expected:
        from bastion.artifacts.formats.pickles import trial

        ctx.issue(
            Category.CONTAINER_ANOMALY,
            f"{data.size - expected} byte(s) follow the array's data (hidden content)",
            member,
            offset=data_start + expected,
        )
        trial(ctx, w, data_start + expected, member, "the bytes after the array, read as a pickle")
