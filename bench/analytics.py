"""Usage analytics: how fast the event log is counted, and how fast a dashboard reads.

    .venv/bin/python bench/analytics.py aggregate [--events 300000] [--stores sqlite,mongodb]
    .venv/bin/python bench/analytics.py dashboard [--apps 1000] [--queries 2000]

- `aggregate`: generated events of one app (a chat day's mix: 70 % messages, the rest
  receipts, reactions, edits, new conversations; users and conversations drawn from
  Pareto laws, ~500 users in ~1,000 conversations, over three days) handed to the
  analytics sink as the relay hands them, batches of 500 in position order, on a fresh
  store: events/s, and the CPU the process spent per event (the event loop and SQLite's
  writer thread; MongoDB's work is its own). Then the whole log once more (a replay:
  every batch skipped) for the cost of idempotence.
- `dashboard`: a `caas serve` on embedded defaults with APPS apps, each with 100 days
  of stored counts (every metric by day, API calls by 20 method/code pairs, webhook
  outcomes, the last 31 days by hour too: ~9,000 counter rows an app), then a portal's
  dashboard query — QueryTimeSeries of 5 metrics over 90 days by DAY — over gRPC with
  the operator token, for a random app each time, one at a time: p50/p99/max; then
  8 in flight (queries/s and server CPU per query). Target p99 ≤ 50 ms.

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caas.analytics.v1 import analytics_service_pb2 as pb
from caas.analytics.v1 import resources_pb2 as res
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from google.protobuf import timestamp_pb2

from bench.servers import bench_server, machine_pace, server_cpu
from services.analytics.consumer import AnalyticsSink
from services.analytics.models import Granularity, Metric, month_start
from services.analytics.mongo_store import MongoAnalyticsStore
from services.analytics.sqlite_store import SqliteAnalyticsStore
from services.analytics.store import AnalyticsStore
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.events.log import LoggedEvent
from tests.support.client import Client, bearer
from tests.support.servers import ExternalServer, start_mongo

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BATCH = 500  # the relay's
MIX = (("message.created", 70), ("read.updated", 12), ("delivered.updated", 8),
       ("reaction.added", 6), ("message.updated", 3), ("conversation.created", 1))
DASHBOARD = [res.METRIC_MESSAGES, res.METRIC_ACTIVE_USERS, res.METRIC_NEW_USERS,
             res.METRIC_ACTIVE_CONVERSATIONS, res.METRIC_API_CALLS]
METHODS = ["caas.messages.v1.MessagesService/CreateMessage",
           "caas.messages.v1.MessagesService/ListMessages",
           "caas.conversations.v1.ConversationsService/ListConversations",
           "caas.auth.v1.AuthService/CreateSession", "caas.users.v1.UsersService/UpdateUser"]
CODES = ["OK", "NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT"]


def percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return (f"p50={q[49] * 1000:.2f}ms p90={q[89] * 1000:.2f}ms p99={q[98] * 1000:.2f}ms "
            f"max={max(samples) * 1000:.2f}ms")


def chat_events(count: int, rng: random.Random) -> list[LoggedEvent]:
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    span = timedelta(days=3).total_seconds()
    events = []
    for position in range(1, count + 1):
        at = T0 + timedelta(seconds=span * position / count)
        user = f"u{int(rng.paretovariate(1.2)) % 5000}"
        conversation = f"c{int(rng.paretovariate(1.1)) % 1000}"
        events.append(LoggedEvent("bench-app", position, conversation, rng.choice(kinds),
                                  user, False, at, b""))
    return events


async def open_store(kind: str, directory: Path) -> tuple[AnalyticsStore, object]:
    if kind == "sqlite":
        db = await SqliteDatabase.open(directory / f"{uuid.uuid4().hex}.db")
        store: AnalyticsStore = SqliteAnalyticsStore(db)
        await store.migrate()
        return store, db
    mongo_server = start_mongo()
    mongo = await MongoDatabase.open(mongo_server.url, f"bench{uuid.uuid4().hex[:8]}")
    store = MongoAnalyticsStore(mongo)
    await store.migrate()
    return store, (mongo, mongo_server)


async def close_store(handle: object) -> None:
    if isinstance(handle, SqliteDatabase):
        await handle.close()
    elif isinstance(handle, tuple):
        mongo: MongoDatabase = handle[0]
        server: ExternalServer = handle[1]
        await mongo.close()
        server.process.stop()


async def aggregate(count: int, stores: list[str]) -> None:
    events = chat_events(count, random.Random(7))
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    with tempfile.TemporaryDirectory(prefix="caas-bench-analytics-") as tmp:
        for kind in stores:
            store, handle = await open_store(kind, Path(tmp))
            sink = AnalyticsSink(store)
            for label in ("counted", "replayed (all skipped)"):
                began, cpu = time.perf_counter(), time.process_time()
                for batch in batches:
                    await sink.send(batch)
                wall, used = time.perf_counter() - began, time.process_time() - cpu
                print(f"{kind}: {count:,} events {label} in {wall:.2f} s: "
                      f"{count / wall:,.0f} events/s, {used / count * 1e6:.1f} µs of CPU "
                      f"per event ({used / wall:.0%} of a core)")
            await close_store(handle)


def counter_rows(app_id: str, today: int, rng: random.Random) -> list[tuple[object, ...]]:
    """~9,000 counter rows of 100 days of an app's usage."""
    rows: list[tuple[object, ...]] = []
    simple = [Metric.MESSAGES, Metric.ACTIVE_USERS, Metric.NEW_USERS,
              Metric.CONVERSATIONS_CREATED, Metric.ACTIVE_CONVERSATIONS,
              Metric.MEDIA_UPLOADS, Metric.MEDIA_BYTES, Metric.WEBHOOK_DEAD_LETTERS]
    months: set[int] = set()
    for day_number in range(100):
        day = today - day_number * 86_400
        months.add(month_start(day))
        for metric in simple:
            rows.append((app_id, metric.value, Granularity.DAY.value, day, "",
                         rng.randint(0, 5000)))
            if day_number < 31:
                rows += [(app_id, metric.value, Granularity.HOUR.value, day + h * 3600, "",
                          rng.randint(0, 300)) for h in range(24)]
        rows += [(app_id, Metric.API_CALLS.value, Granularity.DAY.value, day, f"{m} {c}",
                  rng.randint(0, 20_000)) for m in METHODS for c in CODES]
        rows += [(app_id, Metric.WEBHOOK_DELIVERIES.value, Granularity.DAY.value, day, o,
                  rng.randint(0, 900)) for o in ("delivered", "rejected", "unreachable")]
        rows.append((app_id, Metric.PEAK_STREAMS.value, Granularity.DAY.value, day, "p1",
                     rng.randint(0, 900)))
    for month in months:
        rows += [(app_id, metric.value, Granularity.MONTH.value, month, "",
                  rng.randint(0, 90_000)) for metric in simple]
    return rows


