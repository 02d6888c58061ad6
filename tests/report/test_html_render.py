"""Open the HTML report in headless Chromium: it renders, shows content, logs nothing.

These tests need Debian's ``chromium`` (``scripts/ensure-chromium.sh`` installs it
where it can); they are skipped when it is not installed. Set ``BASTION_CHROMIUM``
to use another Chromium binary.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bastion.findings.run import RunRecord
from bastion.report import write_reports

from ._png import decode
from .conftest import StubCatalog

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 2000
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
# Chromium logs every console message of the page as "...:CONSOLE:<line>] ...".
CONSOLE = re.compile(r"^.*(?::CONSOLE[:(]|Uncaught ).*$", re.MULTILINE)


def _find_chromium() -> str | None:
    override = os.environ.get("BASTION_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _find_chromium()
    if found is None:
        pytest.skip("chromium is not installed; run scripts/ensure-chromium.sh to enable this test")
    return found


def _run(chromium: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with a fresh profile folder."""
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def html_report(record: RunRecord, catalog: StubCatalog, report_dir: Path) -> Path:
    return write_reports(record, report_dir, ["html"], catalog=catalog)["html"]


def test_screenshot_is_not_blank(chromium: str, html_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = _run(
        chromium,
        html_report.as_uri(),
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    width, height, channels, rows = decode(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    colours: collections.Counter[bytes] = collections.Counter(
        row[x : x + 3] for row in rows for x in range(0, width * channels, channels)
    )
    background = colours.most_common(1)[0][1]
    assert len(colours) > 100, "the screenshot has almost no distinct colours"
    assert 1 - background / (width * height) > 0.2, "the screenshot is mostly one colour"

    def near(rgb: tuple[int, int, int], tolerance: int = 8) -> int:
        return sum(
            n
            for c, n in colours.items()
            if all(abs(a - b) <= tolerance for a, b in zip(c, rgb, strict=True))
        )

    # The stylesheet applied: the critical red (gate, tiles) and the plot blue show.
    assert near((0xA4, 0x16, 0x1A)) > 500
    assert near((0x1F, 0x5F, 0xBF)) > 500
    assert CONSOLE.findall(done.stderr) == []


def test_dom_has_every_finding_and_no_console_output(
    chromium: str, html_report: Path, record: RunRecord, tmp_path: Path
) -> None:
    done = _run(chromium, html_report.as_uri(), tmp_path / "profile-dom", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    for f in record.findings:
        assert f.title in dom
    assert dom.count("<svg") == sum(len(f.series) for f in record.findings)
    assert dom.count('<article class="finding') == len(record.findings)
    assert CONSOLE.findall(done.stderr) == []


def test_console_check_sees_errors(chromium: str, tmp_path: Path) -> None:
    """The console check itself works: a page that logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><title>bad</title><p>x</p>"
        "<script>console.error('boom'); notDefined();</script>",
        encoding="utf-8",
    )
    done = _run(chromium, page.as_uri(), tmp_path / "profile-bad", "--dump-dom")
    lines = CONSOLE.findall(done.stderr)
    assert lines, "Chromium logged no console lines for a page with errors"
    assert any("boom" in line for line in lines)
    assert any("Uncaught ReferenceError" in line for line in lines)
