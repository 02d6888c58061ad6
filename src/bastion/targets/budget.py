"""Query counting and budgets, shared by every target adapter.

Examples
--------
>>> from bastion.targets.budget import QueryBudget
>>> b = QueryBudget(limit=10)
>>> b.charge(4); b.used, b.remaining
(4, 6)
>>> b.charge(7)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.errors.QueryBudgetExceeded: The target's query budget of 10 would be exceeded ...
"""

from __future__ import annotations

import threading

from bastion.errors import QueryBudgetExceeded, UsageError

__all__ = ["QueryBudget"]


class QueryBudget:
    """Counts model queries (one per input row) and stops at an optional limit.

    Parameters
    ----------
    limit : int or None
        Largest number of rows that may be sent to the model; None for no limit.
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise UsageError(f"A query budget must be a non-negative integer; got {limit!r}.")
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Rows sent to the model so far."""
        return self._used

    @property
    def remaining(self) -> int | None:
        """Rows left, or None when there is no limit."""
        return None if self.limit is None else self.limit - self._used

    def charge(self, rows: int) -> None:
        """Account for ``rows`` queries, refusing *before* the model sees them if over."""
        with self._lock:
            if self.limit is not None and self._used + rows > self.limit:
                raise QueryBudgetExceeded(
                    f"The target's query budget of {self.limit} would be exceeded "
                    f"({self._used} used, {rows} more asked); raise the budget or query "
                    "fewer rows."
                )
            self._used += rows
