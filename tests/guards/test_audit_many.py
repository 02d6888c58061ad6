"""Several entries at once: GroupCommitter.submit_many and AuditLog.append_many."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from bastion.errors import StoreError
from bastion.guards import AuditLog, GuardDB
from bastion.guards.audit_batch import GroupCommitter
from bastion.guards.audit_verify import verify_audit_log


def test_submit_many_commits_together_in_order() -> None:
    batches: list[list[int]] = []

    def commit(batch: Sequence[int]) -> list[int]:
        batches.append(list(batch))
        return [x + 100 for x in batch]

    gc: GroupCommitter[int, int] = GroupCommitter(commit, max_batch=3)
    assert gc.submit_many([]) == []
    assert gc.submit_many([1, 2]) == [101, 102]
    assert gc.submit_many([3, 4, 5, 6, 7]) == [103, 104, 105, 106, 107]
    assert batches == [[1, 2], [3, 4, 5], [6, 7]]
    assert gc.items == 7 and gc.batches == 3


def test_submit_many_raises_when_its_transaction_fails() -> None:
    def commit(batch: Sequence[int]) -> list[int]:
        raise RuntimeError("lost")

    gc: GroupCommitter[int, int] = GroupCommitter(commit)
    with pytest.raises(StoreError, match="lost"):
        gc.submit_many([1, 2])


def test_submit_many_from_threads_keeps_each_call_whole() -> None:
    lock = threading.Lock()
    stored: list[int] = []

    def commit(batch: Sequence[int]) -> list[int]:
        with lock:
            stored.extend(batch)
        return list(batch)

    gc: GroupCommitter[int, int] = GroupCommitter(commit)
    calls = [[10 * k + i for i in range(5)] for k in range(8)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(gc.submit_many, calls))
    assert results == calls
    for call in calls:  # each call's items are stored consecutively, in order
        start = stored.index(call[0])
        assert stored[start : start + 5] == call


def test_append_many_chains_like_append() -> None:
    db = GuardDB("sqlite://")
    try:
        log = AuditLog(db)
        first = log.append({"kind": "a"})
        more = log.append_many([{"kind": "b", "seq": 99, "prev": "x"}, {"kind": "c"}])
        assert [first.seq, *(e.seq for e in more)] == [1, 2, 3]
        assert log.entries == 3 and log.batches == 2
        assert verify_audit_log(db).ok
    finally:
        db.close()
