"""The SARIF 2.1.0 report, for GitHub code scanning and other SARIF viewers.

One SARIF *rule* per probe id seen in the run, one *result* per finding that needs
attention:

=================  ==========  =========  =========================================
finding status     kind        level      note
=================  ==========  =========  =========================================
vulnerable         ``fail``    by         critical/important ``error``, moderate
                               severity   ``warning``, low ``note``
error              ``fail``    ``note``   the probe could not run: a gap to look at
inconclusive       ``review``  ``none``   a person must decide (SARIF requires level
                                          ``none`` for any kind but ``fail``)
not vulnerable     —           —          not reported as a result
=================  ==========  =========  =========================================

Rules carry the GitHub ``security-severity`` property (critical 9.5, important 8.0,
moderate 5.5, low 3.0) from the worst vulnerable finding of the probe, and the
catalog ids as tags. Every result has a physical location, as GitHub requires: the
``artifact_uri`` given (the model file or config path, relative to the repository
root) or else the target's name.

Examples
--------
>>> from datetime import UTC, datetime
>>> from bastion.findings import Finding, Severity, Status
>>> from bastion.findings.run import RunRecord
>>> from bastion.report.sarif import to_sarif
>>> finding = Finding(probe_id="robustness.noise", title="Accuracy under noise",
...                   target="digits-cnn", status=Status.VULNERABLE,
...                   severity=Severity.IMPORTANT, summary="Accuracy falls to 0.41.")
>>> rec = RunRecord(run_id="0123456789ab", name="demo",
...                 started_at=datetime(2024, 5, 1, tzinfo=UTC), findings=[finding])
>>> log = to_sarif(rec, catalog=None, artifact_uri="models/digits.pt")
>>> result = log["runs"][0]["results"][0]
>>> result["level"], result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
('error', 'models/digits.pt')
>>> log["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["security-severity"]
'8.0'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from bastion import __version__
from bastion.findings import Finding, Severity, Status
from bastion.findings.run import RunRecord, RunStatus
from bastion.report._catalog import CatalogLike, EntryView, lookup, resolve_catalog
from bastion.report._common import format_interval, format_value, to_utc, write_text

__all__ = [
    "SARIF_SCHEMA_URI",
    "SARIF_VERSION",
    "SECURITY_SEVERITY",
    "to_sarif",
    "write_sarif",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"

#: Where the SARIF tool driver points readers for more about Bastion.

#: GitHub code scanning maps these scores to critical / high / medium / low.
SECURITY_SEVERITY: Mapping[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.IMPORTANT: "8.0",
    Severity.MODERATE: "5.5",
    Severity.LOW: "3.0",
}

_LEVEL: Mapping[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.IMPORTANT: "error",
    Severity.MODERATE: "warning",
    Severity.LOW: "note",
}

_FINGERPRINT_KEY = "bastionFindingKey/v1"

_KIND_LABELS = {
    "owasp": "OWASP ML Top 10",
    "failure_mode": "Failure mode",
    "atlas_technique": "MITRE ATLAS technique",
    "atlas_mitigation": "MITRE ATLAS mitigation",
    "cwe": "CWE",
}

ArtifactUris = str | Mapping[str, str] | None


def _rule_name(probe_id: str) -> str:
    """``"robustness.noise"`` -> ``"RobustnessNoise"`` (SARIF rule names are identifiers)."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", probe_id) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Probe"


def _uri(location: str) -> str:
    """A SARIF artifact URI for a user-given path or URI.

    URIs with a scheme are kept; Windows separators become ``/``; an absolute path
    becomes a ``file://`` URI; a relative path is percent-encoded as it is.
    """
    text = location.strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", text):
        return text
    text = text.replace("\\", "/")
    if re.match(r"^[A-Za-z]:/", text):
        return "file:///" + quote(text, safe="/:-._~")
    if text.startswith("/"):
        return Path(text).as_uri()
    while text.startswith("./"):
        text = text[2:]
    return quote(str(PurePosixPath(text)), safe="/-._~") if text else ""


def _artifact_for(finding: Finding, artifact_uri: ArtifactUris) -> str:
    given = ""
    if isinstance(artifact_uri, str):
        given = _uri(artifact_uri)
    elif isinstance(artifact_uri, Mapping):
        given = _uri(artifact_uri.get(finding.target, ""))
    return given or quote(finding.target, safe="/-._~") or "unnamed-target"


