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
        self._cond = threading.Condition(threading.Lock())
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
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while self._leading and not slot.done:
                    self._cond.wait()
                if slot.done:
                    break
                self._leading = True
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))
                ]
            self._lead(batch)
        if slot.error is not None:
            err = slot.error
            if isinstance(err, StoreError):
                raise StoreError(str(err)) from err
            raise StoreError(f"The batched write failed ({type(err).__name__}: {err}).") from err
        return slot.result  # type: ignore[return-value]

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        ok = False
        try:
            results = self._commit([s.item for s in batch])
            if len(results) != len(batch):
                raise StoreError(
                    f"The commit returned {len(results)} results for {len(batch)} items."
                )
            for s, r in zip(batch, results, strict=True):
                s.result = r
            ok = True
        except Exception as err:
            for s in batch:
                s.error = err
        finally:
            with self._cond:
                for s in batch:
                    if not ok and s.error is None:  # the leader was interrupted
                        s.error = StoreError("The batched write was interrupted.")
                    s.done = True
                if ok:
                    self.batches += 1
                    self.items += len(batch)
                    self.largest_batch = max(self.largest_batch, len(batch))
                self._leading = False
                self._cond.notify_all()
