"""Retention policies and legal holds on MongoDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.compliance.models import LegalHold, RetentionPolicy
from services.compliance.store import Position
from services.core.clock import from_ms, ms, to_ms
from services.core.db.mongo import Document, MongoDatabase, MongoMigration


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["legal_holds"].create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("hold_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _policy(doc: Document) -> RetentionPolicy:
    return RetentionPolicy(
        doc["_id"], None if doc["messages_ms"] is None else timedelta(
            milliseconds=doc["messages_ms"]),
        {k: timedelta(milliseconds=v) for k, v in doc["types"].items()}, doc["update_time"])


def _hold(doc: Document) -> LegalHold:
    return LegalHold(doc["app_id"], doc["hold_id"], doc["conversation_id"], doc["user_id"],
                     doc["reason"], from_ms(doc["create_time"]))


class MongoComplianceStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._policies = db.db["retention_policies"]
        self._holds = db.db["legal_holds"]
        self._counts = db.db["legal_hold_apps"]

    async def migrate(self) -> None:
        await self._mongo.migrate("compliance", MIGRATIONS)

    async def get_policy(self, app_id: str) -> RetentionPolicy | None:
        doc = await self._policies.find_one({"_id": app_id})
        return None if doc is None else _policy(doc)

    async def put_policy(self, policy: RetentionPolicy) -> None:
        await self._policies.replace_one({"_id": policy.app_id}, {
            "_id": policy.app_id,
            "messages_ms": None if policy.messages is None else ms(policy.messages),
            "types": {k: ms(v) for k, v in policy.types.items()},
            "update_time": policy.update_time}, upsert=True)

    async def policies(self) -> list[RetentionPolicy]:
        return [_policy(doc) async for doc in self._policies.find({})]

    async def create_hold(self, hold: LegalHold, limit: int) -> bool:
        async def tx(s: AsyncClientSession) -> bool:
            # Holds placed at once both write this document: one is retried after the
            # other, and counts it, so the limit holds.
            await self._counts.update_one({"_id": hold.app_id}, {"$set": {"last": hold.hold_id}},
                                          upsert=True, session=s)
            if await self._holds.count_documents({"app_id": hold.app_id}, session=s) >= limit:
                return False
            await self._holds.insert_one({
                "_id": f"{hold.app_id}/{hold.hold_id}", "app_id": hold.app_id,
                "hold_id": hold.hold_id, "conversation_id": hold.conversation_id,
                "user_id": hold.user_id, "reason": hold.reason,
                "create_time": to_ms(hold.create_time)}, session=s)
            return True

        return await self._mongo.transaction(tx)

    async def list_holds(self, app_id: str, limit: int, after: Position | None
                         ) -> list[LegalHold]:
        match: dict[str, Any] = {"app_id": app_id}
        if after is not None:
            match["$or"] = [{"create_time": {"$gt": after[0]}},
                            {"create_time": after[0], "hold_id": {"$gt": after[1]}}]
        cursor = self._holds.find(match).sort([("create_time", ASCENDING),
                                               ("hold_id", ASCENDING)]).limit(limit)
        return [_hold(doc) async for doc in cursor]

    async def delete_hold(self, app_id: str, hold_id: str) -> bool:
        done = await self._holds.delete_one({"_id": f"{app_id}/{hold_id}"})
        return done.deleted_count == 1