def _category(name: str) -> str:
    """A run name made safe for a SARIF ``automationDetails`` id segment."""
    return re.sub(r"[^0-9A-Za-z._-]+", "-", name).strip("-") or "run"


def _sarif_time(moment: datetime) -> str:
    return to_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entries(catalog: CatalogLike, ids: list[str]) -> list[EntryView]:
    return [lookup(catalog, i) for i in ids]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _rule(probe_id: str, findings: list[Finding], catalog: CatalogLike) -> dict[str, Any]:
    """One reporting descriptor for a probe, from all its findings in the run."""
    title = findings[0].title
    ids = _unique([i for f in findings for i in f.catalog.all_ids()])
    remedies = _unique([r for f in findings for r in f.remedies])
    mapped = _entries(catalog, ids)
    remedy_views = _entries(catalog, remedies)

    text_lines = [f"{title} (Bastion probe {probe_id})."]
    md_lines = [f"**{title}** — Bastion probe `{probe_id}`.", ""]
    if mapped:
        text_lines.append("Threats and weaknesses tested:")
        md_lines.append("### Threats and weaknesses tested")
        for e in mapped:
            kind = _KIND_LABELS.get(e.kind, e.kind)
            prefix = f"{kind}: " if kind else ""
            detail = f": {e.description}" if e.description else ""
            text_lines.append(f"- {prefix}{e.label}{detail}")
            label = f"[{e.label}]({e.url})" if e.url else e.label
            md_lines.append(f"- {prefix}{label}{detail}")
        md_lines.append("")
    if remedy_views:
        text_lines.append("Recommended remedies:")
        md_lines.append("### Recommended remedies")
        for e in remedy_views:
            detail = f": {e.description}" if e.description else ""
            text_lines.append(f"- {e.label}{detail}")
            label = f"[{e.label}]({e.url})" if e.url else e.label
            md_lines.append(f"- {label}{detail}")
    full_parts = [text_lines[0], *(e.description for e in mapped if e.description)]
    if remedy_views:
        full_parts.append(f"Recommended remedies: {', '.join(e.label for e in remedy_views)}.")
    full = " ".join(full_parts)

    worst = max((f.severity for f in findings if f.is_vulnerable), default=Severity.NONE)
    tags = ["security", "machine-learning", *ids]
    tags += [f"external/cwe/{i.lower()}" for i in ids if i.upper().startswith("CWE-")]
    properties: dict[str, Any] = {"tags": _unique(tags)}
    if worst in SECURITY_SEVERITY:
        properties["security-severity"] = SECURITY_SEVERITY[worst]
        properties["problem.severity"] = _LEVEL[worst]
    rule: dict[str, Any] = {
        "id": probe_id,
        "name": _rule_name(probe_id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": full},
        "help": {"text": "\n".join(text_lines), "markdown": "\n".join(md_lines).rstrip()},
        "defaultConfiguration": {"level": _LEVEL.get(worst, "warning")},
        "properties": properties,
    }
    help_uri = next((e.url for e in mapped if e.url), "")
    if help_uri:
        rule["helpUri"] = help_uri
    return rule


def _metric_properties(finding: Finding) -> list[dict[str, Any]]:
    out = []
    for m in finding.metrics:
        # Through JSON text so that NaN and infinities become null, not invalid JSON.
        item: dict[str, Any] = json.loads(m.model_dump_json(exclude_none=True))
        item["display"] = " ".join(
            p for p in (format_value(m), m.unit, format_interval(m.interval)) if p
        )
        out.append(item)
    return out


def _result(finding: Finding, rule_index: int, artifact_uri: ArtifactUris) -> dict[str, Any] | None:
    if finding.status is Status.VULNERABLE:
        kind, level = "fail", _LEVEL.get(finding.severity, "note")
    elif finding.status is Status.ERROR:
        kind, level = "fail", "note"
    elif finding.status is Status.INCONCLUSIVE:
        kind, level = "review", "none"
    else:
        return None
    message = finding.summary.strip() or finding.title
    if finding.status is Status.ERROR:
        message = f"The probe could not run: {message}"
    elif finding.status is Status.INCONCLUSIVE:
        message = f"Inconclusive: {message}"
    properties: dict[str, Any] = {
        "status": finding.status.value,
        "severity": finding.severity.value,
        "target": finding.target,
        "metrics": _metric_properties(finding),
    }
    if finding.variant:
        properties["variant"] = finding.variant
    if finding.severity_rationale:
        properties["severityRationale"] = list(finding.severity_rationale)
    if finding.remedies:
        properties["remedies"] = list(finding.remedies)
    return {
        "ruleId": finding.probe_id,
        "ruleIndex": rule_index,
        "kind": kind,
        "level": level,
        "message": {"text": message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _artifact_for(finding, artifact_uri)}
                },
                "logicalLocations": [{"name": finding.target, "kind": "module"}],
            }
        ],
        "partialFingerprints": {_FINGERPRINT_KEY: finding.fingerprint},
        "properties": properties,
    }


