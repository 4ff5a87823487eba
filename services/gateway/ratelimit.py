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
from redis.exceptions import RedisError

from services.core.health import Health


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


# All-or-nothing reservation on several counters in one round trip: if every counter
# has room for one more call, each takes up to its wanted number of calls (a lease the
# process then spends locally). A counter's window opens with its first reservation
# (the key's expiry is the window's end).
# KEYS: the counters; ARGV[1]: window in ms; ARGV[2..n+1]: the limits; ARGV[n+2..2n+1]:
# the calls wanted, in KEYS order.
# Returns {allowed (0/1), count_1, ms_left_1, granted_1, …}: counts after the
# reservation (before it when refused).
_RESERVE = """
local n = #KEYS
local counts = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  counts[i] = tonumber(redis.call('GET', key) or '0')
  if counts[i] >= tonumber(ARGV[i + 1]) then allowed = 0 end
end
local result = {allowed}
for i, key in ipairs(KEYS) do
  local granted = 0
  if allowed == 1 then
    granted = math.min(tonumber(ARGV[n + i + 1]), tonumber(ARGV[i + 1]) - counts[i])
    counts[i] = redis.call('INCRBY', key, granted)
    if counts[i] == granted then redis.call('PEXPIRE', key, ARGV[1]) end
  end
  local left = redis.call('PTTL', key)
  if left < 0 then left = tonumber(ARGV[1]) end
  table.insert(result, counts[i])
  table.insert(result, left)
  table.insert(result, granted)
end
return result
"""

SHARED = "rate-limit-redis"  # the shared counters' component in the process's health
OUTAGE_RETRY = 1.0  # seconds of counting alone after Redis failed, before trying again
LEASE_FRACTION = 100  # a process leases 1/100 of a budget at a time (at least 1 call)


@dataclass
class _Lease:
    """Calls of one window that this process took from a shared counter."""

    end: float  # the window's end
    count: int  # the shared counter after this process's last reservation
    granted: int
    used: int = 0

    def unused(self) -> int:
        return self.granted - self.used


class RedisRateLimiter:
    """Counters in Redis, shared by every server process.

    A process does not ask Redis for every call: it leases a slice of each budget
    (1/`LEASE_FRACTION` of the limit, at least one call) and spends it locally, asking
    again when it runs out. Small budgets (under 200 calls) are therefore counted
    exactly, one call at a time; for large ones a process may hold up to 1 % of a
    budget unspent when its window ends, so the shared total never exceeds the limit
    and falls short of it by at most 1 % per process. `remaining` counts other
    processes' leases as spent.

    Bucket keys of one call share their app id as a hash tag, so the script also
    runs on Redis Cluster.

    When Redis fails or does not answer within its command timeout, the process counts
    alone, in memory, for `OUTAGE_RETRY` seconds before it tries Redis again: calls are
    never held up by a Redis outage, and during one each process enforces the limits
    on its own (the total across N processes may reach N times a limit).
    """

    def __init__(self, redis: Redis, window_seconds: float, health: Health,
                 prefix: str = "caas:rl") -> None:
        self._redis = redis
        self._window = window_seconds
        self._prefix = prefix
        self._script = redis.register_script(_RESERVE)
        self._leases: dict[str, _Lease] = {}
        self._spent: dict[str, float] = {}  # budgets known spent → their window's end
        self._next_sweep = 0.0
        self._health = health
        self._local = InProcessRateLimiter(window_seconds)
        self._alone_until = 0.0  # counting alone until then (Redis failed)
        health.register(SHARED)

    async def consume(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        if now < self._alone_until:
            return await self._local.consume(buckets, now)
        try:
            verdict = await self._shared(buckets, now)
        except (RedisError, OSError) as error:
            self._alone_until = now + OUTAGE_RETRY
            self._health.down(SHARED, f"Redis: {type(error).__name__}: {error}; "
                                      "each process counts alone")
            return await self._local.consume(buckets, now)
        self._health.up(SHARED)
        return verdict

    def _lease(self, key: str, now: float) -> _Lease | None:
        lease = self._leases.get(key)
        return lease if lease is not None and lease.end > now else None

    async def _shared(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        if now >= self._next_sweep:  # forget finished windows, so memory stays bounded
            self._leases = {k: v for k, v in self._leases.items() if v.end > now}
            self._spent = {k: end for k, end in self._spent.items() if end > now}
            self._next_sweep = now + self._window
        while True:
            leases = [self._lease(b.key, now) for b in buckets]
            # A spent budget stays spent until its window ends: refuse without asking.
            refused: list[tuple[int, int, float]] = [
                (i, b.limit, self._spent[b.key] - now) for i, b in enumerate(buckets)
                if self._spent.get(b.key, 0.0) > now]
            if not refused:
                short = [i for i, lease in enumerate(leases)
                         if lease is None or not lease.unused()]
                if not short:
                    break
                refused = await self._reserve([buckets[i] for i in short], short, now)
            if refused:
                counts = [lease.count - lease.unused() if lease is not None else 0
                          for lease in leases]
                resets = [lease.end - now if lease is not None else self._window
                          for lease in leases]
                for i, count, reset in refused:
                    counts[i], resets[i] = count, reset
                return _verdict(buckets, counts, resets, allowed=False)
            # Other calls may have spent the new leases meanwhile: look again.
        spent = [lease for lease in leases if lease is not None]
        for lease in spent:
            lease.used += 1
        return _verdict(buckets, [lease.count - lease.unused() for lease in spent],
                        [lease.end - now for lease in spent], allowed=True)

    async def _reserve(self, buckets: Sequence[Bucket], positions: Sequence[int], now: float
                       ) -> list[tuple[int, int, float]]:
        """Lease more calls of `buckets` (at `positions` of the call's buckets): nothing
        if granted, else (position, count, reset) of each."""
        wanted = [max(1, b.limit // LEASE_FRACTION) for b in buckets]
        result = await self._script(
            keys=[f"{self._prefix}:{b.key}" for b in buckets],
            args=[int(self._window * 1000), *[b.limit for b in buckets], *wanted])
        replies = [(int(result[i]), int(result[i + 1]) / 1000, int(result[i + 2]))
                   for i in range(1, len(result), 3)]
        if not int(result[0]):
            for bucket, (count, reset, _) in zip(buckets, replies, strict=True):
                if count >= bucket.limit:
                    self._spent[bucket.key] = now + reset
            return [(i, count, reset)
                    for i, (count, reset, _) in zip(positions, replies, strict=True)]
        for bucket, (count, reset, granted) in zip(buckets, replies, strict=True):
            lease = self._lease(bucket.key, now)
            if lease is not None and count >= lease.count and abs(lease.end - (now + reset)) < 1:
                lease.granted += granted  # the same window: more of it
                lease.count = count
            else:
                self._leases[bucket.key] = _Lease(now + reset, count, granted)
        return []

    async def close(self) -> None:
        await self._redis.aclose()
