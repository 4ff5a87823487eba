"""The production store engine: MongoDB through PyMongo's asyncio API.

(Motor, named in the original design, is deprecated in favour of
`pymongo.AsyncMongoClient`.) Multi-document changes run in transactions, so the
deployment must be a replica set, as production MongoDB deployments are.

Writes go through many collections' methods, so the engine watches them as the driver
sends them (a command listener): a write the server refuses for want of disk space
(see services/core/db/transient.py), and each write that succeeds after it, are
reported to the engine's listener (`watch_writes`; see services/core/db/writes.py).
A write inside a transaction counts at its `commitTransaction`.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.trace import Span, Status, StatusCode, Tracer, get_current_span
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.core.aio import KeyedLocks
from services.core.clock import from_ms
from services.core.db.timing import SPAN_KIND, Timer
from services.core.db.transient import mongo_reply_is_full
from services.core.db.writes import WriteListener

T = TypeVar("T")
Document = dict[str, Any]


def after(position: tuple[int, str] | None, time_field: str, id_field: str,
          descending: bool = False) -> Document:
    """Filter for the documents strictly after `position` (time in ms, id) in a listing
    ordered by (time_field, id_field), ascending or descending."""
    if position is None:
        return {}
    when = from_ms(position[0])
    beyond = "$lt" if descending else "$gt"
    return {"$or": [{time_field: {beyond: when}},
                    {time_field: when, id_field: {beyond: position[1]}}]}

# A migration changes the schema of one version (indexes, backfills); it must be
# idempotent, because two processes starting together may both run it.
MongoMigration = Callable[[AsyncDatabase[Document]], Awaitable[None]]


# The commands that write; inside a transaction (`autocommit` in the command) they
# count at the transaction's commit.
_WRITES = frozenset({"insert", "update", "delete", "findAndModify", "commitTransaction",
                     "create", "createIndexes"})



def _wants_tls(url: str) -> bool:
    """Whether a connection string asks for TLS without naming its own CA file."""
    parts = urllib.parse.urlsplit(url)
    options = {k.lower(): v.lower() for k, v in urllib.parse.parse_qsl(parts.query)}
    if "tlscafile" in options:
        return False
    wanted = options.get("tls", options.get("ssl"))
    return wanted == "true" if wanted is not None else parts.scheme == "mongodb+srv"

class WriteMonitor(monitoring.CommandListener):
    """Tells `listener` of the writes the driver sends: the error of one the server
    refused for want of disk space, None for one that succeeded."""

    def __init__(self) -> None:
        self.listener: WriteListener | None = None
        self._writes: set[int] = set()  # request ids of writes sent, not answered yet

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.listener is not None and event.command_name in _WRITES and (
                event.command_name == "commitTransaction" or "autocommit" not in event.command):
            self._writes.add(event.request_id)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._writes:
            self._writes.discard(event.request_id)
            self._report(event.reply)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if event.request_id in self._writes:
            self._writes.discard(event.request_id)
            failure = event.failure if isinstance(event.failure, Mapping) else {}
            if mongo_reply_is_full(failure):
                self._report(failure)

    def _report(self, reply: Mapping[str, Any]) -> None:
        if self.listener is None:
            return
        if mongo_reply_is_full(reply):
            self.listener(OperationFailure(str(reply.get("errmsg") or "out of disk space"),
                                           reply.get("code"), dict(reply)))
        elif not reply.get("writeErrors") and not reply.get("writeConcernError"):
            self.listener(None)


class CommandTimer(monitoring.CommandListener):
    """Tells `timer` how long each command the driver sends takes, named by collection
    and command (`messages.find`), and with `tracer`, makes a span of it: the driver
    calls `started` in the task that sends the command, so the span's parent is that
    task's current span (the RPC's)."""

    def __init__(self) -> None:
        self.timer: Timer | None = None
        self.tracer: Tracer | None = None
        # request id → (operation, its span), until answered
        self._started: dict[int, tuple[str, Span | None]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.timer is None and self.tracer is None:
            return
        target = event.command.get(event.command_name)
        collection = target if isinstance(target, str) else ""
        name = f"{collection or event.database_name}.{event.command_name}"
        span = None
        if self.tracer is not None and get_current_span().is_recording():
            span = self.tracer.start_span(
                f"mongodb {name}", kind=SPAN_KIND, attributes={
                    "db.system.name": "mongodb", "db.operation.name": event.command_name,
                    "db.collection.name": collection, "db.namespace": event.database_name})
        self._started[event.request_id] = (name, span)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event.request_id, event.duration_micros, None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event.request_id, event.duration_micros, event.failure)

    def _finish(self, request_id: int, micros: int, failure: object) -> None:
        name, span = self._started.pop(request_id, ("", None))
        if name and self.timer is not None:
            self.timer.observe(name, micros / 1e6)
        if span is not None:
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, str(failure)[:200]))
            span.end()


class MongoDatabase:
    """An open MongoDB database. Create with `await MongoDatabase.open(url, name)`."""

    def __init__(self, client: AsyncMongoClient[Document], name: str,
                 monitor: WriteMonitor | None = None, timer: CommandTimer | None = None,
                 serial: KeyedLocks | None = None) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[name]
        self._monitor = monitor or WriteMonitor()
        self._timer = timer or CommandTimer()
        self._serial = serial or KeyedLocks()

    @classmethod
    async def open(cls, url: str, name: str, ca_file: Path | None = None) -> MongoDatabase:
        """Connect and check the server answers; raises pymongo errors if it does not.
        Over TLS when the URL says so (`tls=true`, or `mongodb+srv://`), trusting
        `ca_file` unless the URL names a `tlsCAFile` of its own."""
        monitor, timer = WriteMonitor(), CommandTimer()
        tls: dict[str, Any] = ({"tlsCAFile": str(ca_file)} if ca_file and _wants_tls(url)
                               else {})
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=10_000,
            appname="caas", event_listeners=[monitor, timer], **tls)
        await client.admin.command("ping")
        return cls(client, name, monitor, timer)

    def database(self, name: str) -> MongoDatabase:
        """Another database of the same server, on the same connections (closed with
        this one)."""
        return MongoDatabase(self.client, name, self._monitor, self._timer, self._serial)

    def watch_writes(self, listener: WriteListener) -> None:
        """Tell `listener` of every write refused for want of disk space (its error)
        and of every write that succeeded (None)."""
        self._monitor.listener = listener

    async def probe(self) -> None:
        """Write one tiny document (raises what the write raises)."""
        await self.db["store_probe"].update_one(
            {"_id": 1}, {"$set": {"written_at": datetime.now(UTC)}}, upsert=True)

    async def ping(self) -> None:
        """Ask the server to answer (raises what the driver raises when it cannot)."""
        await self.client.admin.command("ping")

    def time_operations(self, timer: Timer) -> None:
        """Tell `timer` how long each command takes."""
        self._timer.timer = timer

    def trace_operations(self, tracer: Tracer) -> None:
        """Make a span of each command (tracing on)."""
        self._timer.tracer = tracer

    async def transaction(self, body: Callable[[AsyncClientSession], Awaitable[T]],
                          serial: Hashable | None = None) -> T:
        """Run `body` in a transaction (retried by the driver on transient errors).

        Transactions given the same `serial` key (those that write one hot document,
        such as a conversation's sequence) run one at a time in this process: queued
        here instead of all but one failing on a write conflict and retrying — a storm
        that, with tens of concurrent writers, can starve one of them for the driver's
        whole two-minute retry budget. Other processes still conflict, and retry."""
        if serial is None:
            return await self._transaction(body)
        async with self._serial.hold(serial):
            return await self._transaction(body)

    async def _transaction(self, body: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        async with self.client.start_session() as session:
            return await session.with_transaction(body)

    async def migrate(self, component: str, migrations: Sequence[MongoMigration]) -> None:
        """Apply the migrations of `component` not applied yet, in order."""
        applied = self.db["schema_migrations"]
        for version, migration in enumerate(migrations, start=1):
            key = f"{component}:{version}"
            if await applied.find_one({"_id": key}) is not None:
                continue
            await migration(self.db)
            with contextlib.suppress(DuplicateKeyError):  # another process applied it too
                await applied.insert_one({"_id": key, "applied_at": datetime.now(UTC)})

    async def purge_app(self, app_id: str, keep: frozenset[str] = frozenset()) -> int:
        """Delete every document of the app from every collection (but those of `keep`):
        those with its `app_id`, and those whose `_id` is the app id or starts with it
        and a slash; how many went."""
        gone = 0
        for name in sorted(await self.db.list_collection_names()):
            if name in keep or name.startswith("system."):
                continue
            collection = self.db[name]
            for query in ({"app_id": app_id}, {"_id": app_id},
                          {"_id": {"$regex": f"^{re.escape(app_id)}/"}}):
                gone += (await collection.delete_many(query)).deleted_count
        return gone

    async def close(self) -> None:
        await self.client.close()