def _invocation(record: RunRecord) -> dict[str, Any]:
    invocation: dict[str, Any] = {
        "executionSuccessful": record.status is RunStatus.COMPLETED,
        "startTimeUtc": _sarif_time(record.started_at),
    }
    if record.finished_at is not None:
        invocation["endTimeUtc"] = _sarif_time(record.finished_at)
    notes: list[dict[str, Any]] = []
    for f in record.findings:
        if f.status is Status.ERROR:
            notes.append(
                {
                    "level": "error",
                    "message": {"text": f"{f.probe_id} on {f.target} failed: {f.summary}"},
                    "associatedRule": {"id": f.probe_id},
                }
            )
    for s in record.skipped:
        notes.append(
            {
                "level": "note",
                "message": {"text": f"{s.probe_id} on {s.target} was skipped: {s.reason}"},
                "associatedRule": {"id": s.probe_id},
            }
        )
    if notes:
        invocation["toolExecutionNotifications"] = notes
    if record.status is not RunStatus.COMPLETED:
        invocation["exitCodeDescription"] = f"run {record.status.value}"
    return invocation


def to_sarif(
    record: RunRecord,
    *,
    catalog: CatalogLike | None = None,
    artifact_uri: str | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the SARIF 2.1.0 log for a run.

    Parameters
    ----------
    record : RunRecord
        The run to report.
    catalog : CatalogLike, optional
        Where names and descriptions of catalog ids come from; the built-in catalog
        by default. Ids it does not know appear on their own.
    artifact_uri : str or mapping of str to str, optional
        The file every result points at: the model file or assessment config, as a
        path relative to the repository root (GitHub matches it against the
        checkout). A mapping gives one path per target name. Targets without one use
        their name.

    Returns
    -------
    dict
        A SARIF log with one run, ready for :func:`json.dumps`.
    """
    cat = resolve_catalog(catalog)
    by_probe: dict[str, list[Finding]] = {}
    for f in record.findings:
        by_probe.setdefault(f.probe_id, []).append(f)
    probe_ids = sorted(by_probe)
    rules = [_rule(p, by_probe[p], cat) for p in probe_ids]
    index = {p: i for i, p in enumerate(probe_ids)}
    results = []
    for f in record.findings:
        result = _result(f, index[f.probe_id], artifact_uri)
        if result is not None:
            results.append(result)
    version = record.bastion_version or __version__
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "Bastion",
                "version": version,
                "semanticVersion": version,
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"bastion/{_category(record.name)}/{record.run_id}"},
        "invocations": [_invocation(record)],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "runId": record.run_id,
            "runName": record.name,
            "schemaVersion": record.schema_version,
            "seed": record.seed,
            "configFingerprint": record.config_fingerprint,
            "gate": record.gate.model_dump(mode="json"),
            "severityCounts": record.severity_counts(),
            "statusCounts": record.status_counts(),
        },
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def write_sarif(
    record: RunRecord,
    path: Path,
    *,
    catalog: CatalogLike | None = None,
    artifact_uri: str | Mapping[str, str] | None = None,
) -> Path:
    """Write :func:`to_sarif` to ``path`` as indented JSON and return the path.

    Raises
    ------
    UsageError
        If the file cannot be written.
    """
    log = to_sarif(record, catalog=catalog, artifact_uri=artifact_uri)
    text = json.dumps(log, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text(Path(path), text)
