"""Retention policies and legal holds on MongoDB."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.compliance.models import LegalHold, RetentionPolicy
from services.compliance.operations import Operation
from services.compliance.operations import Position as OperationPosition
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


async def _operations_v1(db: AsyncDatabase[Document]) -> None:
    operations = db["operations"]
    await operations.create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("operation_id", ASCENDING)])
    await operations.create_index([("stage", ASCENDING), ("lease_until", ASCENDING)])
    # One operation not done per app, type and target: `running` is set while it runs.
    await operations.create_index([("running", ASCENDING)], unique=True, sparse=True)


OPERATION_MIGRATIONS: tuple[MongoMigration, ...] = (_operations_v1,)


def _operation_doc(op: Operation) -> Document:
    assert op.create_time is not None and op.update_time is not None
    doc: Document = {
        "_id": f"{op.app_id}/{op.operation_id}", "app_id": op.app_id,
        "operation_id": op.operation_id, "type": op.type, "target": op.target,
        "stage": op.stage, "progress": op.progress, "counts": dict(op.counts),
        "error": op.error, "attempts": op.attempts, "create_time": to_ms(op.create_time),
        "update_time": to_ms(op.update_time),
        "lease_until": None if op.lease_until is None else to_ms(op.lease_until)}
    if not op.done:
        doc["running"] = f"{op.app_id}/{op.type}/{op.target}"
    return doc


def _operation(doc: Document) -> Operation:
    return Operation(doc["app_id"], doc["operation_id"], doc["type"], doc["target"],
                     doc["stage"], doc["progress"], doc["counts"], doc["error"],
                     doc["attempts"], from_ms(doc["create_time"]), from_ms(doc["update_time"]),
                     None if doc["lease_until"] is None else from_ms(doc["lease_until"]))


class MongoOperationStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._ops = db.db["operations"]

    async def migrate(self) -> None:
        await self._mongo.migrate("operations", OPERATION_MIGRATIONS)

    async def start(self, operation: Operation) -> Operation:
        with contextlib.suppress(DuplicateKeyError):
            await self._ops.insert_one(_operation_doc(operation))
            return operation
        found = await self._ops.find_one(
            {"running": f"{operation.app_id}/{operation.type}/{operation.target}"})
        if found is None:  # it finished meanwhile: start anew
            return await self.start(operation)
        return _operation(found)

    async def get(self, app_id: str, operation_id: str) -> Operation | None:
        doc = await self._ops.find_one({"_id": f"{app_id}/{operation_id}"})
        return None if doc is None else _operation(doc)

    async def list_operations(self, app_id: str, limit: int, before: OperationPosition | None
                   ) -> list[Operation]:
        match: dict[str, Any] = {"app_id": app_id}
        if before is not None:
            match["$or"] = [{"create_time": {"$lt": before[0]}},
                            {"create_time": before[0], "operation_id": {"$lt": before[1]}}]
        cursor = self._ops.find(match).sort([("create_time", DESCENDING),
                                             ("operation_id", DESCENDING)]).limit(limit)
        return [_operation(doc) async for doc in cursor]

    async def finished_before(self, type: str, before: datetime, limit: int
                              ) -> list[Operation]:
        cursor = self._ops.find({"stage": "done", "type": type, "error": "",
                                 "update_time": {"$lt": to_ms(before)}}
                                ).sort("update_time", ASCENDING).limit(limit)
        return [_operation(doc) async for doc in cursor]

    async def claim(self, now: datetime, until: datetime) -> Operation | None:
        doc = await self._ops.find_one_and_update(
            {"stage": {"$ne": "done"},
             "$or": [{"lease_until": None}, {"lease_until": {"$lt": to_ms(now)}}]},
            {"$set": {"lease_until": to_ms(until)}, "$inc": {"attempts": 1}},
            sort=[("create_time", ASCENDING)], return_document=ReturnDocument.AFTER)
        return None if doc is None else _operation(doc)

    async def save(self, operation: Operation) -> None:
        doc = _operation_doc(operation)
        key = doc.pop("_id")
        unset = {} if "running" in doc else {"$unset": {"running": ""}}
        await self._ops.update_one({"_id": key}, {"$set": doc, **unset}, upsert=True)
