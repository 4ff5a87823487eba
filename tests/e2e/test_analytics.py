"""Usage analytics against a running server, on both stores: a day of chat counted
exactly (messages, active and new users, conversations, top lists, API calls by method
and code, stream peaks, webhook attempts by outcome), read over native gRPC, JSON
through Envoy and grpcurl; the event log replayed through the counter changes nothing,
and a store rebuilt from the log says the same; an app's numbers are its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
from caas.analytics.v1 import analytics_service_pb2 as pb
from caas.analytics.v1 import resources_pb2 as res
from caas.users.v1 import resources_pb2 as users_res
from caas.users.v1 import users_service_pb2 as users_pb
from google.protobuf import json_format, timestamp_pb2

from services.analytics.consumer import AnalyticsSink
from services.analytics.models import Granularity, Metric
from services.analytics.mongo_store import MongoAnalyticsStore
from services.analytics.sqlite_store import SqliteAnalyticsStore
from services.analytics.store import AnalyticsStore, Span
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.core.events import DomainEvent, InProcessBus
from services.events.log import EventLog
from services.events.mongo_log import MongoEventLog
from services.events.relay import Relay
from services.events.sqlite_log import SqliteEventLog
from tests.conftest import AppHandle, expect_error
from tests.e2e.test_api_key_scopes import new_key
from tests.e2e.test_ops import GRPCURL
from tests.e2e.test_webhooks import create_webhook
from tests.support.chat import DIRECT, Person
from tests.support.client import Client, bearer
from tests.support.servers import CaasServer
from tests.support.stream import Stream
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver

DENIED = grpc.StatusCode.PERMISSION_DENIED
SEND = "caas.messages.v1.MessagesService/CreateMessage"
LOG_METRICS = [res.METRIC_MESSAGES, res.METRIC_ACTIVE_USERS, res.METRIC_NEW_USERS,
               res.METRIC_CONVERSATIONS_CREATED, res.METRIC_ACTIVE_CONVERSATIONS]


def short(name: str) -> str:
    """The last part of a resource name (a conversation's id)."""
    return name.rsplit("/", 1)[1]


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(moment.timestamp()))


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day_interval(days: int = 1) -> res.Interval:
    """Today (UTC), and the `days` - 1 before it."""
    end = today() + timedelta(days=1)
    return res.Interval(start_time=stamp(end - timedelta(days=days)), end_time=stamp(end))


async def query(client: Client, app: AppHandle, *metrics: int,
                granularity: int = res.GRANULARITY_DAY, interval: res.Interval | None = None,
                breakdown: int = 0) -> list[res.TimeSeries]:
    response = await client.analytics.QueryTimeSeries(pb.QueryTimeSeriesRequest(
        parent=app.name, metrics=list(metrics), granularity=granularity,  # type: ignore[arg-type]
        interval=interval or day_interval(), breakdown=breakdown),  # type: ignore[arg-type]
        metadata=app.auth)
    return list(response.time_series)


async def today_of(client: Client, app: AppHandle, *metrics: int) -> dict[int, int]:
    """Today's value of each metric."""
    return {s.metric: s.points[-1].value for s in await query(client, app, *metrics)}


async def parts(client: Client, app: AppHandle, metric: int, breakdown: int
                ) -> dict[str, int]:
    """Today's value of each part of `metric` (by its breakdown label)."""
    return {next(iter(s.labels.values())): sum(p.value for p in s.points)
            for s in await query(client, app, metric, breakdown=breakdown)}


async def top(client: Client, app: AppHandle, ranking: int, days: int = 1
              ) -> list[tuple[str, int]]:
    response = await client.analytics.QueryTopList(pb.QueryTopListRequest(
        parent=app.name, ranking=ranking, interval=day_interval(days)),  # type: ignore[arg-type]
        metadata=app.auth)
    return [(e.name.rsplit("/", 1)[1], e.messages) for e in response.entries]


def reaches(check: Callable[[], Awaitable[dict[int, int]]], wanted: dict[int, int]
            ) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return await check() == wanted

    return reached


