"""SARIF 2.1.0 for artifact scans: one rule per issue category, one result per issue.

Each result points at the scanned file; an issue in the file itself carries its byte
offset as a SARIF region, an issue inside an archive member names the member chain as
a logical location (``model.pt > archive/data.pkl``) and keeps the offset and opcode in
its properties. Rules carry GitHub's ``security-severity`` and the catalog ids as tags.

Examples
--------
>>> from bastion.artifacts.scanner import scan_bytes
>>> from bastion.artifacts.issues import ScanReport
>>> report = ScanReport(files=[scan_bytes(b"cos\\nsystem\\n(S'x'\\ntR.", name="m.pkl")])
>>> log = to_sarif(report)
>>> result = log["runs"][0]["results"][0]
>>> result["ruleId"], result["level"], result["locations"][0]["physicalLocation"]["region"]
('artifacts.code_execution', 'error', {'byteOffset': 0})
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from bastion import __version__
from bastion.artifacts.issues import CATALOG, ArtifactIssue, Category, ScanReport
from bastion.findings import Severity
from bastion.report.sarif import SARIF_SCHEMA_URI, SARIF_VERSION, SECURITY_SEVERITY

__all__ = ["to_sarif"]

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.IMPORTANT: "error",
    Severity.MODERATE: "warning",
    Severity.LOW: "note",
}
_TEXT = {
    Category.CODE_EXECUTION: "Artifact runs code when loaded",
    Category.FILE_OR_NETWORK: "Artifact reaches files or the network when loaded",
    Category.UNKNOWN_GLOBAL: "Artifact imports a global outside the allowlist",
    Category.UNPROVABLE: "Artifact could not be proven safe",
    Category.CONTAINER_ANOMALY: "Artifact container shows parser-confusion signs",
}


def _uri(path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return quote(str(PurePosixPath(path.replace("\\", "/"))), safe="/-._~")


def _rule(category: Category) -> dict[str, Any]:
    ids = CATALOG.all_ids()
    return {
        "id": f"artifacts.{category.value}",
        "name": "".join(w.capitalize() for w in category.value.split("_")),
        "shortDescription": {"text": _TEXT[category]},
        "fullDescription": {
            "text": f"{_TEXT[category]} (Bastion artifact scanner, severity "
            f"{category.severity.value}). Catalog: {', '.join(ids)}."
        },
        "defaultConfiguration": {"level": _LEVEL[category.severity]},
        "properties": {
            "tags": ["security", "supply-chain", *ids],
            "security-severity": SECURITY_SEVERITY[category.severity],
        },
    }


def _result(issue: ArtifactIssue, index: int) -> dict[str, Any]:
    loc = issue.location
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(loc.file)}}
    if not loc.member and loc.offset is not None:
        physical["region"] = {"byteOffset": loc.offset}
    location: dict[str, Any] = {"physicalLocation": physical}
    if loc.member:
        location["logicalLocations"] = [
            {"fullyQualifiedName": " > ".join(loc.member), "kind": "member"}
        ]
    return {
        "ruleId": f"artifacts.{issue.category.value}",
        "ruleIndex": index,
        "kind": "fail",
        "level": _LEVEL[issue.severity],
        "message": {"text": f"{loc.describe()}: {issue.message}"},
        "locations": [location],
        "properties": {
            "category": issue.category.value,
            "severity": issue.severity.value,
            "global": issue.global_name,
            "member": list(loc.member),
            "offset": loc.offset,
            "opcode": loc.opcode,
            "count": issue.count,
        },
    }


def to_sarif(report: ScanReport) -> dict[str, Any]:
    """The SARIF 2.1.0 log of an artifact scan."""
    categories = list(Category)
    results = [_result(i, categories.index(i.category)) for i in report.issues]
    artifacts = [
        {
            "location": {"uri": _uri(f.path)},
            "length": f.size,
            "hashes": {"sha-256": f.sha256} if f.sha256 else {},
        }
        for f in report.files
    ]
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "Bastion artifact scanner",
                        "version": __version__,
                        "rules": [_rule(c) for c in categories],
                    }
                },
                "artifacts": artifacts,
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "properties": {
                            "allowlist": report.allowlist,
                            "userAllow": list(report.user_allow),
                        },
                    }
                ],
            }
        ],
    }
