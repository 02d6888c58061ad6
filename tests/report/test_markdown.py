"""The pull-request Markdown summary."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.errors import UsageError
from bastion.findings import Finding, Severity, Status
from bastion.findings.run import RunRecord
from bastion.report.markdown import escape_cell, to_markdown, write_markdown

from .conftest import StubCatalog


def _table(md: str, header_start: str) -> list[list[str]]:
    """Rows of the Markdown table whose header line starts with ``header_start``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip() for c in cells])
    return rows


def test_gate_and_counts(record: RunRecord, catalog: StubCatalog) -> None:
    md = to_markdown(record, catalog=catalog)
    assert md.startswith("## Bastion assessment: digits nightly\n")
    assert "❌ **Gate failed: 2 vulnerable findings at or above important.**" in md
    counts = _table(md, "| Severity | Vulnerable findings |")
    assert counts[2:] == [
        ["🟥 Critical", "1"],
        ["🟧 Important", "1"],
        ["🟨 Moderate", "1"],
        ["🟦 Low", "1"],
    ]
    assert "7 findings: 4 vulnerable, 1 not vulnerable, 1 inconclusive, 1 error." in md
    assert "1 probe run was skipped" in md
    assert md.rstrip().endswith("· full report: `bastion-report.html`</sub>")


def test_vulnerable_findings_table(record: RunRecord, catalog: StubCatalog) -> None:
    md = to_markdown(record, catalog=catalog)
    rows = _table(md, "| Severity | Probe |")
    header, _rule, *body = rows
    assert header == ["Severity", "Probe", "Target", "OWASP", "Summary"]
    assert all(len(r) == len(header) for r in rows), "a cell broke the table"
    assert [r[0] for r in body] == ["Critical", "Important", "Moderate", "Low"]
    assert body[1][1] == "`robustness.noise`"
    assert body[1][4].endswith("sigma 0.3 \\| well below the 0.8 floor.")
    assert body[2][3] == "ML05, ML03"
    # Only vulnerable findings are listed.
    assert "privacy.membership" not in md and "extraction.copycat" not in md
    assert (
        "OWASP ML Top 10 categories affected: ML01 Input Manipulation Attack; "
        "ML03 Model Inversion Attack; ML05 Model Theft." in md
    )


def test_truncation(record: RunRecord, catalog: StubCatalog) -> None:
    md = to_markdown(record, catalog=catalog, max_findings=2)
    body = _table(md, "| Severity | Probe |")[2:]
    assert [r[0] for r in body] == ["Critical", "Important"]
    assert "…and 2 more vulnerable findings in the full report." in md
    assert "more vulnerable" not in to_markdown(record, catalog=catalog)
    with pytest.raises(UsageError, match="max_findings"):
        to_markdown(record, catalog=catalog, max_findings=-1)


def test_hostile_text_cannot_break_out(record: RunRecord, catalog: StubCatalog) -> None:
    f = Finding(
        probe_id="odd|probe`x",
        title="t",
        target="a|b\nc",
        status=Status.VULNERABLE,
        severity=Severity.LOW,
        summary="line one\n\n| fake | row |\n<img src=x onerror=alert(1)> " + "z" * 400,
    )
    rec = record.model_copy(update={"findings": [f]})
    md = to_markdown(rec, catalog=catalog)
    rows = _table(md, "| Severity | Probe |")
    assert len(rows) == 3
    assert all(len(r) == 5 for r in rows)
    assert "<img" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert rows[2][4].endswith("…")
    assert len(rows[2][4]) < 400


def test_escape_cell() -> None:
    assert escape_cell("a|b") == "a\\|b"
    assert escape_cell("back\\slash") == "back\\\\slash"
    assert escape_cell("x\r\ny\tz") == "x y z"
    assert escape_cell("<b>&") == "&lt;b&gt;&amp;"
    assert escape_cell("abcdef", limit=4) == "abc…"


def test_clean_run(catalog: StubCatalog) -> None:
    rec = RunRecord(
        run_id="000000000000",
        name="clean",
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        bastion_version="0.1.0",
    )
    rec = rec.model_copy(update={"gate": rec.evaluate_gate(Severity.IMPORTANT)})
    md = to_markdown(rec, catalog=catalog, html_report="https://ci.example/r/1/report.html")
    assert "✅ **Gate passed: no vulnerable finding at or above important.**" in md
    assert "No vulnerable findings." in md
    assert "skipped" not in md
    assert "> ⚠️ The run is running; results are partial." in md
    assert "[full HTML report](https://ci.example/r/1/report.html)" in md
    assert "0 findings:" in md


def test_no_footer_link(record: RunRecord, catalog: StubCatalog) -> None:
    assert "full report:" not in to_markdown(record, catalog=catalog, html_report=None)


def test_write_markdown(record: RunRecord, catalog: StubCatalog, tmp_path: Path) -> None:
    out = write_markdown(record, tmp_path / "sub" / "summary.md", catalog=catalog)
    assert out.read_text(encoding="utf-8") == to_markdown(record, catalog=catalog)
