"""``bastion catalog``: list, show, coverage, JSON output and exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bastion import plugins
from bastion.catalog import load_catalog
from bastion.cli import commands
from bastion.cli.catalog_cmd import register
from bastion.errors import CatalogError, UsageError
from bastion.findings import CatalogRefs, Finding
from bastion.plugins import Registry
from bastion.probes.base import Probe, ProbeMeta

runner = CliRunner()


class FakeMembershipProbe(Probe):
    meta = ProbeMeta(
        id="fake.membership",
        title="Fake membership probe",
        catalog=CatalogRefs(owasp=["ML04"], atlas_techniques=["AML.T0024.000"]),
    )

    def run(self, target: Any, data: Any, context: Any) -> list[Finding]:
        return []


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    registry = Registry(probes={"fake.membership": FakeMembershipProbe})
    monkeypatch.setattr(plugins, "default_registry", lambda: registry)
    return registry


def _json(output: str) -> Any:
    return json.loads(output)


# -- list -----------------------------------------------------------------------------------
def test_list_shows_every_kind(app: typer.Typer) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 0, result.output
    for text in ("OWASP ML Top 10", "Failure modes", "ATLAS mitigations", "ATLAS techniques"):
        assert text in result.output
    for entry_id in (
        "ML01",
        "ML10",
        "FM1",
        "FM17",
        "AML.M0000",
        "AML.M0019",
        "AML.T0043",
        "AML.T0024.002",
        "CWE-1039",
    ):
        assert entry_id in result.output
    assert f"{len(load_catalog())} entries, catalog version 1.0.0" in result.output


def test_list_filters_by_kind(app: typer.Typer) -> None:
    result = runner.invoke(app, ["--kind", "owasp"])
    assert result.exit_code == 0, result.output
    assert "ML04" in result.output
    assert "FM1 " not in result.output and "AML.M0003" not in result.output
    assert "10 entries" in result.output


def test_list_json(app: typer.Typer) -> None:
    result = runner.invoke(app, ["--kind", "FAILURE_MODE", "--json"])
    assert result.exit_code == 0, result.output
    data = _json(result.output)
    assert data["version"] == "1.0.0"
    assert [e["id"] for e in data["entries"]] == [f"FM{i}" for i in range(1, 18)]
    assert data["entries"][0]["attributes"]["cia"] == ["integrity"]


def test_unknown_kind_is_a_usage_error(app: typer.Typer) -> None:
    result = runner.invoke(app, ["--kind", "bogus"])
    assert result.exit_code == 2
    assert "bogus" in result.output


# -- show -----------------------------------------------------------------------------------
def test_show_one_entry(app: typer.Typer) -> None:
    result = runner.invoke(app, ["ml04"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ML04 — Membership Inference Attack" in out
    assert "exploitability" in out and "4 (moderate)" in out
    assert "prevention" in out
    assert "related" in out and "FM4  Membership inference" in out
    assert "Membership inference through the inference API" in out


def test_show_json_has_attributes_and_related(app: typer.Typer) -> None:
    result = runner.invoke(app, ["AML.M0015", "--json"])
    assert result.exit_code == 0, result.output
    data = _json(result.output)
    assert data["id"] == "AML.M0015"
    assert data["name"] == "Adversarial Input Detection"
    assert data["kind"] == "atlas_mitigation"
    assert data["related"] == load_catalog().related("AML.M0015")
    assert "AML.T0015" in data["attributes"]["mitigates"]
    assert "Evasion with crafted inputs" in data["mappings"]


def test_show_cwe_lists_mitigations(app: typer.Typer) -> None:
    result = runner.invoke(app, ["CWE-1039"])
    assert result.exit_code == 0, result.output
    assert "Architecture and Design" in result.output
    assert "detection methods" in result.output


def test_unknown_id_raises_catalog_error(app: typer.Typer) -> None:
    result = runner.invoke(app, ["ML99"])
    assert isinstance(result.exception, CatalogError)
    assert "close matches: ML09" in str(result.exception)


def test_id_with_coverage_or_kind_is_a_usage_error(app: typer.Typer) -> None:
    for extra in (["--coverage"], ["--kind", "owasp"]):
        result = runner.invoke(app, ["ML04", *extra])
        assert isinstance(result.exception, UsageError)


# -- coverage -------------------------------------------------------------------------------
def test_coverage_reads_the_registry_live(app: typer.Typer, fake_registry: Registry) -> None:
    result = runner.invoke(app, ["--coverage"])
    assert result.exit_code == 0, result.output
    assert "fake.membership" in result.output
    assert "Probes" in result.output and "Guards" in result.output and "Remedies" in result.output
    total = len(load_catalog())
    assert f"2 of {total} entries have a probe, 0 have a guard, 0 have a remedy" in result.output


def test_coverage_json(app: typer.Typer, fake_registry: Registry) -> None:
    result = runner.invoke(app, ["--coverage", "--kind", "owasp", "--json"])
    assert result.exit_code == 0, result.output
    data = _json(result.output)
    rows = {r["id"]: r for r in data["rows"]}
    assert list(rows) == [f"ML{i:02d}" for i in range(1, 11)]
    assert rows["ML04"]["probes"] == ["fake.membership"]
    assert rows["ML01"]["probes"] == []
    assert data["summary"]["entries"] == 10
    assert data["summary"]["with_probe"] == 1


def test_coverage_with_a_broken_plugin_is_a_usage_error(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Registry:
        raise ModuleNotFoundError("No module named 'bastion.probes.missing'")

    monkeypatch.setattr(plugins, "default_registry", broken)
    result = runner.invoke(app, ["--coverage"])
    assert isinstance(result.exception, UsageError)
    assert "could not be imported" in str(result.exception)


# -- through the real entry point -----------------------------------------------------------
def _run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from bastion.cli import main

    monkeypatch.setattr(commands, "REGISTRARS", [register])
    monkeypatch.setattr(sys, "argv", ["bastion", *args])
    with pytest.raises(SystemExit) as exit_info:
        main.main()
        raise SystemExit(0)
    code = exit_info.value.code
    return int(code) if code is not None else 0


def test_main_maps_unknown_id_to_exit_code_7(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_main(monkeypatch, "catalog", "ML99") == 7
    err = capsys.readouterr().err
    assert "Unknown catalog id 'ML99'" in err


def test_main_shows_an_entry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_main(monkeypatch, "catalog", "FM1", "--json") == 0
    assert _json(capsys.readouterr().out)["name"] == "Perturbation attack"
