"""Data keys on MongoDB: a document per owner, `_id` "{app}/{owner}", in a database of
their own (CAAS_MONGODB_KEYS_DATABASE), apart from the data they seal: its backups
can be kept apart and shorter, so that a key erased (crypto-shredding) is soon gone
from all of them while the data's backups hold only ciphertext."""

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
    def __init__(self, db: MongoDatabase, legacy: MongoDatabase | None = None) -> None:
        """`legacy`: the store's own database, where data keys were kept before; they
        move from there on migrating."""
        self._mongo = db
        self._keys = db.db["data_keys"]
        self._legacy = legacy

    async def migrate(self) -> None:
        await self._mongo.migrate("keys", MIGRATIONS)
        if self._legacy is not None and self._legacy.db.name != self._mongo.db.name:
            await self._move_from(self._legacy)

    async def _move_from(self, legacy: MongoDatabase) -> None:
        """Copy the keys `legacy` holds, then drop them there (a crash between the two
        copies them again: a key already here stays)."""
        old = legacy.db["data_keys"]
        moved = False
        async for doc in old.find({}):
            moved = True
            with contextlib.suppress(DuplicateKeyError):
                await self._keys.insert_one(doc)
        if moved:
            await old.drop()

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

    async def delete_app(self, app_id: str) -> int:
        return (await self._keys.delete_many({"app_id": app_id})).deleted_count

    async def compact(self) -> bool:
        return False  # MongoDB's files are the database's to compact
