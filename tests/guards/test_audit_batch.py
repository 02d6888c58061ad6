"""Group commit: batching under concurrency, failures, and the audit log built on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from bastion.errors import StoreError, UsageError
from bastion.guards import AuditLog, GuardDB
from bastion.guards.audit import GENESIS_HASH
from bastion.guards.audit_batch import GroupCommitter
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.canonical import canonical_json, sha256_hex
from bastion.guards.signing_keys import generate_signing_key
from bastion.guards.tables import AuditEntryRow


class SlowStore:
    """A commit function that takes a while, records its batches and can be made to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[list[int]] = []
        self.fail_next = 0
        self._busy = threading.Lock()

    def __call__(self, batch: Sequence[int]) -> list[int]:
        assert self._busy.acquire(blocking=False), "commits overlapped"
        try:
            time.sleep(self.delay)
            if self.fail_next:
                self.fail_next -= 1
                raise StoreError("disk full")
            self.batches.append(list(batch))
            return [x * 10 for x in batch]
        finally:
            self._busy.release()


def test_one_caller_commits_each_item_alone() -> None:
    store = SlowStore()
    gc: GroupCommitter[int, int] = GroupCommitter(store)
    assert [gc.submit(i) for i in range(5)] == [0, 10, 20, 30, 40]
    assert store.batches == [[0], [1], [2], [3], [4]]
    assert (gc.batches, gc.items, gc.largest_batch) == (5, 5, 1)


def test_concurrent_callers_share_commits_and_get_their_own_results() -> None:
    store = SlowStore(delay=0.01)
    gc: GroupCommitter[int, int] = GroupCommitter(store, max_batch=4)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(gc.submit, range(64)))
    assert results == [i * 10 for i in range(64)]
    committed = [x for batch in store.batches for x in batch]
    assert sorted(committed) == list(range(64))
    assert gc.items == 64 and gc.batches == len(store.batches) < 64
    assert 1 < gc.largest_batch <= 4


def test_a_failed_commit_fails_every_caller_in_it_and_the_next_one_works() -> None:
    store = SlowStore(delay=0.02)
    gc: GroupCommitter[int, int] = GroupCommitter(store)
    barrier = threading.Barrier(6)
    store.fail_next = 1

    def call(i: int) -> Any:
        barrier.wait()
        try:
            return gc.submit(i)
        except StoreError as err:
            return err

    with ThreadPoolExecutor(6) as pool:
        out = list(pool.map(call, range(6)))
    failed = [o for o in out if isinstance(o, StoreError)]
    assert failed and all("disk full" in str(e) for e in failed)
    stored = {x for batch in store.batches for x in batch}
    assert all(
        (o == i * 10 and i in stored) for i, o in enumerate(out) if not isinstance(o, Exception)
    )
    assert gc.submit(7) == 70


def test_wrong_result_count_is_a_store_error() -> None:
    gc: GroupCommitter[int, int] = GroupCommitter(lambda batch: [])
    with pytest.raises(StoreError, match="0 results for 1 items"):
        gc.submit(1)
    with pytest.raises(UsageError):
        GroupCommitter(lambda batch: batch, max_batch=0)


def _read_chain(db: GuardDB) -> list[tuple[int, str, str, str]]:
    with db.session("read") as s:
        rows = s.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)).all()
        return [(r.seq, r.request_id, r.entry_hash, r.body) for r in rows]


def test_concurrent_appends_form_one_chain_and_are_visible_when_append_returns(
    db_url: str,
) -> None:
    db = GuardDB(db_url)
    key = generate_signing_key()
    log = AuditLog(db, signing_key=key, checkpoint_every=7)
    reader = GuardDB(db_url)
    missing: list[str] = []

    def request(i: int) -> tuple[str, Any]:
        rid = f"req-{i}"
        entry = log.append({"request_id": rid, "decision": "allow", "n": i})
        with reader.session("read") as s:  # another connection: the entry is committed
            if s.scalar(select(AuditEntryRow.seq).where(AuditEntryRow.request_id == rid)) is None:
                missing.append(rid)
        return rid, entry

    try:
        with ThreadPoolExecutor(8) as pool:
            placed = dict(pool.map(request, range(60)))
        assert not missing
        chain = _read_chain(db)
        assert [seq for seq, *_ in chain] == list(range(1, 61))
        for seq, rid, digest, _ in chain:
            assert (placed[rid].seq, placed[rid].entry_hash) == (seq, digest)
        _, rid1, hash1, body1 = chain[0]
        assert body1 == canonical_json(
            {
                "request_id": rid1,
                "decision": "allow",
                "n": int(rid1[4:]),
                "seq": 1,
                "prev": GENESIS_HASH,
            }
        )
        assert sha256_hex(body1) == hash1
        assert log.entries == 60 and log.batches <= 60
        report = verify_audit_log(db, key.public_key())
        assert report.ok and report.entries == 60 and report.checkpoints == 8
    finally:
        reader.close()
        db.close()


def test_a_failed_batch_is_not_half_written(db: GuardDB, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(db)
    log.append({"request_id": "before"})
    real = db.run_write

    def broken(action: str, work: Callable[[Any], Any]) -> Any:
        def insert_then_fail(cursor: Any) -> Any:
            work(cursor)  # the rows are inserted, then the connection is "lost"
            raise StoreError(f"Cannot {action} the store: connection lost.")

        return real(action, insert_then_fail)

    monkeypatch.setattr(db, "run_write", broken)
    with pytest.raises(StoreError, match="connection lost"):
        log.append_many([{"request_id": "lost"}, {"request_id": "lost too"}])
    monkeypatch.setattr(db, "run_write", real)
    log.append({"request_id": "after"})
    assert [rid for _, rid, _, _ in _read_chain(db)] == ["before", "after"]
    assert verify_audit_log(db).ok


def test_sqlite_synchronous_full_is_applied(tmp_path: Any) -> None:
    with GuardDB(str(tmp_path / "a.db"), synchronous="full") as db:
        with db.raw_write("read a pragma of") as cur:
            cur.execute("PRAGMA synchronous")
            assert cur.fetchone()[0] == 2  # FULL
        assert db.synchronous == "full"
    with GuardDB(str(tmp_path / "a.db")) as db, db.raw_write("read a pragma of") as cur:
        cur.execute("PRAGMA synchronous")
        assert cur.fetchone()[0] == 1  # NORMAL
    with pytest.raises(StoreError, match="synchronous"):
        GuardDB(str(tmp_path / "a.db"), synchronous="off")  # type: ignore[arg-type]
