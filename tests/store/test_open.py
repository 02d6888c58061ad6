"""Opening stores: default location, URLs, and every way opening can fail."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from bastion.errors import StoreError
from bastion.findings.run import RunRecord
from bastion.store import default_store_path, open_store, redact_url, resolve_url
from bastion.store.engine import dumps_json, loads_json
from bastion.store.testing import postgres_test_url, with_search_path


def test_default_store_lives_in_dot_bastion_under_root(tmp_path: Path) -> None:
    with open_store(root=tmp_path) as store:
        store.save_run(RunRecord.new(name="x", seed=0, config_fingerprint="f"))
    db = tmp_path / ".bastion" / "bastion.db"
    assert db.is_file()
    assert (tmp_path / ".bastion" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert default_store_path(tmp_path) == db.resolve()


def test_default_store_uses_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store() as store:
        assert store.url.endswith(str(tmp_path.resolve() / ".bastion" / "bastion.db"))
    assert (tmp_path / ".bastion" / "bastion.db").is_file()


def test_a_plain_path_is_a_sqlite_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "results.sqlite"
    with open_store(str(target)) as store:
        assert store.dialect == "sqlite"
    assert target.is_file()
    assert not (target.parent / ".gitignore").exists()


def test_sqlite_store_uses_write_ahead_logging(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    open_store(str(db)).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_create_false_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="No results store at"):
        open_store(str(tmp_path / "absent.db"), create=False)
    assert not (tmp_path / "absent.db").exists()


def test_a_folder_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        open_store(str(tmp_path))


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError, match="not a database"):
        open_store(f"sqlite:///{junk}")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="Cannot create the folder"):
            open_store(str(locked / "sub" / "bastion.db"))
    finally:
        locked.chmod(0o700)


def test_unwritable_folder_even_as_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="Cannot create the folder"):
        open_store(str(blocker / "bastion.db"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://admin:hunter2@db:notaport/results", "cannot be parsed"),
        ("://admin:hunter2@db/results", "cannot be parsed"),
        ("mysql://admin:hunter2@db/results", "does not support"),
        ("postgresql+psycopg2://admin:hunter2@db/results", "driver is not installed"),
    ],
)
def test_bad_urls_are_explained_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


def test_unreachable_server_is_explained_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "postgresql+psycopg://admin:hunter2@127.0.0.1:1/results"
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert message.startswith("Cannot open the results store at ")
    assert "admin:***@127.0.0.1:1/results" in message
    assert "server is running" in message
    assert "hunter2" not in message
    assert "hunter2" not in caplog.text


@pytest.mark.postgres
def test_unknown_database_on_a_live_server() -> None:
    from bastion.store.testing import postgres_unreachable_reason

    server = postgres_test_url()
    reason = postgres_unreachable_reason(server)
    if reason is not None:
        pytest.skip(reason)
    missing = resolve_url(server).set(database="bastion_no_such_db_x9").render_as_string(False)
    with pytest.raises(StoreError, match="create the database first"):
        open_store(missing)


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert "s3cret" not in redact_url("not a url://u:s3cret@h")
    assert redact_url(resolve_url("postgres://u:pw@h/d")) == "postgresql+psycopg://u:***@h/d"


def test_resolve_url_forms(tmp_path: Path) -> None:
    assert resolve_url("postgresql://h/d").drivername == "postgresql+psycopg"
    assert resolve_url("postgres+psycopg://h/d").drivername == "postgresql+psycopg"
    assert resolve_url("sqlite://").database is None
    assert resolve_url("sqlite:///rel.db").database == str(Path("rel.db").resolve())
    assert resolve_url(str(tmp_path / "a.db")).database == str(tmp_path / "a.db")
    assert resolve_url("  ", root=tmp_path).database == str(
        tmp_path.resolve() / ".bastion" / "bastion.db"
    )


def test_with_search_path_refuses_unsafe_schema_names() -> None:
    from bastion.errors import UsageError

    with pytest.raises(UsageError):
        with_search_path("postgresql://h/d", 'x"; DROP TABLE runs; --')


def test_json_codec_keeps_non_finite_floats_and_plain_data() -> None:
    data = {"a": [1, 2.5, None, "s", True], "b": {"c": float("-inf")}}
    text = dumps_json(data)
    assert "Infinity" not in text and "NaN" not in text
    assert loads_json(text) == data
    assert loads_json('{"$bastion_float": "other"}') == {"$bastion_float": "other"}
