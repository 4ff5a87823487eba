"""Rate limits: fixed windows per RPC, per app and per user, sized by the app's plan.

A call counts against every bucket that applies to it (the app's budget for the
RPC, and the user's when a user calls) only if all of them have room, so a refused
call costs nothing. Counters live in Redis when configured — shared by every
server process — and in this process otherwise.
"""

from __future__ import annotations

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
    reset_after: float  # seconds until the tightest bucket's window ends
    exhausted: tuple[Bucket, ...]  # the buckets that refused the call


class RateLimiter(Protocol):
    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        """Count one call against all `buckets` if each has room; else count nothing."""

    async def close(self) -> None: ...


def _verdict(buckets: Sequence[Bucket], counts: Sequence[int], resets: Sequence[float],
             allowed: bool) -> Verdict:
    """`counts` are the counters after this call when allowed, before it when refused;
    `resets` the seconds left in each bucket's window."""
    remaining = [bucket.limit - count for bucket, count in zip(buckets, counts, strict=True)]
    tightest = min(range(len(buckets)), key=lambda i: (remaining[i], -resets[i]))
    exhausted = () if allowed else tuple(
        b for b, left in zip(buckets, remaining, strict=True) if left <= 0)
    return Verdict(allowed, buckets[tightest], max(0, remaining[tightest]), resets[tightest],
                   exhausted)


class InProcessRateLimiter:
    """Counters in this process's memory: right for a single server process.

    A bucket's window opens with its first counted call and lasts `window_seconds`.
    """

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._counters: dict[str, tuple[int, float]] = {}  # key → (count, window end)
        self._next_sweep = 0.0

    def _current(self, key: str, now: float) -> tuple[int, float]:
        count, end = self._counters.get(key, (0, 0.0))
        return (count, end) if end > now else (0, now + self._window)

    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        if now >= self._next_sweep:  # forget finished windows, so memory stays bounded
            self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
            self._next_sweep = now + self._window
        current = [self._current(b.key, now) for b in buckets]
        allowed = all(count < b.limit for (count, _), b in zip(current, buckets, strict=True))
        if allowed:
            current = [(count + 1, end) for count, end in current]
            for bucket, counter in zip(buckets, current, strict=True):
                self._counters[bucket.key] = counter
        return _verdict(buckets, [c for c, _ in current], [end - now for _, end in current],
                        allowed)

    async def close(self) -> None:
        return None


# All-or-nothing check-and-increment of several counters in one round trip. A counter's
# window opens with its first counted call (the key's expiry is the window's end).
# KEYS: the counters; ARGV[1]: window in ms; ARGV[2..]: the limits, in KEYS order.
# Returns {allowed (0/1), count_1, ms_left_1, …, count_n, ms_left_n}.
_CONSUME = """
local counts = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  counts[i] = tonumber(redis.call('GET', key) or '0')
  if counts[i] >= tonumber(ARGV[i + 1]) then allowed = 0 end
end
local result = {allowed}
for i, key in ipairs(KEYS) do
  if allowed == 1 then
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  end
  local left = redis.call('PTTL', key)
  if left < 0 then left = tonumber(ARGV[1]) end
  table.insert(result, counts[i])
  table.insert(result, left)
end
return result
"""


class RedisRateLimiter:
    """Counters in Redis, shared by every server process.

    Bucket keys of one call share their app id as a hash tag, so the script also
    runs on Redis Cluster.
    """

    def __init__(self, redis: Redis, window_seconds: float, prefix: str = "caas:rl") -> None:
        self._redis = redis
        self._window_ms = int(window_seconds * 1000)
        self._prefix = prefix
        self._script = redis.register_script(_CONSUME)

    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        keys = [f"{self._prefix}:{b.key}" for b in buckets]
        result = await self._script(keys=keys, args=[self._window_ms, *[b.limit for b in buckets]])
        allowed = bool(int(result[0]))
        counts = [int(c) for c in result[1::2]]
        resets = [int(ms) / 1000 for ms in result[2::2]]
        return _verdict(buckets, counts, resets, allowed)

    async def close(self) -> None:
        await self._redis.aclose()
