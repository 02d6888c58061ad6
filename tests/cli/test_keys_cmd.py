"""``bastion keys create|list|revoke|signing-key`` against a real store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.keys_cmd import parse_duration, register
from bastion.errors import UsageError
from bastion.guards import ApiKeyStore, CredentialRejected, GuardDB

PEPPER = "cli-test-pepper-0123456789abcdefghijkl"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"BASTION_API_KEY_PEPPER": PEPPER, "BASTION_STORE_URL": ""})


def test_create_prints_secret_once_and_it_works(
    app: typer.Typer, runner: CliRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = f"sqlite:///{tmp_path / 'b.db'}"
    caplog.set_level(logging.DEBUG)
    made = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--store",
            store,
            "-p",
            "fraud-svc",
            "-m",
            "digits",
            "--expires-in",
            "30d",
        ],
    )
    assert made.exit_code == 0, made.output
    secret = next(line for line in made.output.splitlines() if line.startswith("bst_"))
    assert "shown only now" in made.output
    assert secret not in caplog.text
    with GuardDB(store) as db:
        keys = ApiKeyStore(db, pepper=PEPPER.encode())
        assert keys.verify(secret, model="digits").principal == "fraud-svc"
        with pytest.raises(CredentialRejected):
            keys.verify(secret, model="cancer")
    assert secret.encode() not in (tmp_path / "b.db").read_bytes()
    listed = runner.invoke(app, ["keys", "list", "--store", store, "--json"])
    [info] = json.loads(listed.output)
    assert info["principal"] == "fraud-svc" and info["status"] == "active" and info["expires_at"]
    assert secret not in listed.output and "secret" not in info
    table = runner.invoke(app, ["keys", "list", "--store", store])
    assert "fraud-svc" in table.output and secret not in table.output
    revoked = runner.invoke(app, ["keys", "revoke", info["key_id"], "--store", store])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    with GuardDB(store) as db, pytest.raises(CredentialRejected, match="revoked"):
        ApiKeyStore(db, pepper=PEPPER.encode()).verify(secret, model="digits")
    active = runner.invoke(app, ["keys", "list", "--store", store, "--active", "--json"])
    assert json.loads(active.output) == []


def test_errors_are_usage_errors(app: typer.Typer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'b.db'}"
    no_pepper = CliRunner(env={"BASTION_API_KEY_PEPPER": ""}).invoke(
        app, ["keys", "create", "--store", store, "-p", "x", "-m", "m"]
    )
    assert isinstance(no_pepper.exception, UsageError) and "BASTION_API_KEY_PEPPER" in str(
        no_pepper.exception
    )
    runner = CliRunner(env={"BASTION_API_KEY_PEPPER": PEPPER})
    unscoped = runner.invoke(app, ["keys", "create", "--store", store, "-p", "x"])
    assert isinstance(unscoped.exception, UsageError) and "--all-models" in str(unscoped.exception)
    both = runner.invoke(
        app, ["keys", "create", "--store", store, "-p", "x", "-m", "a", "--all-models"]
    )
    assert isinstance(both.exception, UsageError)
    missing = runner.invoke(app, ["keys", "revoke", "feedfacefeedface", "--store", store])
    assert isinstance(missing.exception, UsageError)
    no_store = runner.invoke(app, ["keys", "list", "--store", str(tmp_path / "nope.db")])
    assert no_store.exit_code != 0 and "No results store" in str(no_store.exception)


def test_all_models_and_durations(app: typer.Typer, runner: CliRunner) -> None:
    made = runner.invoke(
        app, ["keys", "create", "--store", "sqlite://", "-p", "ops", "--all-models", "--json"]
    )
    assert json.loads(made.output)["models"] == ["*"]
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("2w").days == 14
    for bad in ["", "-1d", "3 years", "0"]:
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_signing_key(app: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "gw.pem"
    made = runner.invoke(app, ["keys", "signing-key", "--out", str(out)])
    assert made.exit_code == 0 and out.exists() and Path(f"{out}.pub").exists()
    assert "BEGIN PRIVATE KEY" not in made.output
    again = runner.invoke(app, ["keys", "signing-key", "--out", str(out)])
    assert isinstance(again.exception, UsageError)
