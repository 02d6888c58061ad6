"""The HTML, Markdown and JSON threat-model reports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.errors import UsageError
from bastion.plugins import Registry
from bastion.threatmodel.analysis import analyse
from bastion.threatmodel.loading import SystemFile
from bastion.threatmodel.outputs import FILE_NAMES, parse_formats, write_outputs
from bastion.threatmodel.report_html import to_html
from bastion.threatmodel.report_json import read_json, to_json
from bastion.threatmodel.report_markdown import to_markdown
from bastion.threatmodel.results import ThreatModel
from bastion.threatmodel.samples import minimal_description
from bastion.threatmodel.views import build_page

WHEN = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def face(systems: dict[str, SystemFile], stub_registry_module: Registry) -> ThreatModel:
    return analyse(systems["face-recognition"], registry=stub_registry_module, now=WHEN)


@pytest.fixture(scope="module")
def stub_registry_module() -> Registry:
    from .conftest import stub_probe

    return Registry(probes={"stub.evasion": stub_probe("stub.evasion", owasp=["ML01"])})


def test_html_is_self_contained_and_complete(face: ThreatModel) -> None:
    page = to_html(face, assessment="assess.yaml")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r"""(src|href)=["']https?://(?!owasp|atlas|learn\.)""", page)
    assert "<link" not in page and "@import" not in page
    for t in face.ranked():
        assert f'id="risk-{t.id}"' in page
    assert page.count('<article class="risk') == len(face.applicable())
    for t in face.threats:
        if not t.applies:
            assert f'id="na-{t.id}"' in page
    # the matrix: one cell per threat x mitigation column, gaps highlighted
    view = build_page(face)
    assert page.count('class="cell ') == len(view.rows) * len(view.columns)
    assert page.count('class="cell gap"') == view.total_gaps > 0
    assert "2025-05-01 12:00:00 UTC" in page
    for w in face.warnings:
        assert w.code in page
    assert "bastion assess assess.yaml" in page  # the test command for tested risks
    assert "no installed probe tests FM10 yet" in page


def test_html_escapes_text_from_the_description() -> None:
    desc = minimal_description(name='<img src=x onerror="alert(1)">', summary="a & b <i>")
    page = to_html(analyse(desc, registry=Registry()))
    assert "<img src=x" not in page and "&lt;img src=x" in page
    assert "a &amp; b &lt;i&gt;" in page


def test_markdown_has_every_section(face: ThreatModel) -> None:
    md = to_markdown(face, assessment="assess.yaml")
    for heading in (
        "## Design warnings",
        "## Ranked risks",
        "## Threats × mitigations",
        "## Each risk",
        "## Controls",
        "## Not applicable",
    ):
        assert heading in md
    assert md.count("\n### ") == len(face.applicable())
    table = next(line for line in md.splitlines() if line.startswith("| ML01 |"))
    assert table.count("❌") == len(face.get("ML01").gaps)
    assert "`inputs.supplied_by: [anyone]`" in md


def test_markdown_escapes_table_cells() -> None:
    md = to_markdown(analyse(minimal_description(name="a|b <x>"), registry=Registry()))
    assert md.splitlines()[0] == "# Threat model: a\\|b &lt;x&gt;"


def test_json_round_trips(face: ThreatModel) -> None:
    text = to_json(face)
    data = json.loads(text)
    assert data["schema_version"] == "1.0" and len(data["threats"]) == 27
    assert read_json(text) == face
    ml07 = next(t for t in data["threats"] if t["id"] == "ML07")
    assert ml07["applies"] and ml07["reasons"][0]["fields"][0]["path"] == "model.origin"


def test_write_outputs_and_formats(face: ThreatModel, tmp_path: Path) -> None:
    written = write_outputs(face, tmp_path / "out", "html,md,json")
    assert {p.name for p in written.values()} == set(FILE_NAMES.values())
    assert parse_formats(["JSON", "html", "json"]) == ["json", "html"]
    with pytest.raises(UsageError, match="use one or more of: html, markdown, json"):
        parse_formats("pdf")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        write_outputs(face, tmp_path / "file", ["json"])


@pytest.mark.browser
def test_html_renders_in_headless_chromium(face: ThreatModel, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if chromium is None:
        pytest.skip("chromium is not installed; run scripts/ensure-chromium.sh")
    page = write_outputs(face, tmp_path, ["html"])["html"]
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count('<article class="risk') == len(face.applicable())
    assert "Threats × mitigations" in dom
    assert not re.findall(r":CONSOLE[:(]|Uncaught ", done.stderr)
