"""What the artifact scanner reports: issues, per-file reports and the whole scan.

An :class:`ArtifactIssue` is one reason a file could not be proven safe to load: which
global or construct, where (file, archive member chain, byte offset in that member,
opcode), why, and a severity class. Every issue maps to the supply-chain entries of
the catalog (OWASP ML06, failure modes FM9/FM11, ATLAS AML.T0010/AML.T0011 and the
mitigations AML.M0011, AML.M0013, AML.M0014, AML.M0016).

=========================  =========  =================================================
category                   severity   meaning
=========================  =========  =================================================
``code_execution``         critical   a global or construct known to run code on load
``file_or_network``        important  reads or writes files, opens connections, or
                                      escapes the model folder
``unknown_global``         important  a global outside the allowlist (may be anything)
``unprovable``             moderate   truncated, malformed, unknown opcode, a limit was
                                      reached: the file could not be proven safe
``container_anomaly``      moderate   parser-confusion signs: zip header mismatches,
                                      CRC errors, overlapping or hidden data
=========================  =========  =================================================

Examples
--------
>>> from bastion.artifacts.issues import ArtifactIssue, Category, Location
>>> issue = ArtifactIssue(
...     category=Category.CODE_EXECUTION,
...     message="posix.system runs a shell command.",
...     location=Location(file="model.pkl", offset=2, opcode="STACK_GLOBAL"),
...     global_name="posix:system",
... )
>>> issue.severity.value, issue.location.describe()
('critical', 'model.pkl @ byte 2 (STACK_GLOBAL)')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bastion.findings import CatalogRefs, Severity

__all__ = [
    "CATALOG",
    "ArtifactIssue",
    "Category",
    "FileReport",
    "Location",
    "ScanReport",
]

#: Catalog ids every scanner issue maps to (as defined in ``catalog/data``).
CATALOG = CatalogRefs(
    owasp=["ML06"],
    failure_modes=["FM9", "FM11"],
    atlas_techniques=["AML.T0010", "AML.T0010.003", "AML.T0011", "AML.T0011.000"],
    atlas_mitigations=["AML.M0011", "AML.M0013", "AML.M0014", "AML.M0016"],
)


class Category(StrEnum):
    """Why a construct could not be proven safe; decides the severity."""

    CODE_EXECUTION = "code_execution"
    FILE_OR_NETWORK = "file_or_network"
    UNKNOWN_GLOBAL = "unknown_global"
    UNPROVABLE = "unprovable"
    CONTAINER_ANOMALY = "container_anomaly"

    @property
    def severity(self) -> Severity:
        """The fixed severity of this category (see the module table)."""
        return _SEVERITY[self]


_SEVERITY = {
    Category.CODE_EXECUTION: Severity.CRITICAL,
    Category.FILE_OR_NETWORK: Severity.IMPORTANT,
    Category.UNKNOWN_GLOBAL: Severity.IMPORTANT,
    Category.UNPROVABLE: Severity.MODERATE,
    Category.CONTAINER_ANOMALY: Severity.MODERATE,
}


@dataclass(frozen=True)
class Location:
    """Where an issue was found.

    Attributes
    ----------
    file : str
        The scanned file as the user named it.
    member : tuple of str
        Archive members from the outside in, e.g. ``("archive/data.pkl",)``; empty for
        the file itself.
    offset : int or None
        Byte offset inside the innermost member (or the file).
    opcode : str or None
        The pickle opcode (or structure, e.g. ``"central directory"``) at the offset.
    """

    file: str
    member: tuple[str, ...] = ()
    offset: int | None = None
    opcode: str | None = None

    def describe(self) -> str:
        """One human-readable line, e.g. ``"m.pt > archive/data.pkl @ byte 12 (REDUCE)"``."""
        text = " > ".join((self.file, *self.member))
        if self.offset is not None:
            text += f" @ byte {self.offset}"
        if self.opcode:
            text += f" ({self.opcode})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "file": self.file,
            "member": list(self.member),
            "offset": self.offset,
            "opcode": self.opcode,
        }


@dataclass(frozen=True)
class ArtifactIssue:
    """One reason an artifact could not be proven safe.

    ``count`` says how many times the same global was met in the same member (only the
    first location is kept, so a hostile file cannot flood the report).
    """

    category: Category
    message: str
    location: Location
    global_name: str | None = None
    count: int = 1

    @property
    def severity(self) -> Severity:
        """Severity from :attr:`category`."""
        return self.category.severity

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "category": self.category.value,
            "severity": self.severity.value,
            "message": self.message,
            "global": self.global_name,
            "count": self.count,
            "location": self.location.to_dict(),
        }


@dataclass
class FileReport:
    """The result of scanning one file (all of its members, recursively).

    Attributes
    ----------
    path : str
    size : int
        Bytes on disk.
    sha256 : str
        Hex digest of the whole file (pin it with ``safe_load(expected_sha256=...)``).
    formats : list of str
        Formats recognised, outermost first, e.g. ``["zip/torch", "pickle"]``.
    issues : list of ArtifactIssue
    globals_seen : dict of str to int
        Every global the pickles reference (``module:qualname``) and how often,
        allowed or not.
    allowed_by_user : list of str
        ``--allow`` exceptions that this file needed.
    members : int
        Members and nested streams scanned.
    notes : list of str
        Facts worth knowing that are not issues (a format's parts that were hashed
        rather than parsed, an optional parser that was used).
    pickle_based : bool
        Some part of the file is read by Python's unpickler when it is loaded the usual
        way (a pickle, joblib or ``torch.save`` file, a NumPy object array; not the
        pickles of a TorchScript archive, which libtorch reads without Python). A clean
        scan says what such a file holds *now*; the format itself can hold code.
    """

    path: str
    size: int = 0
    sha256: str = ""
    formats: list[str] = field(default_factory=list)
    issues: list[ArtifactIssue] = field(default_factory=list)
    globals_seen: dict[str, int] = field(default_factory=dict)
    allowed_by_user: list[str] = field(default_factory=list)
    members: int = 0
    notes: list[str] = field(default_factory=list)
    pickle_based: bool = False

    @property
    def safe(self) -> bool:
        """True when nothing could be held against the file."""
        return not self.issues

    @property
    def worst(self) -> Severity:
        """The highest severity among the issues (``none`` when safe)."""
        return max((i.severity for i in self.issues), default=Severity.NONE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "safe": self.safe,
            "worst_severity": self.worst.value,
            "formats": list(self.formats),
            "pickle_based": self.pickle_based,
            "members_scanned": self.members,
            "issues": [i.to_dict() for i in self.issues],
            "globals": dict(sorted(self.globals_seen.items())),
            "allowed_by_user": list(self.allowed_by_user),
            "notes": list(self.notes),
        }


@dataclass
class ScanReport:
    """Every file of one scan, with the allowlist exceptions that were granted."""

    files: list[FileReport] = field(default_factory=list)
    user_allow: list[str] = field(default_factory=list)
    allowlist: str = "default"

    @property
    def safe(self) -> bool:
        """True when every file is safe."""
        return all(f.safe for f in self.files)

    @property
    def exit_code(self) -> int:
        """0 when every file is safe, 1 otherwise (the CLI's exit code)."""
        return 0 if self.safe else 1

    @property
    def issues(self) -> list[ArtifactIssue]:
        """All issues, file by file."""
        return [i for f in self.files for i in f.issues]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with a summary."""
        by_category: dict[str, int] = {}
        for issue in self.issues:
            by_category[issue.category.value] = by_category.get(issue.category.value, 0) + 1
        return {
            "safe": self.safe,
            "allowlist": self.allowlist,
            "user_allow": list(self.user_allow),
            "catalog": CATALOG.model_dump(),
            "summary": {
                "files": len(self.files),
                "unsafe_files": sum(not f.safe for f in self.files),
                "issues": len(self.issues),
                "by_category": by_category,
                "bytes": sum(f.size for f in self.files),
            },
            "files": [f.to_dict() for f in self.files],
        }
