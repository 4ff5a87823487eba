"""The analytics store on both engines, fed by the real event log: counts per bucket,
distinct counts per granularity (a day's active users are not the sum of its hours'),
top lists; every event counted once however often the log is replayed, batches
written twice at once, or flushes retried; a store rebuilt from the log equals the
one that followed it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.analytics.consumer import AnalyticsSink, LogCounter
from services.analytics.models import (
    BUCKET_SIZES,
    TOP_SIZES,
    Buckets,
    Changes,
    Granularity,
    Metric,
)
from services.analytics.mongo_store import MongoAnalyticsStore
from services.analytics.sqlite_store import SqliteAnalyticsStore
from services.analytics.store import AnalyticsStore, Span
from services.core.clock import SystemClock
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.events.relay import Relay
from services.messages.models import MessageChanges
from services.runtime import Stores
from tests.store.chat import make_group, send

D1 = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)  # the last day of March, 10:00
H10, H11 = int(D1.timestamp()), int(D1.timestamp()) + 3600
DAY1 = int(datetime(2026, 3, 31, tzinfo=UTC).timestamp())
DAY2 = DAY1 + 86_400  # April 1st
MARCH = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
APRIL = DAY2
WIDE = {Granularity.HOUR: Span(Granularity.HOUR, MARCH, APRIL + 86_400 * 30),
        Granularity.DAY: Span(Granularity.DAY, MARCH, APRIL + 86_400 * 30),
        Granularity.MONTH: Span(Granularity.MONTH, MARCH - 86_400 * 400, APRIL + 86_400 * 400)}
MINUTE = timedelta(minutes=1)


async def chat(stores: Stores, halfway: Callable[[], Awaitable[object]] | None = None
               ) -> None:
    """Three users over two hours of March 31st and the next morning (April 1st);
    `halfway` is awaited after the third event."""
    await make_group(stores, "g1", ["alice", "bob"], at=D1)  # alice creates: active
    await send(stores, "g1", "alice", "one", at=D1 + 5 * MINUTE)
    await send(stores, "g1", "alice", "two", at=D1 + 6 * MINUTE)
    if halfway is not None:
        await halfway()
    await send(stores, "g1", "bob", "three", at=D1 + 65 * MINUTE)
    await make_group(stores, "g2", ["carol", "alice"], at=D1 + 90 * MINUTE)
    await send(stores, "g2", "carol", "four", at=D1 + 100 * MINUTE)
    await send(stores, "g1", "alice", "five", at=D1 + 110 * MINUTE)
    await stores.messages.mark("alpha", "g1", "bob", "read", 0, D1 + 111 * MINUTE)
    await stores.messages.edit("alpha", "g1", 1, MessageChanges(text="1"), D1 + 112 * MINUTE)
    await send(stores, "g1", "alice", "six", at=D1 + 23 * 60 * MINUTE)  # April 1st, 9:00


async def counted(stores: Stores, store: AnalyticsStore | None = None,
                  consumer: str = "analytics", batch: int = 500) -> int:
    relay = Relay(stores.events, AnalyticsSink(store or stores.analytics), consumer,
                  batch=batch)
    await relay.start()
    return await relay.run_once()


async def numbers(store: AnalyticsStore, app_id: str = "alpha") -> dict[str, object]:
    """Everything the store says of the app."""
    found: dict[str, object] = {}
    for metric in Metric:
        for granularity in BUCKET_SIZES:
            rows = await store.series(app_id, metric, WIDE[granularity])
            if rows:
                found[f"{metric}/{granularity}"] = rows
    for metric in (Metric.CONVERSATION_MESSAGES, Metric.USER_MESSAGES):
        found[f"top {metric}"] = await store.top(app_id, metric, [WIDE[Granularity.MONTH]], 100)
    return found


def values(rows: object) -> dict[int, int]:
    assert isinstance(rows, list)
    return {bucket: value for bucket, _, value in rows}


async def test_counts_per_bucket_and_distinct_per_granularity(stores: Stores) -> None:
    await chat(stores)
    assert await counted(stores) == 10
    got = await numbers(stores.analytics)
    assert values(got["messages/hour"]) == {H10: 2, H11: 3, DAY2 + 9 * 3600: 1}
    assert values(got["messages/day"]) == {DAY1: 5, DAY2: 1}
    assert values(got["messages/month"]) == {MARCH: 5, APRIL: 1}
    # 10:00 alice; 11:00 bob, carol, alice: 4 user-hours, but 3 users that day.
    assert values(got["active_users/hour"]) == {H10: 1, H11: 3, DAY2 + 9 * 3600: 1}
    assert values(got["active_users/day"]) == {DAY1: 3, DAY2: 1}
    assert values(got["active_users/month"]) == {MARCH: 3, APRIL: 1}
    assert values(got["new_users/hour"]) == {H10: 1, H11: 2}
    assert values(got["new_users/day"]) == {DAY1: 3}
    assert values(got["conversations_created/day"]) == {DAY1: 2}
    assert values(got["active_conversations/hour"]) == {H10: 1, H11: 2, DAY2 + 9 * 3600: 1}
    assert values(got["active_conversations/day"]) == {DAY1: 2, DAY2: 1}
    assert values(got["active_conversations/month"]) == {MARCH: 2, APRIL: 1}
    assert got["top conversation_messages"] == [("g1", 5), ("g2", 1)]
    assert got["top user_messages"] == [("alice", 4), ("bob", 1), ("carol", 1)]
    # The top lists read days at the edges and whole months between.
    assert await stores.analytics.top("alpha", Metric.USER_MESSAGES, [
        Span(Granularity.DAY, DAY2, DAY2 + 86_400)], 10) == [("alice", 1)]
    assert await stores.analytics.top("alpha", Metric.USER_MESSAGES, [
        Span(Granularity.MONTH, MARCH, APRIL), Span(Granularity.DAY, APRIL, DAY2 + 86_400)],
        2) == [("alice", 4), ("bob", 1)]
    assert await stores.analytics.position("alpha") == 10
    assert await numbers(stores.analytics, "beta") == {
        "top conversation_messages": [], "top user_messages": []}


async def test_replaying_the_log_counts_nothing_twice(stores: Stores) -> None:
    await chat(stores, lambda: counted(stores))  # counted halfway, then the rest
    await counted(stores)
    once = await numbers(stores.analytics)
    events = await stores.events.read("alpha", 0, 1000)
    sink = AnalyticsSink(stores.analytics)
    for _ in range(2):  # the whole log again, twice, through the sink
        await sink.send(events)
        assert await numbers(stores.analytics) == once
    await sink.send(events[3:7])  # and a batch from the middle
    assert await counted(stores, consumer="replay", batch=4) == len(events)  # a new cursor
    assert await numbers(stores.analytics) == once
    # What comes after is still counted, once.
    await send(stores, "g2", "carol", "seven", at=D1 + 2 * 60 * MINUTE)
    fresh = await stores.events.read("alpha", events[-1].position, 10)
    await asyncio.gather(sink.send([*events[-2:], *fresh]), sink.send(fresh))
    await counted(stores)
    after = await numbers(stores.analytics)
    assert values(after["messages/day"]) == {DAY1: 6, DAY2: 1}
    assert values(after["active_users/day"]) == values(once["active_users/day"])


async def other_store(stores: Stores, tmp_path: Path) -> AnalyticsStore:
    """An empty analytics store beside `stores`, on the same engine."""
    store: AnalyticsStore
    if isinstance(stores.engine, MongoDatabase):
        store = MongoAnalyticsStore(stores.engine.database(f"t{uuid.uuid4().hex[:12]}"))
    else:
        db = await SqliteDatabase.open(tmp_path / "rebuilt" / "analytics.db")
        store = SqliteAnalyticsStore(db)
    await store.migrate()
    return store


async def test_rebuilding_from_the_log_gives_the_same_numbers(stores: Stores,
                                                             tmp_path: Path) -> None:
    await make_group(stores, "g0", ["dave", "alice"], at=D1 - 40 * 60 * MINUTE)
    await chat(stores, lambda: counted(stores))
    await counted(stores, batch=3)
    followed = await numbers(stores.analytics)
    rebuilt = await other_store(stores, tmp_path)
    assert await counted(stores, rebuilt, consumer="rebuild", batch=7) == 11
    assert await numbers(rebuilt) == followed
    assert values(followed["new_users/month"]) == {MARCH: 4}


async def test_flushes_are_written_once_and_peaks_summed_per_process(stores: Stores) -> None:
    store = stores.analytics
    at = Buckets().of(H10 + 60)
    first = Changes()
    first.count_in_buckets("alpha", Metric.API_CALLS, at, "caas.x.v1.S/Get OK", 3)
    first.peak_in_buckets("alpha", Metric.PEAK_STREAMS, at, "p1", 5)
    first.active_user("alpha", "erin", at)
    assert await store.apply_flush("p1", 1, first)
    assert not await store.apply_flush("p1", 1, first)  # a retry of a flush that landed
    assert not await store.apply_flush("p1", 0, first)
    second = Changes()
    second.count_in_buckets("alpha", Metric.API_CALLS, at, "caas.x.v1.S/Get NOT_FOUND")
    second.peak_in_buckets("alpha", Metric.PEAK_STREAMS, at, "p1", 4)  # lower: kept 5
    second.active_user("alpha", "erin", at)  # seen already
    assert await store.apply_flush("p1", 2, second)
    other = Changes()
    other.peak_in_buckets("alpha", Metric.PEAK_STREAMS, at, "p2", 2)
    assert await store.apply_flush("p2", 1, other)  # another process: its own sequence
    got = await numbers(store)
    assert sorted(got["api_calls/day"]) == [  # type: ignore[call-overload]
        (DAY1, "caas.x.v1.S/Get NOT_FOUND", 1), (DAY1, "caas.x.v1.S/Get OK", 3)]
    assert sorted(got["peak_streams/hour"]) == [  # type: ignore[call-overload]
        (H10, "p1", 5), (H10, "p2", 2)]
    assert await store.series("alpha", Metric.PEAK_STREAMS, WIDE[Granularity.DAY],
                              by_dimension=False) == [(DAY1, "", 7)]  # summed per bucket
    assert await store.series("alpha", Metric.API_CALLS, WIDE[Granularity.HOUR],
                              by_dimension=False) == [(H10, "", 4)]
    assert values(got["active_users/day"]) == {DAY1: 1}
    assert values(got["new_users/month"]) == {MARCH: 1}
    # The same user in the log that day is still one active user.
    await make_group(stores, "g1", ["erin", "frank"], at=D1 + 30 * MINUTE)
    await counted(stores)
    got = await numbers(store)
    assert values(got["active_users/day"]) == {DAY1: 1}
    assert values(got["active_users/hour"]) == {H10: 1}


async def test_flushes_at_once_and_apps_apart(stores: Stores) -> None:
    at = Buckets().of(H10)
    changes = Changes()
    for app_id in ("alpha", "beta"):
        changes.count_in_buckets(app_id, Metric.WEBHOOK_DELIVERIES, at, "delivered", 2)
        changes.active_user(app_id, "gina", at)
    written = await asyncio.gather(*(stores.analytics.apply_flush("p9", 1, changes)
                                     for _ in range(3)))
    assert sorted(written) == [False, False, True]
    for app_id in ("alpha", "beta"):
        got = await numbers(stores.analytics, app_id)
        assert got["webhook_deliveries/month"] == [(MARCH, "delivered", 2)]
        assert values(got["active_users/hour"]) == {H10: 1}
    assert {g for g in TOP_SIZES} == {Granularity.DAY, Granularity.MONTH}


async def test_the_log_counter_runs_as_a_consumer(stores: Stores) -> None:
    counter = LogCounter(stores.events, stores.analytics, SystemClock(), consumer="lc")
    await chat(stores)
    assert await counter.relay.step() == 10
    assert await counter.relay.step() == 0
    assert values((await numbers(stores.analytics))["messages/month"]) == {MARCH: 5, APRIL: 1}
