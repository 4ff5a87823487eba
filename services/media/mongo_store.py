"""MediaStore on MongoDB.

An app's usage is one document (`media_usage`: used_bytes, media_count), changed in
the transactions that change it: create (+), mark_deleting and remove of a media not
DELETING yet (-). A create adds its size with a conditional `$inc` (matching only
while `used_bytes <= quota - size`) in the transaction that inserts the media, so
concurrent creates of one app write the same document: all but one get a write
conflict, and the driver runs them again, against the new usage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from bson.binary import Binary
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.events import DomainEvent
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog
from services.media.models import (
    DELETING,
    PENDING,
    READY,
    UPLOADING,
    Media,
    Outcome,
    Processed,
    Rendition,
    Usage,
)

NEVER = datetime.fromtimestamp(0, UTC)  # claim_until of a media nobody holds
SECRET_ID = "url-signing"  # noqa: S105 - the key of the secret's document


async def _v1(db: AsyncDatabase[Document]) -> None:
    media = db["media"]
    # Idempotent creates; also the index of schedule_uploader_deletion.
    await media.create_index(
        [("app_id", ASCENDING), ("uploader_id", ASCENDING), ("request_id", ASCENDING)],
        unique=True)
    # claim (PENDING, oldest first) and due (DELETING).
    await media.create_index([("state", ASCENDING), ("update_time", ASCENDING)])
    # due: UPLOADING past their expiry; scheduled; READY unattached.
    await media.create_index([("state", ASCENDING), ("upload_expire_time", ASCENDING)])
    await media.create_index([("delete_after", ASCENDING)])
    await media.create_index(
        [("state", ASCENDING), ("attached", ASCENDING), ("update_time", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _key(app_id: str, media_id: str) -> str:
    return f"{app_id}/{media_id}"


def _processed_doc(processed: Processed | None) -> Document | None:
    if processed is None:
        return None
    doc = asdict(processed)
    doc["renditions"] = [asdict(r) for r in processed.renditions]
    return doc


def _media_doc(m: Media) -> Document:
    return {"_id": _key(m.app_id, m.media_id), "app_id": m.app_id, "media_id": m.media_id,
            "conversation_id": m.conversation_id, "uploader_id": m.uploader_id,
            "request_id": m.request_id, "file_name": m.file_name, "size_bytes": m.size_bytes,
            "declared_content_type": m.declared_content_type, "state": m.state,
            "upload_id": m.upload_id, "part_size": m.part_size,
            "upload_expire_time": m.upload_expire_time, "create_time": m.create_time,
            "update_time": m.update_time, "processed": _processed_doc(m.processed),
            "failure_reason": m.failure_reason, "attempts": m.attempts,
            "claim_until": m.claim_until or NEVER, "attached": m.attached,
            "delete_after": m.delete_after}


def _processed(doc: Document) -> Processed:
    return Processed(**{**doc, "renditions": tuple(Rendition(**r) for r in doc["renditions"])})


def _media(doc: Document) -> Media:
    processed = doc.get("processed")
    claim_until = doc.get("claim_until", NEVER)
    return Media(doc["app_id"], doc["media_id"], doc["conversation_id"], doc["uploader_id"],
                 doc["request_id"], doc["file_name"], doc["size_bytes"],
                 doc["declared_content_type"], doc["state"], doc["upload_id"],
                 doc["part_size"], doc["upload_expire_time"], doc["create_time"],
                 doc["update_time"], None if processed is None else _processed(processed),
                 doc["failure_reason"], doc["attempts"],
                 None if claim_until == NEVER else claim_until, doc["attached"],
                 doc.get("delete_after"))


def _earlier(at: datetime) -> Document:
    """Filter for the media whose delete_after is later than `at`, or unset."""
    return {"$or": [{"delete_after": None}, {"delete_after": {"$gt": at}}]}


class MongoMediaStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._media = db.db["media"]
        self._usage = db.db["media_usage"]
        self._secrets = db.db["media_secrets"]

    async def migrate(self) -> None:
        await self._mongo.migrate("media", MIGRATIONS)

    async def _by_request(self, media: Media, session: AsyncClientSession | None = None
                          ) -> Media | None:
        doc = await self._media.find_one(
            {"app_id": media.app_id, "uploader_id": media.uploader_id,
             "request_id": media.request_id}, session=session)
        return None if doc is None else _media(doc)

    async def _release(self, app_id: str, size_bytes: int, session: AsyncClientSession
                       ) -> None:
        """Take one media of `size_bytes` out of the app's usage."""
        await self._usage.update_one(
            {"_id": app_id}, {"$inc": {"used_bytes": -size_bytes, "media_count": -1}},
            session=session)

    async def create(self, media: Media, quota_bytes: int) -> Media | None:
        # The usage document exists before the transaction, so that the transactions
        # only ever update it (concurrent upserts of a new one would collide on its key).
        with contextlib.suppress(DuplicateKeyError):
            await self._usage.update_one(
                {"_id": media.app_id}, {"$setOnInsert": {"used_bytes": 0, "media_count": 0}},
                upsert=True)

        async def tx(s: AsyncClientSession) -> Media | None:
            existing = await self._by_request(media, s)
            if existing is not None:
                return existing
            counted = await self._usage.update_one(
                {"_id": media.app_id, "used_bytes": {"$lte": quota_bytes - media.size_bytes}},
                {"$inc": {"used_bytes": media.size_bytes, "media_count": 1}}, session=s)
            if counted.matched_count != 1:
                return None
            await self._media.insert_one(_media_doc(media), session=s)
            return media

        try:
            return await self._mongo.transaction(tx)
        except DuplicateKeyError:  # the same request, committed concurrently
            existing = await self._by_request(media)
            if existing is None:
                raise
            return existing

    async def get(self, app_id: str, media_id: str) -> Media | None:
        doc = await self._media.find_one({"_id": _key(app_id, media_id), "app_id": app_id})
        return None if doc is None else _media(doc)

    async def get_many(self, app_id: str, media_ids: Sequence[str]) -> dict[str, Media]:
        keys = [_key(app_id, m) for m in set(media_ids)]
        if not keys:
            return {}
        cursor = self._media.find({"_id": {"$in": keys}, "app_id": app_id})
        return {doc["media_id"]: _media(doc) async for doc in cursor}

    async def usage(self, app_id: str) -> Usage:
        doc = await self._usage.find_one({"_id": app_id})
        return Usage() if doc is None else Usage(doc["used_bytes"], doc["media_count"])

    async def complete(self, app_id: str, media_id: str, now: datetime) -> Media | None:
        doc = await self._media.find_one_and_update(
            {"_id": _key(app_id, media_id), "app_id": app_id, "state": UPLOADING},
            {"$set": {"state": PENDING, "update_time": now}},
            return_document=ReturnDocument.AFTER)
        if doc is not None:
            return _media(doc)
        return await self.get(app_id, media_id)

    async def claim(self, now: datetime, until: datetime) -> Media | None:
        doc = await self._media.find_one_and_update(
            {"state": PENDING, "claim_until": {"$lt": now}},
            {"$set": {"claim_until": until}, "$inc": {"attempts": 1}},
            sort=[("update_time", ASCENDING)], return_document=ReturnDocument.AFTER)
        return None if doc is None else _media(doc)

    async def finish(self, app_id: str, media_id: str, attempt: int, outcome: Outcome,
                     now: datetime, delete_after: datetime | None,
                     event: DomainEvent | None) -> Media | None:
        selector = {"_id": _key(app_id, media_id), "app_id": app_id, "state": PENDING,
                    "attempts": attempt}

        async def tx(s: AsyncClientSession, emit: Emit) -> Media | None:
            doc = await self._media.find_one_and_update(
                selector,
                {"$set": {"state": outcome.state,
                          "processed": _processed_doc(outcome.processed),
                          "failure_reason": outcome.failure_reason, "update_time": now,
                          "claim_until": NEVER}},
                return_document=ReturnDocument.AFTER, session=s)
            if doc is None:
                return None
            if delete_after is not None and (doc.get("delete_after") is None
                                             or doc["delete_after"] > delete_after):
                doc = await self._media.find_one_and_update(
                    {"_id": doc["_id"]}, {"$set": {"delete_after": delete_after}},
                    return_document=ReturnDocument.AFTER, session=s)
                assert doc is not None
            if event is not None:
                emit(event)
            return _media(doc)

        return await self._log.transact(tx)

    async def mark_attached(self, app_id: str, media_ids: Sequence[str]) -> None:
        keys = [_key(app_id, m) for m in set(media_ids)]
        if keys:
            await self._media.update_many({"_id": {"$in": keys}, "app_id": app_id},
                                          {"$set": {"attached": True}})

    async def schedule_deletion(self, app_id: str, media_ids: Sequence[str],
                                at: datetime) -> None:
        keys = [_key(app_id, m) for m in set(media_ids)]
        if keys:
            await self._media.update_many(
                {"_id": {"$in": keys}, "app_id": app_id, **_earlier(at)},
                {"$set": {"delete_after": at}})

    async def schedule_uploader_deletion(self, app_id: str, uploader_id: str,
                                         at: datetime) -> int:
        selector = {"app_id": app_id, "uploader_id": uploader_id, "state": {"$ne": DELETING}}

        async def tx(s: AsyncClientSession) -> int:
            await self._media.update_many({**selector, **_earlier(at)},
                                          {"$set": {"delete_after": at}}, session=s)
            return await self._media.count_documents(selector, session=s)

        return await self._mongo.transaction(tx)

    async def mark_deleting(self, app_id: str, media_id: str, now: datetime) -> Media | None:
        selector = {"_id": _key(app_id, media_id), "app_id": app_id}

        async def tx(s: AsyncClientSession) -> Media | None:
            doc = await self._media.find_one(selector, session=s)
            if doc is None:
                return None
            before = _media(doc)
            if before.state != DELETING:
                await self._media.update_one(
                    selector, {"$set": {"state": DELETING, "update_time": now}}, session=s)
                await self._release(app_id, before.size_bytes, s)
            return before

        return await self._mongo.transaction(tx)

    async def due(self, now: datetime, unattached_before: datetime, limit: int
                  ) -> list[Media]:
        # One indexed query per case, in the order they matter (crashed deletions first).
        cases: tuple[Document, ...] = (
            {"state": DELETING},
            {"state": UPLOADING, "upload_expire_time": {"$lte": now}},
            {"delete_after": {"$lte": now}},
            {"state": READY, "attached": False, "update_time": {"$lt": unattached_before}},
        )
        found: dict[str, Media] = {}
        for query in cases:
            if len(found) >= limit:
                break
            async for doc in self._media.find(query).limit(limit):
                found.setdefault(doc["_id"], _media(doc))
        return list(found.values())[:limit]

    async def remove(self, app_id: str, media_id: str) -> None:
        async def tx(s: AsyncClientSession) -> None:
            doc = await self._media.find_one_and_delete(
                {"_id": _key(app_id, media_id), "app_id": app_id}, session=s)
            if doc is not None and doc["state"] != DELETING:
                await self._release(app_id, doc["size_bytes"], s)

        await self._mongo.transaction(tx)

    async def signing_secret(self, candidate: bytes) -> bytes:
        for _ in range(2):  # a concurrent first insert wins: then read it
            with contextlib.suppress(DuplicateKeyError):
                doc = await self._secrets.find_one_and_update(
                    {"_id": SECRET_ID}, {"$setOnInsert": {"secret": Binary(candidate)}},
                    upsert=True, return_document=ReturnDocument.AFTER)
                assert doc is not None
                return bytes(doc["secret"])
        raise RuntimeError("the URL signing secret could not be stored")
