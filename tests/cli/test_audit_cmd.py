"""``bastion audit verify|list`` on SQLite and PostgreSQL: exit 1 and the first bad entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import delete
from typer.testing import CliRunner

from bastion.cli.audit_cmd import register
from bastion.guards import AuditLog, GuardDB
from bastion.guards.signing_keys import write_signing_key
from bastion.guards.tables import AuditEntryRow
from bastion.store.testing import postgres_test_url, postgres_unreachable_reason, temporary_schema

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    reason = postgres_unreachable_reason(postgres_test_url())
    if reason is not None:
        pytest.skip(reason)
    with temporary_schema(postgres_test_url(), prefix="bastion_audit_cli") as url:
        yield url


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_verify_intact_then_tampered(app: typer.Typer, store: str, tmp_path: Path) -> None:
    key_path = tmp_path / "gw.pem"
    key = write_signing_key(key_path)
    with GuardDB(store) as db:
        log = AuditLog(db, signing_key=key, checkpoint_every=5)
        for i in range(12):
            log.append(
                {"request_id": f"r{i}", "model": "digits", "decision": "allow", "status": 200}
            )
        log.close()
    pub = ["--public-key", f"{key_path}.pub"]
    ok = runner.invoke(app, ["audit", "verify", "--store", store, *pub])
    assert ok.exit_code == 0 and "intact: 12 entries, 3 checkpoints (3 signatures" in ok.output
    listed = runner.invoke(app, ["audit", "list", "--store", store, "--limit", "2", "--json"])
    assert [e["seq"] for e in json.loads(listed.output)] == [12, 11]
    assert "digits" in runner.invoke(app, ["audit", "list", "--store", store]).output
    with GuardDB(store) as db, db.session("tamper", write=True) as s:
        s.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 4))
    bad = runner.invoke(app, ["audit", "verify", "--store", store, *pub])
    assert bad.exit_code == 1
    assert "first bad entry 4" in bad.output and "Entry 4 is missing" in bad.output
    as_json = runner.invoke(app, ["audit", "verify", "--store", store, "--json"])
    data = json.loads(as_json.output)
    assert as_json.exit_code == 1 and data["ok"] is False and data["first_bad_seq"] == 4


def test_verify_without_key_warns(app: typer.Typer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    with GuardDB(store) as db:
        AuditLog(db).append({"request_id": "r"})
    result = runner.invoke(app, ["audit", "verify", "--store", store])
    assert (
        result.exit_code == 0
        and "Warning" in result.output
        and "after the last signed" in result.output
    )
