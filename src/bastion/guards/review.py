"""The review queue: requests withheld from the caller until a person looks at them.

:class:`StoreReviewQueue` keeps them in the results-store database
(``guard_review_queue``), :class:`MemoryReviewQueue` in a list for tests and
notebooks. Each item holds the request's inputs and the model's withheld answer,
which rows were doubtful and why, so a reviewer can decide and the decision can be
fed back (``resolve``).

Examples
--------
>>> from bastion.guards.db import GuardDB
>>> queue = StoreReviewQueue(GuardDB("sqlite://"))
>>> rid = queue.add(request_id="r1", principal="alice", model="digits", reason="low margin",
...                 rows=[0], inputs=[[0.1, 0.2]], outputs=[[0.51, 0.49]])
>>> [item.review_id == rid for item in queue.pending()]
[True]
>>> queue.resolve(rid, {"label": 1, "by": "analyst"}).status
'resolved'
>>> queue.pending()
[]
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select

from bastion.errors import UsageError
from bastion.guards.canonical import jsonable
from bastion.guards.db import GuardDB
from bastion.guards.tables import ReviewRow

__all__ = ["MemoryReviewQueue", "ReviewItem", "ReviewQueue", "StoreReviewQueue"]


@dataclass(frozen=True)
class ReviewItem:
    """One withheld request."""

    review_id: str
    request_id: str
    created_at: datetime
    principal: str
    model: str
    reason: str
    status: str
    rows: list[int]
    inputs: list[Any]
    outputs: list[Any]
    resolution: dict[str, Any] | None = None
    resolved_at: datetime | None = None


@runtime_checkable
class ReviewQueue(Protocol):
    """Where withheld requests wait for a decision."""

    def add(
        self,
        *,
        request_id: str,
        principal: str,
        model: str,
        reason: str,
        rows: Sequence[int],
        inputs: Any,
        outputs: Any,
    ) -> str:
        """Queue a request; return its review id."""
        ...

    def pending(self, limit: int = 100) -> list[ReviewItem]:
        """Oldest pending items first."""
        ...

    def resolve(self, review_id: str, resolution: dict[str, Any]) -> ReviewItem:
        """Record a reviewer's decision."""
        ...


def _new_id() -> str:
    return secrets.token_hex(8)


class MemoryReviewQueue:
    """A review queue in this process's memory."""

    def __init__(self) -> None:
        self._items: dict[str, ReviewItem] = {}
        self._lock = threading.Lock()

    def add(
        self,
        *,
        request_id: str,
        principal: str,
        model: str,
        reason: str,
        rows: Sequence[int],
        inputs: Any,
        outputs: Any,
    ) -> str:
        """Queue a request; return its review id."""
        item = ReviewItem(
            review_id=_new_id(),
            request_id=request_id,
            created_at=datetime.now(UTC),
            principal=principal,
            model=model,
            reason=reason,
            status="pending",
            rows=[int(r) for r in rows],
            inputs=jsonable(inputs),
            outputs=jsonable(outputs),
        )
        with self._lock:
            self._items[item.review_id] = item
        return item.review_id

    def pending(self, limit: int = 100) -> list[ReviewItem]:
        """Oldest pending items first."""
        with self._lock:
            items = [i for i in self._items.values() if i.status == "pending"]
        return sorted(items, key=lambda i: i.created_at)[:limit]

    def resolve(self, review_id: str, resolution: dict[str, Any]) -> ReviewItem:
        """Record a reviewer's decision."""
        with self._lock:
            item = self._items.get(review_id)
            if item is None:
                raise UsageError(f"No review item {review_id!r}.")
            done = replace(
                item, status="resolved", resolution=dict(resolution), resolved_at=datetime.now(UTC)
            )
            self._items[review_id] = done
            return done


class StoreReviewQueue:
    """A review queue in the store database (SQLite or PostgreSQL)."""

    def __init__(self, db: GuardDB) -> None:
        self.db = db

    def add(
        self,
        *,
        request_id: str,
        principal: str,
        model: str,
        reason: str,
        rows: Sequence[int],
        inputs: Any,
        outputs: Any,
    ) -> str:
        """Queue a request; return its review id."""
        review_id = _new_id()
        with self.db.session("queue a request for review in", write=True) as session:
            session.add(
                ReviewRow(
                    review_id=review_id,
                    request_id=request_id,
                    created_at=datetime.now(UTC),
                    principal=principal,
                    model=model,
                    reason=reason,
                    status="pending",
                    rows=[int(r) for r in rows],
                    inputs=jsonable(inputs),
                    outputs=jsonable(outputs),
                    resolution=None,
                    resolved_at=None,
                )
            )
        return review_id

    @staticmethod
    def _item(row: ReviewRow) -> ReviewItem:
        return ReviewItem(
            review_id=row.review_id,
            request_id=row.request_id,
            created_at=row.created_at,
            principal=row.principal,
            model=row.model,
            reason=row.reason,
            status=row.status,
            rows=list(row.rows),
            inputs=list(row.inputs),
            outputs=list(row.outputs),
            resolution=row.resolution,
            resolved_at=row.resolved_at,
        )

    def pending(self, limit: int = 100) -> list[ReviewItem]:
        """Oldest pending items first."""
        with self.db.session("read the review queue in") as session:
            rows = session.scalars(
                select(ReviewRow)
                .where(ReviewRow.status == "pending")
                .order_by(ReviewRow.created_at)
                .limit(limit)
            ).all()
            return [self._item(r) for r in rows]

    def resolve(self, review_id: str, resolution: dict[str, Any]) -> ReviewItem:
        """Record a reviewer's decision."""
        with self.db.session("resolve a review item in", write=True) as session:
            row = session.get(ReviewRow, review_id)
            if row is None:
                raise UsageError(f"No review item {review_id!r}.")
            row.status = "resolved"
            row.resolution = jsonable(dict(resolution))
            row.resolved_at = datetime.now(UTC)
            return self._item(row)
