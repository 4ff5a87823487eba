"""What a process counts itself (API calls, stream peaks, webhook attempts, sign-ins)
and its flushes: a flush whose answer was lost is retried as it was and counted once;
buckets and top-list spans at month and year boundaries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.analytics.actions import top_spans
from services.analytics.models import (
    Changes,
    Granularity,
    Metric,
    bucket_start,
    buckets_between,
    month_start,
)
from services.analytics.sqlite_store import SqliteAnalyticsStore
from services.analytics.store import Span
from services.analytics.usage import Usage, UsageFlusher
from services.core.db.sqlite import SqliteDatabase
from services.core.events import DomainEvent
from services.core.principal import AppBackend, Operator, User
from tests.support.clock import MovableClock

T0 = datetime(2026, 12, 31, 23, 58, tzinfo=UTC)
HOUR = int(datetime(2026, 12, 31, 23, tzinfo=UTC).timestamp())
NEXT_HOUR = HOUR + 3600  # 2027-01-01 00:00
DAY, NEXT_DAY = HOUR - 23 * 3600, NEXT_HOUR
DECEMBER, JANUARY = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp()), NEXT_HOUR


def counts(changes: Changes, metric: Metric, granularity: str, app_id: str = "alpha"
           ) -> dict[tuple[int, str], int]:
    return {(bucket, dimension): value
            for (app, m, g, bucket, dimension), value in changes.counts.items()
            if app == app_id and m == metric and g == granularity}


def test_api_calls_count_for_the_app_whose_credentials_made_them() -> None:
    clock = MovableClock(T0)
    usage = Usage(clock, "p1")
    key, user = AppBackend("alpha", "k1"), User("alpha", "ann", "s1")
    usage.called(key, "caas.apps.v1.AppsService/GetApp", "OK")
    usage.called(user, "caas.apps.v1.AppsService/GetApp", "OK")
    usage.called(user, "caas.messages.v1.MessagesService/CreateMessage", "NOT_FOUND")
    usage.called(Operator(), "caas.apps.v1.AppsService/GetApp", "OK")  # no app's
    usage.called(AppBackend("beta", "k2"), "caas.apps.v1.AppsService/GetApp", "OK")
    clock.moment += timedelta(minutes=3)  # into the new year
    usage.called(key, "caas.apps.v1.AppsService/GetApp", "OK")
    changes = usage.take()
    alpha = counts(changes, Metric.API_CALLS, "hour")
    assert {(k, v) for k, v in changes.counts.items() if k[0] == "beta"} == {
        (("beta", Metric.API_CALLS, g, b, "caas.apps.v1.AppsService/GetApp OK"), 1)
        for g, b in (("hour", HOUR), ("day", DAY), ("month", DECEMBER))}
    assert alpha[(HOUR, "caas.apps.v1.AppsService/GetApp OK")] == 2
    assert alpha[(HOUR, "caas.messages.v1.MessagesService/CreateMessage NOT_FOUND")] == 1
    assert alpha[(NEXT_HOUR, "caas.apps.v1.AppsService/GetApp OK")] == 1
    assert counts(changes, Metric.API_CALLS, "month") == {
        (DECEMBER, "caas.apps.v1.AppsService/GetApp OK"): 2,
        (DECEMBER, "caas.messages.v1.MessagesService/CreateMessage NOT_FOUND"): 1,
        (JANUARY, "caas.apps.v1.AppsService/GetApp OK"): 1}
    assert usage.take().empty  # taken: gone


async def test_stream_peaks_per_hour_and_active_users() -> None:
    clock = MovableClock(T0)
    usage = Usage(clock, "p1")
    for user in ("ann", "bob", "cat"):
        usage.stream_opened("alpha", user)
    usage.stream_closed("alpha")
    usage.stream_opened("alpha", "ann")  # a second stream of ann: 3 open again
    usage.stream_closed("alpha")
    usage.stream_closed("alpha")
    await usage.on_event(DomainEvent("session.created", "alpha", T0,
                                     {"session": "s", "user": "dan"}))
    await usage.on_event(DomainEvent("user.created", "alpha", T0, {"user": "eve"}))
    changes = usage.take()
    assert changes.peaks[("alpha", Metric.PEAK_STREAMS, "hour", HOUR, "p1")] == 3
    assert changes.peaks[("alpha", Metric.PEAK_STREAMS, "month", DECEMBER, "p1")] == 3
    members = {(key[2], key[4]) for key in changes.distinct if key[1] == "user"}
    assert members == {(g, u) for g in ("hour", "day", "month", "ever")
                       for u in ("ann", "bob", "cat", "dan")}
    clock.moment += timedelta(minutes=5)  # one stream still open in the next hour
    later = usage.take()
    assert later.peaks == {("alpha", Metric.PEAK_STREAMS, g, b, "p1"): 1
                           for g, b in (("hour", NEXT_HOUR), ("day", NEXT_DAY),
                                        ("month", JANUARY))}
    assert not later.distinct and not later.counts
    usage.stream_closed("alpha")
    usage.stream_closed("alpha")  # more closes than opens never go below none
    clock.moment += timedelta(hours=1)
    assert usage.take().empty


def test_webhook_attempts_by_outcome() -> None:
    usage = Usage(MovableClock(T0), "p1")
    usage.delivered("alpha", "delivered", False)
    usage.delivered("alpha", "rejected", False)
    usage.delivered("alpha", "unreachable", True)
    changes = usage.take()
    assert counts(changes, Metric.WEBHOOK_DELIVERIES, "day") == {
        (DAY, "delivered"): 1, (DAY, "rejected"): 1, (DAY, "unreachable"): 1}
    assert counts(changes, Metric.WEBHOOK_DEAD_LETTERS, "day") == {(DAY, ""): 1}


class LostAnswers:
    """A store whose next writes commit, then fail as if the answer was lost."""

    def __init__(self, store: SqliteAnalyticsStore) -> None:
        self.store = store
        self.lose = 0

    async def apply_flush(self, source: str, sequence: int, changes: Changes) -> bool:
        written = await self.store.apply_flush(source, sequence, changes)
        if self.lose:
            self.lose -= 1
            raise ConnectionError("the answer was lost")
        return written


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteAnalyticsStore]:
    db = await SqliteDatabase.open(tmp_path / "analytics.db")
    analytics = SqliteAnalyticsStore(db)
    await analytics.migrate()
    yield analytics
    await db.close()


async def test_a_flush_retried_after_a_lost_answer_counts_once(
        store: SqliteAnalyticsStore) -> None:
    clock = MovableClock(T0)
    usage = Usage(clock, "p1")
    lossy = LostAnswers(store)
    flusher = UsageFlusher(usage, lossy, 10)  # type: ignore[arg-type]
    usage.called(AppBackend("alpha", "k"), "caas.apps.v1.AppsService/GetApp", "OK")
    lossy.lose = 2
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await flusher.flush()
    usage.called(AppBackend("alpha", "k"), "caas.apps.v1.AppsService/GetApp", "OK")
    assert await flusher.flush()  # the first flush again (skipped), not the new call
    assert await flusher.flush()  # then the new call
    assert not await flusher.flush()  # nothing more
    rows = await store.series("alpha", Metric.API_CALLS, Span(Granularity.HOUR, HOUR, HOUR + 1))
    assert rows == [(HOUR, "caas.apps.v1.AppsService/GetApp OK", 2)]
    await flusher.close()


def test_buckets_at_the_turn_of_the_year() -> None:
    assert bucket_start(T0, Granularity.MONTH) == datetime(2026, 12, 1, tzinfo=UTC)
    assert month_start(NEXT_HOUR + 5) == JANUARY
    assert buckets_between(T0, T0 + timedelta(days=40), Granularity.MONTH) == [
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2027, 2, 1, tzinfo=UTC)]
    hours = buckets_between(T0, T0 + timedelta(hours=2), Granularity.HOUR)
    assert [int(h.timestamp()) for h in hours] == [HOUR, NEXT_HOUR, NEXT_HOUR + 3600]
    assert buckets_between(T0, T0 + timedelta(seconds=1), Granularity.DAY) == [
        datetime(2026, 12, 31, tzinfo=UTC)]


def test_top_lists_read_whole_months_between_edge_days() -> None:
    def at(year: int, month: int, day: int) -> int:
        return int(datetime(year, month, day, tzinfo=UTC).timestamp())

    start = datetime(2026, 11, 20, 15, tzinfo=UTC)
    assert top_spans(start, datetime(2027, 2, 3, 1, tzinfo=UTC)) == [
        Span(Granularity.DAY, at(2026, 11, 20), at(2026, 12, 1)),
        Span(Granularity.MONTH, at(2026, 12, 1), at(2027, 2, 1)),
        Span(Granularity.DAY, at(2027, 2, 1), at(2027, 2, 4))]
    assert top_spans(start, datetime(2026, 11, 22, tzinfo=UTC)) == [
        Span(Granularity.DAY, at(2026, 11, 20), at(2026, 11, 22))]
    assert top_spans(datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)) == [
        Span(Granularity.MONTH, at(2026, 12, 1), at(2027, 1, 1))]


async def test_counts_of_apps_gone_or_deleted_are_dropped(store: SqliteAnalyticsStore) -> None:
    async def live(app_ids: Collection[str]) -> set[str]:
        return set(app_ids) - {"gone"}

    usage = Usage(MovableClock(T0), "p1")
    for app_id in ("alpha", "gone"):
        usage.called(AppBackend(app_id, "k"), "caas.apps.v1.AppsService/GetApp", "OK")
        usage.stream_opened(app_id, "ann")
    flusher = UsageFlusher(usage, store, 10, live)
    assert await flusher.flush()
    span = Span(Granularity.HOUR, HOUR, HOUR + 1)
    assert await store.series("alpha", Metric.API_CALLS, span, by_dimension=False) == [
        (HOUR, "", 1)]
    for metric in (Metric.API_CALLS, Metric.PEAK_STREAMS, Metric.ACTIVE_USERS):
        assert await store.series("gone", metric, span) == []
    for app_id in ("alpha", "gone"):
        usage.stream_closed(app_id)
    usage.called(AppBackend("gone", "k"), "caas.apps.v1.AppsService/GetApp", "OK")
    assert not await flusher.flush()  # only a gone app's: nothing to write
