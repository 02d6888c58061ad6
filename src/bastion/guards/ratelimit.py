"""``access.rate_limit``: query budgets and rate limits per principal and per model.

Each request is charged one query per input row against every configured
:class:`~bastion.guards.limits.TokenBucket` (rate) and
:class:`~bastion.guards.limits.RollingQuota` (total in a sliding window), each kept
per principal, per model or per (principal, model). A request that would exceed
any of them is refused with **429** and a ``Retry-After`` header (whole seconds,
at least 1) saying when the same request would fit; a batch larger than a limit
itself can never fit and is refused with **413**. Nothing is charged for a refused
request. Put it after authentication (order 20 > 10), so the principal is the
authenticated one.

Not an attack: ATLAS AML.M0004 (restrict number of ML model queries). Budgets slow
model extraction and membership inference, which need many queries (Tramèr et al.
2016, "Stealing Machine Learning Models via Prediction APIs"), and cap denial of
service and cost harvesting (AML.T0029, AML.T0034).

Examples
--------
>>> import numpy as np
>>> from bastion.guards.base import GuardRequest
>>> guard = RateLimitGuard([RollingQuota(limit=3, window_s=60, per="principal")])
>>> req = GuardRequest(principal="bob", model="m", inputs=np.zeros((2, 4)))
>>> guard.before(req).action.value
'allow'
>>> refused = guard.before(req)
>>> refused.http_status, int(refused.payload.headers["Retry-After"]) >= 59
(429, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote

from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest
from bastion.guards.limits import Limit, Limiter, MemoryLimiter, RollingQuota, TokenBucket
from bastion.guards.outcome import deny
from bastion.guards.pipeline import count_rows

__all__ = ["RateLimitGuard"]

_ALLOW = Decision.allow()
_MAX_CACHED = 10_000
"""Most (principal, model) pairs whose limit keys are kept; the cache restarts beyond."""


class RateLimitGuard(Guard):
    """Token-bucket rate limits and rolling query quotas, in memory or in Redis.

    Not an attack: query budgets (ATLAS AML.M0004).

    Parameters
    ----------
    limits : sequence of TokenBucket or RollingQuota
        Every limit that applies to each request.
    backend : Limiter or None
        Where the counts live; a :class:`MemoryLimiter` when None (one process), a
        :class:`~bastion.guards.limits_redis.RedisLimiter` for several workers.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="access.rate_limit",
        title="Query budgets and rate limits per principal and model",
        catalog=CatalogRefs(
            owasp=["ML05", "ML04", "ML03"],
            failure_modes=["FM5", "FM4", "FM3"],
            atlas_techniques=["AML.T0024", "AML.T0024.002", "AML.T0029", "AML.T0034", "AML.T0040"],
            atlas_mitigations=["AML.M0004"],
        ),
        order=20,
    )

    def __init__(self, limits: Sequence[Limit], *, backend: Limiter | None = None) -> None:
        rules = list(limits)
        if not rules or not all(isinstance(r, TokenBucket | RollingQuota) for r in rules):
            raise UsageError(
                "access.rate_limit needs at least one TokenBucket or RollingQuota limit."
            )
        self.limits: tuple[Limit, ...] = tuple(rules)
        self.backend: Limiter = backend if backend is not None else MemoryLimiter()
        # (principal, model) -> the (key, limit) pairs it is charged against.
        self._demands: dict[tuple[str, str], tuple[tuple[str, Limit], ...]] = {}
        self._demands_for = self.limits

    @staticmethod
    def _key(rule: Limit, request: GuardRequest) -> str:
        p, m = quote(request.principal, safe=""), quote(request.model, safe="")
        scoped = {"principal": f"p={p}", "model": f"m={m}", "principal_model": f"p={p}&m={m}"}
        return f"{rule.fingerprint}:{scoped[rule.per]}"

    def _demands_of(self, request: GuardRequest) -> tuple[tuple[str, Limit], ...]:
        """The request's (key, limit) pairs, built once per (principal, model)."""
        who = (request.principal, request.model)
        demands = self._demands.get(who)
        if demands is None or self._demands_for is not self.limits:
            demands = tuple((self._key(rule, request), rule) for rule in self.limits)
            if len(self._demands) >= _MAX_CACHED or self._demands_for is not self.limits:
                self._demands.clear()
                self._demands_for = self.limits
            self._demands[who] = demands
        return demands

    def before(self, request: GuardRequest) -> Decision:
        """Charge the request's rows, or refuse with 429 and Retry-After (413 if too big)."""
        cost = max(1, count_rows(request.inputs))
        verdict = self.backend.acquire(self._demands_of(request), cost)
        if verdict.allowed:
            return _ALLOW
        rule = self.limits[verdict.refused_by or 0]
        if verdict.impossible:
            return deny(
                f"A request of {cost} rows exceeds the limit of {rule.describe()}; send smaller "
                "batches.",
                http_status=413,
            )
        retry = max(1, math.ceil(verdict.retry_after_s))
        return deny(
            f"Query limit reached: {rule.describe()}; retry in {retry} s.",
            http_status=429,
            headers={"Retry-After": str(retry)},
        )
