"""Find installed distributions and read what their RECORD promises.

Every wheel-installed Python distribution has a ``*.dist-info/RECORD`` file listing
each file it installed with ``algorithm=urlsafe-base64-digest`` and size (PEP 376,
PEP 627, and the wheel spec). :mod:`importlib.metadata` parses it; this module turns
it into :class:`RecordedFile` entries resolved against the site-packages folder and
works out which top-level folders a distribution owns, so that files nobody
installed can be found there (:mod:`bastion.artifacts.env_verify`).

Examples
--------
>>> import sys
>>> dirs = site_directories()
>>> all(d.is_dir() for d in dirs)
True
>>> normalize_name("Scikit_Learn") == normalize_name("scikit-learn")
True
"""

from __future__ import annotations

import base64
import binascii
import importlib.metadata as metadata
import os
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bastion.errors import UsageError

__all__ = [
    "ACCEPTED_HASHES",
    "InstalledDistribution",
    "RecordedFile",
    "environment_root",
    "load_distributions",
    "normalize_name",
    "site_directories",
]

ACCEPTED_HASHES = frozenset(
    {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"}
)
"""RECORD hash algorithms accepted as evidence; the wheel spec forbids md5 and sha1."""


def normalize_name(name: str) -> str:
    """A distribution name normalised as PEP 503 prescribes (``Foo_Bar`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def site_directories(paths: Iterable[Path] | None = None) -> list[Path]:
    """The folders to check: ``paths`` if given, else every ``sys.path`` folder with metadata.

    Raises
    ------
    UsageError
        When a given path is not a folder.
    """
    if paths is not None:
        result: list[Path] = []
        for path in paths:
            if not Path(path).is_dir():
                raise UsageError(f"{path} is not a folder; give a site-packages folder.")
            result.append(Path(path).absolute())
        return result
    found: list[Path] = []
    for entry in sys.path:
        folder = Path(entry or ".").absolute()
        if not folder.is_dir() or folder in found:
            continue
        try:
            names = [child.name for child in folder.iterdir()]
        except OSError:
            continue
        if any(n.endswith((".dist-info", ".egg-info")) for n in names):
            found.append(folder)
    return found


def environment_root(site_dir: Path) -> Path:
    """The prefix a RECORD's ``../../../bin/...`` entries are allowed to reach.

    ``<prefix>/lib/pythonX.Y/site-packages`` gives ``<prefix>``,
    ``<prefix>/Lib/site-packages`` (Windows) gives ``<prefix>``; any other folder
    is its own root.
    """
    site_dir = Path(site_dir).absolute()
    if site_dir.name in ("site-packages", "dist-packages"):
        parent = site_dir.parent
        if parent.name.startswith("python") and parent.parent.name in ("lib", "lib64"):
            return parent.parent.parent
        if parent.name.lower() == "lib":
            return parent.parent
    return site_dir


@dataclass(frozen=True)
class RecordedFile:
    """One RECORD row: the path as written, where it resolves, and its promise."""

    record_path: str
    location: Path
    algorithm: str | None
    digest: bytes | None
    size: int | None
    inside_environment: bool


@dataclass(frozen=True)
class InstalledDistribution:
    """A distribution found in one site folder, with its RECORD (None if absent)."""

    name: str
    version: str
    site_dir: Path
    metadata_dir: str
    files: tuple[RecordedFile, ...] | None

    @property
    def top_level_folders(self) -> tuple[str, ...]:
        """Folders directly under ``site_dir`` that this distribution installed into."""
        if self.files is None:
            return ()
        tops: set[str] = set()
        for record in self.files:
            parts = record.record_path.split("/")
            if len(parts) > 1 and parts[0] not in ("..", "", "__pycache__"):
                tops.add(parts[0])
        return tuple(sorted(tops))


def _decode_digest(value: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _recorded_files(
    entries: Iterable[metadata.PackagePath], site_dir: Path
) -> tuple[RecordedFile, ...]:
    root = str(environment_root(site_dir))
    base = Path(site_dir).absolute()
    records: list[RecordedFile] = []
    for entry in entries:
        text = entry.as_posix()
        location = Path(os.path.normpath(base / text))
        inside = not Path(text).is_absolute() and (
            str(location) == root or str(location).startswith(root.rstrip(os.sep) + os.sep)
        )
        algorithm = digest = None
        if entry.hash is not None:
            algorithm = entry.hash.mode.lower().replace("-", "_")
            digest = _decode_digest(entry.hash.value)
        records.append(RecordedFile(text, location, algorithm, digest, entry.size, inside))
    return tuple(records)


def _metadata_dir(dist: metadata.Distribution) -> str:
    path = getattr(dist, "_path", None)  # PathDistribution keeps its folder here
    return Path(path).name if path is not None else f"{dist.metadata['Name']}.dist-info"


def load_distributions(
    site_dirs: Sequence[Path], packages: Collection[str] | None = None
) -> tuple[list[InstalledDistribution], list[InstalledDistribution]]:
    """Read every distribution in ``site_dirs``.

    Returns
    -------
    (selected, everything)
        ``selected`` holds the distributions named in ``packages`` (all when None);
        ``everything`` holds all of them, needed to know which files *some*
        distribution recorded.

    Raises
    ------
    UsageError
        When a name in ``packages`` is installed in none of the folders.
    """
    everything: list[InstalledDistribution] = []
    for site_dir in site_dirs:
        for dist in metadata.distributions(path=[str(site_dir)]):
            name = dist.metadata["Name"] or _metadata_dir(dist).split("-")[0]
            # Only a RECORD carries hashes; egg-info file lists do not count.
            entries = dist.files if dist.read_text("RECORD") is not None else None
            files = _recorded_files(entries, site_dir) if entries is not None else None
            everything.append(
                InstalledDistribution(
                    name, dist.version or "?", Path(site_dir), _metadata_dir(dist), files
                )
            )
    everything.sort(key=lambda d: (normalize_name(d.name), str(d.site_dir)))
    if packages is None:
        return everything, everything
    wanted = {normalize_name(p) for p in packages}
    selected = [d for d in everything if normalize_name(d.name) in wanted]
    unknown = wanted - {normalize_name(d.name) for d in selected}
    if unknown:
        raise UsageError(
            f"No installed distribution is named {', '.join(sorted(unknown))} in "
            f"{', '.join(str(s) for s in site_dirs)}; check the spelling with `pip list`."
        )
    return selected, everything
