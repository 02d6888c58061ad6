"""7z archives, when ``py7zr`` is installed: every member is decompressed in memory
(bounded by the decompression limits, never written to disk under its own name) and
scanned by its own format. Without ``py7zr`` a 7z file cannot be proven safe.

Examples
--------
>>> from bastion.artifacts.formats.sevenzip import scan_7z_members
>>> callable(scan_7z_members)
True
"""

from __future__ import annotations

import io
from typing import Any

from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category

__all__ = ["scan_7z_members"]


def scan_7z_members(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Scan each member of the 7z archive in ``w``."""
    from bastion.artifacts.formats.archives import escapes
    from bastion.artifacts.scanner import scan_window

    try:
        import py7zr
        from py7zr.io import BytesIOFactory
    except ImportError:
        ctx.issue(
            Category.UNPROVABLE,
            "7z archive: install py7zr so its members can be scanned; could not be proven safe",
            member,
        )
        return
    budget = ctx.limits.max_decompressed_bytes - ctx.decompressed
    try:
        with py7zr.SevenZipFile(io.BufferedReader(w.file()), mode="r") as archive:
            infos = [i for i in archive.list() if not i.is_directory]
            total = sum(int(i.uncompressed or 0) for i in infos)
            if len(infos) > ctx.limits.max_members or total > budget:
                ctx.issue(
                    Category.UNPROVABLE,
                    f"the 7z archive holds {len(infos)} members and "
                    f"{total} bytes, over the limits; could not be proven safe",
                    member,
                )
                return
            factory = BytesIOFactory(limit=max(budget, 1))
            archive.extract(targets=[i.filename for i in infos], factory=factory)
            products: dict[str, Any] = dict(getattr(factory, "products", {}))
    except Exception as err:  # py7zr raises many types for hostile archives; fail closed
        ctx.issue(
            Category.UNPROVABLE,
            f"the 7z archive cannot be read ({type(err).__name__}: "
            f"{err}); could not be proven safe",
            member,
        )
        return
    for info in infos:
        inner = (*member, info.filename)
        if escapes(info.filename):
            ctx.issue(
                Category.FILE_OR_NETWORK,
                f"the member name {info.filename!r} escapes the folder it would be extracted to",
                inner,
            )
        product = products.get(info.filename)
        if product is None:
            ctx.issue(Category.UNPROVABLE, "a 7z member could not be extracted", inner)
            continue
        product.seek(0)
        data = bytes(product.read())
        if len(data) != int(info.uncompressed or 0):
            ctx.issue(
                Category.UNPROVABLE,
                "a 7z member's size differs from its header; could not be proven safe",
                inner,
            )
        ctx.decompressed += len(data)
        scan_window(ctx, Window(data, 0, len(data)), inner, depth + 1)
