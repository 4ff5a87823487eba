"""RestrictionStore on MongoDB."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog
from services.moderation.events import CREATED, DELETED, restriction_event
from services.moderation.models import Restriction, RestrictionType
from services.moderation.store import Position


async def _v1(db: AsyncDatabase[Document]) -> None:
    restrictions = db["restrictions"]
    await restrictions.create_index(  # one per user, place and type
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("conversation_id", ASCENDING),
         ("type", ASCENDING)], unique=True)
    await restrictions.create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("restriction_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _applies(now: datetime) -> Document:
    return {"$or": [{"expire_time": None}, {"expire_time": {"$gt": now}}]}


def _doc(r: Restriction) -> Document:
    return {"_id": f"{r.app_id}/{r.restriction_id}", "app_id": r.app_id,
            "restriction_id": r.restriction_id, "user_id": r.user_id,
            "conversation_id": r.conversation_id, "type": r.type.value, "reason": r.reason,
            "creator": r.creator, "create_time": r.create_time, "expire_time": r.expire_time}


def _restriction(doc: Document) -> Restriction:
    return Restriction(doc["app_id"], doc["restriction_id"], doc["user_id"],
                       doc["conversation_id"], RestrictionType(doc["type"]), doc["reason"],
                       doc["creator"], doc["create_time"], doc.get("expire_time"))


class MongoRestrictionStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._restrictions = db.db["restrictions"]

    async def migrate(self) -> None:
        await self._mongo.migrate("moderation", MIGRATIONS)

    async def put_restriction(self, restriction: Restriction, now: datetime) -> Restriction:
        place = {"app_id": restriction.app_id, "user_id": restriction.user_id,
                 "conversation_id": restriction.conversation_id,
                 "type": restriction.type.value}

        async def tx(s: AsyncClientSession, emit: Emit) -> Restriction:
            found = await self._restrictions.find_one({**place, **_applies(now)}, session=s)
            # The one it replaces keeps its id.
            stored = restriction if found is None else replace(
                restriction, restriction_id=found["restriction_id"])
            # _id holds the id: a replaced expired one goes, its successor comes.
            await self._restrictions.delete_one(place, session=s)
            await self._restrictions.insert_one(_doc(stored), session=s)
            emit(restriction_event(CREATED, stored, now))
            return stored

        return await self._log.transact(tx)

    async def get_restriction(self, app_id: str, restriction_id: str) -> Restriction | None:
        doc = await self._restrictions.find_one({"_id": f"{app_id}/{restriction_id}",
                                                 "app_id": app_id})
        return None if doc is None else _restriction(doc)

    async def delete_restriction(self, app_id: str, restriction_id: str, now: datetime
                                 ) -> Restriction | None:
        async def tx(s: AsyncClientSession, emit: Emit) -> Restriction | None:
            doc = await self._restrictions.find_one_and_delete(
                {"_id": f"{app_id}/{restriction_id}", "app_id": app_id, **_applies(now)},
                session=s)
            if doc is None:
                return None
            lifted = _restriction(doc)
            emit(restriction_event(DELETED, lifted, now))
            return lifted

        return await self._log.transact(tx)

    async def list_restrictions(self, app_id: str, now: datetime, limit: int,
                                after: Position | None, *, user_id: str = "",
                                conversation_id: str | None = None) -> list[Restriction]:
        query: dict[str, Any] = {"app_id": app_id, "$and": [
            _applies(now), after_position(after, "create_time", "restriction_id")]}
        if user_id:
            query["user_id"] = user_id
        if conversation_id is not None:
            query["conversation_id"] = conversation_id
        cursor = self._restrictions.find(query).sort(
            [("create_time", ASCENDING), ("restriction_id", ASCENDING)]).limit(limit)
        return [_restriction(doc) async for doc in cursor]

    async def user_restrictions(self, app_id: str, user_id: str, now: datetime
                                ) -> list[Restriction]:
        cursor = self._restrictions.find({"app_id": app_id, "user_id": user_id,
                                          **_applies(now)})
        return [_restriction(doc) async for doc in cursor]
