"""Supply chain: the model-artifact scanner, safe loading, signing and verification.

The scanner (:func:`scan_paths`) proves a model file safe to load or says why it
cannot: a symbolic pickle interpreter checks every global against a deny-by-default
:class:`Allowlist`; formats are detected by content and every archive member is
scanned recursively; anything unreadable or over a limit is an issue, never a pass.
:func:`safe_load` loads a pickle-based artifact only after a clean scan, through an
unpickler that enforces the same allowlist. See ``docs/artifacts.md``.

Examples
--------
>>> import pickle
>>> from bastion.artifacts import scan_bytes
>>> scan_bytes(pickle.dumps({"w": [1.0]})).safe
True
>>> scan_bytes(b"cbuiltins\\neval\\n(S'1+1'\\ntR.").issues[0].global_name
'builtins:eval'
"""

from bastion.artifacts.allowlist import DEFAULT_ALLOWLIST, Allowlist, Decision, parse_global
from bastion.artifacts.issues import (
    CATALOG,
    ArtifactIssue,
    Category,
    FileReport,
    Location,
    ScanReport,
)
from bastion.artifacts.limits import Limits
from bastion.artifacts.safe_load import (
    RefusedGlobalError,
    RestrictedUnpickler,
    UnsafeArtifactError,
    restricted_unpickler,
    safe_load,
)
from bastion.artifacts.sarif import to_sarif
from bastion.artifacts.scanner import scan_bytes, scan_file, scan_path, scan_paths

__all__ = [
    "CATALOG",
    "DEFAULT_ALLOWLIST",
    "Allowlist",
    "ArtifactIssue",
    "Category",
    "Decision",
    "FileReport",
    "Limits",
    "Location",
    "RefusedGlobalError",
    "RestrictedUnpickler",
    "ScanReport",
    "UnsafeArtifactError",
    "parse_global",
    "restricted_unpickler",
    "safe_load",
    "scan_bytes",
    "scan_file",
    "scan_path",
    "scan_paths",
    "to_sarif",
]
