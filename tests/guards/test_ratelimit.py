"""access.rate_limit with the in-memory backend: buckets, quotas, Retry-After, atomicity."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bastion.errors import UsageError
from bastion.guards import (
    Guarded,
    GuardRequest,
    MemoryLimiter,
    RateLimitGuard,
    RollingQuota,
    TokenBucket,
)
from bastion.guards.base import Action
from bastion.targets import FakeTarget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _req(principal: str = "alice", model: str = "m", rows: int = 1) -> GuardRequest:
    return GuardRequest(principal=principal, model=model, inputs=np.zeros((rows, 2)))


def test_token_bucket_rate_burst_and_retry_after() -> None:
    clock = Clock()
    guard = RateLimitGuard([TokenBucket(rate=2.0, burst=4)], backend=MemoryLimiter(clock))
    assert guard.before(_req(rows=4)).action is Action.ALLOW
    refused = guard.before(_req(rows=3))
    assert refused.http_status == 429 and refused.payload.headers["Retry-After"] == "2"
    assert "2 rows/s (bursts of 4) per principal and model" in refused.reason
    clock.now += 1.4  # 2.8 tokens back: still short of 3
    assert guard.before(_req(rows=3)).http_status == 429
    clock.now += 0.1
    assert guard.before(_req(rows=3)).action is Action.ALLOW
    assert guard.before(_req(rows=5)).http_status == 413  # can never fit in a burst of 4


def test_rolling_quota_is_exact_and_slides() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    rule = RollingQuota(limit=10, window_s=60, per="principal")
    for t, rows in [(0, 3), (10, 3), (20, 4)]:
        clock.now = 100.0 + t
        assert limiter.acquire([("k", rule)], rows).allowed
    clock.now = 130.0
    verdict = limiter.acquire([("k", rule)], 5)  # needs the first 3 and next 3 rows gone
    assert not verdict.allowed and verdict.retry_after_s == pytest.approx(40.0)
    clock.now = 159.99
    assert not limiter.acquire([("k", rule)], 1).allowed
    clock.now = 160.0  # the first 3 rows age out exactly now
    assert limiter.acquire([("k", rule)], 3).allowed
    assert not limiter.acquire([("k", rule)], 1).allowed
    assert limiter.acquire([("k", rule)], 11).impossible


def test_all_or_nothing_across_limits() -> None:
    clock = Clock()
    guard = RateLimitGuard(
        [
            TokenBucket(rate=100, burst=100, per="principal"),
            RollingQuota(limit=5, window_s=60, per="model"),
        ],
        backend=MemoryLimiter(clock),
    )
    assert guard.before(_req("a", rows=5)).action is Action.ALLOW
    refused = guard.before(_req("b", rows=1))  # model quota spent by someone else
    assert refused.http_status == 429 and "per model" in refused.reason
    # b's bucket was not charged by the refused request: it still holds the full burst
    assert guard.backend.acquire(
        [(guard._key(guard.limits[0], _req("b")), guard.limits[0])], 100
    ).allowed


def test_scopes_keep_principals_and_models_apart() -> None:
    guard = RateLimitGuard([RollingQuota(limit=2, window_s=60, per="principal_model")])
    assert guard.before(_req("a", "m1", 2)).action is Action.ALLOW
    assert guard.before(_req("a", "m1", 1)).http_status == 429
    assert guard.before(_req("a", "m2", 2)).action is Action.ALLOW
    assert guard.before(_req("b", "m1", 2)).action is Action.ALLOW
    assert guard.before(_req("a:m1", "", 2)).action is Action.ALLOW  # no key collisions


def test_threads_cannot_exceed_quota() -> None:
    guard = RateLimitGuard([RollingQuota(limit=137, window_s=3600)])
    allowed = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(60):
            ok = guard.before(_req()).action is Action.ALLOW
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 137 and len(allowed) == 480


def test_idle_state_is_swept() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    bucket, quota = TokenBucket(rate=10, burst=10), RollingQuota(limit=100, window_s=1)
    for i in range(4096):
        limiter.acquire([(f"b{i}", bucket), (f"q{i}", quota)], 1)
    assert limiter.state_size() <= 2 * 4096
    clock.now += 5
    for _ in range(4096):
        limiter.acquire([("same-b", bucket), ("same-q", quota)], 1)  # refused most of the time
    assert limiter.state_size() == 2


def test_pipeline_429_with_retry_after() -> None:
    target = FakeTarget.linear(n_features=2, n_classes=2)
    guarded = Guarded(target, [RateLimitGuard([RollingQuota(limit=2, window_s=60)])])
    assert guarded.handle_inputs([[0.1, 0.2], [0.3, 0.4]]).allowed
    outcome = guarded.handle_inputs([[0.1, 0.2]])
    assert outcome.http_status == 429 and int(outcome.headers["Retry-After"]) >= 59
    assert target.queries_used == 2


def test_bad_limits() -> None:
    for make in [
        lambda: TokenBucket(rate=0, burst=1),
        lambda: TokenBucket(rate=1, burst=0),
        lambda: RollingQuota(limit=0, window_s=1),
        lambda: RollingQuota(limit=1, window_s=0),
        lambda: RollingQuota(limit=1, window_s=1, per="team"),  # type: ignore[arg-type]
        lambda: RateLimitGuard([]),
    ]:
        with pytest.raises(UsageError):
            make()


# -- cached demands and the limiter's fast path against the straightforward code ----------
class ReferenceLimiter(MemoryLimiter):
    """``MemoryLimiter.acquire`` as it was before the fast path (token buckets inline)."""

    def acquire(self, demands, cost):  # type: ignore[no-untyped-def]
        from bisect import bisect_left

        from bastion.guards.limits import LimitVerdict, _Window

        with self._lock:
            now = self._clock()
            self._calls += 1
            if self._calls % 4096 == 0:
                self._sweep(now)
            worst, worst_i = 0.0, None
            tokens_now: list[float] = []
            for i, (key, rule) in enumerate(demands):
                if isinstance(rule, TokenBucket):
                    tokens, ts, _ = self._buckets.get(key, (float(rule.burst), now, rule))
                    tokens = min(float(rule.burst), tokens + max(0.0, now - ts) * rule.rate)
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
            return LimitVerdict(True)


class ReferenceGuard(RateLimitGuard):
    """Builds every key on every request, as the guard did before caching them."""

    def _demands_of(self, request):  # type: ignore[no-untyped-def]
        return [(self._key(rule, request), rule) for rule in self.limits]


def test_fast_paths_decide_exactly_like_the_reference() -> None:
    import random

    rng = random.Random(3)
    rules = [
        TokenBucket(rate=3.0, burst=5),
        TokenBucket(rate=0.5, burst=8, per="principal"),
        RollingQuota(limit=12, window_s=7.0, per="model"),
    ]
    clock = Clock()
    fast = RateLimitGuard(rules, backend=MemoryLimiter(clock))
    slow = ReferenceGuard(rules, backend=ReferenceLimiter(clock))
    for _ in range(3000):
        clock.now += rng.choice([0.0, 0.01, 0.3, 1.0, 2.5])
        req = _req(rng.choice(["a", "b", "c d/é"]), rng.choice(["m", "n"]), rng.randint(1, 9))
        a, b = fast.before(req), slow.before(req)
        assert (a.action, a.http_status, a.reason) == (b.action, b.http_status, b.reason)
        assert getattr(a.payload, "headers", None) == getattr(b.payload, "headers", None)
    assert fast._demands_of(_req("c d/é", "n")) == tuple(slow._demands_of(_req("c d/é", "n")))


def test_demand_cache_is_bounded_and_follows_new_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.guards.ratelimit as ratelimit

    monkeypatch.setattr(ratelimit, "_MAX_CACHED", 3)
    guard = RateLimitGuard([TokenBucket(rate=1.0, burst=100)])
    for i in range(10):
        guard.before(_req(f"p{i}"))
        assert len(guard._demands) <= 3
    guard.limits = (RollingQuota(limit=1, window_s=60),)
    assert guard.before(_req("p9")).action is Action.ALLOW
    assert guard.before(_req("p9")).http_status == 429
