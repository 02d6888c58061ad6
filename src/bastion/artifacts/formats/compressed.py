"""Compressed streams: gzip, bz2, xz, lzma-alone, zlib (joblib), joblib's old ``ZF``
format and lz4 (when the ``lz4`` package is installed).

Decompression is incremental and bounded (:class:`~bastion.artifacts.limits.Limits`:
total bytes and expansion ratio); the output is spooled to a temporary file and mapped,
then scanned like any other stream. Concatenated gzip members are all read (as
:mod:`gzip` does); bytes after the end of a stream are an anomaly.

Examples
--------
>>> import gzip, pickle
>>> from bastion.artifacts.scanner import scan_bytes
>>> report = scan_bytes(gzip.compress(b"cbuiltins\\nexec\\n(S'x=1'\\ntR."))
>>> report.formats, report.issues[0].global_name
(['gzip', 'pickle'], 'builtins:exec')
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from bastion.artifacts.context import Decompressor, ScanContext, Window
from bastion.artifacts.issues import Category

__all__ = ["CODECS", "scan_compressed"]

CODECS = ("gzip", "bz2", "xz", "lzma", "zlib", "joblib-zfile", "lz4")
_OUT = 1 << 20
_WEAK_MAGIC = ("zlib", "lzma")
_ZFILE_HEADER = 2 + 19  # b"ZF" + the hex length padded to 19 characters
#: Codecs whose readers go on to a following stream (``gzip`` members, lz4 frames as
#: ``lz4.frame.LZ4FrameFile`` reads them for joblib), with the magic that starts one.
_MULTI_STREAM = {"gzip": b"\x1f\x8b", "lz4": b"\x04\x22\x4d\x18"}


class _Codec:
    """A restartable decompressor with the max-length API of zlib/bz2/lzma."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.d = self._new()
        self.extra = b""

    def _new(self) -> Any:
        if self.fmt == "gzip":
            return zlib.decompressobj(31)
        if self.fmt in ("zlib", "joblib-zfile"):
            return zlib.decompressobj(15)
        if self.fmt == "bz2":
            return bz2.BZ2Decompressor()
        if self.fmt == "lz4":
            import lz4.frame

            return lz4.frame.LZ4FrameDecompressor()
        return lzma.LZMADecompressor(lzma.FORMAT_XZ if self.fmt == "xz" else lzma.FORMAT_ALONE)

    @property
    def eof(self) -> bool:
        return bool(self.d.eof)

    def step(self, data: bytes) -> bytes:
        d = self.d
        if d.eof:
            self.extra += data
            magic = _MULTI_STREAM.get(self.fmt)
            if magic is not None and self.extra.startswith(magic):
                self.d, data, self.extra = self._new(), self.extra, b""  # the next stream
                return self.step(data)
            return b""
        if hasattr(d, "unconsumed_tail"):  # zlib's API
            data = d.unconsumed_tail + data
            if not data:
                return b""
            out: bytes = d.decompress(data, _OUT)
            if d.eof:
                self.extra += d.unused_data or b""
            return out
        if not data and getattr(d, "needs_input", True):
            return b""
        out = d.decompress(data, _OUT)
        if d.eof:
            self.extra += d.unused_data or b""  # lz4 reports None when nothing is left
        return out


def scan_compressed(
    ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int, fmt: str
) -> None:
    """Decompress ``w`` (format ``fmt``) within the limits and scan what comes out."""
    from bastion.artifacts.formats.pickles import scan_unknown
    from bastion.artifacts.scanner import scan_window

    if fmt in _WEAK_MAGIC:  # two or five magic bytes that a pickle can also start with
        before = len(ctx.report.issues)
        scan_unknown(ctx, w, member, depth)
        if "pickle" in ctx.report.formats or len(ctx.report.issues) > before:
            return
    ctx.format(fmt)
    source = w.sub(_ZFILE_HEADER, w.size) if fmt == "joblib-zfile" else w
    try:
        codec = _Codec(fmt)
    except ImportError:
        ctx.issue(
            Category.UNPROVABLE,
            f"{fmt} data cannot be decompressed here (install the '{fmt}' package); could "
            "not be proven safe",
            member,
        )
        return
    label = f"<{fmt} stream>"
    finished: Callable[[], bool] = lambda: False  # noqa: E731 - read to the end
    try:
        out = Decompressor(ctx, member, f"{fmt} data").run(source, codec.step, finished)
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, RuntimeError) as err:
        if fmt in _WEAK_MAGIC:
            ctx.note(f"data that starts like {fmt} but is not; no code found in it")
            return
        ctx.issue(
            Category.UNPROVABLE,
            f"the {fmt} stream is corrupt or truncated ({err}); could not be proven safe",
            member,
        )
        return
    if out is None:
        return
    if not codec.eof:
        ctx.issue(
            Category.UNPROVABLE,
            f"the {fmt} stream ends before its end marker (truncated); could not be proven safe",
            member,
        )
    elif codec.extra.strip(b"\x00"):
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            f"{len(codec.extra)} byte(s) follow the end of the {fmt} stream",
            member,
        )
    scan_window(ctx, out, (*member, label), depth + 1)
