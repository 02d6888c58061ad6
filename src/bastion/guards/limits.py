"""Query limits: token buckets for rate, rolling quotas for totals, and a memory backend.

A limit is counted in *rows* (one query per input row, as target budgets count) and
applies per principal, per model, or per (principal, model) pair:

* :class:`TokenBucket` — ``rate`` rows per second on average with bursts of up to
  ``burst`` rows (the bucket starts full and refills continuously);
* :class:`RollingQuota` — at most ``limit`` rows in any window of ``window_s``
  seconds (an exact sliding window, not fixed calendar buckets).

A request is admitted only if *every* limit that applies admits it, and then all
are charged at once (all or nothing), so a request refused by one limit spends
nothing from the others. A refusal says how long to wait (``Retry-After``): for a
bucket, until enough tokens have refilled; for a quota, until enough of the oldest
rows in the window have aged out (found by binary search over cumulative counts).

:class:`MemoryLimiter` keeps the state in one process behind a lock;
:class:`~bastion.guards.limits_redis.RedisLimiter` keeps it in Redis for several
gateway workers, with the same arithmetic in one atomic Lua script.

Examples
--------
>>> clock = iter([0.0, 0.0, 0.5]).__next__
>>> limiter = MemoryLimiter(clock=clock)
>>> rules = [("alice", TokenBucket(rate=2.0, burst=2, per="principal"))]
>>> limiter.acquire(rules, cost=2).allowed
True
>>> verdict = limiter.acquire(rules, cost=2)
>>> verdict.allowed, verdict.retry_after_s
(False, 1.0)
>>> limiter.acquire(rules, cost=1).allowed  # half a second later one token is back
True
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from bastion.errors import UsageError

__all__ = [
    "Limit",
    "LimitVerdict",
    "Limiter",
    "MemoryLimiter",
    "RollingQuota",
    "Scope",
    "TokenBucket",
]

Scope = Literal["principal", "model", "principal_model"]
_SCOPES = ("principal", "model", "principal_model")


def _check_scope(per: str) -> None:
    if per not in _SCOPES:
        raise UsageError(f"A limit's 'per' must be one of {', '.join(_SCOPES)}; got {per!r}.")


@dataclass(frozen=True)
class TokenBucket:
    """``rate`` rows per second on average, bursts of at most ``burst`` rows."""

    rate: float
    burst: int
    per: Scope = "principal_model"

    def __post_init__(self) -> None:
        _check_scope(self.per)
        if not (isinstance(self.rate, int | float) and 0 < self.rate < 1e9):
            raise UsageError(
                f"A token bucket's rate must be > 0 rows per second; got {self.rate!r}."
            )
        if not (isinstance(self.burst, int) and self.burst >= 1):
            raise UsageError(f"A token bucket's burst must be an integer >= 1; got {self.burst!r}.")

    @property
    def fingerprint(self) -> str:
        return f"b{self.rate:g}x{self.burst}"

    def describe(self) -> str:
        return f"{self.rate:g} rows/s (bursts of {self.burst}) per {self.per.replace('_', ' and ')}"


@dataclass(frozen=True)
class RollingQuota:
    """At most ``limit`` rows in any sliding window of ``window_s`` seconds."""

    limit: int
    window_s: float
    per: Scope = "principal"

    def __post_init__(self) -> None:
        _check_scope(self.per)
        if not (isinstance(self.limit, int) and self.limit >= 1):
            raise UsageError(f"A quota's limit must be an integer >= 1; got {self.limit!r}.")
        if not (isinstance(self.window_s, int | float) and 0 < self.window_s <= 366 * 86400):
            raise UsageError(
                "A quota's window must be between 0 and 366 days in seconds; got "
                f"{self.window_s!r}."
            )

    @property
    def fingerprint(self) -> str:
        return f"q{self.limit}x{self.window_s:g}"

    def describe(self) -> str:
        return f"{self.limit} rows per {self.window_s:g} s per {self.per.replace('_', ' and ')}"


Limit = TokenBucket | RollingQuota


@dataclass(frozen=True)
class LimitVerdict:
    """Whether a request was admitted; if not, which limit refused it and for how long.

    ``impossible`` means the request is larger than the limit itself and waiting
    will not help.
    """

    allowed: bool
    retry_after_s: float = 0.0
    refused_by: int | None = None
    impossible: bool = False


_ALLOWED = LimitVerdict(True)


@runtime_checkable
class Limiter(Protocol):
    """A backend that atomically checks and charges several limits."""

    def acquire(self, demands: Sequence[tuple[str, Limit]], cost: int) -> LimitVerdict:
        """Admit ``cost`` rows against every ``(key, limit)`` pair, or none of them."""
        ...


@dataclass
class _Window:
    window_s: float
    ts: list[float] = field(default_factory=list)
    cum: list[int] = field(default_factory=list)
    start: int = 0
    base: int = 0
    total: int = 0

    def expire(self, now: float) -> None:
        idx = bisect_right(self.ts, now - self.window_s, lo=self.start)
        if idx > self.start:
            self.base = self.cum[idx - 1]
            self.start = idx
            if self.start > 1024 and self.start * 2 > len(self.ts):
                del self.ts[: self.start], self.cum[: self.start]
                self.start = 0

    @property
    def used(self) -> int:
        return self.total - self.base


class MemoryLimiter:
    """Limits kept in this process (one lock; exact; not shared between workers).

    Idle state is forgotten every few thousand calls: full buckets and empty windows
    are the same as no state at all, so memory stays proportional to active callers.

    Parameters
    ----------
    clock : callable
        Monotonic seconds (tests replace it).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, TokenBucket]] = {}
        self._windows: dict[str, _Window] = {}
        self._calls = 0

    def acquire(self, demands: Sequence[tuple[str, Limit]], cost: int) -> LimitVerdict:
        """Admit ``cost`` rows against every limit, or charge nothing and say how long to wait."""
        with self._lock:
            now = self._clock()
            self._calls += 1
            if self._calls % 4096 == 0:
                self._sweep(now)
            worst, worst_i = 0.0, None
            tokens_now: list[float] = []
            for i, (key, rule) in enumerate(demands):
                if isinstance(rule, TokenBucket):
                    state = self._buckets.get(key)
                    tokens = float(rule.burst)  # a new bucket starts full
                    if state is not None:
                        tokens = min(tokens, state[0] + max(0.0, now - state[1]) * rule.rate)
                    tokens_now.append(tokens)
                    if cost > rule.burst:
                        return LimitVerdict(False, 0.0, i, impossible=True)
                    if tokens < cost:
                        wait = (cost - tokens) / rule.rate
                        if worst_i is None or wait > worst:
                            worst, worst_i = wait, i
                    continue
                tokens_now.append(0.0)
                window = self._windows.get(key)
                if window is None:
                    window = self._windows[key] = _Window(rule.window_s)
                window.expire(now)
                if cost > rule.limit:
                    return LimitVerdict(False, 0.0, i, impossible=True)
                if window.used + cost > rule.limit:
                    need = window.used + cost - rule.limit
                    e = bisect_left(window.cum, window.base + need, lo=window.start)
                    wait = window.ts[e] + rule.window_s - now
                    if worst_i is None or wait > worst:
                        worst, worst_i = wait, i
            if worst_i is not None:
                return LimitVerdict(False, max(worst, 0.0), worst_i)
            for (key, rule), tokens in zip(demands, tokens_now, strict=True):
                if isinstance(rule, TokenBucket):
                    self._buckets[key] = (tokens - cost, now, rule)
                else:
                    window = self._windows[key]
                    window.total += cost
                    window.ts.append(now)
                    window.cum.append(window.total)
            return _ALLOWED

    def _sweep(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            window.expire(now)
            if window.used == 0:
                del self._windows[key]
        for key, (tokens, ts, rule) in list(self._buckets.items()):
            if tokens + (now - ts) * rule.rate >= rule.burst:
                del self._buckets[key]

    def state_size(self) -> int:
        """Keys currently held (buckets plus windows)."""
        with self._lock:
            return len(self._buckets) + len(self._windows)
