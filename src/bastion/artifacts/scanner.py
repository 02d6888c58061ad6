"""``scan_paths``: scan model files for anything that is not proven safe to load.

Each file is mapped (``mmap``) and hashed with SHA-256 in a background thread while
the scanner walks it: the format is detected from content (:mod:`.sniff`) and every
member of every container is scanned recursively with the handler of its own format.
Nothing in a file is ever imported, unpickled or executed.

Examples
--------
>>> import pickle, tempfile, pathlib
>>> from bastion.artifacts.scanner import scan_paths
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "ok.pkl").write_bytes(pickle.dumps({"weights": [0.5, 0.25]}))
>>> _ = (folder / "bad.bin").write_bytes(b"cos\\nsystem\\n(S'touch x'\\ntR.")
>>> report = scan_paths([folder])
>>> [(pathlib.Path(f.path).name, f.safe) for f in report.files]
[('bad.bin', False), ('ok.pkl', True)]
>>> report.files[0].issues[0].global_name, report.exit_code
('os:system', 1)
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST, Allowlist
from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category, FileReport, ScanReport
from bastion.artifacts.limits import Limits
from bastion.artifacts.sniff import HEAD_BYTES, sniff
from bastion.errors import UsageError

__all__ = ["scan_bytes", "scan_file", "scan_path", "scan_paths", "scan_window"]

log = logging.getLogger(__name__)
_HASH_CHUNK = 16 << 20


def scan_window(ctx: ScanContext, w: Window, member: tuple[str, ...], depth: int) -> None:
    """Detect the format of ``w`` and scan it with its handler (recursively)."""
    from bastion.artifacts.formats import (
        archives,
        compressed,
        hdf5,
        numpy_files,
        onnx_model,
        pickles,
        structured,
    )

    if depth > ctx.limits.max_depth:
        ctx.issue(
            Category.UNPROVABLE,
            f"containers nested deeper than {ctx.limits.max_depth} (limit max_depth); "
            "could not be proven safe",
            member,
        )
        return
    ctx.report.members += 1
    fmt = sniff(w.head(HEAD_BYTES), size=w.size)
    handlers: dict[str, Callable[[], object]] = {
        "pickle": lambda: pickles.scan_pickle(ctx, w, member, depth=depth),
        "zip": lambda: archives.scan_zip(ctx, w, member, depth),
        "tar": lambda: archives.scan_tar(ctx, w, member, depth),
        "7z": lambda: archives.scan_7z(ctx, w, member, depth),
        "npy": lambda: numpy_files.scan_npy(ctx, w, member, depth),
        "safetensors": lambda: structured.scan_safetensors(ctx, w, member),
        "gguf": lambda: structured.scan_gguf(ctx, w, member),
        "onnx": lambda: onnx_model.scan_onnx(ctx, w, member),
        "hdf5": lambda: hdf5.scan_hdf5(ctx, w, member),
    }
    handler = handlers.get(fmt)
    try:
        if fmt in compressed.CODECS:
            compressed.scan_compressed(ctx, w, member, depth, fmt)
            return
        if handler is None:
            pickles.scan_unknown(ctx, w, member, depth)
        else:
            ctx.format(fmt)
            handler()
    except (MemoryError, RecursionError):
        raise
    except Exception as err:  # a handler bug must fail closed, never pass a file
        log.warning("scanner error in %s %s", ctx.file, member, exc_info=True)
        ctx.issue(
            Category.UNPROVABLE,
            f"the {fmt} handler failed ({type(err).__name__}: {err}); could not be proven safe",
            member,
        )
    if fmt not in ("zip", "7z") and w.size >= 22:
        archives.scan_appended_zip(ctx, w, member, depth)


def _hash_in_background(buf: mmap.mmap | bytes, out: list[str]) -> threading.Thread:
    def work() -> None:
        h = hashlib.sha256()
        view = memoryview(buf)
        for a in range(0, len(view), _HASH_CHUNK):
            h.update(view[a : a + _HASH_CHUNK])  # releases the GIL on large chunks
        view.release()
        out.append(h.hexdigest())

    thread = threading.Thread(target=work, name="bastion-sha256", daemon=True)
    thread.start()
    return thread


def _scan_buffer(ctx: ScanContext, buf: mmap.mmap | bytes) -> FileReport:
    digest: list[str] = []
    thread = _hash_in_background(buf, digest)
    try:
        scan_window(ctx, Window(buf, 0, len(buf)), (), 0)
    except (MemoryError, RecursionError) as err:  # hostile nesting or size: fail closed
        ctx.issue(Category.UNPROVABLE, f"the scan ran out of resources ({type(err).__name__})")
    finally:
        thread.join()
    ctx.report.size = len(buf)
    ctx.report.sha256 = digest[0] if digest else ""
    return ctx.report


def scan_file(
    path: str | Path,
    *,
    allowlist: Allowlist = DEFAULT_ALLOWLIST,
    limits: Limits | None = None,
    label: str | None = None,
) -> FileReport:
    """Scan one file.

    Raises
    ------
    UsageError
        If the file does not exist or cannot be read.
    """
    p = Path(path)
    label = label or str(path)
    ctx = ScanContext(file=label, path=p, allowlist=allowlist, limits=limits)
    try:
        with p.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                ctx.note("empty file")
                return ctx.report
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return _scan_buffer(ctx, mapped)
    except FileNotFoundError:
        raise UsageError(f"No file at {p}; check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"{p} is a folder; scan_paths walks folders.") from None
    except OSError as err:
        raise UsageError(f"{p} cannot be read ({err.strerror or err}).") from err
    finally:
        ctx.close()


def scan_bytes(
    data: bytes,
    *,
    name: str = "<bytes>",
    allowlist: Allowlist = DEFAULT_ALLOWLIST,
    limits: Limits | None = None,
) -> FileReport:
    """Scan an in-memory artifact (``name`` labels the report)."""
    ctx = ScanContext(file=name, allowlist=allowlist, limits=limits)
    try:
        if not data:
            ctx.note("empty file")
            return ctx.report
        return _scan_buffer(ctx, bytes(data))
    finally:
        ctx.close()


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and not q.is_symlink())
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"No file or folder at {p}; check the path.")
    return files


def scan_paths(
    paths: Sequence[str | Path] | str | Path,
    *,
    allow: Iterable[str] = (),
    allowlist: Allowlist | None = None,
    limits: Limits | None = None,
) -> ScanReport:
    """Scan files and folders (recursively) and return one report.

    Parameters
    ----------
    paths : path or sequence of paths
    allow : iterable of str
        Reviewed exceptions, ``"module:qualname"`` each; recorded in the report.
    allowlist : Allowlist or None
        Defaults to :data:`~bastion.artifacts.allowlist.DEFAULT_ALLOWLIST`.
    limits : Limits or None

    Raises
    ------
    UsageError
        For a missing path, an unreadable file or a malformed ``allow`` entry.
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    allow = list(allow)
    al = (allowlist or DEFAULT_ALLOWLIST).extend(allow)
    report = ScanReport(user_allow=sorted(allow), allowlist=al.name)
    for path in _expand(items):
        log.info("scanning %s", path)
        report.files.append(scan_file(path, allowlist=al, limits=limits))
    return report


def scan_path(
    path: str | Path,
    *,
    allow: Iterable[str] = (),
    allowlist: Allowlist | None = None,
    limits: Limits | None = None,
) -> ScanReport:
    """Scan one file or folder; the same as ``scan_paths([path], ...)``."""
    return scan_paths([path], allow=allow, allowlist=allowlist, limits=limits)
