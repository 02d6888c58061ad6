"""A separate process hammering a Redis-backed quota (used by test_ratelimit_redis)."""

from __future__ import annotations

from typing import Any


def hammer(url: str, prefix: str, limit: int, attempts: int, barrier: Any) -> int:
    import numpy as np

    from bastion.guards import GuardRequest, RateLimitGuard, RedisLimiter, RollingQuota
    from bastion.guards.base import Action

    guard = RateLimitGuard(
        [RollingQuota(limit=limit, window_s=3600, per="principal")],
        backend=RedisLimiter.from_url(url, prefix=prefix),
    )
    request = GuardRequest(principal="shared", model="m", inputs=np.zeros((1, 2)))
    barrier.wait(timeout=60)  # start together, so the processes really race
    return sum(guard.before(request).action is Action.ALLOW for _ in range(attempts))
