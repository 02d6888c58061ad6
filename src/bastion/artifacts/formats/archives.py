"""Archives: zip read the way PyTorch's loader reads it, tar, 7z, and zips appended to
other data.

**zip.** The central directory lists the members (Python's :mod:`zipfile` parses it,
including zip64), but each member is then read the way PyTorch's miniz-based reader
does: from the local header at the central directory's offset, skipping the *local*
name and extra lengths, for the *central* compressed size. Python's zipfile refuses a
member whose local and central names differ, so scanners built on it fail open there;
here every such quirk is read through and reported as its own anomaly: name or method
mismatches between the headers, CRC errors, encrypted or unsupported members,
duplicate (or case-insensitively equal) names, members that overlap, names that escape
the extraction folder. Every entry of the central directory is scanned, duplicates
included. In a ``torch.save`` archive the tensor records named by the pickle's
persistent ids are checked for size and CRC and hashed, not parsed; every other member
is scanned by its own format.

Examples
--------
>>> import io, pickle, zipfile
>>> from bastion.artifacts.scanner import scan_bytes
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w") as zf:
...     zf.writestr("m/data.pkl", b"cnt\\nsystem\\n(S'x'\\ntR.")
>>> r = scan_bytes(buf.getvalue())
>>> r.formats, r.issues[0].global_name, r.issues[0].location.member
(['zip', 'torch', 'pickle'], 'nt:system', ('m/data.pkl',))
"""

from __future__ import annotations

import itertools
import struct
import tarfile
import zipfile
import zlib
from pathlib import PurePosixPath, PureWindowsPath

from bastion.artifacts.context import Decompressor, ScanContext, Window
from bastion.artifacts.issues import Category

__all__ = ["scan_7z", "scan_appended_zip", "scan_tar", "scan_zip"]

_LOCAL = struct.Struct("<4sHHHHHIIIHH")


def escapes(name: str) -> bool:
    """True when an archive member name would land outside the extraction folder."""
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    return posix.is_absolute() or win.is_absolute() or bool(win.drive) or ".." in win.parts


def _member_data(
    ctx: ScanContext, w: Window, info: zipfile.ZipInfo, member: tuple[str, ...]
) -> Window | None:
    """The member's bytes, read via its local header like miniz; anomalies reported."""
    at = info.header_offset
    head = w.head(_LOCAL.size, at)
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        ctx.issue(
            Category.UNPROVABLE,
            "the member's local header is missing or damaged; could not be proven safe",
            member,
            offset=at,
            opcode="local header",
        )
        return None
    _, _, flags, method, _, _, crc, _, _, nlen, xlen = _LOCAL.unpack(head)
    local_name = w.head(nlen, at + _LOCAL.size)
    central = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
    if local_name != central:
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            f"the local header names {local_name[:80]!r} but the central directory "
            f"{central[:80]!r}; Python's zipfile refuses this member while PyTorch reads it",
            member,
            offset=at,
            opcode="local header",
        )
    if method != info.compress_type:
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            f"compression method {method} in the local "
            f"header but {info.compress_type} in the central directory",
            member,
            offset=at,
            opcode="local header",
        )
    if (flags ^ info.flag_bits) & 0x1 or info.flag_bits & 0x1:
        ctx.issue(
            Category.UNPROVABLE,
            "the member is encrypted (or its headers disagree on it); could not be proven safe",
            member,
            offset=at,
        )
        return None
    if not flags & 0x8 and crc not in (0, info.CRC):
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            "the local and central CRC-32 differ",
            member,
            offset=at,
            opcode="local header",
        )
    start = at + _LOCAL.size + nlen + xlen
    if start + info.compress_size > w.size:
        ctx.issue(
            Category.UNPROVABLE,
            "the member's data runs past the end of the archive "
            "(truncated); could not be proven safe",
            member,
            offset=start,
        )
        return None
    raw = w.sub(start, info.compress_size)
    if info.compress_type == zipfile.ZIP_STORED:
        ctx.decompressed += raw.size  # extracted bytes count too: overlapping-member bombs
        if ctx.decompressed > ctx.limits.max_decompressed_bytes:
            ctx.issue(
                Category.UNPROVABLE,
                "the archive's members add up to more than max_decompressed_bytes "
                "(overlapping members?); could not be proven safe",
                member,
            )
            return None
        data: Window | None = raw
        if info.compress_size != info.file_size:
            ctx.issue(Category.CONTAINER_ANOMALY, "a stored member's sizes differ", member)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        d = zlib.decompressobj(-15)

        def step(chunk: bytes) -> bytes:
            chunk = d.unconsumed_tail + chunk
            return d.decompress(chunk, 1 << 20) if chunk else b""

        try:
            data = Decompressor(ctx, member, "a deflated member").run(raw, step, lambda: False)
        except zlib.error as err:
            ctx.issue(
                Category.UNPROVABLE,
                f"the member's deflate data is corrupt ({err}); could not be proven safe",
                member,
                offset=start,
            )
            return None
    else:
        ctx.issue(
            Category.UNPROVABLE,
            f"compression method {info.compress_type} is not one "
            "PyTorch reads (stored, deflate); could not be proven safe",
            member,
        )
        return None
    if data is not None and data.crc32() != info.CRC:
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            "the member's CRC-32 does not match its data "
            "(PyTorch's reader tolerates this; the content was scanned as stored)",
            member,
            offset=start,
        )
    return data


