"""The self-contained HTML report."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bastion.findings import Evidence, Severity, Status
from bastion.findings.run import RunRecord, RunStatus
from bastion.report.html import to_html, write_html

from ._png import write_gradient
from .conftest import IMAGE_PATH, OWASP_NAMES, StubCatalog

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr", "col", "area", "base"}
# Elements whose end tag HTML lets an author omit; the template closes them anyway.
SVG_VOID_OK = {"line", "polyline", "polygon", "circle", "rect", "path"}


class _Page(HTMLParser):
    """Checks nesting and collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.tags: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if a.get("src"):
            self.srcs.append(a["src"] or "")
        if tag == "table" and a.get("class"):
            # Rows of every table with this class, in document order.
            self._table = (a["class"] or "").split()[0]
            self.tables.setdefault(self._table, [])
        if tag == "tr" and self._table:
            self._row = []
        if tag in {"td", "th"} and self._row is not None:
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID and tag not in SVG_VOID_OK:
            self.problems.append(f"self-closing <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag in {"td", "th"} and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture
def page(record: RunRecord, catalog: StubCatalog, report_dir: Path) -> str:
    out = write_html(record, report_dir / "bastion-report.html", catalog=catalog)
    assert out == report_dir / "bastion-report.html"
    return out.read_text(encoding="utf-8")


def test_markup_is_well_formed(page: str) -> None:
    parsed = _parse(page)
    assert parsed.problems == []
    assert parsed.stack == []
    assert len(parsed.ids) == len(set(parsed.ids)), "duplicate element ids"
    assert page.startswith("<!DOCTYPE html>")


def test_self_contained(page: str) -> None:
    parsed = _parse(page)
    assert "script" not in parsed.tags
    assert "link" not in parsed.tags and "iframe" not in parsed.tags
    assert all(src.startswith("data:image/") for src in parsed.srcs)
    assert not re.search(r"url\(|@import", page)
    # The only absolute links are catalog pages a reader may follow.
    external = [h for h in parsed.hrefs if not h.startswith("#")]
    assert external and all(h.startswith("https://") for h in external)


def test_header_and_gate(page: str, record: RunRecord) -> None:
    assert "<h1>digits nightly</h1>" in page
    assert "a1b2c3d4e5f6" in page
    assert "2024-05-01 12:00:00 UTC" in page
    assert "3 min 07 s" in page
    assert 'class="gate gate-failed"' in page
    assert "Gate failed: 2 vulnerable findings at or above important" in page


def test_summary_tables_count_correctly(page: str) -> None:
    tables = _parse(page).tables
    owasp = {row[0].split()[0]: row[1:] for row in tables["owasp"][1:]}
    assert list(owasp)[:10] == list(OWASP_NAMES)
    # Columns: critical, important, moderate, low, checked.
    assert owasp["ML01"] == ["1", "1", "0", "0", "3"]
    assert owasp["ML03"] == ["0", "0", "1", "0", "1"]
    assert owasp["ML04"] == ["0", "0", "0", "0", "1"]
    assert owasp["ML05"] == ["0", "0", "1", "1", "3"]
    assert owasp["ML02"] == ["0", "0", "0", "0", "0"]
    names = {row[0] for row in tables["owasp"][1:]}
    assert "ML01 Input Manipulation Attack" in names
    index = tables["index"][1:]
    assert [r[0] for r in index] == ["Critical", "Important", "Moderate", "Low", "—", "—", "—"]
    assert [r[1] for r in index][-3:] == ["Error", "Inconclusive", "Not vulnerable"]
    for key, n in (("critical", 1), ("important", 1), ("moderate", 1), ("low", 1)):
        assert re.search(rf'tile sev-{key}">\s*<span class="tile-n">{n}</span>', page)


def test_finding_cards(page: str, record: RunRecord) -> None:
    for f in record.findings:
        assert f.title in page
    assert page.count('<article class="finding') == len(record.findings)
    # Pipes and other text stay as written (HTML has no table syntax to break).
    assert "0.41 at noise sigma 0.3 | well below" in page
    rows = _parse(page).tables["metrics"]
    assert rows[0] == ["Metric", "Value", "Interval", "n", "Definition"]
    assert rows[1][:4] == [
        "attack_success_rate",
        "0.96 fraction",
        "[0.939, 0.974] 95% Wilson",
        "500",
    ]
    by_name = {r[0]: r for r in rows if r[0] != "Metric"}
    assert by_name["accuracy@sigma=0.3"][2] == "[0.3677, 0.4536] 95% Wilson"
    assert by_name["queries"] == ["queries", "3000 queries", "—", "—", "Model calls made."]


def test_every_series_is_an_inline_svg(page: str, record: RunRecord) -> None:
    n_series = sum(len(f.series) for f in record.findings)
    assert page.count("<svg ") == n_series == 2
    assert 'class="band"' in page
    assert "Accuracy against noise strength" in page


def test_evidence(page: str) -> None:
    assert page.count("data:image/png;base64,") == 1
    assert 'class="pixelated" width="168"' in page  # 24 px wide, enlarged 7x
    assert "file not found next to the report" in page
    observation = _parse(page).tables["observation"]
    assert ["class", "accuracy"] in observation
    assert ["0", "0.52"] in observation
    assert ["probabilities", "[0.912345, 0.087655]"] in observation


def test_images_that_are_not_images_are_not_embedded(
    record: RunRecord, catalog: StubCatalog, tmp_path: Path
) -> None:
    fake = tmp_path / IMAGE_PATH
    fake.parent.mkdir(parents=True)
    fake.write_text("<svg onload=alert(1)>")
    out = write_html(record, tmp_path / "r.html", catalog=catalog)
    page = out.read_text(encoding="utf-8")
    assert "data:image" not in page
    assert "not a PNG, JPEG, GIF or WebP image" in page
    assert "onload" not in page


def test_without_a_report_folder_images_are_listed(record: RunRecord, catalog: StubCatalog) -> None:
    page = to_html(record, catalog=catalog)
    assert "data:image" not in page
    assert IMAGE_PATH in page


def test_catalog_mappings_and_remedies(page: str) -> None:
    parsed = _parse(page)
    assert "https://atlas.mitre.org/techniques/AML.T0043" in parsed.hrefs
    assert "https://cwe.mitre.org/data/definitions/1039.html" in parsed.hrefs
    # A non-web URL in the catalog never becomes a link.
    assert not any(h.startswith("javascript:") for h in parsed.hrefs)
    assert "Adversarial Input Detection" in page
    # An id the catalog does not know renders on its own.
    assert "<code>AML.T9999</code>" in page
    assert "adversarial_training" in page
    assert "Detect and block adversarial inputs before they reach the model." in page


def test_reproduction_is_collapsed(page: str) -> None:
    blocks = re.findall(
        r"<details class=\"repro\"( open)?>\s*<summary>Reproduction</summary>", page
    )
    assert len(blocks) == 7 and not any(blocks)
    assert "<code>n_samples</code>" in page
    assert "<code>[0.0, 0.05, 0.1, 0.2, 0.3, 0.4]</code>" in page
    assert "3.11.9" in page


def test_skipped_probes(page: str) -> None:
    skipped = _parse(page).tables["skipped"]
    assert skipped[1] == [
        "evasion.pgd",
        "digits-api",
        "evasion.pgd needs gradients; this target is an http target",
    ]


def test_everything_is_escaped(record: RunRecord, catalog: StubCatalog) -> None:
    evil = "<script>alert('x')</script>"
    f = record.findings[0].model_copy(
        update={
            "title": evil,
            "summary": evil,
            "target": evil,
            "evidence": [Evidence(kind="observation", description=evil, data={evil: evil})],
        }
    )
    rec = record.model_copy(update={"findings": [f], "name": evil})
    page = to_html(rec, catalog=catalog)
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert _parse(page).problems == []


def test_empty_and_partial_runs(catalog: StubCatalog) -> None:
    from datetime import UTC, datetime

    rec = RunRecord(
        run_id="000000000000",
        name="empty",
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        status=RunStatus.INTERRUPTED,
    )
    page = to_html(rec, catalog=catalog)
    assert "This run has no findings." in page
    assert "No probes were skipped." in page
    assert "This run is interrupted" in page
    assert "No gate: fail_on was not set" in page
    assert _parse(page).problems == []


def test_passed_gate(record: RunRecord, catalog: StubCatalog) -> None:
    rec = record.model_copy(update={"gate": record.evaluate_gate(Severity.CRITICAL)})
    assert rec.gate.passed is False
    mild = [f for f in record.findings if f.severity < Severity.CRITICAL]
    rec = record.model_copy(update={"findings": mild})
    rec = rec.model_copy(update={"gate": rec.evaluate_gate(Severity.CRITICAL)})
    page = to_html(rec, catalog=catalog)
    assert "Gate passed: no vulnerable finding at or above critical" in page
    assert all(f.status is not Status.VULNERABLE or f.severity < Severity.CRITICAL for f in mild)


def test_small_png_is_enlarged_but_large_is_not(
    record: RunRecord, catalog: StubCatalog, tmp_path: Path
) -> None:
    write_gradient(tmp_path / IMAGE_PATH, width=200, height=10)
    page = write_html(record, tmp_path / "r.html", catalog=catalog).read_text(encoding="utf-8")
    assert "data:image/png;base64," in page
    assert "pixelated" not in page.split("<body>", 1)[1]
