"""Manifests: every file of a model with its size and SHA-256, and how two differ.

A :class:`Manifest` is what gets signed (ATLAS AML.M0013 *Code Signing*, AML.M0014
*Verify ML Artifacts*). It lists, sorted by path:

* every regular file under the root as a relative POSIX path, its size, and either
  its SHA-256 or, for a file larger than ``shard_size``, the SHA-256 of each
  consecutive ``shard_size``-byte shard (the last one shorter);
* every symbolic link as its path and link text (links are recorded, never
  followed; see :mod:`bastion.artifacts.tree_hash`);
* the paths left out on purpose (``excluded``), e.g. the manifest file itself when
  it is stored inside the folder, so a verifier sees exactly what was not covered.

:meth:`Manifest.to_payload` gives the plain dict that is serialised with
:func:`~bastion.canonical.canonical_json` and signed; nothing in it depends
on time, machine or worker order, so the same folder always yields the same bytes.
:meth:`Manifest.from_payload` validates a payload read back from disk (paths must be
relative and normalised, digests 64 hex digits, sizes consistent with the shards).

:func:`compare` names each modified, added and missing path. Digests are compared
with :func:`hmac.compare_digest`.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "weights.bin").write_bytes(b"0" * 10)
>>> before = build_manifest(root)
>>> _ = (root / "weights.bin").write_bytes(b"1" * 10)
>>> _ = (root / "extra.py").write_text("print('hi')")
>>> compare(before, build_manifest(root)).modified, compare(before, build_manifest(root)).added
(('weights.bin',), ('extra.py',))
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bastion.artifacts.tree_hash import (
    DEFAULT_SHARD_SIZE,
    ListedLink,
    Listing,
    hash_tree,
    list_tree,
)

__all__ = [
    "MANIFEST_FORMAT",
    "FileRecord",
    "LinkRecord",
    "Manifest",
    "ManifestDiff",
    "build_manifest",
    "check_relative_path",
    "compare",
]

MANIFEST_FORMAT = "bastion.manifest/v1"
"""The ``format`` field of every manifest payload this module writes."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a normalised relative POSIX path, else raise ValueError.

    Refuses empty paths, absolute paths, backslashes, NUL, ``.`` and ``..``
    components and empty components, so a signed path can never point outside the
    folder being verified.
    """
    if not isinstance(path, str) or not path:
        raise ValueError("a manifest path must be a non-empty string")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"manifest path {path!r} is not a relative POSIX path")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"manifest path {path!r} has an empty, '.' or '..' component")
    return path


@dataclass(frozen=True)
class FileRecord:
    """One file: ``sha256`` for a single-shard file, ``shards`` for a larger one."""

    path: str
    size: int
    sha256: str | None
    shards: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "size": self.size}
        if self.shards:
            data["shards"] = list(self.shards)
        else:
            data["sha256"] = self.sha256
        return data

    def same_content(self, other: FileRecord) -> bool:
        """Equal size and digests, compared in constant time."""
        if self.size != other.size or len(self.shards) != len(other.shards):
            return False
        mine = (self.sha256 or "", *self.shards)
        theirs = (other.sha256 or "", *other.shards)
        # Compare every digest (no early exit) so timing reveals nothing about which.
        results = [hmac.compare_digest(a, b) for a, b in zip(mine, theirs, strict=True)]
        return all(results)


@dataclass(frozen=True)
class LinkRecord:
    """One symbolic link: its path and its link text, never followed."""

    path: str
    target: str

    def to_payload(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target}


@dataclass(frozen=True)
class Manifest:
    """The signed description of a file or folder."""

    root_kind: Literal["file", "directory"]
    shard_size: int
    files: tuple[FileRecord, ...]
    links: tuple[LinkRecord, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        """Bytes covered by the manifest."""
        return sum(f.size for f in self.files)

    def to_payload(self) -> dict[str, Any]:
        """The dict that is canonicalised and signed."""
        return {
            "format": MANIFEST_FORMAT,
            "hash": "sha256",
            "root_kind": self.root_kind,
            "shard_size": self.shard_size,
            "files": [f.to_payload() for f in sorted(self.files, key=lambda f: f.path)],
            "links": [link.to_payload() for link in sorted(self.links, key=lambda k: k.path)],
            "excluded": sorted(self.excluded),
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Manifest:
        """Validate a payload read from disk and build the manifest.

        Raises
        ------
        ValueError
            Naming the first field that is missing or wrong.
        """
        if not isinstance(data, Mapping):
            raise ValueError("the manifest payload is not a JSON object")
        expected = {"format", "hash", "root_kind", "shard_size", "files", "links", "excluded"}
        if set(data) != expected:
            raise ValueError(f"the manifest payload has fields {sorted(data)}")
        if data["format"] != MANIFEST_FORMAT or data["hash"] != "sha256":
            raise ValueError(f"unsupported manifest format {data['format']!r}/{data['hash']!r}")
        root_kind = data["root_kind"]
        if root_kind not in ("file", "directory"):
            raise ValueError(f"unknown root_kind {root_kind!r}")
        shard_size = _positive_int(data["shard_size"], "shard_size")
        files = tuple(_file_record(item, shard_size) for item in _list(data["files"], "files"))
        links = tuple(_link_record(item) for item in _list(data["links"], "links"))
        excluded = tuple(check_relative_path(p) for p in _list(data["excluded"], "excluded"))
        paths = [f.path for f in files] + [link.path for link in links]
        if len(set(paths)) != len(paths):
            raise ValueError("the manifest lists a path twice")
        if root_kind == "file" and (len(files) != 1 or links or "/" in files[0].path):
            raise ValueError("a single-file manifest must list exactly one file")
        return cls(root_kind, shard_size, files, links, excluded)


def _positive_int(value: Any, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} int")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list")
    return value


def _digest(value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{value!r} is not a lowercase hex SHA-256 digest")
    return value


def _file_record(item: Any, shard_size: int) -> FileRecord:
    if not isinstance(item, Mapping) or not {"path", "size"} <= set(item):
        raise ValueError("each file entry needs 'path' and 'size'")
    path = check_relative_path(item["path"])
    size = _positive_int(item["size"], f"size of {path}", allow_zero=True)
    if set(item) == {"path", "size", "sha256"}:
        if size > shard_size:
            raise ValueError(f"{path} is larger than shard_size but has one digest")
        return FileRecord(path, size, _digest(item["sha256"]))
    if set(item) == {"path", "size", "shards"}:
        shards = tuple(_digest(d) for d in _list(item["shards"], "shards"))
        if size <= shard_size or len(shards) != -(-size // shard_size):
            raise ValueError(f"{path} has {len(shards)} shards, which does not fit its size")
        return FileRecord(path, size, None, shards)
    raise ValueError(f"the entry for {path} must have exactly one of 'sha256' or 'shards'")


def _link_record(item: Any) -> LinkRecord:
    if not isinstance(item, Mapping) or set(item) != {"path", "target"}:
        raise ValueError("each link entry needs exactly 'path' and 'target'")
    target = item["target"]
    if not isinstance(target, str) or not target:
        raise ValueError("a link target must be a non-empty string")
    return LinkRecord(check_relative_path(item["path"]), target)


def build_manifest(
    root: Path,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    workers: int | None = None,
    exclude: Collection[str] = (),
    strict: bool = True,
    progress: Callable[[int], None] | None = None,
    on_listing: Callable[[Listing], None] | None = None,
) -> Manifest:
    """List and hash ``root`` (a file or a folder) into a :class:`Manifest`.

    Parameters
    ----------
    root
        What to describe.
    shard_size
        Files larger than this are recorded shard by shard.
    workers
        Hashing threads (default: usable CPUs).
    exclude
        Relative paths to leave out; recorded in the manifest.
    strict
        Refuse links that leave the folder (True when signing). When False they
        are recorded with the link text, so a comparison reports them.
    progress
        Called with byte counts as hashing advances.
    on_listing
        Called once with the listing before hashing starts (to size a progress bar).

    Raises
    ------
    bastion.errors.UsageError
        For anything that cannot be listed or read.
    """
    excluded = tuple(sorted({check_relative_path(p.strip("/")) for p in exclude}))
    listing = list_tree(Path(root), exclude=excluded, strict=strict)
    if on_listing is not None:
        on_listing(listing)
    digests = hash_tree(
        Path(root), listing, shard_size=shard_size, workers=workers, progress=progress
    )
    files = tuple(FileRecord(d.path, d.size, d.sha256, d.shards) for d in digests)
    links = tuple(_record_link(link) for link in listing.links)
    kind: Literal["file", "directory"] = "file" if listing.kind == "file" else "directory"
    return Manifest(kind, shard_size, files, links, excluded if kind == "directory" else ())


def _record_link(link: ListedLink) -> LinkRecord:
    return LinkRecord(link.path, link.target)


@dataclass(frozen=True)
class ManifestDiff:
    """Paths whose content changed, that appeared, or that disappeared."""

    modified: tuple[str, ...]
    added: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing changed."""
        return not (self.modified or self.added or self.missing)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "modified": list(self.modified),
            "added": list(self.added),
            "missing": list(self.missing),
        }


def compare(expected: Manifest, actual: Manifest) -> ManifestDiff:
    """Name every path that differs between a signed manifest and the files now.

    A path is *modified* when its size, digests, link text or type (file versus
    link) changed; *added* when it exists now but was not signed; *missing* when
    it was signed but is gone.
    """
    want: dict[str, FileRecord | LinkRecord] = {f.path: f for f in expected.files}
    want.update({link.path: link for link in expected.links})
    have: dict[str, FileRecord | LinkRecord] = {f.path: f for f in actual.files}
    have.update({link.path: link for link in actual.links})
    modified: list[str] = []
    for path in sorted(want.keys() & have.keys()):
        old, new = want[path], have[path]
        if isinstance(old, FileRecord) and isinstance(new, FileRecord):
            same = old.same_content(new)
        elif isinstance(old, LinkRecord) and isinstance(new, LinkRecord):
            same = hmac.compare_digest(old.target.encode(), new.target.encode())
        else:
            same = False
        if not same:
            modified.append(path)
    added = sorted(have.keys() - want.keys())
    missing = sorted(want.keys() - have.keys())
    return ManifestDiff(tuple(modified), tuple(added), tuple(missing))
