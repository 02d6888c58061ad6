"""The state of one file's scan: where issues go, byte windows, bounded decompression.

A :class:`Window` is a slice of a bytes-like buffer (the file's ``mmap``, or a
decompressed member spooled to a temporary file and mapped), so members are scanned
without copying and memory stays flat on multi-gigabyte files.

Examples
--------
>>> from bastion.artifacts.context import ScanContext, Window
>>> ctx = ScanContext(file="model.bin")
>>> w = Window(b"hello world", 6, 11)
>>> w.size, w.head(3)
(5, b'wor')
>>> ctx.issue(Category.UNPROVABLE, "truncated", ("a.pkl",), offset=3, opcode="STOP")
>>> ctx.report.issues[0].location.describe()
'model.bin > a.pkl @ byte 3 (STOP)'
"""

from __future__ import annotations

import io
import mmap
import tempfile
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST, Allowlist
from bastion.artifacts.issues import ArtifactIssue, Category, FileReport, Location
from bastion.artifacts.limits import Limits
from bastion.artifacts.pickle_vm import PickleRun

__all__ = ["Category", "Decompressor", "ScanContext", "Window"]

_SPOOL_IN_MEMORY = 32 << 20
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Window:
    """``buf[start:end]`` without copying."""

    buf: Any
    start: int
    end: int

    @property
    def size(self) -> int:
        """Bytes in the window."""
        return self.end - self.start

    def head(self, n: int, at: int = 0) -> bytes:
        """Up to ``n`` bytes from offset ``at`` of the window."""
        a = self.start + at
        return bytes(self.buf[a : min(self.end, a + n)])

    def tail(self, n: int) -> bytes:
        """The last ``n`` bytes (or fewer)."""
        return bytes(self.buf[max(self.start, self.end - n) : self.end])

    def sub(self, at: int, n: int) -> Window:
        """A window of ``n`` bytes from offset ``at``."""
        return Window(self.buf, self.start + at, min(self.end, self.start + at + n))

    def crc32(self) -> int:
        """CRC-32 of the window, read in chunks."""
        crc = 0
        view = memoryview(self.buf) if not isinstance(self.buf, memoryview) else self.buf
        for a in range(self.start, self.end, _CHUNK):
            crc = zlib.crc32(view[a : min(self.end, a + _CHUNK)], crc)
        return crc

    def file(self) -> _WindowFile:
        """A read-only, seekable file object over the window (for zipfile, tarfile)."""
        return _WindowFile(self)


class _WindowFile(io.RawIOBase):
    def __init__(self, window: Window) -> None:
        self.w = window
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.w.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int | None = -1) -> bytes:
        size = self.w.size - self.pos if n is None or n < 0 else n
        data = self.w.head(max(0, size), self.pos) if self.pos < self.w.size else b""
        self.pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class Decompressor:
    """Feeds compressed bytes through ``step(data, max_out)`` into a spooled window.

    ``step`` returns ``(output, done)``; the caller's adapter hides each codec's API.
    """

    def __init__(self, ctx: ScanContext, member: tuple[str, ...], what: str) -> None:
        self.ctx, self.member, self.what = ctx, member, what

    def run(
        self, source: Window, step: Callable[[bytes], bytes], finished: Callable[[], bool]
    ) -> Window | None:
        """Decompress all of ``source``; None (with an issue) when a limit is reached."""
        ctx, limits = self.ctx, self.ctx.limits
        out: Any = io.BytesIO()
        produced = consumed = 0
        for a in range(source.start, source.end, 1 << 20):
            chunk = bytes(source.buf[a : min(source.end, a + (1 << 20))])
            consumed += len(chunk)
            data = step(chunk)
            while data:
                produced += len(data)
                ctx.decompressed += len(data)
                if ctx.decompressed > limits.max_decompressed_bytes:
                    ctx.issue(
                        Category.UNPROVABLE,
                        f"{self.what}: decompressed data exceeds {limits.max_decompressed_bytes} "
                        "bytes (limit max_decompressed_bytes); could not be proven safe",
                        self.member,
                    )
                    return None
                if produced > limits.ratio_floor_bytes and produced > limits.max_ratio * max(
                    consumed, 1
                ):
                    ctx.issue(
                        Category.UNPROVABLE,
                        f"{self.what}: expands more than {limits.max_ratio:g}x (limit max_ratio, "
                        "a decompression bomb?); could not be proven safe",
                        self.member,
                    )
                    return None
                if isinstance(out, io.BytesIO) and produced > _SPOOL_IN_MEMORY:
                    spilled = ctx.stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
                    spilled.write(out.getbuffer())
                    out = spilled
                out.write(data)
                data = step(b"")
            if finished():
                break
        return ctx.window_of(out)


class ScanContext:
    """Everything one file's scan shares: report, allowlist, limits, counters."""

    def __init__(
        self,
        *,
        file: str,
        path: Path | None = None,
        allowlist: Allowlist = DEFAULT_ALLOWLIST,
        limits: Limits | None = None,
    ) -> None:
        self.file = file
        self.path = path
        self.allowlist = allowlist
        self.limits = limits or Limits()
        self.report = FileReport(path=file)
        self.decompressed = 0
        self.stack = ExitStack()
        self._index: dict[tuple[Any, ...], int] = {}

    def close(self) -> None:
        """Release temporary files and maps."""
        self.stack.close()

    def issue(
        self,
        category: Category,
        message: str,
        member: tuple[str, ...] = (),
        *,
        offset: int | None = None,
        opcode: str | None = None,
        global_name: str | None = None,
    ) -> None:
        """Add an issue; the same global in the same member is counted, not repeated."""
        key = (category, member, global_name or message)
        if key in self._index:
            i = self._index[key]
            old = self.report.issues[i]
            self.report.issues[i] = replace(old, count=old.count + 1)
            return
        self._index[key] = len(self.report.issues)
        loc = Location(self.file, member, offset, opcode)
        self.report.issues.append(ArtifactIssue(category, message, loc, global_name))

    def absorb(self, run: PickleRun, member: tuple[str, ...], shift: int = 0) -> None:
        """Take a pickle run's issues and globals into the report."""
        for p in run.issues:
            offset = None if p.offset is None else p.offset + shift
            self.issue(
                p.category,
                p.message,
                member,
                offset=offset,
                opcode=p.opcode,
                global_name=p.global_name,
            )
        for name, count in run.globals_seen.items():
            self.report.globals_seen[name] = self.report.globals_seen.get(name, 0) + count
        for name in sorted(run.user_allowed):
            if name not in self.report.allowed_by_user:
                self.report.allowed_by_user.append(name)

    def note(self, text: str) -> None:
        """Record a fact that is not an issue (once)."""
        if text not in self.report.notes and len(self.report.notes) < 200:
            self.report.notes.append(text)

    def format(self, name: str) -> None:
        """Record a recognised format (once, in order)."""
        if name not in self.report.formats:
            self.report.formats.append(name)

    def window_of(self, out: Any) -> Window:
        """A window over a finished spool (bytes in memory or a mapped temp file)."""
        if isinstance(out, io.BytesIO):
            data = out.getvalue()
            return Window(data, 0, len(data))
        out.flush()
        size = out.seek(0, 2)
        if size == 0:
            return Window(b"", 0, 0)
        mapped = self.stack.enter_context(mmap.mmap(out.fileno(), 0, access=mmap.ACCESS_READ))
        return Window(mapped, 0, size)
