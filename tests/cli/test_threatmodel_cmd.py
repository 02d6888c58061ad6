"""``bastion threat-model`` and ``bastion triage`` end to end, through a Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from bastion.catalog.severity import Effect, Effort, Impact, rate
from bastion.cli import assess_cmd
from bastion.cli.threatmodel_cmd import register
from bastion.errors import ConfigError, StoreError, UsageError
from bastion.findings import CatalogRefs, Finding, Status
from bastion.runs.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ROOT / "examples" / "systems"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    assess_cmd.register(app)
    return app


def _run(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_threat_model_writes_reports_and_assessment(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "tm"
    assess = tmp_path / "assess.yaml"
    result = _run(
        app,
        "threat-model",
        str(SYSTEMS / "spam-filter.yaml"),
        "--output",
        str(out),
        "--emit-assessment",
        str(assess),
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "threat-model.html",
        "threat-model.json",
        "threat-model.md",
    ]
    assert "ML08 Model Skewing" in result.output and "unreviewed-feedback" in result.output
    data = json.loads((out / "threat-model.json").read_text())
    assert data["system"] == "spam-filter"
    config = load_config(assess)
    assert [p.id for p in config.probes] == [p["id"] for p in data["plan"]["probes"]]
    # the spam filter names no model path or evaluation data: placeholders are announced
    assert "FILL-IN" in result.output


def test_format_option_and_quiet(app: typer.Typer, tmp_path: Path) -> None:
    result = _run(
        app,
        "threat-model",
        str(SYSTEMS / "public-image-api.yaml"),
        "-o",
        str(tmp_path),
        "--format",
        "json",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["threat-model.json"]
    assert "Threat model —" not in result.output


def test_bad_inputs_raise_bastion_errors(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((SYSTEMS / "spam-filter.yaml").read_text().replace("linear", "lineer"))
    result = _run(app, "threat-model", str(bad), "-o", str(tmp_path / "o"))
    assert isinstance(result.exception, ConfigError)
    assert "'model.type' must be one of neural_network" in str(result.exception)
    assert result.exception.exit_code == 3
    result = _run(app, "threat-model", str(bad), "--format", "pdf")
    assert isinstance(result.exception, UsageError)


def test_threat_model_then_assess_then_triage(app: typer.Typer, tmp_path: Path) -> None:
    """The whole loop on a real model: describe, emit, assess, triage."""
    assess = tmp_path / "assess.yaml"
    result = _run(
        app,
        "threat-model",
        str(SYSTEMS / "hospital-diagnosis.yaml"),
        "-o",
        str(tmp_path / "tm"),
        "--emit-assessment",
        str(assess),
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert f"Run it: bastion assess {assess}" in result.output
    store = f"sqlite:///{tmp_path / 'store.db'}"
    result = _run(app, "assess", str(assess), "--store", store, "-q", "-o", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "bastion-report.json").read_text())
    assert report["findings"], "the emitted assessment ran its probes"
    key = (
        report["findings"][0]["probe_id"]
        + "|hospital-diagnosis|"
        + (report["findings"][0]["variant"])
    )
    result = _run(app, "triage", key, "--store", store, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["finding"]["key"] == key and "hospital-diagnosis" in data["finding"]["source"]


def test_triage_explains_a_json_finding(app: typer.Typer, tmp_path: Path) -> None:
    rating = rate(Impact(Effect.EVASION, 0.62, Effort.MEDIUM, True), owasp=["ML01"])
    finding = Finding(
        probe_id="evasion.pgd",
        title="PGD",
        target="ids",
        status=Status.VULNERABLE,
        severity=rating.severity,
        summary="62% of flows evade.",
        severity_rationale=rating.rationale,
        catalog=CatalogRefs(owasp=["ML01"]),
    )
    path = tmp_path / "finding.json"
    path.write_text(finding.model_dump_json())
    result = _run(app, "triage", str(path))
    assert result.exit_code == 0, result.output
    assert "severity important" in result.output
    assert "It would be critical if the attack needed low effort." in result.output
    result = _run(app, "triage", str(path), "--json")
    data = json.loads(result.output)
    assert data["inputs"]["effect"] == "evasion" and data["row"] == "evasion_security_decision"


def test_triage_errors(app: typer.Typer, tmp_path: Path) -> None:
    result = _run(app, "triage", str(tmp_path / "missing.json"))
    assert isinstance(result.exception, UsageError)
    result = _run(app, "triage", "abc", "--store", f"sqlite:///{tmp_path / 'none.db'}")
    assert isinstance(result.exception, StoreError)
