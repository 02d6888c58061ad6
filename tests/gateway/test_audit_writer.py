"""Audit entries from the event loop: batching, order, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from bastion.errors import StoreError
from bastion.gateway.audit_writer import AsyncAuditWriter
from bastion.guards.audit import AuditLog
from bastion.guards.audit_verify import verify_audit_log
from bastion.guards.db import GuardDB


class _Gate(AuditLog):
    """An audit log whose commits can be held back or made to fail."""

    def __init__(self, db: GuardDB) -> None:
        super().__init__(db)
        self.open = threading.Event()
        self.open.set()
        self.fail = False
        self.calls: list[int] = []

    def append_many(self, entries: Any) -> Any:
        self.open.wait(5)
        self.calls.append(len(entries))
        if self.fail:
            raise StoreError("disk full")
        return super().append_many(entries)


@pytest.fixture
def log() -> Any:
    db = GuardDB("sqlite://")
    yield _Gate(db)
    db.close()


def test_concurrent_entries_share_transactions_in_order(log: _Gate) -> None:
    async def main() -> list[int]:
        writer = AsyncAuditWriter(log)
        try:
            log.open.clear()
            first = asyncio.ensure_future(writer.append({"n": 0}))
            await asyncio.sleep(0.05)  # the first transaction is now held open
            rest = [asyncio.ensure_future(writer.append({"n": i})) for i in range(1, 20)]
            await asyncio.sleep(0.05)
            log.open.set()
            entries = await asyncio.gather(first, *rest)
            return [e.seq for e in entries]
        finally:
            writer.close()

    assert asyncio.run(main()) == list(range(1, 21))
    assert log.calls == [1, 19]  # everything that queued meanwhile went in one transaction
    report = verify_audit_log(log.db)
    assert report.ok and report.entries == 20


def test_a_failed_transaction_fails_its_entries_and_the_writer_goes_on(log: _Gate) -> None:
    async def main() -> tuple[list[Any], int]:
        writer = AsyncAuditWriter(log)
        try:
            log.fail = True
            failed = await asyncio.gather(
                *(writer.append({"n": i}) for i in range(3)), return_exceptions=True
            )
            log.fail = False
            ok = await writer.append({"n": 3})
            return failed, ok.seq
        finally:
            writer.close()

    failed, seq = asyncio.run(main())
    assert all(isinstance(e, StoreError) and "disk full" in str(e) for e in failed)
    assert seq == 1  # nothing of the failed transaction was stored


def test_max_batch_splits_and_a_closed_writer_refuses(log: _Gate) -> None:
    async def main() -> None:
        writer = AsyncAuditWriter(log, max_batch=4)
        log.open.clear()
        pending = [asyncio.ensure_future(writer.append({"n": i})) for i in range(10)]
        await asyncio.sleep(0.05)
        log.open.set()
        await asyncio.gather(*pending)
        writer.close()
        with pytest.raises(StoreError, match="closed"):
            await writer.append({"n": 99})

    asyncio.run(main())
    assert max(log.calls) <= 4 and sum(log.calls) == 10
