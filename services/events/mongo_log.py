"""EventLog on MongoDB. An app's head document is written by every transaction that
records events of the app, so such transactions conflict and commit one at a time:
positions follow commit order without gaps.

An event's trace context (`traceparent`, `tracestate`) is a field written only when
there is one: no migration adds it, and events without it read as untraced."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from bson.binary import Binary
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id
from services.core.tracing import NO_TRACE, TraceHeaders, current_headers
from services.events.log import (
    CommitListener,
    Emit,
    Encoder,
    Head,
    Interval,
    LoggedEvent,
    joiners,
    leaves,
)

T = TypeVar("T")


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["events"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("position", ASCENDING)])
    await db["events"].create_index([("app_id", ASCENDING), ("position", ASCENDING)])
    await db["events"].create_index([("create_time", ASCENDING)])
    await db["event_memberships"].create_index(
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("to_position", ASCENDING)])
    await db["event_memberships"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("to_position", ASCENDING)])
    # Members from before the log: members since the beginning.
    async for member in db["members"].find({}, {"app_id": 1, "user_id": 1,
                                                "conversation_id": 1}):
        with contextlib.suppress(DuplicateKeyError):  # applied by another process
            await db["event_memberships"].insert_one(_interval_doc(
                member["app_id"], member["user_id"], member["conversation_id"], 0))


async def _v2(db: AsyncDatabase[Document]) -> None:
    await db["event_cursors"].create_index([("consumer", ASCENDING), ("app_id", ASCENDING)])


async def _v3(db: AsyncDatabase[Document]) -> None:
    # WebRTC signals, purged soon (purge_types).
    await db["events"].create_index(
        [("type", ASCENDING), ("create_time", ASCENDING)], name="events_signals",
        partialFilterExpression={"type": "call.signal"})


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2, _v3)


def _interval_doc(app_id: str, user_id: str, conversation_id: str, start: int) -> Document:
    return {"_id": f"{app_id}/{user_id}/{conversation_id}/{start}", "app_id": app_id,
            "user_id": user_id, "conversation_id": conversation_id, "from_position": start,
            "to_position": None}


def _event(doc: Document) -> LoggedEvent:
    return LoggedEvent(doc["app_id"], doc["position"], doc["conversation_id"], doc["type"],
                       doc["user_id"], doc["private"], doc["create_time"],
                       bytes(doc["payload"]), tuple(doc["joiners"]), _trace(doc))


def _trace(doc: Document) -> TraceHeaders:
    return TraceHeaders.of(doc.get("traceparent"), doc.get("tracestate"))


class MongoEventLog:
    def __init__(self, db: MongoDatabase, bus: EventBus, encode: Encoder, *,
                 traced: bool = False) -> None:
        """With `traced`, events keep the trace context current when they are recorded."""
        self._mongo = db
        self._bus = bus
        self._encode = encode
        self._traced = traced
        self._listener: CommitListener | None = None
        self._heads = db.db["event_heads"]
        self._events = db.db["events"]
        self._memberships = db.db["event_memberships"]
        self._consumers = db.db["event_consumers"]
        self._cursors = db.db["event_cursors"]

    async def migrate(self) -> None:
        await self._mongo.migrate("events", MIGRATIONS)

    async def transact(self, body: Callable[[AsyncClientSession, Emit], Awaitable[T]],
                       serial: Hashable | None = None) -> T:
        """Run `body` in one transaction; the events it emits are recorded in the same
        transaction and published on the bus after the commit. `serial`: see
        `MongoDatabase.transaction`."""
        events: list[DomainEvent] = []
        logged: list[LoggedEvent] = []
        trace = current_headers() if self._traced else NO_TRACE

        async def tx(session: AsyncClientSession) -> T:
            events.clear()  # the driver may run the body again after a conflict
            logged.clear()
            result = await body(session, events.append)
            if events:
                logged[:] = await self._record(session, events, trace)
            return result

        result = await self._mongo.transaction(tx, serial)
        if logged and self._listener is not None:
            self._listener(logged)
        for event in events:
            await self._bus.publish(event)
        return result

    def watch_commits(self, listener: CommitListener) -> None:
        self._listener = listener

    async def _record(self, s: AsyncClientSession, events: Sequence[DomainEvent],
                      trace: TraceHeaders) -> list[LoggedEvent]:
        app_id = events[0].app_id
        assert all(e.app_id == app_id for e in events), "one transaction, one app"
        head = await self._heads.find_one_and_update(
            {"_id": app_id}, {"$inc": {"position": len(events)},
                              "$setOnInsert": {"log_id": new_id(), "purged_through": 0}},
            upsert=True, return_document=ReturnDocument.AFTER, session=s)
        assert head is not None
        docs = []
        for position, event in enumerate(events, start=head["position"] - len(events) + 1):
            joined = joiners(event)
            docs.append({"_id": f"{app_id}/{position}", "app_id": app_id, "position": position,
                         "conversation_id": event.conversation_id, "type": event.type,
                         "user_id": event.user_id, "private": event.private,
                         "create_time": event.time,
                         "payload": Binary(self._encode(event, position)),
                         "joiners": list(joined)})
            if trace:
                docs[-1]["traceparent"] = trace.traceparent
                if trace.tracestate:
                    docs[-1]["tracestate"] = trace.tracestate
            if joined:
                await self._memberships.insert_many(
                    [_interval_doc(app_id, u, event.conversation_id, position) for u in joined],
                    session=s)
            if leaves(event, event.user_id):
                selector: dict[str, Any] = {"app_id": app_id,
                                            "conversation_id": event.conversation_id,
                                            "to_position": None}
                if event.type != "conversation.deleted":
                    selector["user_id"] = event.user_id
                await self._memberships.update_many(
                    selector, {"$set": {"to_position": position}}, session=s)
        await self._events.insert_many(docs, session=s)
        return [_event(doc) for doc in docs]

    async def head(self, app_id: str) -> Head:
        doc = await self._heads.find_one_and_update(
            {"_id": app_id}, {"$setOnInsert": {"log_id": new_id(), "position": 0,
                                               "purged_through": 0}},
            upsert=True, return_document=ReturnDocument.AFTER)
        if doc is None:  # another call created it at the same moment: the server answers
            doc = await self._heads.find_one({"_id": app_id})  # null to the loser
        assert doc is not None
        return Head(doc["log_id"], doc["position"], doc["purged_through"])

    async def read(self, app_id: str, after: int, limit: int,
                   conversations: Sequence[str] | None = None) -> list[LoggedEvent]:
        query: dict[str, Any] = {"app_id": app_id, "position": {"$gt": after}}
        if conversations is not None:
            if not conversations:
                return []
            query["conversation_id"] = {"$in": list(conversations)}
        cursor = self._events.find(query).sort("position", ASCENDING).limit(limit)
        return [_event(doc) async for doc in cursor]

    async def memberships(self, app_id: str, user_id: str, after: int
                          ) -> Mapping[str, list[Interval]]:
        found: dict[str, list[Interval]] = {}
        cursor = self._memberships.find(
            {"app_id": app_id, "user_id": user_id,
             "$or": [{"to_position": None}, {"to_position": {"$gt": after}}]}
        ).sort("from_position", ASCENDING)
        async for doc in cursor:
            found.setdefault(doc["conversation_id"], []).append(
                (doc["from_position"], doc.get("to_position")))
        return found

    async def appended(self) -> int:
        async for row in await self._heads.aggregate(
                [{"$group": {"_id": None, "total": {"$sum": "$position"}}}]):
            return int(row["total"])
        return 0

    async def redact(self, app_id: str, types: Collection[str],
                     redact: Callable[[bytes], bytes | None]) -> list[int]:
        changed = []
        async for doc in self._events.find({"app_id": app_id, "type": {"$in": sorted(types)}},
                                           {"position": 1, "payload": 1}):
            redacted = redact(bytes(doc["payload"]))
            if redacted is not None:
                await self._events.update_one({"_id": doc["_id"]},
                                              {"$set": {"payload": Binary(redacted)}})
                changed.append(doc["position"])
        return changed

    async def purge(self, before: datetime) -> int:
        gone = 0
        consumers = [doc["_id"] async for doc in self._consumers.find(
            {"$or": [{"lease_until": None}, {"lease_until": {"$gte": before}}]})]
        cursor = await self._events.aggregate([
            {"$match": {"create_time": {"$lt": before}}},
            {"$group": {"_id": "$app_id", "through": {"$max": "$position"}}}])
        async for row in cursor:
            app_id, through = row["_id"], row["through"]
            if consumers:  # keep what a consumer has yet to take
                taken = {doc["consumer"]: doc["position"]
                         async for doc in self._cursors.find({"app_id": app_id})}
                through = min(through, *(taken.get(c, 0) for c in consumers))
            if through <= 0:
                continue
            # The horizon moves first: a reader never finds events gone below it.
            await self._heads.update_one({"_id": app_id},
                                         {"$max": {"purged_through": through}})
            result = await self._events.delete_many(
                {"app_id": app_id, "position": {"$lte": through}})
            gone += result.deleted_count
            await self._memberships.delete_many(
                {"app_id": app_id, "to_position": {"$ne": None, "$lte": through}})
        return gone

    async def purge_types(self, types: Collection[str], before: datetime) -> int:
        result = await self._events.delete_many(
            {"type": {"$in": list(types)}, "create_time": {"$lt": before}})
        return result.deleted_count

    async def register(self, consumer: str) -> None:
        await self._consumers.update_one(
            {"_id": consumer}, {"$setOnInsert": {"holder": "", "lease_until": None}},
            upsert=True)

    async def behind(self, consumer: str, apps: Collection[str] | None = None
                     ) -> list[tuple[str, int, int]]:
        heads: Document = {}
        cursors: Document = {"consumer": consumer}
        if apps is not None:
            heads["_id"] = {"$in": list(apps)}
            cursors["app_id"] = {"$in": list(apps)}
        taken = {doc["app_id"]: doc["position"] async for doc in self._cursors.find(cursors)}
        return [(doc["_id"], taken.get(doc["_id"], 0), doc["position"])
                async for doc in self._heads.find(heads).sort("_id", ASCENDING)
                if doc["position"] > taken.get(doc["_id"], 0)]

    async def advance(self, consumer: str, app_id: str, position: int) -> None:
        await self._cursors.update_one(
            {"_id": f"{consumer}/{app_id}"},
            {"$max": {"position": position}, "$setOnInsert": {"consumer": consumer,
                                                              "app_id": app_id}},
            upsert=True)

    async def trace(self, app_id: str, position: int) -> TraceHeaders:
        doc = await self._events.find_one({"_id": f"{app_id}/{position}"},
                                          {"traceparent": 1, "tracestate": 1})
        return NO_TRACE if doc is None else _trace(doc)

    async def lease(self, consumer: str, holder: str, now: datetime, until: datetime
                    ) -> bool:
        await self.register(consumer)
        taken = await self._consumers.find_one_and_update(
            {"_id": consumer, "$or": [{"holder": holder}, {"lease_until": None},
                                      {"lease_until": {"$lte": now}}]},
            {"$set": {"holder": holder, "lease_until": until}})
        return taken is not None
