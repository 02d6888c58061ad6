"""write_reports and catalog resolution."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bastion.errors import UsageError
from bastion.findings.run import RunRecord
from bastion.report import FILE_NAMES, FORMATS, write_reports
from bastion.report._catalog import lookup, resolve_catalog

from .conftest import IMAGE_PATH, StubCatalog


def test_formats_constant() -> None:
    assert FORMATS == ("json", "sarif", "html", "markdown")
    assert set(FILE_NAMES) == set(FORMATS)


def test_all_formats(record: RunRecord, catalog: StubCatalog, report_dir: Path) -> None:
    paths = write_reports(record, report_dir, catalog=catalog, artifact_uri="models/digits.pt")
    assert list(paths) == list(FORMATS)
    assert {p.name for p in paths.values()} == {
        "bastion-report.json",
        "bastion-report.sarif",
        "bastion-report.html",
        "bastion-report.md",
    }
    assert all(p.parent == report_dir and p.stat().st_size > 0 for p in paths.values())
    assert json.loads(paths["json"].read_text())["run_id"] == record.run_id
    sarif = json.loads(paths["sarif"].read_text())
    uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri == {"uri": "models/digits.pt"}
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html  # evidence resolved against out_dir
    assert (report_dir / IMAGE_PATH).exists()
    assert "`bastion-report.html`" in paths["markdown"].read_text()


def test_subset_and_new_folder(record: RunRecord, catalog: StubCatalog, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    paths = write_reports(record, out, ["Markdown", "json", "json"], catalog=catalog)
    assert list(paths) == ["json", "markdown"]
    assert sorted(p.name for p in out.iterdir()) == ["bastion-report.json", "bastion-report.md"]


def test_unknown_format(record: RunRecord, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        write_reports(record, tmp_path, ["json", "pdf"])
    message = str(err.value)
    assert "'pdf'" in message and "json, sarif, html, markdown" in message
    assert not list(tmp_path.iterdir()), "nothing is written when a format is unknown"


def test_folder_that_is_a_file(record: RunRecord, tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="is a file"):
        write_reports(record, blocker, ["json"])
    with pytest.raises(UsageError, match="Cannot create the report folder"):
        write_reports(record, blocker / "inside", ["json"])


def test_catalog_is_resolved_once(record: RunRecord, tmp_path: Path) -> None:
    calls: list[str] = []

    class Counting(StubCatalog):
        def exists(self, entry_id: str, /) -> bool:
            calls.append(entry_id)
            return super().exists(entry_id)

    write_reports(record, tmp_path, catalog=Counting([]))
    assert calls, "the injected catalog was not used"


def test_lookup_tolerates_a_raising_catalog() -> None:
    class Broken:
        def exists(self, entry_id: str, /) -> bool:
            return True

        def get(self, entry_id: str, /) -> object:
            raise KeyError(entry_id)

    view = lookup(Broken(), "ML01")  # type: ignore[arg-type]
    assert view.label == "ML01" and not view.known


def test_default_catalog_never_breaks_reports(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion.report._catalog"):
        cat = resolve_catalog(None)
    view = lookup(cat, "ML01")
    assert view.id == "ML01"
    if view.known:  # the built-in catalog is installed: it names the category
        assert view.name and view.kind == "owasp"
    else:
        assert "Catalog unavailable" in caplog.text


def test_with_the_built_in_catalog(record: RunRecord, tmp_path: Path) -> None:
    catalog_module = pytest.importorskip("bastion.catalog")
    cat = catalog_module.load_catalog()
    paths = write_reports(record, tmp_path, catalog=cat)
    ml01 = cat.get("ML01")
    html = paths["html"].read_text(encoding="utf-8")
    assert ml01.name in html
    sarif = json.loads(paths["sarif"].read_text(encoding="utf-8"))
    rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert ml01.description in rules["robustness.noise"]["fullDescription"]["text"]
    # The same reports with the default catalog (loaded by the renderers themselves).
    default = write_reports(record, tmp_path / "default")
    assert default["html"].read_text(encoding="utf-8") == html
