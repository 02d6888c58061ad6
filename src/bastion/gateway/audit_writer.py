"""Audit entries written from the event loop: group commit in one writer thread.

When a pipeline runs inline (see :mod:`bastion.gateway.execution`) its audit entry
must still be durable before the answer is sent, but a database commit must not run
on the event loop: an ``fsync`` or a PostgreSQL round trip would stall every other
request of the worker. :class:`AsyncAuditWriter` queues the entry and awaits it; one
writer thread commits whatever is queued in a single transaction
(:meth:`AuditLog.append_many`), then resolves every waiting request with one wake-up of
the loop. It is the leader/follower group commit of
:mod:`bastion.guards.audit_batch` with the event loop as the only follower: no timer,
no delay; one request at a time is committed at once, and under load the entries that
queue up while a transaction runs go into the next one.

A failed transaction fails every entry in it with :class:`~bastion.errors.StoreError`;
the gateway then answers 503 and releases nothing.

Examples
--------
>>> import asyncio
>>> from bastion.guards.audit import AuditLog
>>> from bastion.guards.db import GuardDB
>>> log = AuditLog(GuardDB("sqlite://"))
>>> async def main():
...     writer = AsyncAuditWriter(log)
...     try:
...         return await asyncio.gather(*(writer.append({"n": i}) for i in range(3)))
...     finally:
...         writer.close()
>>> [e.seq for e in asyncio.run(main())]
[1, 2, 3]
>>> log.db.close()
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bastion.errors import StoreError
from bastion.guards.audit import AuditEntry, AuditLog, entry_fields
from bastion.guards.outcome import GuardOutcome

__all__ = ["AsyncAuditWriter"]


class AsyncAuditWriter:
    """Append audit entries from coroutines; one transaction per batch, off the loop.

    Parameters
    ----------
    audit : AuditLog
        The log the entries go to.
    max_batch : int
        Most entries in one transaction.
    """

    def __init__(self, audit: AuditLog, *, max_batch: int = 256) -> None:
        self.audit = audit
        self.max_batch = max_batch
        self._queue: deque[tuple[dict[str, Any], asyncio.Future[AuditEntry]]] = deque()
        self._busy = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-audit")

    async def record(self, outcome: GuardOutcome) -> AuditEntry:
        """Append ``outcome``'s entry; return once it is committed."""
        return await self.append(entry_fields(outcome))

    async def append(self, fields: dict[str, Any]) -> AuditEntry:
        """Append one entry; return its place in the chain once it is committed.

        Raises
        ------
        StoreError
            If the transaction holding the entry failed.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[AuditEntry] = loop.create_future()
        self._queue.append((fields, waiter))
        if not self._busy:
            self._start(loop)
        return await waiter

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
        self._busy = True
        try:
            done = self._thread.submit(self.audit.append_many, [f for f, _ in batch])
        except RuntimeError as err:  # the executor is shut down: the gateway is stopping
            self._busy = False
            _fail(batch, StoreError(f"The audit writer is closed ({err})."))
            return
        done.add_done_callback(lambda f: loop.call_soon_threadsafe(self._finish, loop, batch, f))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[dict[str, Any], asyncio.Future[AuditEntry]]],
        done: Future[list[AuditEntry]],
    ) -> None:
        self._busy = False
        err = done.exception()
        if err is not None:
            _fail(batch, err if isinstance(err, StoreError) else StoreError(str(err)))
        else:
            for (_, waiter), entry in zip(batch, done.result(), strict=True):
                if not waiter.done():
                    waiter.set_result(entry)
        if self._queue:
            self._start(loop)

    def close(self) -> None:
        """Wait for the transaction under way, then stop the writer thread."""
        self._thread.shutdown(wait=True)


def _fail(
    batch: list[tuple[dict[str, Any], asyncio.Future[AuditEntry]]], err: BaseException
) -> None:
    for _, waiter in batch:
        if not waiter.done():
            waiter.set_exception(err)
