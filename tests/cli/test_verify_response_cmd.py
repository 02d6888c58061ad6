"""``bastion verify-response``: valid responses pass, altered ones exit 1 with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.verify_response_cmd import register
from bastion.errors import UsageError
from bastion.guards import Guarded, InputValidationGuard, OutputSigner
from bastion.guards.signing_keys import write_signing_key
from bastion.targets import FakeTarget

runner = CliRunner()
ROWS = [[0.25, 0.5], [0.75, 0.125]]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    key = write_signing_key(tmp_path / "gw.pem")
    target = FakeTarget.linear(n_features=2, n_classes=2, name="cancer")
    guarded = Guarded(target, [InputValidationGuard.for_target(target), OutputSigner(key)])
    response = tmp_path / "response.json"
    response.write_text(json.dumps(guarded.handle_inputs(ROWS).body()))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": ROWS}))
    return response, request, tmp_path / "gw.pem.pub"


def test_valid_response(app: typer.Typer, files: tuple[Path, Path, Path]) -> None:
    response, request, pub = files
    ok = runner.invoke(
        app, [str(response), "-k", str(pub), "--inputs", str(request), "--model", "cancer"]
    )
    assert ok.exit_code == 0 and "Valid: signed by key" in ok.output and "inputs match" in ok.output
    data = json.loads(
        runner.invoke(app, [str(response), "-k", str(pub), "--json", "--max-age", "600"]).output
    )
    assert data["valid"] is True and data["model"] == "cancer"
    piped = runner.invoke(app, ["-", "-k", str(pub)], input=response.read_text())
    assert piped.exit_code == 0


def test_altered_response_exits_1(
    app: typer.Typer, files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    response, _, pub = files
    body = json.loads(response.read_text())
    body["outputs"][0] = [0.0, 1.0]
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(body))
    bad = runner.invoke(app, [str(altered), "-k", str(pub)])
    assert bad.exit_code == 1 and "INVALID" in bad.output and "outputs differ" in bad.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps([[0.0, 0.0], [0.0, 0.0]]))
    wrong = runner.invoke(app, [str(response), "-k", str(pub), "--inputs", str(other), "--json"])
    assert wrong.exit_code == 1 and json.loads(wrong.output)["valid"] is False


def test_unreadable_files_are_usage_errors(
    app: typer.Typer, files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    response, _, pub = files
    (tmp_path / "not.json").write_text("{")
    result = runner.invoke(app, [str(tmp_path / "not.json"), "-k", str(pub)])
    assert isinstance(result.exception, UsageError) and "not JSON" in str(result.exception)
    result = runner.invoke(app, [str(tmp_path / "missing.json"), "-k", str(pub)])
    assert isinstance(result.exception, UsageError)
    result = runner.invoke(app, [str(response), "-k", str(tmp_path / "missing.pub")])
    assert isinstance(result.exception, UsageError)
