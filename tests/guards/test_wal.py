"""Background WAL checkpoints: commits never checkpoint, the thread does, nothing is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bastion.guards import AuditLog, GuardDB
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.wal import WalCheckpointer


def _wal_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


def test_commits_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    db = GuardDB(str(path), background_checkpoints=True)
    try:
        assert db.background_checkpoints
        log = AuditLog(db)
        for i in range(1500):  # > 1,000 pages of log: an automatic checkpoint would run
            log.append({"kind": "x", "pad": "p" * 3000, "i": i})
        grown = _wal_pages(path)
        assert grown > 1000  # no commit checkpointed the log
        wal = WalCheckpointer(db, interval_s=3600)
        copied = wal.checkpoint_now()
        assert copied > 1000 and wal.checkpoints == 1
        log.append({"kind": "after"})  # the log restarts from its beginning
        assert verify_audit_log(db).entries == 1501
    finally:
        db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM guard_audit_log").fetchone()[0] == 1501


def test_default_store_keeps_automatic_checkpoints(tmp_path: Path) -> None:
    db = GuardDB(str(tmp_path / "g.db"))
    try:
        assert not db.background_checkpoints
        raw = db.engine.raw_connection()
        try:
            assert raw.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        finally:
            raw.close()
    finally:
        db.close()


def test_thread_runs_and_stops_and_memory_stores_are_refused(tmp_path: Path) -> None:
    db = GuardDB(str(tmp_path / "g.db"), background_checkpoints=True)
    try:
        wal = WalCheckpointer(db, interval_s=0.01).start()
        AuditLog(db).append({"kind": "x"})
        wal.stop()
        assert wal.checkpoints >= 1
    finally:
        db.close()
    memory = GuardDB("sqlite://", background_checkpoints=True)
    try:
        assert not memory.background_checkpoints
        with pytest.raises(ValueError, match="SQLite file"):
            WalCheckpointer(memory)
    finally:
        memory.close()
