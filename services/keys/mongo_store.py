"""Data keys on MongoDB: a document per owner, `_id` "{app}/{owner}"."""

from __future__ import annotations

import contextlib

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.keys.models import DataKey, WrappedKey


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["data_keys"].create_index([("kek_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _key(doc: Document) -> DataKey:
    return DataKey(doc["app_id"], doc["owner"], doc["key_id"],
                   WrappedKey(doc["kek_id"], bytes(doc["wrapped"])), doc["create_time"])


class MongoDataKeyStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._keys = db.db["data_keys"]

    async def migrate(self) -> None:
        await self._mongo.migrate("keys", MIGRATIONS)

    async def get_key(self, app_id: str, owner: str) -> DataKey | None:
        doc = await self._keys.find_one({"_id": f"{app_id}/{owner}"})
        return None if doc is None else _key(doc)

    async def add_key(self, key: DataKey) -> DataKey:
        # Another process may have made the owner's key first: theirs it is.
        with contextlib.suppress(DuplicateKeyError):
            await self._keys.insert_one({
                "_id": f"{key.app_id}/{key.owner}", "app_id": key.app_id, "owner": key.owner,
                "key_id": key.key_id, "kek_id": key.wrapped.kek_id, "wrapped": key.wrapped.blob,
                "create_time": key.create_time})
        found = await self.get_key(key.app_id, key.owner)
        assert found is not None
        return found

    async def wrapped_by_other(self, kek_id: str, limit: int) -> list[DataKey]:
        cursor = self._keys.find({"kek_id": {"$ne": kek_id}}).limit(limit)
        return [_key(doc) async for doc in cursor]

    async def rewrap(self, key: DataKey, wrapped: WrappedKey) -> bool:
        done = await self._keys.update_one(
            {"_id": f"{key.app_id}/{key.owner}", "key_id": key.key_id,
             "kek_id": key.wrapped.kek_id, "wrapped": key.wrapped.blob},
            {"$set": {"kek_id": wrapped.kek_id, "wrapped": wrapped.blob}})
        return done.modified_count == 1

    async def delete_key(self, app_id: str, owner: str) -> bool:
        done = await self._keys.delete_one({"_id": f"{app_id}/{owner}"})
        return done.deleted_count == 1
