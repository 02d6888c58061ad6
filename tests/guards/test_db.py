"""GuardDB.run_write: one kept connection, dropped after errors, replaced when it died."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, text

from bastion.errors import StoreError
from bastion.guards import db as db_module
from bastion.guards.db import GuardDB


def _checkouts(db: GuardDB) -> list[int]:
    """A list that grows by one at every connection checkout from the pool."""
    seen: list[int] = []
    event.listen(db.engine, "checkout", lambda *_: seen.append(1))
    return seen


def _make_table(db: GuardDB) -> None:
    with db.session("create a table in", write=True) as s:
        s.execute(text("CREATE TABLE t_run_write (n INTEGER)"))


def _rows(db: GuardDB) -> list[int]:
    with db.session("read") as s:
        return [int(n) for (n,) in s.execute(text("SELECT n FROM t_run_write ORDER BY n"))]


def _insert(db: GuardDB, n: int) -> Any:
    q = db.placeholder
    return lambda cur: cur.execute(f"INSERT INTO t_run_write (n) VALUES ({q})", (n,))


def test_writes_share_one_connection_outside_the_pool(db: GuardDB) -> None:
    _make_table(db)
    checkouts = _checkouts(db)
    for n in range(5):
        db.run_write("insert into", _insert(db, n))
    assert len(checkouts) == 1  # opened once, then kept
    assert _rows(db) == [0, 1, 2, 3, 4]
    assert db.run_write("count in", lambda cur: 7) == 7


def test_an_error_rolls_back_and_the_next_write_reconnects(db: GuardDB) -> None:
    _make_table(db)
    db.run_write("insert into", _insert(db, 1))
    checkouts = _checkouts(db)

    def insert_then_fail(cur: Any) -> None:
        _insert(db, 2)(cur)
        cur.execute("SELECT * FROM no_such_table")

    with pytest.raises(StoreError, match="Cannot insert into the results store"):
        db.run_write("insert into", insert_then_fail)

    def insert_then_raise(cur: Any) -> None:
        _insert(db, 3)(cur)
        raise KeyError("a bug in the caller")

    with pytest.raises(KeyError):  # not a database error: it propagates as it is
        db.run_write("insert into", insert_then_raise)
    db.run_write("insert into", _insert(db, 4))
    assert len(checkouts) == 2  # a new connection after each failed transaction
    assert _rows(db) == [1, 4]


def _kill_writer(db: GuardDB) -> None:
    """End the kept connection the way a server restart or an idle timeout would."""
    if db.dialect == "postgresql":
        pid = db.run_write(
            "read the backend of", lambda cur: cur.execute("SELECT pg_backend_pid()").fetchone()[0]
        )
        with db.session("end a session in") as s:
            s.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    else:
        db._writer.close()


def test_a_dead_connection_is_replaced_and_the_transaction_run_once_more(db: GuardDB) -> None:
    _make_table(db)
    db.run_write("insert into", _insert(db, 1))
    _kill_writer(db)
    calls: list[int] = []

    def work(cur: Any) -> str:
        calls.append(1)
        _insert(db, 2)(cur)
        return "done"

    assert db.run_write("insert into", work) == "done"
    # SQLite notices the closed connection before the work starts, PostgreSQL at its
    # first statement; either way the row is stored once.
    assert _rows(db) == [1, 2] and len(calls) == (2 if db.dialect == "postgresql" else 1)
    db.run_write("insert into", _insert(db, 3))
    assert _rows(db) == [1, 2, 3]


def test_a_failed_commit_is_not_run_again(db: GuardDB) -> None:
    with db.session("create tables in", write=True) as s:
        s.execute(text("CREATE TABLE t_parent (id INTEGER PRIMARY KEY)"))
        s.execute(
            text(
                "CREATE TABLE t_child (pid INTEGER REFERENCES t_parent (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    calls: list[int] = []

    def orphan(cur: Any) -> None:  # accepted now, refused at COMMIT
        calls.append(1)
        cur.execute("INSERT INTO t_child (pid) VALUES (99)")

    with pytest.raises(StoreError):
        db.run_write("insert into", orphan)
    assert calls == [1]
    db.run_write("insert into", lambda cur: cur.execute("INSERT INTO t_parent (id) VALUES (1)"))


def test_concurrent_writes_are_serialised(db: GuardDB) -> None:
    _make_table(db)
    threads = [
        threading.Thread(target=db.run_write, args=("insert into", _insert(db, n)))
        for n in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _rows(db) == list(range(16))


def test_a_forked_child_leaves_the_parents_connection_alone(db: GuardDB) -> None:
    _make_table(db)
    db.run_write("insert into", _insert(db, 1))
    parents = db._writer
    db._writer_pid = -1  # as a forked child sees it: opened by another process
    db.run_write("insert into", _insert(db, 2))
    assert db._writer is not parents and parents in db_module._INHERITED
    db_module._INHERITED.remove(parents)
    parents.close()
    assert _rows(db) == [1, 2]


def test_closed_and_in_memory_stores() -> None:
    memory = GuardDB("sqlite://")
    _make_table(memory)
    memory.run_write("insert into", _insert(memory, 5))  # the single shared connection
    assert _rows(memory) == [5]
    memory.close()
    with pytest.raises(StoreError, match="closed"):
        memory.run_write("insert into", _insert(memory, 6))


def test_closing_the_store_closes_the_kept_connection(tmp_path: Any) -> None:
    db = GuardDB(str(tmp_path / "s.db"))
    _make_table(db)
    db.run_write("insert into", _insert(db, 1))
    kept = db._writer
    db.close()
    with pytest.raises(Exception, match="closed"):
        kept.cursor()
    with pytest.raises(StoreError, match="closed"):
        db.run_write("insert into", _insert(db, 2))


def test_the_kept_connection_has_the_stores_settings(tmp_path: Any) -> None:
    with GuardDB(str(tmp_path / "s.db"), synchronous="full") as db:
        pragmas = db.run_write(
            "read the pragmas of",
            lambda cur: [
                cur.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("synchronous", "journal_mode", "foreign_keys", "busy_timeout")
            ],
        )
    assert pragmas == [2, "wal", 1, 30000]