def _ranges_overlap(
    ctx: ScanContext, infos: list[zipfile.ZipInfo], member: tuple[str, ...]
) -> None:
    spans = sorted(
        (i.header_offset, i.header_offset + 30 + i.compress_size, i.filename) for i in infos
    )
    for (_, a1, an), (b0, _, bn) in itertools.pairwise(spans):
        if b0 < a1:
            ctx.issue(
                Category.CONTAINER_ANOMALY,
                f"members {an!r} and {bn!r} overlap in the "
                "archive (a zip bomb or a parser-confusion trick)",
                member,
                offset=b0,
            )


def scan_zip(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Scan every central-directory entry of a zip archive (see the module notes)."""
    from bastion.artifacts.formats import model_zips
    from bastion.artifacts.scanner import scan_window

    try:
        with zipfile.ZipFile(w.file()) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"the zip archive's directory cannot be read ({err}); could not be proven safe",
            member,
        )
        return
    if len(infos) > ctx.limits.max_members:
        ctx.issue(
            Category.UNPROVABLE,
            f"more than {ctx.limits.max_members} members (limit "
            "max_members); could not be proven safe",
            member,
        )
        return
    seen: dict[str, str] = {}
    for info in infos:
        folded = info.filename.casefold()
        if folded in seen:
            ctx.issue(
                Category.CONTAINER_ANOMALY,
                f"two members are named {info.filename!r} "
                f"and {seen[folded]!r}; loaders disagree on which one they read",
                member,
            )
        seen[folded] = info.filename
        if escapes(info.filename):
            ctx.issue(
                Category.FILE_OR_NETWORK,
                f"the member name {info.filename!r} escapes the folder it would be extracted to",
                member,
            )
    _ranges_overlap(ctx, [i for i in infos if not i.is_dir()], member)
    plan = model_zips.plan(ctx, [i.filename for i in infos], member)
    ordered = sorted(infos, key=lambda i: plan.order(i.filename))
    for info in ordered:
        if info.is_dir():
            continue
        inner = (*member, info.filename)
        data = _member_data(ctx, w, info, inner)
        if data is None:
            continue
        if plan.handle(ctx, info.filename, data, inner, depth):
            continue
        scan_window(ctx, data, inner, depth + 1)
    plan.finish(ctx, member)


def scan_appended_zip(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """A zip directory at the end of non-zip data (a polyglot) is scanned too."""
    tail = w.tail(65_557)
    if b"PK\x05\x06" not in tail:
        return
    try:
        with zipfile.ZipFile(w.file()) as zf:
            if not zf.infolist():
                return
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return
    ctx.issue(
        Category.CONTAINER_ANOMALY,
        "the data also ends with a zip archive (a polyglot): "
        "zip readers and pickle readers see different content",
        member,
    )
    ctx.format("zip (appended)")
    scan_zip(ctx, w, member, depth)


def scan_tar(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Scan every regular member of a tar archive (legacy ``torch.save`` included)."""
    from bastion.artifacts.formats import model_zips
    from bastion.artifacts.scanner import scan_window

    try:
        with tarfile.open(fileobj=w.file(), mode="r:") as tar:
            members = []
            for info in tar:
                members.append(info)
                if len(members) > ctx.limits.max_members:
                    ctx.issue(
                        Category.UNPROVABLE,
                        f"more than {ctx.limits.max_members} members (limit max_members)",
                        member,
                    )
                    return
    except (tarfile.TarError, OSError, ValueError, EOFError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"the tar archive cannot be read ({err}); could not be proven safe",
            member,
        )
        return
    names = {m.name for m in members}
    legacy = {"storages", "tensors", "pickle"} <= names
    if legacy:
        ctx.format("torch-legacy-tar")
    for info in members:
        inner = (*member, info.name)
        if escapes(info.name) or ((info.issym() or info.islnk()) and escapes(info.linkname)):
            ctx.issue(
                Category.FILE_OR_NETWORK,
                f"the member {info.name!r} (or its link target) escapes the extraction folder",
                inner,
            )
        if info.issym() or info.islnk() or info.isdev():
            ctx.issue(
                Category.CONTAINER_ANOMALY, "a link or device member in a model archive", inner
            )
            continue
        if not info.isfile():
            continue
        if info.sparse or info.offset_data + info.size > w.size:
            ctx.issue(
                Category.UNPROVABLE,
                "a sparse or truncated tar member; could not be proven safe",
                inner,
            )
            continue
        data = w.sub(info.offset_data, info.size)
        if legacy and info.name in ("storages", "tensors"):
            model_zips.scan_legacy_tar_member(ctx, data, inner, info.name, depth)
        else:
            scan_window(ctx, data, inner, depth + 1)


def scan_7z(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Scan every member of a 7z archive, in memory, when ``py7zr`` is installed."""
    from bastion.artifacts.formats.sevenzip import scan_7z_members

    scan_7z_members(ctx, w, member, depth)
