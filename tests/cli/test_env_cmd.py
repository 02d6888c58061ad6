"""``bastion env verify``: tables, JSON, exit codes, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.env_cmd import register
from bastion.errors import UsageError
from tests.artifacts.test_env_verify import make_dist

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    make_dist(site, "fakesk", {"fakesk/__init__.py": b"", "fakesk/linear.py": b"W = [1, 2]\n"})
    make_dist(site, "helper", {"helper.py": b"H = 0\n"})
    return site


def test_clean_site_exits_zero_with_summary(app: typer.Typer, site: Path) -> None:
    result = runner.invoke(app, ["env", "verify", "--path", str(site)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output and "0 modified, 0 missing, 0 unrecorded" in result.output


def test_tampering_exits_one_and_names_the_files(app: typer.Typer, site: Path) -> None:
    (site / "fakesk" / "linear.py").write_text("W = [1, 3]\n")
    (site / "fakesk" / "_patch.py").write_text("import builtins\n")
    result = runner.invoke(app, ["env", "verify", "--path", str(site)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "TAMPERED" in result.output
    assert "fakesk/linear.py" in result.output and "modified" in result.output
    assert "fakesk/_patch.py" in result.output and "unrecorded" in result.output


def test_json_output_and_package_filter(app: typer.Typer, site: Path) -> None:
    (site / "helper.py").unlink()
    result = runner.invoke(
        app, ["env", "verify", "--path", str(site), "--package", "fakesk", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["name"] for d in data["distributions"]] == ["fakesk"]
    assert data["tampered"] is False and data["summary"]["files_checked"] == 4

    result = runner.invoke(
        app, ["env", "verify", "--path", str(site), "-p", "helper", "--format", "json"]
    )
    assert result.exit_code == 1
    issues = json.loads(result.output)["distributions"][0]["issues"]
    assert issues == [{"kind": "missing", "path": "helper.py", "detail": issues[0]["detail"]}]


def test_strict_fails_on_unverifiable(app: typer.Typer, site: Path) -> None:
    (site / "_virtualenv.pth").write_text("import _virtualenv\n")
    assert runner.invoke(app, ["env", "verify", "--path", str(site)]).exit_code == 0
    result = runner.invoke(app, ["env", "verify", "--path", str(site), "--strict"])
    assert result.exit_code == 1


def test_all_lists_clean_distributions(app: typer.Typer, site: Path) -> None:
    result = runner.invoke(
        app, ["env", "verify", "--path", str(site), "--all"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0 and "helper" in result.output and "fakesk" in result.output


def test_unknown_package_is_a_usage_error(app: typer.Typer, site: Path) -> None:
    result = runner.invoke(app, ["env", "verify", "--path", str(site), "--package", "numpyy"])
    assert isinstance(result.exception, UsageError)
    assert result.exception.exit_code == 2


def test_bad_format_is_rejected_by_the_parser(app: typer.Typer, site: Path) -> None:
    result = runner.invoke(app, ["env", "verify", "--path", str(site), "--format", "xml"])
    assert result.exit_code == 2