async def test_a_day_of_chat_counted_exactly(client: Client, app: AppHandle, alice: Person,
                                            bob: Person, carol: Person,
                                            receiver: Receiver) -> None:
    await client.users.CreateUser(users_pb.CreateUserRequest(  # never active: not counted
        parent=app.name, user_id="dave", user=users_res.User(display_name="Dave")),
        metadata=app.auth)
    delivered, refused = receiver.url("ok"), receiver.url("fail")
    await create_webhook(client, app, delivered, "message.created")
    await create_webhook(client, app, refused, "conversation.created")
    streams = [Stream(alice), Stream(bob)]
    for stream in streams:
        await stream.ready()
    group = await alice.create(members=("bob", "carol"))
    for n in range(3):
        await alice.send(group.name, f"a{n}")
    for n in range(2):
        await bob.send(group.name, f"b{n}")
    direct = await carol.create(DIRECT, ("alice",))
    await carol.send(direct.name, "c0")
    await expect_error(bob.send(bob.conversation("nowhere"), "lost"),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    for stream in streams:
        await stream.close()
    await receiver.wait(delivered, lambda got: len(got) == 6)
    await receiver.wait(refused, lambda got: len(got) == 6)  # 2 events, 3 attempts each

    await eventually(reaches(lambda: today_of(
        client, app, res.METRIC_MESSAGES, res.METRIC_WEBHOOK_DEAD_LETTERS), {
            res.METRIC_MESSAGES: 6, res.METRIC_WEBHOOK_DEAD_LETTERS: 2}), within=30)
    assert await today_of(client, app, *LOG_METRICS, res.METRIC_PEAK_STREAMS,
                          res.METRIC_MEDIA_UPLOADS) == {
        res.METRIC_MESSAGES: 6, res.METRIC_ACTIVE_USERS: 3, res.METRIC_NEW_USERS: 3,
        res.METRIC_CONVERSATIONS_CREATED: 2, res.METRIC_ACTIVE_CONVERSATIONS: 2,
        res.METRIC_PEAK_STREAMS: 2, res.METRIC_MEDIA_UPLOADS: 0}
    assert await parts(client, app, res.METRIC_WEBHOOK_DELIVERIES, res.BREAKDOWN_OUTCOME) == {
        "delivered": 6, "rejected": 6}
    methods = await parts(client, app, res.METRIC_API_CALLS, res.BREAKDOWN_METHOD)
    assert methods[SEND] == 7
    assert methods["caas.conversations.v1.ConversationsService/CreateConversation"] == 2
    assert methods["caas.users.v1.UsersService/CreateUser"] == 1
    assert methods["caas.realtime.v1.RealtimeService/Subscribe"] == 2
    codes = await parts(client, app, res.METRIC_API_CALLS, res.BREAKDOWN_CODE)
    assert codes["NOT_FOUND"] == 1 and codes["CANCELLED"] == 2  # the streams we closed
    assert sum(codes.values()) == sum(methods.values())
    assert await top(client, app, res.RANKING_BUSIEST_CONVERSATIONS) == [
        (short(group.name), 5), (short(direct.name), 1)]
    assert await top(client, app, res.RANKING_MOST_ACTIVE_USERS, days=30) == [
        ("alice", 3), ("bob", 2), ("carol", 1)]

    # Distinct per bucket: this month's active users are the day's three, and the hours
    # around now hold the six messages, zero-filled, in order.
    (monthly,) = await query(client, app, res.METRIC_ACTIVE_USERS,
                             granularity=res.GRANULARITY_MONTH, interval=day_interval())
    assert [p.value for p in monthly.points] == [3]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    (hourly,) = await query(client, app, res.METRIC_MESSAGES, granularity=res.GRANULARITY_HOUR,
                            interval=res.Interval(start_time=stamp(hour - timedelta(hours=5)),
                                                  end_time=stamp(hour + timedelta(hours=1))))
    assert [p.start_time.ToDatetime(UTC) for p in hourly.points] == [
        hour - timedelta(hours=n) for n in range(5, -1, -1)]
    assert sum(p.value for p in hourly.points) == 6 and hourly.points[0].value == 0


async def test_json_through_envoy_and_grpcurl(client: Client, server: CaasServer,
                                             http: httpx.AsyncClient, app: AppHandle,
                                             alice: Person) -> None:
    conversation = await alice.create()
    for n in range(4):
        await alice.send(conversation.name, f"m{n}")
    await eventually(reaches(lambda: today_of(client, app, res.METRIC_MESSAGES),
                             {res.METRIC_MESSAGES: 4}), within=30)
    interval = json_format.MessageToDict(day_interval(2))
    answer = await http.post(
        f"/v1/{app.name}/analytics:queryTimeSeries", headers={
            "authorization": f"Bearer {app.api_key}"},
        json={"metrics": ["METRIC_MESSAGES", "METRIC_ACTIVE_CONVERSATIONS"],
              "interval": interval, "granularity": "GRANULARITY_DAY"})
    assert answer.status_code == 200, answer.text
    series = answer.json()["timeSeries"]
    assert [s["metric"] for s in series] == ["METRIC_MESSAGES", "METRIC_ACTIVE_CONVERSATIONS"]
    yesterday, now = series[0]["points"]
    assert (yesterday.get("value", "0"), now["value"]) == ("0", "4")  # int64: strings
    assert now["startTime"] == today().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert series[1]["points"][1]["value"] == "1"
    refused = await http.post(
        f"/v1/{app.name}/analytics:queryTimeSeries",
        headers={"authorization": f"Bearer {app.api_key}"},
        json={"metrics": ["METRIC_MESSAGES"], "interval": interval,
              "granularity": "GRANULARITY_HOUR", "breakdown": "BREAKDOWN_METHOD"})
    assert refused.status_code == 400
    assert {v["description"] for v in refused.json()["details"][1]["fieldViolations"]} >= {
        "BREAKDOWN_METHOD and BREAKDOWN_CODE break down METRIC_API_CALLS only, "
        "BREAKDOWN_OUTCOME METRIC_WEBHOOK_DELIVERIES only"}

    ran = await asyncio.to_thread(
        subprocess.run, [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
         json.dumps({"parent": app.name, "ranking": "RANKING_MOST_ACTIVE_USERS",
                     "interval": interval}),
         server.address, "caas.analytics.v1.AnalyticsService/QueryTopList"],
        capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"entries": [
        {"name": f"{app.name}/users/alice", "messages": "4"}]}


async def test_an_apps_numbers_are_its_own(client: Client, server: CaasServer,
                                          app: AppHandle, other_app: AppHandle,
                                          alice: Person, mallory: Person) -> None:
    conversation = await alice.create()
    await alice.send(conversation.name, "mine")
    theirs = await mallory.create()  # another app's alice
    for n in range(3):
        await mallory.send(theirs.name, f"theirs {n}")
    await eventually(reaches(lambda: today_of(client, other_app, res.METRIC_MESSAGES),
                             {res.METRIC_MESSAGES: 3}), within=30)
    await eventually(reaches(lambda: today_of(client, app, res.METRIC_MESSAGES),
                             {res.METRIC_MESSAGES: 1}), within=30)
    assert await top(client, app, res.RANKING_MOST_ACTIVE_USERS) == [("alice", 1)]
    assert await top(client, other_app, res.RANKING_BUSIEST_CONVERSATIONS) == [
        (short(theirs.name), 3)]

    request = pb.QueryTimeSeriesRequest(parent=app.name, metrics=[res.METRIC_MESSAGES],
                                        granularity=res.GRANULARITY_DAY,
                                        interval=day_interval())
    ranked = pb.QueryTopListRequest(parent=app.name, ranking=res.RANKING_MOST_ACTIVE_USERS,
                                    interval=day_interval())
    for call in (client.analytics.QueryTimeSeries(request, metadata=other_app.auth),
                 client.analytics.QueryTopList(ranked, metadata=other_app.auth)):
        await expect_error(call, DENIED, "APP_MISMATCH")
    await expect_error(client.analytics.QueryTimeSeries(request, metadata=alice.auth),
                       DENIED, "PRINCIPAL_NOT_ALLOWED")
    unscoped = await new_key(client, app, "messages:read")
    refused = await expect_error(client.analytics.QueryTimeSeries(
        request, metadata=bearer(unscoped.secret)), DENIED, "API_KEY_SCOPE_MISSING")
    assert refused.metadata["scope"] == "analytics:read"
    scoped = await new_key(client, app, "analytics:read")
    answer = await client.analytics.QueryTimeSeries(request, metadata=bearer(scoped.secret))
    assert answer.time_series[0].points[0].value == 1
    operator = bearer(server.operator_token)
    answer = await client.analytics.QueryTimeSeries(request, metadata=operator)
    assert answer.time_series[0].points[0].value == 1
    missing = pb.QueryTimeSeriesRequest(parent="apps/no-such-app-here",
                                        metrics=[res.METRIC_MESSAGES],
                                        granularity=res.GRANULARITY_DAY,
                                        interval=day_interval())
    await expect_error(client.analytics.QueryTimeSeries(missing, metadata=operator),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


@asynccontextmanager
async def server_store(server: CaasServer) -> AsyncIterator[tuple[EventLog, AnalyticsStore,
                                                                    Callable[[], Awaitable[
                                                                        AnalyticsStore]]]]:
    """The server's event log and analytics store, opened beside it, and a maker of
    empty analytics stores on the same engine."""
    def no_encoding(event: DomainEvent, position: int) -> bytes:
        return b""

    if server.env.get("CAAS_STORE") == "mongodb":
        mongo = await MongoDatabase.open(server.env["CAAS_MONGODB_URL"],
                                         server.env["CAAS_MONGODB_DATABASE"])

        async def empty_mongo() -> AnalyticsStore:
            store = MongoAnalyticsStore(mongo.database(f"t{uuid.uuid4().hex[:12]}"))
            await store.migrate()
            return store

        try:
            yield (MongoEventLog(mongo, InProcessBus(), no_encoding),
                   MongoAnalyticsStore(mongo), empty_mongo)
        finally:
            await mongo.close()
        return
    sqlite = await SqliteDatabase.open(server.data_dir / "caas.db")
    opened: list[SqliteDatabase] = [sqlite]

    async def empty_sqlite() -> AnalyticsStore:
        db = await SqliteDatabase.open(Path(server.data_dir) / "rebuilt" / f"{uuid.uuid4().hex}.db")
        opened.append(db)
        store = SqliteAnalyticsStore(db)
        await store.migrate()
        return store

    try:
        yield SqliteEventLog(sqlite, InProcessBus(), no_encoding), SqliteAnalyticsStore(sqlite), \
            empty_sqlite
    finally:
        for db in opened:
            await db.close()


async def everything(client: Client, app: AppHandle) -> list[object]:
    """What the server says of the app's log metrics: days, hours, top lists."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = res.Interval(start_time=stamp(hour - timedelta(hours=3)),
                         end_time=stamp(hour + timedelta(hours=1)))
    return [await query(client, app, *LOG_METRICS),
            await query(client, app, res.METRIC_MESSAGES, res.METRIC_ACTIVE_CONVERSATIONS,
                        granularity=res.GRANULARITY_HOUR, interval=hours),
            await top(client, app, res.RANKING_BUSIEST_CONVERSATIONS),
            await top(client, app, res.RANKING_MOST_ACTIVE_USERS)]


async def log_numbers(store: AnalyticsStore, app_id: str) -> dict[str, object]:
    """The counts an analytics store holds of the app's log, today."""
    day = int(today().timestamp())
    found: dict[str, object] = {}
    for metric in (Metric.MESSAGES, Metric.CONVERSATIONS_CREATED,
                   Metric.ACTIVE_CONVERSATIONS, Metric.ACTIVE_USERS, Metric.NEW_USERS):
        for granularity in (Granularity.DAY, Granularity.MONTH):
            span = Span(granularity, day - 40 * 86_400, day + 86_400)
            found[f"{metric} {granularity}"] = await store.series(app_id, metric, span)
    for metric in (Metric.CONVERSATION_MESSAGES, Metric.USER_MESSAGES):
        found[str(metric)] = await store.top(
            app_id, metric, [Span(Granularity.DAY, day, day + 86_400)], 100)
    return found


async def test_replaying_the_log_changes_nothing_and_a_rebuild_agrees(
        client: Client, server: CaasServer, app: AppHandle, alice: Person, bob: Person
        ) -> None:
    group = await alice.create(members=("bob",))
    for n in range(5):
        await (alice if n % 2 else bob).send(group.name, f"m{n}")
    direct = await bob.create(DIRECT, ("alice",))
    await bob.send(direct.name, "psst")
    await eventually(reaches(lambda: today_of(
        client, app, res.METRIC_MESSAGES, res.METRIC_ACTIVE_USERS), {
            res.METRIC_MESSAGES: 6, res.METRIC_ACTIVE_USERS: 2}), within=30)
    before = await everything(client, app)

    async with server_store(server) as (events, store, empty):
        logged = await events.read(app.app_id, 0, 1000)
        assert [e.type for e in logged].count("message.created") == 6
        for round_ in range(2):  # the whole log, twice, each time with a cursor from 0
            relay = Relay(events, AnalyticsSink(store), f"replay-{uuid.uuid4().hex}", batch=4)
            assert await relay.run_once([app.app_id]) == len(logged), round_
        await AnalyticsSink(store).send(logged)  # and in one batch, through the sink
        assert await everything(client, app) == before

        rebuilt = await empty()
        relay = Relay(events, AnalyticsSink(rebuilt), f"rebuild-{uuid.uuid4().hex}", batch=3)
        await relay.run_once([app.app_id])
        counted = await log_numbers(rebuilt, app.app_id)
        assert counted == await log_numbers(store, app.app_id)
        assert counted["conversation_messages"] == [(short(group.name), 5),
                                                    (short(direct.name), 1)]
