"""List a file or folder without following links out of it, and hash it in parallel.

:func:`list_tree` walks a folder with ``lstat`` (never following symbolic links) and
returns its regular files and its links. Links are recorded, not followed: a link
whose target stays inside the folder is kept as ``(path, link text)``; one that
points outside the folder, or nowhere, is refused when signing (``strict=True``) and
reported when verifying. Sockets, FIFOs and device files are refused: reading a
FIFO could block forever, and none of them belongs in a model folder.

:func:`hash_tree` hashes the listed files with a thread pool (``hashlib`` releases the
GIL on large updates, so threads do run in parallel). A file larger than
``shard_size`` is split into shards of that size, each hashed as its own task, so one
huge checkpoint still keeps every worker busy. Every task streams through one
reusable buffer of ``chunk_size`` bytes, so memory stays at ``workers x chunk_size``
whatever the file sizes.

Files are opened relative to the root folder one component at a time with
``O_NOFOLLOW`` (``openat``-style, where the platform supports ``dir_fd``), so a
folder swapped for a link between listing and hashing cannot redirect a read outside
the root; the opened file must still be a regular file of the listed size.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "a.bin").write_bytes(b"abc")
>>> listing = list_tree(root)
>>> [(f.path, f.size) for f in listing.files]
[('a.bin', 3)]
>>> hash_tree(root, listing)[0].sha256[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bastion.errors import UsageError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SHARD_SIZE",
    "FileDigest",
    "ListedFile",
    "ListedLink",
    "Listing",
    "default_workers",
    "hash_range",
    "hash_tree",
    "list_tree",
]

logger = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 512 * 1024 * 1024
"""Files above this size (512 MiB) are hashed as several shards in parallel."""
DEFAULT_CHUNK_SIZE = 1024 * 1024
"""Bytes read per system call; each worker holds one buffer of this size."""

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_USE_DIR_FD = os.open in os.supports_dir_fd


@dataclass(frozen=True)
class ListedFile:
    """A regular file: its relative POSIX path and its size at listing time."""

    path: str
    size: int


@dataclass(frozen=True)
class ListedLink:
    """A symbolic link: where it is, its link text, and whether it leaves the root."""

    path: str
    target: str
    escapes: bool


@dataclass(frozen=True)
class Listing:
    """What :func:`list_tree` found; ``kind`` is ``"file"`` or ``"directory"``."""

    kind: str
    files: tuple[ListedFile, ...]
    links: tuple[ListedLink, ...]


@dataclass(frozen=True)
class FileDigest:
    """A hashed file: one SHA-256 (``sha256``) or one per shard (``shards``)."""

    path: str
    size: int
    sha256: str | None
    shards: tuple[str, ...] = ()


def default_workers() -> int:
    """Threads for hashing: the usable CPUs, at least 1 and at most 32."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(32, cpus))


def _posix(parts: Collection[str]) -> str:
    for part in parts:
        try:
            part.encode("utf-8", errors="strict")
        except UnicodeEncodeError:
            raise UsageError(
                f"The file name {part!r} is not valid UTF-8; rename it before signing."
            ) from None
    return "/".join(parts)


def _excluded(rel: str, exclude: Collection[str]) -> bool:
    return any(rel == item or rel.startswith(item + "/") for item in exclude)


def _link_escapes(root_real: str, link_path: str) -> bool:
    resolved = os.path.realpath(link_path)
    inside = resolved == root_real or resolved.startswith(root_real.rstrip(os.sep) + os.sep)
    return not inside or not Path(resolved).exists()


def list_tree(root: Path, *, exclude: Collection[str] = (), strict: bool = True) -> Listing:
    """List regular files and symbolic links under ``root`` (or ``root`` itself).

    Parameters
    ----------
    root
        A regular file or a folder. A link given as ``root`` is refused.
    exclude
        Relative POSIX paths to skip; a folder excludes everything below it.
    strict
        Raise :class:`~bastion.errors.UsageError` for a link that leaves the folder
        or dangles (signing); when False, list it with ``escapes=True`` (verifying).

    Raises
    ------
    UsageError
        For a missing root, a special file, an unreadable folder, a bad file name,
        or (``strict``) an escaping link.
    """
    root = Path(root)
    try:
        info = root.lstat()
    except FileNotFoundError:
        raise UsageError(f"{root} does not exist; check the path.") from None
    except OSError as err:
        raise UsageError(f"Cannot read {root}: {err.strerror}.") from None
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(
            f"{root} is a symbolic link; pass the real path ({os.path.realpath(root)})."
        )
    if stat.S_ISREG(info.st_mode):
        return Listing("file", (ListedFile(_posix([root.name]), info.st_size),), ())
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{root} is neither a regular file nor a folder; nothing to hash.")

    root_real = os.path.realpath(root)
    files: list[ListedFile] = []
    links: list[ListedLink] = []
    stack: list[tuple[str, ...]] = [()]
    while stack:
        parts = stack.pop()
        folder = root.joinpath(*parts)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            raise UsageError(f"Cannot list {folder}: {err.strerror}.") from None
        for entry in entries:
            rel_parts = (*parts, entry.name)
            rel = _posix(rel_parts)
            if _excluded(rel, exclude):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                raise UsageError(
                    f"Cannot read {rel}: {err.strerror}; run the command again."
                ) from None
            if stat.S_ISLNK(st.st_mode):
                escapes = _link_escapes(root_real, entry.path)
                if escapes and strict:
                    raise UsageError(
                        f"The link {rel} points outside {root} or nowhere; links are "
                        "never followed out of a signed folder. Copy the file in, or "
                        "sign the folder it points to."
                    )
                try:
                    text = str(Path(entry.path).readlink())
                except OSError as err:
                    raise UsageError(f"Cannot read the link {rel}: {err.strerror}.") from None
                links.append(ListedLink(rel, text, escapes))
            elif stat.S_ISDIR(st.st_mode):
                stack.append(rel_parts)
            elif stat.S_ISREG(st.st_mode):
                files.append(ListedFile(rel, st.st_size))
            else:
                raise UsageError(f"{rel} is a socket, FIFO or device file; remove it from {root}.")
    files.sort(key=lambda f: f.path)
    links.sort(key=lambda link: link.path)
    return Listing("directory", tuple(files), tuple(links))


