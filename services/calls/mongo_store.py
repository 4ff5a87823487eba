"""Calls on MongoDB: one document per call in `calls`, under `_id`
"{app}/{conversation}/{call}" — the call's fields (services/calls/codec.py) beside the
copies its queries and indexes need: `active` (true while not ended), `due` (ms, left
out while the sweeper has nothing to do) and `joined` (who is in the call while it has
not ended, for `busy`).

One call at a time per conversation: a unique index on (app, conversation) over the
active calls. Two starts at once in a conversation collide on it (a write conflict the
driver runs again, or a duplicate key the store runs again): the loser then reads the
winner, and raises CallInProgress. Purging an app (`MongoDatabase.purge_app`) takes its
calls by their `_id` prefix."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.calls.codec import call_doc, call_of, due_time
from services.calls.models import Call
from services.calls.store import CallInProgress, CallKey, Position
from services.core.clock import to_ms
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.events import DomainEvent
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog

CALLS = "calls"
# A start that lost the race to a concurrent one (duplicate key) runs again, and then
# reads the winner.
_ATTEMPTS = 3


async def _v1(db: AsyncDatabase[Document]) -> None:
    calls = db[CALLS]
    # One call at a time per conversation.
    await calls.create_index([("app", ASCENDING), ("conversation", ASCENDING)], unique=True,
                             name="calls_current", partialFilterExpression={"active": True})
    # Listing, newest first (and the current call, unhinted: a planner may not choose
    # the partial index above).
    await calls.create_index([("app", ASCENDING), ("conversation", ASCENDING),
                              ("create", DESCENDING), ("call", DESCENDING)])
    await calls.create_index([("app", ASCENDING), ("joined", ASCENDING)])
    # What the sweeper looks at; calls without `due` index as null.
    await calls.create_index([("due", ASCENDING), ("_id", ASCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    # The calls under way, in `_id` order (the sweeper's look at who is in one).
    await db[CALLS].create_index([("active", ASCENDING), ("_id", ASCENDING)], name="calls_ongoing",
                                 partialFilterExpression={"active": True})


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2)


def _id(app_id: str, conversation_id: str, call_id: str) -> str:
    return f"{app_id}/{conversation_id}/{call_id}"


def _doc(call: Call) -> Document:
    doc: Document = {"_id": _id(call.app_id, call.conversation_id, call.call_id),
                     **call_doc(call), "active": not call.ended,
                     "joined": [] if call.ended else [p.user_id for p in call.joined()]}
    due = due_time(call)
    if due is not None:
        doc["due"] = due
    return doc


def _call(doc: Document | None) -> Call | None:
    return None if doc is None else call_of(doc)


class MongoCallStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._calls = db.db[CALLS]

    async def migrate(self) -> None:
        await self._mongo.migrate("calls", MIGRATIONS)

    async def create(self, call: Call, events: Sequence[DomainEvent]) -> tuple[Call, bool]:
        doc = _doc(call)

        async def tx(s: AsyncClientSession, emit: Emit) -> tuple[Call, bool]:
            found = await self._calls.find_one({"_id": doc["_id"]}, session=s)
            if found is not None:
                return call_of(found), False
            current = await self._calls.find_one(
                {"app": call.app_id, "conversation": call.conversation_id, "active": True},
                session=s)
            if current is not None:
                raise CallInProgress(call_of(current))
            await self._calls.insert_one(doc, session=s)
            for event in events:
                emit(event)
            return call, True

        for _ in range(_ATTEMPTS - 1):
            with contextlib.suppress(DuplicateKeyError):  # raced: read the winner now
                return await self._log.transact(tx)
        return await self._log.transact(tx)

    async def update(self, call: Call, events: Sequence[DomainEvent]) -> bool:
        doc = _doc(call)

        async def tx(s: AsyncClientSession, emit: Emit) -> bool:
            done = await self._calls.replace_one({"_id": doc["_id"],
                                                  "version": call.version - 1}, doc, session=s)
            if done.matched_count == 0:
                return False
            for event in events:
                emit(event)
            return True

        return await self._log.transact(tx)

    async def get(self, app_id: str, conversation_id: str, call_id: str) -> Call | None:
        return _call(await self._calls.find_one({"_id": _id(app_id, conversation_id, call_id)}))

    async def list_calls(self, app_id: str, conversation_id: str, limit: int,
                         after: Position | None) -> list[Call]:
        query: Document = {"app": app_id, "conversation": conversation_id}
        if after is not None:
            when, call_id = after
            query["$or"] = [{"create": {"$lt": when}}, {"create": when, "call": {"$lt": call_id}}]
        cursor = self._calls.find(query).sort(
            [("create", DESCENDING), ("call", DESCENDING)]).limit(limit)
        return [call_of(doc) async for doc in cursor]

    async def current(self, app_id: str, conversation_id: str) -> Call | None:
        return _call(await self._calls.find_one(
            {"app": app_id, "conversation": conversation_id, "active": True}))

    async def busy(self, app_id: str, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        wanted = set(user_ids)
        cursor = self._calls.find({"app": app_id, "joined": {"$in": list(wanted)}},
                                  {"joined": 1})
        return {user async for doc in cursor for user in doc["joined"] if user in wanted}

    async def joined_calls(self, app_id: str, user_id: str) -> list[Call]:
        cursor = self._calls.find({"app": app_id, "joined": user_id}).sort(
            [("create", ASCENDING), ("_id", ASCENDING)])
        return [call_of(doc) async for doc in cursor]

    async def ongoing(self, limit: int, after: CallKey | None) -> list[Call]:
        selector: Document = {"active": True}
        if after is not None:
            selector["_id"] = {"$gt": _id(*after)}
        cursor = self._calls.find(selector).sort("_id", ASCENDING).limit(limit)
        return [call_of(doc) async for doc in cursor]

    async def due(self, now: datetime, limit: int) -> list[Call]:
        cursor = self._calls.find({"due": {"$lte": to_ms(now)}}).sort(
            [("due", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [call_of(doc) async for doc in cursor]

    async def set_record(self, app_id: str, conversation_id: str, call_id: str,
                         sequence: int) -> None:
        await self._calls.update_one({"_id": _id(app_id, conversation_id, call_id), "record": 0},
                                     {"$set": {"record": sequence}, "$unset": {"due": ""}})

    async def delete_conversation_calls(self, app_id: str, conversation_id: str) -> int:
        result = await self._calls.delete_many({"app": app_id, "conversation": conversation_id})
        return result.deleted_count

    async def signal(self, event: DomainEvent) -> None:
        async def tx(s: AsyncClientSession, emit: Emit) -> None:
            emit(event)

        await self._log.transact(tx)
