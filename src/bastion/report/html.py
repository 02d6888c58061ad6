"""The HTML report: one self-contained file a person reads from top to bottom.

Everything is inline: CSS in a ``<style>`` element, plots as SVG drawn by
:mod:`bastion.report.svg_plot`, evidence images as ``data:`` URIs. The page loads
nothing from the network and needs no JavaScript. Jinja2 escapes every value, so
text from findings cannot inject markup.

Examples
--------
>>> import tempfile
>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> from bastion.findings import Finding, Severity, Status
>>> from bastion.findings.run import RunRecord
>>> from bastion.report.html import write_html
>>> f = Finding(probe_id="robustness.noise", title="Accuracy under <noise>",
...             target="digits-cnn", status=Status.VULNERABLE,
...             severity=Severity.MODERATE, summary="Accuracy falls to 0.41.")
>>> rec = RunRecord(run_id="0123456789ab", name="demo",
...                 started_at=datetime(2024, 5, 1, tzinfo=UTC), findings=[f])
>>> out = write_html(rec, Path(tempfile.mkdtemp()) / "bastion-report.html")
>>> page = out.read_text()
>>> "Accuracy under &lt;noise&gt;" in page, "<script" in page
(True, False)
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from bastion import __version__
from bastion.findings import Evidence, Finding, Status
from bastion.findings.run import RunRecord, RunStatus
from bastion.report._catalog import CatalogLike, EntryView, lookup, resolve_catalog
from bastion.report._common import (
    OWASP_IDS,
    SEVERITY_ORDER,
    STATUS_ORDER,
    format_datetime,
    format_duration,
    format_interval,
    format_number,
    format_value,
    gate_view,
    severity_label,
    sort_findings,
    status_label,
    write_text,
)
from bastion.report.svg_plot import line_chart

__all__ = ["MAX_IMAGE_BYTES", "to_html", "write_html"]

log = logging.getLogger(__name__)

#: Evidence images larger than this are linked, not embedded.
MAX_IMAGE_BYTES = 8 * 1024 * 1024

#: Rows shown per evidence table; the rest are counted.
MAX_TABLE_ROWS = 200

#: PNGs narrower than this are enlarged, with crisp pixels.
_SMALL_IMAGE_WIDTH = 160

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

_MAPPING_GROUPS = (
    ("owasp", "OWASP ML Top 10"),
    ("failure_modes", "Failure modes"),
    ("atlas_techniques", "MITRE ATLAS techniques"),
    ("atlas_mitigations", "MITRE ATLAS mitigations"),
    ("cwe", "CWE"),
)


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    rows: list[list[str]]
    omitted: int = 0


@dataclass(frozen=True)
class _EvidenceView:
    kind: str
    description: str
    path: str = ""
    image_src: str = ""
    image_width: int = 0
    note: str = ""
    table: _Table | None = None


@dataclass(frozen=True)
class _MetricRow:
    name: str
    value: str
    unit: str
    interval: str
    n: str
    definition: str


@dataclass(frozen=True)
class _MappingGroup:
    label: str
    entries: list[EntryView]


@dataclass(frozen=True)
class _FindingView:
    anchor: str
    f: Finding
    status: str
    severity: str
    metrics: list[_MetricRow]
    plots: list[Markup]
    evidence: list[_EvidenceView]
    mappings: list[_MappingGroup]
    remedies: list[EntryView]
    parameters: list[tuple[str, str]]
    versions: list[tuple[str, str]]


@dataclass(frozen=True)
class _FindingGroup:
    status: str
    label: str
    findings: list[_FindingView]


@dataclass(frozen=True)
class _OwaspRow:
    entry: EntryView
    counts: list[int]
    total: int


@dataclass
class _Page:
    record: RunRecord
    gate_state: str
    gate_text: str
    duration: str
    started: str
    finished: str
    generator: str
    partial: bool
    severity_counts: list[tuple[str, str, int]]
    status_counts: list[tuple[str, str, int]]
    owasp_rows: list[_OwaspRow]
    groups: list[_FindingGroup]
    index: list[_FindingView]
    options: list[tuple[str, str]] = field(default_factory=list)


def _cell(value: Any) -> str:
    """A table cell value as text: numbers formatted, structures as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _table(data: Mapping[str, Any]) -> _Table:
    """Evidence data as a table.

    ``{"columns": [...], "rows": [[...], ...]}`` is a table as given; a mapping of
    equally long lists is a column-wise table; anything else is key/value pairs.
    """
    columns, rows = data.get("columns"), data.get("rows")
    if isinstance(columns, list) and isinstance(rows, list):
        body = [[_cell(v) for v in r] if isinstance(r, list) else [_cell(r)] for r in rows]
    else:
        lists = [v for v in data.values() if isinstance(v, list)]
        lengths = {len(v) for v in lists}
        if data and len(lists) == len(data) and len(lengths) == 1 and lengths != {0}:
            columns = list(data)
            body = [[_cell(data[c][i]) for c in columns] for i in range(lengths.pop())]
        else:
            columns = ["key", "value"]
            body = [[str(k), _cell(v)] for k, v in data.items()]
    omitted = max(0, len(body) - MAX_TABLE_ROWS)
    return _Table([str(c) for c in columns], body[:MAX_TABLE_ROWS], omitted)


