"""The Markdown threat-model report: the same content as the HTML page, for a repository.

Text from the description is escaped (:func:`bastion.report.markdown.escape_cell`) so it
cannot break tables or inject HTML.

Examples
--------
>>> from bastion.threatmodel.analysis import analyse
>>> from bastion.threatmodel.samples import minimal_description
>>> md = to_markdown(analyse(minimal_description()))
>>> md.splitlines()[0]
'# Threat model: sample-classifier'
>>> "| 1 | ML01 Adversarial Attack | 🟧 Important |" in md
True
"""

from __future__ import annotations

from pathlib import Path

from bastion.report._common import format_datetime, write_text
from bastion.report.markdown import escape_cell
from bastion.threatmodel.results import Reason, ThreatModel, ThreatResult
from bastion.threatmodel.views import Page, build_page

__all__ = ["to_markdown", "write_markdown"]

_ICON = {"critical": "🟥", "important": "🟧", "moderate": "🟨", "low": "🟦", "none": "⬜"}
_CELL = {"present": "✅", "partial": "🟡", "gap": "❌", "none": "", "na": "·"}
_STATUS = {"yes": "✅ in place", "partial": "🟡 partial", "no": "❌ missing"}
_LIMIT = 2000


def _e(text: str) -> str:
    return escape_cell(text, limit=_LIMIT)


def _cite(reason: Reason) -> str:
    refs = ", ".join(f"`{_e(f.text()).replace('`', '')}`" for f in reason.fields)
    return _e(reason.text) + (f" ({refs})" if refs else "")


def _sev(t: ThreatResult) -> str:
    return f"{_ICON[t.severity.value]} {t.severity.value.capitalize()}"


def _summary(page: Page) -> list[str]:
    tm = page.tm
    counts = " · ".join(f"{_ICON[s]} {n} {s}" for s, n in page.severity_counts)
    lines = [
        f"# Threat model: {_e(tm.system)}",
        "",
        *([_e(tm.summary), ""] if tm.summary else []),
        f"_Description `{_e(tm.source)}`, generated {format_datetime(tm.generated_at)} by "
        f"Bastion {tm.bastion_version}, catalog {tm.catalog_version}._",
        "",
        f"**{len(page.ranked)} of {len(tm.threats)} threats apply:** {counts}; "
        f"{page.total_gaps} mitigation gaps.",
    ]
    if tm.plan.untested:
        lines += ["", f"No installed probe tests {', '.join(tm.plan.untested)} yet."]
    if tm.warnings:
        lines += ["", "## Design warnings", ""]
        for w in tm.warnings:
            refs = ", ".join(f"`{_e(f.text()).replace('`', '')}`" for f in w.fields)
            lines.append(f"- ⚠️ **{w.code}**: {_e(w.message)}" + (f" ({refs})" if refs else ""))
    return lines


def _ranked(page: Page) -> list[str]:
    lines = [
        "",
        "## Ranked risks",
        "",
        "| # | Threat | Severity | Risk | Gaps | Tested by |",
        "|---:|---|---|---:|---:|---|",
    ]
    for t in page.ranked:
        probes = ", ".join(f"`{p}`" for p in t.probes) or "no probe yet"
        score = t.risk.score if t.risk else 0.0
        lines.append(
            f"| {t.rank} | {t.id} {_e(t.name)} | {_sev(t)} | {score:.1f} | {len(t.gaps)} "
            f"| {probes} |"
        )
    return lines


def _matrix(page: Page) -> list[str]:
    head = " | ".join(c.short for c in page.columns)
    lines = [
        "",
        "## Threats × mitigations",
        "",
        "✅ in place · 🟡 partly in place · ❌ gap (needed, missing) · · threat does not apply",
        "",
        f"| Threat | {head} |",
        "|---|" + "|".join(":-:" for _ in page.columns) + "|",
    ]
    for row in page.rows:
        cells = " | ".join(_CELL[c.state] for c in row.cells)
        name = row.threat.id if row.threat.applies else f"_{row.threat.id}_"
        lines.append(f"| {name} | {cells} |")
    return lines


def _details(t: ThreatResult, assessment: str | None) -> list[str]:
    assert t.risk is not None
    lines = [
        "",
        f"### {t.rank}. {t.id} {_e(t.name)} — {_sev(t)}, risk {t.risk.score:.1f}/25",
        "",
        _e(t.description),
        "",
        "**Why it applies**",
        "",
        *(f"- {_cite(r)}" for r in t.reasons),
        "",
        f"**Risk factors** (start: {t.risk.exploitability.base_source})",
        "",
        "| Factor | Start | This system | Because |",
        "|---|---:|---:|---|",
    ]
    for f in (t.risk.exploitability, t.risk.detectability, t.risk.technical_impact):
        why = "; ".join(f"{a.delta:+d} {_cite(a.reason)}" for a in f.adjustments) or "—"
        lines.append(f"| {f.name.replace('_', ' ')} | {f.base} | {f.score} | {why} |")
    lines += ["", f"**Severity: why {t.severity.value}**", ""]
    lines += [f"- {_e(line)}" for line in t.severity_rationale]
    lines += ["", "**Mitigations**", ""]
    for m in t.mitigations:
        extra = f" — {_e(m.conflict)}" if m.conflict else ""
        lines.append(f"- {m.id} {_e(m.name)}: {_STATUS[m.status]}{extra}")
    if not t.mitigations:
        lines.append(f"- The catalog maps no ATLAS mitigation to {t.id}.")
    probes = ", ".join(f"`{p}`" for p in t.probes) or f"none installed tests {t.id} yet"
    lines += [
        "",
        f"**Test:** probes {probes}; guards "
        + (", ".join(f"`{g}`" for g in t.guards) or "none installed")
        + "; remedies "
        + (", ".join(f"`{r}`" for r in t.remedies) or "none installed")
        + ".",
    ]
    if t.probes:
        lines += ["", "```sh", f"bastion assess {assessment or 'assess.yaml'}", "```"]
    return lines


def _controls(page: Page) -> list[str]:
    lines = [
        "",
        "## Controls",
        "",
        "| ATLAS mitigation | Stated | Counted | Addresses | Implemented by |",
        "|---|---|---|---|---|",
    ]
    for c in page.controls:
        counted = c.status + (f" ({_e(c.conflict)})" if c.conflict else "")
        tools = ", ".join(f"`{x}`" for x in [*c.guards, *c.remedies]) or "—"
        lines.append(
            f"| {c.id} {_e(c.name)} | {c.stated} | {counted} | "
            f"{', '.join(c.addresses) or '—'} | {tools} |"
        )
    return lines


def _not_applicable(page: Page) -> list[str]:
    lines = ["", "## Not applicable", "", "| Threat | Why not |", "|---|---|"]
    for t in page.not_applicable:
        lines.append(f"| {t.id} {_e(t.name)} | {'; '.join(_cite(r) for r in t.reasons)} |")
    return lines


def to_markdown(tm: ThreatModel, *, assessment: str | None = None) -> str:
    """Render a threat model as Markdown."""
    page = build_page(tm)
    lines = [*_summary(page), *_ranked(page), *_matrix(page), "", "## Each risk"]
    for t in page.ranked:
        lines += _details(t, assessment)
    lines += [*_controls(page), *_not_applicable(page), ""]
    return "\n".join(lines)


def write_markdown(tm: ThreatModel, path: Path, *, assessment: str | None = None) -> Path:
    """Write :func:`to_markdown` to ``path``; raises UsageError when it cannot be written."""
    return write_text(Path(path), to_markdown(tm, assessment=assessment))
