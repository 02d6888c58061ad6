"""Query limits shared by several gateway workers, kept in Redis.

The arithmetic of :class:`~bastion.guards.limits.MemoryLimiter` runs inside one Lua
script, so Redis executes check-and-charge for every limit of a request atomically:
however many workers and clients race, the rows admitted never exceed a bucket or a
quota. Time comes from the Redis server (``TIME``), so workers on different hosts
share one clock.

Storage: a token bucket is a hash (``t`` tokens, ``ts`` last update in ms); a rolling
quota is a sorted set scored by admission time (ms) whose members encode the
cumulative row count after that admission and the rows admitted
(``%015d:%015d:<nonce>``), so the rows in the window are
``last.cumulative - (first.cumulative - first.rows)`` and the time until enough rows
age out is a binary search over ranks. Keys expire once idle (a bucket when full, a
quota after its window). Each admitted request adds one member to each quota it is
charged against. All keys of one request are used in one script, so on Redis Cluster
they must hash to one slot; this backend targets a single Redis server (or a
primary with replicas).

Examples
--------
>>> DEFAULT_PREFIX
'bastion:rl:'
>>> import redis  # doctest: +SKIP
>>> limiter = RedisLimiter(redis.Redis.from_url("redis://127.0.0.1:6379/0"))  # doctest: +SKIP
>>> limiter.acquire([("alice", TokenBucket(rate=5, burst=10))], cost=3).allowed  # doctest: +SKIP
True
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any

from bastion.errors import StoreError, UsageError
from bastion.guards.limits import Limit, LimitVerdict, TokenBucket
from bastion.store.url import redact_url

__all__ = ["DEFAULT_PREFIX", "RedisLimiter"]

DEFAULT_PREFIX = "bastion:rl:"
"""Start of every key the limiter writes."""

_SCRIPT = r"""
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local nonce = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function cum_of(member) return tonumber(string.sub(member, 1, 15)) end
local function rows_of(member) return tonumber(string.sub(member, 17, 31)) end

local worst = -1
local worst_i = 0
local tokens_now = {}
for i = 1, n do
  local kind = ARGV[3 + 3 * (i - 1) + 1]
  local a = tonumber(ARGV[3 + 3 * (i - 1) + 2])
  local b = tonumber(ARGV[3 + 3 * (i - 1) + 3])
  local key = KEYS[i]
  if kind == 'b' then
    -- a: tokens per ms, b: burst
    local h = redis.call('HMGET', key, 't', 'ts')
    local tokens = tonumber(h[1])
    local ts = tonumber(h[2])
    if tokens == nil or ts == nil then tokens = b; ts = now end
    if now > ts then tokens = math.min(b, tokens + (now - ts) * a) end
    tokens_now[i] = tokens
    if cost > b then return {0, '0', i, 1} end
    if tokens < cost then
      local wait = (cost - tokens) / a
      if wait > worst then worst = wait; worst_i = i end
    end
  else
    -- a: row limit, b: window in ms
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - b)
    if cost > a then return {0, '0', i, 1} end
    local first = redis.call('ZRANGE', key, 0, 0)
    if #first > 0 then
      local base = cum_of(first[1]) - rows_of(first[1])
      local last = redis.call('ZRANGE', key, -1, -1)
      local used = cum_of(last[1]) - base
      if used + cost > a then
        local need = used + cost - a
        local lo = 0
        local hi = redis.call('ZCARD', key) - 1
        while lo < hi do
          local mid = math.floor((lo + hi) / 2)
          local m = redis.call('ZRANGE', key, mid, mid)
          if cum_of(m[1]) - base >= need then hi = mid else lo = mid + 1 end
        end
        local hit = redis.call('ZRANGE', key, lo, lo, 'WITHSCORES')
        local wait = tonumber(hit[2]) + b - now
        if wait > worst then worst = wait; worst_i = i end
      end
    end
  end
end
if worst_i > 0 then
  return {0, tostring(math.ceil(math.max(worst, 0))), worst_i, 0}
end
for i = 1, n do
  local kind = ARGV[3 + 3 * (i - 1) + 1]
  local a = tonumber(ARGV[3 + 3 * (i - 1) + 2])
  local b = tonumber(ARGV[3 + 3 * (i - 1) + 3])
  local key = KEYS[i]
  if kind == 'b' then
    redis.call('HSET', key, 't', tostring(tokens_now[i] - cost), 'ts', tostring(now))
    redis.call('PEXPIRE', key, math.ceil(b / a) + 1000)
  else
    local last = redis.call('ZRANGE', key, -1, -1)
    local cum = 0
    if #last > 0 then cum = cum_of(last[1]) end
    local member = string.format('%015d:%015d:%s:%d', cum + cost, cost, nonce, i)
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(b) + 1000)
  end
end
return {1, '0', 0, 0}
"""


class RedisLimiter:
    """Limits in Redis, checked and charged atomically by a Lua script.

    Parameters
    ----------
    client : redis.Redis
        A redis-py client (``redis.Redis.from_url("redis://127.0.0.1:6379/0")``).
    prefix : str
        Start of every key; give each deployment (and each test) its own.
    """

    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise UsageError("A Redis limiter needs a non-empty key prefix.")
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_SCRIPT)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 2.0
    ) -> RedisLimiter:
        """A limiter on the Redis server at ``url`` (``redis://host:port/db``)."""
        import redis

        try:
            client = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
        except ValueError as err:
            raise UsageError(
                f"The Redis URL {redact_url(url)!r} cannot be parsed ({err}); write it as "
                "redis://host:6379/0."
            ) from err
        return cls(client, prefix=prefix)

    def acquire(self, demands: Sequence[tuple[str, Limit]], cost: int) -> LimitVerdict:
        """Admit ``cost`` rows against every limit, or charge nothing and say how long to wait.

        Raises
        ------
        StoreError
            When Redis cannot be reached or refuses the script.
        """
        import redis

        keys: list[str] = []
        args: list[str | int] = [int(cost), len(demands), secrets.token_hex(8)]
        for key, rule in demands:
            keys.append(f"{self.prefix}{key}")
            if isinstance(rule, TokenBucket):
                args += ["b", repr(rule.rate / 1000.0), rule.burst]
            else:
                args += ["q", rule.limit, repr(float(rule.window_s) * 1000.0)]
        try:
            allowed, wait_ms, index, impossible = self._script(keys=keys, args=args)
        except redis.RedisError as err:
            raise StoreError(
                f"Cannot check query limits in Redis ({type(err).__name__}: {err}); check that "
                "the server is running and reachable."
            ) from err
        if int(allowed) == 1:
            return LimitVerdict(True)
        wait_s = float(wait_ms) / 1000.0
        return LimitVerdict(
            False,
            0.0 if int(impossible) else math.ceil(wait_s * 1000) / 1000,
            int(index) - 1,
            impossible=bool(int(impossible)),
        )
