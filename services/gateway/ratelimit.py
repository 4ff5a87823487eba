"""Rate limits: fixed windows per RPC, per app and per user, sized by the app's plan.

A call counts against every bucket that applies to it (the app's budget for the
RPC, and the user's when a user calls) only if all of them have room, so a refused
call costs nothing. Counters live in Redis when configured — shared by every
server process — and in this process otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget: `key` names the counter, `limit` is calls per window."""

    key: str
    limit: int
    subject: str  # who the budget belongs to, for QuotaFailure: "app:demo", "user:demo/alice"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one call: allowed or not, and the tightest budget's state."""

    allowed: bool
    tightest: Bucket
    remaining: int  # calls left in the window for the tightest bucket, after this one
    reset_after: float  # seconds until the window ends
    exhausted: tuple[Bucket, ...]  # the buckets that refused the call


class RateLimiter(Protocol):
    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        """Count one call against all `buckets` if each has room; else count nothing."""

    async def close(self) -> None: ...


class _Window:
    def __init__(self, length: float) -> None:
        self.length = length

    def index(self, now: float) -> int:
        return math.floor(now / self.length)

    def reset_after(self, now: float) -> float:
        return (self.index(now) + 1) * self.length - now


def _verdict(buckets: Sequence[Bucket], counts: Sequence[int], allowed: bool,
             reset_after: float) -> Verdict:
    """`counts` are the counters after this call when allowed, before it when refused."""
    remaining = [bucket.limit - count for bucket, count in zip(buckets, counts, strict=True)]
    tightest = min(range(len(buckets)), key=lambda i: remaining[i])
    exhausted = () if allowed else tuple(
        b for b, left in zip(buckets, remaining, strict=True) if left <= 0)
    return Verdict(allowed, buckets[tightest], max(0, remaining[tightest]), reset_after,
                   exhausted)


class InProcessRateLimiter:
    """Counters in this process's memory: right for a single server process."""

    def __init__(self, window_seconds: float) -> None:
        self._window = _Window(window_seconds)
        self._current = -1
        self._counts: dict[str, int] = {}

    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        index = self._window.index(now)
        if index != self._current:
            self._current = index
            self._counts = {}
        counts = [self._counts.get(b.key, 0) for b in buckets]
        allowed = all(c < b.limit for c, b in zip(counts, buckets, strict=True))
        if allowed:
            for bucket in buckets:
                self._counts[bucket.key] = self._counts.get(bucket.key, 0) + 1
            counts = [c + 1 for c in counts]
        return _verdict(buckets, counts, allowed, self._window.reset_after(now))

    async def close(self) -> None:
        return None


# All-or-nothing check-and-increment of several counters in one round trip.
# KEYS: the counters; ARGV[1]: expiry in ms; ARGV[2..]: the limits, in KEYS order.
# Returns {allowed (0/1), count_1, …, count_n}.
_CONSUME = """
local counts = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  counts[i] = tonumber(redis.call('GET', key) or '0')
  if counts[i] >= tonumber(ARGV[i + 1]) then allowed = 0 end
end
if allowed == 1 then
  for i, key in ipairs(KEYS) do
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  end
end
table.insert(counts, 1, allowed)
return counts
"""


class RedisRateLimiter:
    """Counters in Redis, shared by every server process.

    Bucket keys of one call share their app id as a hash tag, so the script also
    runs on Redis Cluster.
    """

    def __init__(self, redis: Redis, window_seconds: float, prefix: str = "caas:rl") -> None:
        self._redis = redis
        self._window = _Window(window_seconds)
        self._prefix = prefix
        self._script = redis.register_script(_CONSUME)

    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        index = self._window.index(now)
        keys = [f"{self._prefix}:{index}:{b.key}" for b in buckets]
        expiry_ms = int(self._window.length * 1000) + 1000
        result = await self._script(keys=keys, args=[expiry_ms, *[b.limit for b in buckets]])
        allowed = bool(int(result[0]))
        counts = [int(c) for c in result[1:]]
        return _verdict(buckets, counts, allowed, self._window.reset_after(now))

    async def close(self) -> None:
        await self._redis.aclose()
