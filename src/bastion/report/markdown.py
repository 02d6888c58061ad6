"""The Markdown report: a summary sized for a pull-request comment.

It states the gate result, counts vulnerable findings by severity, lists the
vulnerable findings (worst first, at most ``max_findings`` of them), says how many
probes were skipped and points at the full HTML report. Text from findings is
escaped so it cannot break the tables or inject HTML into the comment.

Examples
--------
>>> from datetime import UTC, datetime
>>> from bastion.findings import Finding, Severity, Status
>>> from bastion.findings.run import RunRecord
>>> from bastion.report.markdown import to_markdown
>>> f = Finding(probe_id="robustness.noise", title="Accuracy under noise",
...             target="digits-cnn", status=Status.VULNERABLE,
...             severity=Severity.MODERATE, summary="Accuracy a|b falls.")
>>> rec = RunRecord(run_id="0123456789ab", name="demo",
...                 started_at=datetime(2024, 5, 1, tzinfo=UTC), findings=[f])
>>> md = to_markdown(rec, catalog=None)
>>> "| `robustness.noise` | digits-cnn | — | Accuracy a\\\\|b falls. |" in md
True
"""

from __future__ import annotations

from pathlib import Path

from bastion.errors import UsageError
from bastion.findings.run import RunRecord, RunStatus
from bastion.report._catalog import CatalogLike, lookup, resolve_catalog
from bastion.report._common import (
    OWASP_IDS,
    SEVERITY_ORDER,
    format_datetime,
    gate_view,
    severity_label,
    sort_findings,
    write_text,
)

__all__ = ["HTML_REPORT_NAME", "escape_cell", "to_markdown", "write_markdown"]

#: The file name the HTML report gets next to this one.
HTML_REPORT_NAME = "bastion-report.html"

_GATE_ICON = {"passed": "✅", "failed": "❌", "not-set": "ℹ️"}
_SEVERITY_ICON = {"critical": "🟥", "important": "🟧", "moderate": "🟨", "low": "🟦"}


def escape_cell(text: str, limit: int = 300) -> str:
    """Make ``text`` safe inside a Markdown table cell.

    Pipes and backslashes are escaped, line breaks become spaces, ``<``, ``>`` and
    ``&`` become entities, and text longer than ``limit`` characters is cut with an
    ellipsis.

    Examples
    --------
    >>> escape_cell("a|b\\nc <d>")
    'a\\\\|b c &lt;d&gt;'
    """
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    flat = flat.replace("\\", "\\\\").replace("|", "\\|")
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    """An inline code span for ids; backticks inside are dropped."""
    return "`" + escape_cell(text.replace("`", "'"), limit=120) + "`"


def to_markdown(
    record: RunRecord,
    *,
    catalog: CatalogLike | None = None,
    max_findings: int = 50,
    html_report: str | None = HTML_REPORT_NAME,
) -> str:
    """Summarise a run as Markdown for a pull-request comment.

    Parameters
    ----------
    record : RunRecord
        The run to summarise.
    catalog : CatalogLike, optional
        Source of OWASP category names; the built-in catalog by default.
    max_findings : int
        Most vulnerable findings to list; the rest are counted.
    html_report : str or None
        Link or file name of the full HTML report for the footer; None leaves the
        pointer out.

    Returns
    -------
    str
        GitHub-flavoured Markdown ending with a newline.

    Raises
    ------
    UsageError
        If ``max_findings`` is negative.
    """
    if max_findings < 0:
        raise UsageError(f"max_findings must be 0 or more; got {max_findings}.")
    cat = resolve_catalog(catalog)
    gate = gate_view(record)
    lines = [f"## Bastion assessment: {escape_cell(record.name, limit=120)}", ""]
    lines.append(f"{_GATE_ICON[gate.state]} **{gate.text}.**")
    lines.append("")
    meta = (
        f"Run `{escape_cell(record.run_id, 40)}` · {format_datetime(record.started_at)} · "
        f"status {record.status.value} · seed {record.seed}"
    )
    lines.append(meta)
    if record.status is not RunStatus.COMPLETED:
        lines += ["", f"> ⚠️ The run is {record.status.value}; results are partial."]
    lines.append("")

    counts = record.severity_counts()
    statuses = record.status_counts()
    lines += ["| Severity | Vulnerable findings |", "| --- | ---: |"]
    for sev in SEVERITY_ORDER:
        icon = _SEVERITY_ICON[sev.value]
        lines.append(f"| {icon} {severity_label(sev)} | {counts[sev.value]} |")
    lines.append("")
    total = len(record.findings)
    errors = statuses["error"]
    lines.append(
        f"{total} {'finding' if total == 1 else 'findings'}: {statuses['vulnerable']} vulnerable, "
        f"{statuses['not_vulnerable']} not vulnerable, {statuses['inconclusive']} "
        f"inconclusive, {errors} {'error' if errors == 1 else 'errors'}."
    )
    lines.append("")

    vulnerable = [f for f in sort_findings(record.findings) if f.is_vulnerable]
    if vulnerable:
        lines += [
            "### Vulnerable findings",
            "",
            "| Severity | Probe | Target | OWASP | Summary |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in vulnerable[:max_findings]:
            owasp = ", ".join(escape_cell(i, 20) for i in f.catalog.owasp) or "—"
            lines.append(
                f"| {severity_label(f.severity)} | {_code(f.probe_id)} | "
                f"{escape_cell(f.target, 80)} | {owasp} | {escape_cell(f.summary)} |"
            )
        if len(vulnerable) > max_findings:
            rest = len(vulnerable) - max_findings
            lines.append("")
            lines.append(f"…and {rest} more vulnerable findings in the full report.")
        lines.append("")
        hit = [i for i in OWASP_IDS if any(i in f.catalog.owasp for f in vulnerable)]
        if hit:
            names = "; ".join(escape_cell(lookup(cat, i).label, 80) for i in hit)
            lines += [f"OWASP ML Top 10 categories affected: {names}.", ""]
    else:
        lines += ["No vulnerable findings.", ""]

    skipped = len(record.skipped)
    if skipped:
        noun = "probe run was" if skipped == 1 else "probe runs were"
        lines += [f"{skipped} {noun} skipped; the full report says why.", ""]

    footer = f"<sub>Bastion {escape_cell(record.bastion_version or 'unknown', 40)}"
    if html_report:
        if html_report.startswith(("https://", "http://")):
            footer += f" · [full HTML report]({html_report.replace(')', '%29')})"
        else:
            footer += f" · full report: {_code(html_report)}"
    lines.append(footer + "</sub>")
    return "\n".join(lines) + "\n"


def write_markdown(
    record: RunRecord,
    path: Path,
    *,
    catalog: CatalogLike | None = None,
    max_findings: int = 50,
    html_report: str | None = HTML_REPORT_NAME,
) -> Path:
    """Write :func:`to_markdown` to ``path`` and return the path.

    Raises
    ------
    UsageError
        If ``max_findings`` is negative or the file cannot be written.
    """
    text = to_markdown(record, catalog=catalog, max_findings=max_findings, html_report=html_report)
    return write_text(Path(path), text)
