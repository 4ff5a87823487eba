"""The audit log on MongoDB: one collection, a document per record, never updated.
Two processes appending at once race for the next sequence; the unique index lets one
win and the other take the place after it."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.audit.models import GENESIS, ActorKind, AuditEntry, AuditRecord, chained
from services.audit.store import AuditQuery
from services.core.db.mongo import Document, MongoDatabase, MongoMigration

APPEND_ATTEMPTS = 50


async def _v1(db: AsyncDatabase[Document]) -> None:
    records = db["audit_records"]
    await records.create_index([("app_id", ASCENDING), ("sequence", ASCENDING)], unique=True)
    await records.create_index([("app_id", ASCENDING), ("time", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _doc(record: AuditRecord) -> Document:
    entry = record.entry
    return {"app_id": entry.app_id, "sequence": record.sequence, "time": entry.time,
            "actor_kind": entry.actor_kind.value, "actor_id": entry.actor_id,
            "action": entry.action, "target": entry.target, "request_id": entry.request_id,
            "code": entry.code, "reason": entry.reason, "details": dict(entry.details),
            "previous_hash": record.previous_hash, "hash": record.hash}


def _record(doc: Document) -> AuditRecord:
    entry = AuditEntry(doc["app_id"], doc["time"], ActorKind(doc["actor_kind"]),
                       doc["actor_id"], doc["action"], doc["target"], doc["request_id"],
                       doc["code"], doc["reason"], doc["details"])
    return AuditRecord(entry, doc["sequence"], doc["previous_hash"], doc["hash"])


class MongoAuditStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._records = db.db["audit_records"]

    async def migrate(self) -> None:
        await self._mongo.migrate("audit", MIGRATIONS)

    async def append(self, entry: AuditEntry) -> AuditRecord:
        for _ in range(APPEND_ATTEMPTS):
            last = await self._records.find_one({"app_id": entry.app_id},
                                                sort=[("sequence", DESCENDING)])
            record = chained(entry, 1, GENESIS) if last is None else chained(
                entry, last["sequence"] + 1, last["hash"])
            try:
                await self._records.insert_one(_doc(record))
            except DuplicateKeyError:
                continue  # another process took this place: chain after its record
            return record
        raise RuntimeError(f"audit append for {entry.app_id} lost {APPEND_ATTEMPTS} races")

    async def list_records(self, app_id: str, query: AuditQuery, limit: int,
                           before: int | None) -> list[AuditRecord]:
        match: dict[str, Any] = {"app_id": app_id}
        for key, value in (("action", query.action), ("target", query.target),
                           ("actor_id", query.actor_id), ("code", query.code),
                           ("actor_kind", query.actor_kind and query.actor_kind.value)):
            if value:
                match[key] = value
        times: dict[str, Any] = {}
        if query.start_time is not None:
            times["$gte"] = query.start_time
        if query.end_time is not None:
            times["$lt"] = query.end_time
        if times:
            match["time"] = times
        if before is not None:
            match["sequence"] = {"$lt": before}
        cursor = self._records.find(match).sort("sequence", DESCENDING).limit(limit)
        return [_record(doc) async for doc in cursor]

    async def scan(self, app_id: str, after: int, limit: int) -> list[AuditRecord]:
        cursor = self._records.find({"app_id": app_id, "sequence": {"$gt": after}}
                                    ).sort("sequence", ASCENDING).limit(limit)
        return [_record(doc) async for doc in cursor]
