"""access.rate_limit against a real Redis: same arithmetic, atomic under concurrency."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest

from bastion.errors import StoreError
from bastion.guards import GuardRequest, RateLimitGuard, RedisLimiter, RollingQuota, TokenBucket
from bastion.guards.base import Action
from tests.guards._redis_worker import hammer
from tests.guards.conftest import redis_url

pytestmark = pytest.mark.redis


def _req(principal: str = "alice", rows: int = 1) -> GuardRequest:
    return GuardRequest(principal=principal, model="m", inputs=np.zeros((rows, 2)))


def test_token_bucket_in_redis(redis_prefix: tuple[Any, str]) -> None:
    client, prefix = redis_prefix
    guard = RateLimitGuard(
        [TokenBucket(rate=20, burst=4)], backend=RedisLimiter(client, prefix=prefix)
    )
    assert guard.before(_req(rows=4)).action is Action.ALLOW
    refused = guard.before(_req(rows=2))
    assert refused.http_status == 429 and refused.payload.headers["Retry-After"] == "1"
    verdict = guard.backend.acquire([(guard._key(guard.limits[0], _req()), guard.limits[0])], 2)
    assert 0.0 < verdict.retry_after_s <= 0.1
    time.sleep(0.12)
    assert guard.before(_req(rows=2)).action is Action.ALLOW
    assert guard.before(_req(rows=5)).http_status == 413
    assert all(k.decode().startswith(prefix) for k in client.keys(f"{prefix}*"))
    assert 0 < client.pttl(next(iter(client.keys(f"{prefix}*")))) <= 1300


def test_rolling_quota_in_redis_slides(redis_prefix: tuple[Any, str]) -> None:
    client, prefix = redis_prefix
    limiter = RedisLimiter(client, prefix=prefix)
    rule = RollingQuota(limit=5, window_s=0.4)
    assert limiter.acquire([("q", rule)], 3).allowed
    time.sleep(0.2)
    assert limiter.acquire([("q", rule)], 2).allowed
    verdict = limiter.acquire([("q", rule)], 2)  # must wait for the first 3 rows to age out
    assert not verdict.allowed and 0.1 < verdict.retry_after_s <= 0.25
    time.sleep(verdict.retry_after_s + 0.02)
    assert limiter.acquire([("q", rule)], 2).allowed
    assert not limiter.acquire([("q", rule)], 2).allowed
    assert limiter.acquire([("q", rule)], 6).impossible


def test_all_or_nothing_in_redis(redis_prefix: tuple[Any, str]) -> None:
    client, prefix = redis_prefix
    limiter = RedisLimiter(client, prefix=prefix)
    small, big = RollingQuota(limit=2, window_s=60), RollingQuota(limit=100, window_s=60)
    assert limiter.acquire([("big", big), ("small", small)], 2).allowed
    refused = limiter.acquire([("big", big), ("small", small)], 1)
    assert not refused.allowed and refused.refused_by == 1
    assert limiter.acquire([("big", big)], 98).allowed  # the refusal charged nothing


def test_threads_cannot_exceed_budget(redis_prefix: tuple[Any, str]) -> None:
    client, prefix = redis_prefix
    guard = RateLimitGuard(
        [RollingQuota(limit=150, window_s=3600, per="principal")],
        backend=RedisLimiter(client, prefix=prefix),
    )
    results: list[bool] = []
    lock = threading.Lock()

    def client_thread() -> None:
        for _ in range(40):
            ok = guard.before(_req("shared")).action is Action.ALLOW
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=client_thread) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 400 and sum(results) == 150


def test_processes_cannot_exceed_budget(redis_prefix: tuple[Any, str]) -> None:
    _, prefix = redis_prefix
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        barrier = manager.Barrier(2)
        futures = [pool.submit(hammer, redis_url(), prefix, 100, 80, barrier) for _ in range(2)]
        counts = [f.result(timeout=120) for f in futures]
    assert sum(counts) == 100 and all(c > 0 for c in counts)


def test_unreachable_redis_fails_closed() -> None:
    guard = RateLimitGuard(
        [RollingQuota(limit=5, window_s=60)],
        backend=RedisLimiter.from_url("redis://127.0.0.1:1/0", timeout_s=0.2),
    )
    with pytest.raises(StoreError, match="Redis"):
        guard.before(_req())