@contextmanager
def _open_beneath(root: Path, kind: str, rel: str) -> Iterator[int]:
    """Open ``rel`` under ``root`` read-only, following no link on the way."""
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC
    if kind == "file":
        fd = os.open(root, flags)
    elif not _USE_DIR_FD:  # pragma: no cover - Windows
        fd = os.open(root / rel, flags)
    else:
        *folders, name = rel.split("/")
        dir_fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for folder in folders:
                next_fd = os.open(
                    folder, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd
                )
                os.close(dir_fd)
                dir_fd = next_fd
            fd = os.open(name, flags, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _read_at(fd: int, window: memoryview, position: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [window], position)
    os.lseek(fd, position, os.SEEK_SET)  # pragma: no cover - platforms without preadv
    return os.readv(fd, [window])  # pragma: no cover


def hash_range(fd: int, offset: int, length: int, buffer: bytearray) -> str:
    """SHA-256 (hex) of ``length`` bytes of ``fd`` from ``offset``, streamed via ``buffer``.

    Raises
    ------
    OSError
        If the file ends before ``offset + length`` (it shrank while being hashed).
    """
    digest = hashlib.sha256()
    view = memoryview(buffer)
    position, remaining = offset, length
    while remaining:
        window = view[: min(remaining, len(buffer))]
        got = _read_at(fd, window, position)
        if got == 0:
            raise OSError(0, "the file ended early; it changed while being hashed")
        digest.update(window[:got])
        position += got
        remaining -= got
    return digest.hexdigest()


def _shards(size: int, shard_size: int) -> list[tuple[int, int]]:
    if size <= shard_size:
        return [(0, size)]
    return [(start, min(shard_size, size - start)) for start in range(0, size, shard_size)]


def hash_tree(
    root: Path,
    listing: Listing,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> list[FileDigest]:
    """Hash every file of ``listing`` under ``root``; return digests sorted by path.

    Parameters
    ----------
    root
        The folder (or file) that was listed.
    listing
        From :func:`list_tree`.
    shard_size
        Files larger than this many bytes are hashed as consecutive shards.
    workers
        Threads; :func:`default_workers` when None.
    chunk_size
        Read size; also the per-worker memory.
    progress
        Called with a byte count as each shard finishes (from worker threads).

    Raises
    ------
    UsageError
        When a file cannot be opened or read, is no longer a regular file, or
        changed size while being hashed.
    """
    if shard_size < 1 or chunk_size < 1:
        raise UsageError("shard_size and chunk_size must be positive byte counts.")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise UsageError(f"workers must be at least 1; got {workers}.")
    root = Path(root)
    tasks = [
        (listed, index, offset, length)
        for listed in listing.files
        for index, (offset, length) in enumerate(_shards(listed.size, shard_size))
    ]

    def run(task: tuple[ListedFile, int, int, int]) -> tuple[str, int, str]:
        listed, index, offset, length = task
        buffer = bytearray(min(chunk_size, max(length, 1)))
        try:
            with _open_beneath(root, listing.kind, listed.path) as fd:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_size != listed.size:
                    raise UsageError(
                        f"{listed.path} changed while being hashed; run the command again."
                    )
                digest = hash_range(fd, offset, length, buffer)
        except OSError as err:
            raise UsageError(
                f"Cannot read {listed.path}: {err.strerror or err}; if it is a link or was "
                "replaced during hashing, run the command again."
            ) from None
        if progress is not None:
            progress(length)
        return listed.path, index, digest

    results: dict[str, dict[int, str]] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bastion-hash") as pool:
        futures = [pool.submit(run, task) for task in tasks]
        try:
            for future in futures:
                path, index, digest = future.result()
                results.setdefault(path, {})[index] = digest
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    digests: list[FileDigest] = []
    for listed in listing.files:
        parts = results.get(listed.path, {})
        if listed.size <= shard_size:
            digests.append(FileDigest(listed.path, listed.size, parts[0]))
        else:
            shards = tuple(parts[i] for i in range(len(parts)))
            digests.append(FileDigest(listed.path, listed.size, None, shards))
    logger.info("hashed %d files with %d workers", len(digests), workers)
    return digests