async def fill(path: Path, apps: list[str]) -> int:
    db = await SqliteDatabase.open(path)
    rng = random.Random(11)
    today = int(datetime.now(UTC).timestamp()) // 86_400 * 86_400
    written = 0
    try:
        for start in range(0, len(apps), 20):
            rows = [row for app_id in apps[start:start + 20]
                    for row in counter_rows(app_id, today, rng)]
            def insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]] = rows
                       ) -> None:
                conn.executemany(
                    "INSERT OR REPLACE INTO analytics_counters VALUES (?, ?, ?, ?, ?, ?)",
                    rows)

            await db.write(insert)
            written += len(rows)
    finally:
        await db.close()
    return written


async def dashboard(app_count: int, queries: int) -> None:
    with tempfile.TemporaryDirectory(prefix="caas-bench-analytics-") as tmp, \
            bench_server(Path(tmp)) as server:
        client = Client(server.address)
        operator = bearer(server.operator_token)
        apps = [f"bench-{n:04d}" for n in range(app_count)]
        began = time.perf_counter()
        for start in range(0, len(apps), 25):
            await asyncio.gather(*(client.apps.CreateApp(apps_pb.CreateAppRequest(
                app_id=app_id, app=apps_res.App(display_name=app_id)), metadata=operator)
                for app_id in apps[start:start + 25]))
        rows = await fill(server.data_dir / "caas.db", apps)
        print(f"{app_count:,} apps, {rows:,} counter rows stored in "
              f"{time.perf_counter() - began:.0f} s")
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        end += timedelta(days=1)
        interval = res.Interval(
            start_time=timestamp_pb2.Timestamp(seconds=int((end - timedelta(days=90)
                                                            ).timestamp())),
            end_time=timestamp_pb2.Timestamp(seconds=int(end.timestamp())))
        rng = random.Random(3)

        async def one() -> float:
            request = pb.QueryTimeSeriesRequest(
                parent=f"apps/{rng.choice(apps)}", metrics=DASHBOARD, interval=interval,
                granularity=res.GRANULARITY_DAY)
            started = time.perf_counter()
            answer = await client.analytics.QueryTimeSeries(request, metadata=operator)
            took = time.perf_counter() - started
            assert len(answer.time_series) == len(DASHBOARD)
            return took

        for _ in range(100):  # warm-up
            await one()
        latencies = [await one() for _ in range(queries)]
        print(f"dashboard (5 metrics, 90 days by DAY), one at a time, {queries:,} queries: "
              f"{percentiles(latencies)}")
        cpu = server_cpu(server.process.pid)
        began = time.perf_counter()
        in_flight: list[float] = []

        async def caller() -> None:
            for _ in range(queries // 8):
                in_flight.append(await one())

        await asyncio.gather(*(caller() for _ in range(8)))
        wall = time.perf_counter() - began
        used = server_cpu(server.process.pid) - cpu
        print(f"8 in flight: {len(in_flight) / wall:,.0f} queries/s, "
              f"{percentiles(in_flight)}, {used / len(in_flight) * 1e3:.2f} ms of server CPU "
              "per query")
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["aggregate", "dashboard"])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--stores", default="sqlite")
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    print(machine_pace())
    if args.scenario == "aggregate":
        asyncio.run(aggregate(args.events, args.stores.split(",")))
    else:
        asyncio.run(dashboard(args.apps, args.queries))


if __name__ == "__main__":
    main()
