"""Group commit: many threads' writes committed together, each caller waiting for its own.

:class:`GroupCommitter` turns ``submit(item)`` calls from many threads into few
transactions. It has no background thread; it uses the *leader/follower* scheme of
database group commit (Gawlick and Kinkade 1985, "Varieties of Concurrency Control
in IMS/VS Fast Path"; the same idea as the group commit of MySQL's binary log):

* a caller queues its item, and if no commit is under way it becomes the **leader**:
  it takes everything queued (at most ``max_batch`` items), calls ``commit`` with the
  batch in one go, hands each caller its result and wakes them;
* a caller that finds a commit under way is a **follower**: it waits; when that commit
  ends it either finds its own item committed (it was in the batch) or becomes the next
  leader and commits everything that queued up meanwhile.

There is no timer and no artificial delay: with one caller at a time every item is
committed at once by its own thread, as without batching; under load, the items that
arrive while a commit is running are committed together in the next one, so the
number of transactions adapts to the load. ``submit`` returns only after the
transaction holding the item has committed, and raises if it failed — a caller never
believes an item is stored when it is not.

Examples
--------
>>> stored = []
>>> def commit(batch):
...     stored.append(list(batch))
...     return [len(stored)] * len(batch)
>>> gc = GroupCommitter(commit)
>>> gc.submit("a"), gc.submit("b")
(1, 2)
>>> gc.batches, gc.items
(2, 2)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from bastion.errors import StoreError, UsageError

__all__ = ["GroupCommitter"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommitter(Generic[T, R]):
    """Commit items from many threads in shared transactions (leader/follower).

    Parameters
    ----------
    commit : callable
        ``commit(batch) -> results``: stores a non-empty sequence of items in one
        transaction and returns one result per item, in order; raises if nothing was
        stored. Calls never overlap.
    max_batch : int
        Most items committed in one transaction.
    """

    def __init__(self, commit: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 256):
        if max_batch < 1:
            raise UsageError("max_batch must be >= 1.")
        self._commit = commit
        self.max_batch = int(max_batch)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # waited on with self._lock held
        self._queue: deque[_Slot[T, R]] = deque()
        self._leading = False
        self.batches = 0
        """Transactions committed so far."""
        self.items = 0
        """Items committed so far."""
        self.largest_batch = 0
        """Most items committed in one transaction so far."""

    def submit(self, item: T) -> R:
        """Store ``item``; return its result once its transaction has committed.

        Raises
        ------
        StoreError
            If the transaction holding the item failed (the item is not stored).
        """
        slot: _Slot[T, R] = _Slot(item)
        self._wait_for((slot,))
        return _result(slot)

    def submit_many(self, items: Sequence[T]) -> list[R]:
        """Store ``items`` in order; return their results once all are committed.

        The items are queued together, so they are committed in the same transaction
        unless they are more than ``max_batch`` (then in consecutive ones).

        Raises
        ------
        StoreError
            If a transaction holding one of the items failed. Items of earlier
            transactions of the call may be stored.
        """
        slots: list[_Slot[T, R]] = [_Slot(item) for item in items]
        if not slots:
            return []
        self._wait_for(slots)
        return [_result(slot) for slot in slots]

    def _wait_for(self, slots: Sequence[_Slot[T, R]]) -> None:
        """Queue ``slots``; lead or follow until the last of them is committed or failed.

        Batches leave the queue in order, so the last slot is done last.
        """
        last = slots[-1]
        queue = self._queue
        with self._lock:
            queue.extend(slots)
            while not last.done:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
                error: BaseException | None = None
                finished = False
                self._lock.release()
                try:
                    error = self._lead(batch)
                    finished = True
                finally:
                    self._lock.acquire()
                    if not finished:  # the leader was interrupted (KeyboardInterrupt, ...)
                        error = StoreError("The batched write was interrupted.")
                    self._settle(batch, error)

    def _lead(self, batch: list[_Slot[T, R]]) -> BaseException | None:
        """Commit ``batch`` (without the lock); the error that failed it, if any."""
        try:
            results = self._commit([s.item for s in batch])
            if len(results) != len(batch):
                raise StoreError(
                    f"The commit returned {len(results)} results for {len(batch)} items."
                )
        except Exception as err:
            return err
        for s, r in zip(batch, results, strict=True):
            s.result = r
        return None

    def _settle(self, batch: list[_Slot[T, R]], error: BaseException | None) -> None:
        """Mark ``batch`` done (with the lock held) and wake every waiting caller."""
        for s in batch:
            s.error = error
            s.done = True
        if error is None:
            self.batches += 1
            self.items += len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
        self._leading = False
        self._cond.notify_all()


def _result(slot: _Slot[T, R]) -> R:
    """The slot's result, or the StoreError that says why it was not stored."""
    err = slot.error
    if err is None:
        return slot.result  # type: ignore[return-value]
    if isinstance(err, StoreError):
        raise StoreError(str(err)) from err
    raise StoreError(f"The batched write failed ({type(err).__name__}: {err}).") from err
