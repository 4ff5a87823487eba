"""Search: message search on the embedded index, index lag under load, mention
autocomplete.

    .venv/bin/python bench/search.py messages [--messages 1000000] [--conversations 1000]
    .venv/bin/python bench/search.py lag [--rate 200] [--seconds 20]
    .venv/bin/python bench/search.py users [--users 100000]

- `messages`: builds the embedded index (SQLite FTS5) with generated messages
  (Zipf-distributed words, realistic lengths: most 3-12 words, some up to 120) across
  the conversations, cached in the temporary directory for the next run, then searches
  as a user in 50 conversations (single common, middling and rare words, two words, a
  prefix), by relevance and newest first: p50/p99 per query. The same queries then run
  as a plain `LIKE '%word%'` scan over the same messages in an ordinary table indexed
  by conversation and time, and the ratio is printed.
- `lag`: a `caas serve` on embedded defaults; senders send at RATE messages/s for
  SECONDS while the app's backend searches the newest messages every 10 ms: time from
  a send's acknowledgement to the first search that finds it, p50/p99/max.
- `users`: USERS users (generated first and last names) in the embedded store, then
  SearchUsers over gRPC from a `caas serve` on that data directory, as a user typing
  the first 1 to 4 letters of a name (and two-word prefixes): p50/p99.

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

import numpy as np
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.search.v1 import search_service_pb2 as search_pb

from bench.servers import bench_server, machine_pace, server_cpu
from services.core.settings import Settings
from services.runtime import open_stores
from services.search.index import MessageDoc, MessageQuery, Order, Write
from services.search.sqlite_index import SqliteSearchIndex
from services.search.text import parse_query
from services.users.models import User
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "de", "pa", "go", "ri",
             "ma", "el", "on", "an", "is", "ur", "be", "ch"]
COMMON = ["the", "a", "to", "and", "you", "i", "is", "it", "we", "for", "that", "on",
          "in", "of", "this", "ok", "yes", "can", "do", "lunch", "meeting", "today"]
FIRST = ["Alice", "Bob", "Carol", "David", "Élodie", "Fatima", "Grace", "Hiro", "Ivan",
         "Jules", "Karin", "Liam", "Maya", "Nadia", "Omar", "Priya", "Quentin", "Rosa",
         "Sam", "Tomás", "Uma", "Victor", "Wen", "Xavier", "Yara", "Zoé"]
LAST = ["Martin", "Dupont", "Smith", "Müller", "García", "Rossi", "Tanaka", "Kowalski",
        "Nguyen", "Silva", "Ivanova", "Cohen", "Okafor", "Larsen", "Novak", "Haddad"]


def percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return (f"p50={q[49] * 1000:.2f}ms p90={q[89] * 1000:.2f}ms p99={q[98] * 1000:.2f}ms "
            f"max={max(samples) * 1000:.2f}ms")


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words = list(COMMON)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def texts(count: int, words: list[str], seed: int) -> list[str]:
    """`count` messages: Zipf-distributed words, lengths as in chat."""
    generator = np.random.default_rng(seed)
    ranks = np.minimum(generator.zipf(1.1, size=count * 40), len(words)) - 1
    lengths = np.where(generator.random(count) < 0.6, generator.integers(3, 13, count),
                       np.where(generator.random(count) < 0.75,
                                generator.integers(13, 41, count),
                                generator.integers(41, 121, count)))
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(words[r] for r in ranks[at:at + length]))
        at += length
        if at + 120 > len(ranks):
            at = 0
    return out


async def build_index(path: Path, messages: int, conversations: int, words: list[str]
                      ) -> None:
    index = await SqliteSearchIndex.open(path)
    await index.migrate()
    plain = sqlite3.connect(path.with_suffix(".plain.db"))
    plain.execute("CREATE TABLE messages (conversation_id TEXT, sequence INTEGER,"
                  " create_ms INTEGER, text TEXT)")
    batch = 5_000
    began = time.perf_counter()
    for start in range(0, messages, batch):
        chunk = texts(min(batch, messages - start), words, seed=start)
        docs = [MessageDoc("bench", f"c{(start + n) % conversations}",
                           (start + n) // conversations + 1, f"u{(start + n) % 97}", text,
                           T0 + timedelta(seconds=(start + n) * 2))
                for n, text in enumerate(chunk)]
        await index.apply("bench", [Write(start + n + 1, d) for n, d in enumerate(docs)])
        plain.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)",
                          [(d.conversation_id, d.sequence,
                            int(d.create_time.timestamp() * 1000), d.text) for d in docs])
        plain.commit()
        if (start // batch) % 20 == 0:
            print(f"  indexed {start + len(docs):,} messages "
                  f"({(start + len(docs)) / (time.perf_counter() - began):,.0f}/s)",
                  flush=True)
    plain.execute("CREATE INDEX by_conversation ON messages (conversation_id, create_ms)")
    plain.commit()
    plain.close()
    await index.close()
    print(f"built in {time.perf_counter() - began:.0f}s")


def queries(words: list[str], rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.3:
            out.append(words[rng.randint(20, 200)])  # common
        elif kind < 0.55:
            out.append(words[rng.randint(200, 2_000)])  # middling
        elif kind < 0.7:
            out.append(words[rng.randint(2_000, len(words) - 1)])  # rare
        elif kind < 0.9:
            out.append(f"{words[rng.randint(20, 500)]} {words[rng.randint(20, 2_000)]}")
        else:
            out.append(words[rng.randint(50, 1_000)][:3] + "*")
    return out


async def messages_bench(args: argparse.Namespace) -> None:
    rng = random.Random(1)
    words = vocabulary(20_000, rng)
    path = Path(tempfile.gettempdir()) / (
        f"caas-bench-search-{args.messages}-{args.conversations}.db")
    if not path.exists() or args.rebuild:
        for old in path.parent.glob(path.name + "*"):
            old.unlink()
        path.with_suffix(".plain.db").unlink(missing_ok=True)
        print(f"building the index: {args.messages:,} messages in "
              f"{args.conversations:,} conversations ({path})")
        await build_index(path, args.messages, args.conversations, words)
    index = await SqliteSearchIndex.open(path)
    await index.migrate()  # an index built by an earlier version gets its new tables
    mine = rng.sample(range(args.conversations), 50)
    windows = {f"c{c}": T0 for c in mine}
    asked = queries(words, rng, args.queries)
    print(f"a user in 50 conversations; {len(asked)} queries "
          f"(common, middling and rare words, two words, prefixes)")
    results: dict[str, list[float]] = {}
    hits_seen = 0
    for order in (Order.RELEVANCE, Order.NEWEST):
        timings = []
        for text in asked:
            query = MessageQuery("bench", parse_query(text), order, 21, windows)
            began = time.perf_counter()
            hits = await index.search_messages(query)
            timings.append(time.perf_counter() - began)
            hits_seen += len(hits)
        results[order.value] = timings
        print(f"fts5 {order.value:9} {percentiles(timings)}")
    await index.close()
    plain = sqlite3.connect(path.with_suffix(".plain.db"))
    marks = ", ".join("?" * len(windows))
    timings = []
    for text in asked:
        terms = [t.rstrip("*") for t in text.split()]
        condition = " AND ".join("text LIKE ?" for _ in terms)
        began = time.perf_counter()
        plain.execute(f"SELECT conversation_id, sequence FROM messages"
                      f" WHERE conversation_id IN ({marks}) AND {condition}"
                      " ORDER BY create_ms DESC LIMIT 21",
                      (*windows, *(f"%{t}%" for t in terms))).fetchall()
        timings.append(time.perf_counter() - began)
    plain.close()
    print(f"LIKE scan newest    {percentiles(timings)}")
    like = statistics.quantiles(timings, n=100)
    for order, fts in results.items():
        q = statistics.quantiles(fts, n=100)
        print(f"LIKE / fts5 {order}: p50 x{like[49] / q[49]:.1f}, p99 x{like[98] / q[98]:.1f}")


async def lag_bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp)) as server:
        client = Client(server.address)
        operator = bearer(server.operator_token)
        app_id = f"bench-{uuid.uuid4().hex[:8]}"
        app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=operator)
        backend = bearer(app.api_key_secret)
        people = [await person(client, app_id, app.api_key_secret, f"u{i}")
                  for i in range(5)]
        groups = [await people[0].create(GROUP, tuple(p.user_id for p in people[1:]))
                  for _ in range(5)]
        acked: dict[str, float] = {}
        seen: dict[str, float] = {}
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set() or len(seen) < len(acked):
                answer = await client.search.SearchMessages(search_pb.SearchMessagesRequest(
                    parent=f"apps/{app_id}", page_size=50), metadata=backend)
                now = time.perf_counter()
                for hit in answer.hits:
                    seen.setdefault(hit.message.name, now)
                if done.is_set() and time.perf_counter() - stopped > 10:
                    return
                await asyncio.sleep(0.01)

        async def sender(index: int) -> None:
            interval = len(people) / args.rate
            next_at = time.perf_counter()
            while time.perf_counter() < deadline:
                response = await people[index].send(groups[index].name, f"lag probe {index}")
                acked[response.message.name] = time.perf_counter()
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        cpu_before = server_cpu(server.process.pid)
        began = time.perf_counter()
        deadline = began + args.seconds
        stopped = float("inf")
        poller = asyncio.create_task(poll())
        await asyncio.gather(*(sender(i) for i in range(len(people))))
        stopped = time.perf_counter()
        done.set()
        await poller
        cpu = server_cpu(server.process.pid) - cpu_before
        lags = [seen[name] - at for name, at in acked.items() if name in seen]
        print(f"sent {len(acked):,} at {len(acked) / (stopped - began):,.0f}/s; "
              f"found {len(lags):,}; never found {len(acked) - len(lags)}")
        print(f"send acknowledged -> searchable: {percentiles([max(x, 0) for x in lags])} "
              "(polling every 10 ms)")
        print(f"server cpu {cpu / (time.perf_counter() - began) * 100:.0f}% of a core "
              "(sends, searches every 10 ms and indexing)")
        await client.close()


async def users_bench(args: argparse.Namespace) -> None:
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "caas"
        stores = await open_stores(Settings(data_dir=data))
        began = time.perf_counter()
        batch = [User("bench", f"user{n}",
                      f"{rng.choice(FIRST)} {rng.choice(LAST)}{'' if n % 3 else ' Jr'}",
                      "", {}, T0, T0) for n in range(args.users)]
        for start in range(0, len(batch), 1_000):
            await asyncio.gather(*(stores.users.create_user(u)
                                   for u in batch[start:start + 1_000]))
        print(f"{args.users:,} users stored in {time.perf_counter() - began:.0f}s")
        await stores.close()
        with bench_server(Path(tmp), env={"CAAS_DATA_DIR": str(data)}) as server:
            client = Client(server.address)
            operator = bearer(server.operator_token)
            app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
                app_id="bench", app=apps_res.App(display_name="Bench")), metadata=operator)
            session = await client.auth.CreateSession(auth_pb.CreateSessionRequest(
                parent="apps/bench/users/user1"), metadata=bearer(app.api_key_secret))
            token = bearer(session.credentials.access_token)
            typed = []
            for _ in range(args.queries):
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                first, last = name.split()
                typed.append(first[:rng.randint(1, 4)] if rng.random() < 0.8
                             else f"{first[:rng.randint(1, 3)]} {last[:rng.randint(1, 3)]}")
            timings, found = [], 0
            cpu_before = server_cpu(server.process.pid)
            for prefix in typed:
                began = time.perf_counter()
                answer = await client.search.SearchUsers(search_pb.SearchUsersRequest(
                    parent="apps/bench", prefix=prefix, page_size=10), metadata=token)
                timings.append(time.perf_counter() - began)
                found += len(answer.hits)
            cpu = server_cpu(server.process.pid) - cpu_before
            print(f"SearchUsers over gRPC, {len(typed)} prefixes (1-4 letters, some two "
                  f"words), 10 a page: {percentiles(timings)}; {found / len(typed):.1f} "
                  f"users a query; server cpu {cpu / len(typed) * 1e6:.0f}us per query")
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    messages = commands.add_parser("messages")
    messages.add_argument("--messages", type=int, default=1_000_000)
    messages.add_argument("--conversations", type=int, default=1_000)
    messages.add_argument("--queries", type=int, default=300)
    messages.add_argument("--rebuild", action="store_true")
    lag = commands.add_parser("lag")
    lag.add_argument("--rate", type=float, default=200)
    lag.add_argument("--seconds", type=float, default=20)
    users = commands.add_parser("users")
    users.add_argument("--users", type=int, default=100_000)
    users.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    print(machine_pace())
    run = {"messages": messages_bench, "lag": lag_bench, "users": users_bench}
    asyncio.run(run[args.command](args))


if __name__ == "__main__":
    main()
