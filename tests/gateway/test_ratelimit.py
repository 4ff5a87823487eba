"""Both rate limiters obey one contract; the Redis one against a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.core.health import Health
from services.gateway.ratelimit import Bucket, InProcessRateLimiter, RateLimiter, RedisRateLimiter
from tests.support.servers import ExternalServer

WINDOW = 60.0


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield InProcessRateLimiter(WINDOW)
        return
    redis_server: ExternalServer = request.getfixturevalue("redis_server")
    redis = RedisRateLimiter(Redis.from_url(redis_server.url), WINDOW, Health(),
                             prefix=f"test:{uuid.uuid4().hex}")
    yield redis
    await redis.close()


def buckets(app_limit: int, user_limit: int, user: str = "u") -> list[Bucket]:
    return [Bucket("{a}:m", app_limit, "app:a"), Bucket(f"{{a}}:{user}:m", user_limit,
                                                         f"user:a/{user}")]


async def test_counts_down_and_refuses_without_counting(limiter: RateLimiter) -> None:
    now = 1_000.0
    seen = []
    for _ in range(3):
        verdict = await limiter.consume(buckets(10, 3), now)
        assert verdict.allowed
        seen.append((verdict.tightest.subject, verdict.remaining))
    assert seen == [("user:a/u", 2), ("user:a/u", 1), ("user:a/u", 0)]
    refused = await limiter.consume(buckets(10, 3), now)
    assert not refused.allowed
    assert [b.subject for b in refused.exhausted] == ["user:a/u"]
    # The refusal did not count against the app: 7 calls remain for other users.
    verdicts = [await limiter.consume(buckets(10, 3, user="v"), now) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, True]
    assert verdicts[-1].remaining == 0  # user v exhausted its own 3
    app_state = await limiter.consume(buckets(10, 5, user="w"), now)
    assert app_state.allowed and app_state.tightest.subject == "app:a"
    assert app_state.remaining == 3  # 10 - (3 + 3 + 1)


async def test_in_process_window_opens_at_first_call() -> None:
    limiter = InProcessRateLimiter(WINDOW)
    first = await limiter.consume(buckets(2, 2), 100.0)
    assert first.reset_after == pytest.approx(WINDOW)
    later = await limiter.consume(buckets(2, 2), 130.0)
    assert later.reset_after == pytest.approx(WINDOW - 30)
    assert not (await limiter.consume(buckets(2, 2), 150.0)).allowed
    renewed = await limiter.consume(buckets(2, 2), 100.0 + WINDOW)
    assert renewed.allowed and renewed.remaining == 1


async def test_redis_window_is_the_key_expiry(redis_server: ExternalServer) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    limiter = RedisRateLimiter(Redis.from_url(redis_server.url), WINDOW, Health(), prefix=prefix)
    try:
        verdict = await limiter.consume(buckets(5, 5), 0.0)
        assert WINDOW - 2 < verdict.reset_after <= WINDOW
        redis = Redis.from_url(redis_server.url)
        ttl = await redis.pttl(f"{prefix}:{{a}}:m")
        await redis.aclose()
        assert WINDOW * 1000 - 2000 < ttl <= WINDOW * 1000
    finally:
        await limiter.close()


async def test_redis_leases_keep_the_shared_total_and_save_round_trips(
        redis_server: ExternalServer) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    processes = [RedisRateLimiter(Redis.from_url(redis_server.url), WINDOW, Health(), prefix=prefix)
                 for _ in range(2)]
    stats = Redis.from_url(redis_server.url)
    calls_before = (await stats.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    try:
        budget = [Bucket("{a}:m", 1_000, "app:a")]
        admitted = 0
        for n in range(1_200):  # two processes take turns on one budget of 1,000
            verdict = await processes[n % 2].consume(budget, 0.0)
            admitted += verdict.allowed
        # Never past the limit; short of it by at most the leases left unspent (10 each).
        assert 980 <= admitted <= 1_000
        assert not (await processes[0].consume(budget, 0.0)).allowed
        calls = ((await stats.info("commandstats")).get("cmdstat_evalsha", {})
                 .get("calls", 0) - calls_before)
        assert calls < 1_200 / 5  # leases of 10 calls: not a round trip per call
    finally:
        await stats.aclose()
        for limiter in processes:
            await limiter.close()