def _display_width(raw: bytes) -> int:
    """Width to show a small PNG at (whole-number upscaling), or 0 to use its own size.

    Probes save inputs such as 8x8 or 28x28 digits; shown at their natural size they
    are specks, so they are enlarged by a whole factor to at least 160 pixels wide.
    """
    if not raw.startswith(_SIGNATURES[0][0]) or len(raw) < 24:
        return 0
    width = int.from_bytes(raw[16:20], "big")
    if width == 0 or width >= _SMALL_IMAGE_WIDTH:
        return 0
    return width * -(-_SMALL_IMAGE_WIDTH // width)


def _read_image(path: Path) -> tuple[bytes, str, str]:
    """``(bytes, MIME type, "")`` for an embeddable image, else ``(b"", "", reason)``."""
    try:
        if not path.is_file():
            return b"", "", "file not found next to the report"
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            return b"", "", f"not embedded: {size:,} bytes is over the size limit"
        raw = path.read_bytes()
    except OSError as err:
        return b"", "", f"not embedded: {err.strerror or type(err).__name__}"
    mime = next((m for sig, m in _SIGNATURES if raw.startswith(sig)), "")
    if not mime and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        mime = "image/webp"
    if not mime:
        return b"", "", "not embedded: not a PNG, JPEG, GIF or WebP image"
    return raw, mime, ""


def _evidence(item: Evidence, base_dir: Path | None) -> _EvidenceView:
    path = item.path or ""
    image_src, note, width = "", "", 0
    is_image = item.kind == "image" or Path(path).suffix.lower() in _IMAGE_SUFFIXES
    if path and is_image:
        if base_dir is None:
            note = "not embedded: no report folder to resolve the path against"
        else:
            raw, mime, note = _read_image(base_dir / path)
            if raw:
                image_src = f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
                width = _display_width(raw)
    table = _table(item.data) if item.data else None
    return _EvidenceView(item.kind, item.description, path, image_src, width, note, table)


def _finding_view(
    index: int, f: Finding, catalog: CatalogLike, base_dir: Path | None
) -> _FindingView:
    metrics = [
        _MetricRow(
            name=m.name,
            value=format_value(m),
            unit=m.unit,
            interval=format_interval(m.interval),
            n=format_number(m.n) if m.n is not None else "",
            definition=m.definition,
        )
        for m in f.metrics
    ]
    mappings = []
    for attr, label in _MAPPING_GROUPS:
        ids: list[str] = getattr(f.catalog, attr)
        if ids:
            mappings.append(_MappingGroup(label, [lookup(catalog, i) for i in ids]))
    repro = f.reproduction
    return _FindingView(
        anchor=f"finding-{index + 1}",
        f=f,
        status=status_label(f.status),
        severity=severity_label(f.severity),
        metrics=metrics,
        # line_chart escapes every text it writes, so its markup is safe to embed.
        plots=[Markup(line_chart(s)) for s in f.series],
        evidence=[_evidence(e, base_dir) for e in f.evidence],
        mappings=mappings,
        remedies=[lookup(catalog, r) for r in f.remedies],
        parameters=[(k, _cell(v)) for k, v in sorted(repro.parameters.items())],
        versions=sorted(repro.versions.items()),
    )


def _owasp_rows(record: RunRecord, catalog: CatalogLike) -> list[_OwaspRow]:
    seen = [i for f in record.findings for i in f.catalog.owasp]
    extra = sorted(set(seen) - set(OWASP_IDS))
    rows = []
    for oid in [*OWASP_IDS, *extra]:
        mapped = [f for f in record.findings if oid in f.catalog.owasp]
        counts = [
            sum(1 for f in mapped if f.is_vulnerable and f.severity is sev)
            for sev in SEVERITY_ORDER
        ]
        rows.append(_OwaspRow(lookup(catalog, oid), counts, len(mapped)))
    unmapped = [f for f in record.findings if not f.catalog.owasp]
    if unmapped:
        counts = [
            sum(1 for f in unmapped if f.is_vulnerable and f.severity is sev)
            for sev in SEVERITY_ORDER
        ]
        rows.append(_OwaspRow(EntryView(id="—", name="Not mapped to OWASP"), counts, len(unmapped)))
    return rows


def _page(record: RunRecord, catalog: CatalogLike, base_dir: Path | None) -> _Page:
    gate = gate_view(record)
    ordered = sort_findings(record.findings)
    views = [_finding_view(i, f, catalog, base_dir) for i, f in enumerate(ordered)]
    groups = []
    for status in STATUS_ORDER:
        members = [v for v in views if v.f.status is status]
        if members:
            groups.append(_FindingGroup(status.value, status_label(status), members))
    sev_counts = record.severity_counts()
    stat_counts = record.status_counts()
    return _Page(
        record=record,
        gate_state=gate.state,
        gate_text=gate.text,
        duration=format_duration(record.started_at, record.finished_at),
        started=format_datetime(record.started_at),
        finished=format_datetime(record.finished_at),
        generator=f"Bastion {__version__}",
        partial=record.status is not RunStatus.COMPLETED,
        severity_counts=[(s.value, severity_label(s), sev_counts[s.value]) for s in SEVERITY_ORDER],
        status_counts=[(s.value, status_label(s), stat_counts[s.value]) for s in Status],
        owasp_rows=_owasp_rows(record, catalog),
        groups=groups,
        index=views,
        options=[(k, _cell(v)) for k, v in sorted(record.options.items())],
    )


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bastion.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["severity_order"] = [s.value for s in SEVERITY_ORDER]
    env.filters["http_url"] = _is_http_url
    return env


def _is_http_url(url: str) -> bool:
    """Only web links become anchors; anything else (``javascript:``, paths) stays text."""
    return url.startswith(("https://", "http://"))


def to_html(
    record: RunRecord,
    *,
    catalog: CatalogLike | None = None,
    base_dir: Path | None = None,
) -> str:
    """Render a run as one self-contained HTML page.

    Parameters
    ----------
    record : RunRecord
        The run to render.
    catalog : CatalogLike, optional
        Source of names, descriptions and links for catalog ids; the built-in
        catalog by default. Unknown ids are shown on their own.
    base_dir : Path, optional
        The folder evidence paths are relative to (the report's folder). Without
        it, evidence images are listed by path but not embedded.

    Returns
    -------
    str
        The HTML document.
    """
    page = _page(record, resolve_catalog(catalog), base_dir)
    template = _environment().get_template("report.html.j2")
    return template.render(page=page, r=record)


def write_html(record: RunRecord, path: Path, *, catalog: CatalogLike | None = None) -> Path:
    """Write the HTML report to ``path`` and return the path.

    Evidence images are looked up relative to ``path``'s folder and embedded.

    Raises
    ------
    UsageError
        If the file cannot be written.
    """
    path = Path(path)
    return write_text(path, to_html(record, catalog=catalog, base_dir=path.parent))
