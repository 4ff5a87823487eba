"""Push channels and Web Push keys on MongoDB: a document per channel (`_id`
"{app}/{push_device}") and one per app's key (`_id` "{app}/webPushKey"); a per-user
document written by each registration serializes a user's concurrent ones (the
limit)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.errors import CapacityExceeded
from services.push.models import PushDevice, WebPushKey


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["push_devices"].create_index([("app_id", ASCENDING), ("user_id", ASCENDING),
                                           ("create_time", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _device(doc: Document) -> PushDevice:
    return PushDevice(doc["app_id"], doc["user_id"], doc["push_device_id"], doc["provider"],
                      doc["address"], doc["keys"], doc["device_id"], doc["locale"],
                      doc["create_time"], doc["update_time"])


def _key(doc: Document) -> WebPushKey:
    return WebPushKey(doc["app_id"], bytes(doc["public_key"]), bytes(doc["private_key"]),
                      doc["create_time"], bytes(doc["previous_public_key"]),
                      bytes(doc["previous_private_key"]))


class MongoPushStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._devices = db.db["push_devices"]
        self._owners = db.db["push_owners"]  # a document per user, written to serialize
        self._keys = db.db["web_push_keys"]

    async def migrate(self) -> None:
        await self._mongo.migrate("push", MIGRATIONS)

    async def put_device(self, device: PushDevice, limit: int) -> tuple[PushDevice, bool]:
        d = device
        key = f"{d.app_id}/{d.push_device_id}"

        async def tx(s: AsyncClientSession) -> tuple[PushDevice, bool]:
            await self._owners.update_one({"_id": f"{d.app_id}/{d.user_id}"},
                                          {"$inc": {"writes": 1}}, upsert=True, session=s)
            found = await self._devices.find_one({"_id": key}, session=s)
            if found is None or found["user_id"] != d.user_id:
                held = await self._devices.count_documents(
                    {"app_id": d.app_id, "user_id": d.user_id}, session=s)
                if held >= limit:
                    raise CapacityExceeded("push devices per user", limit)
            stored = PushDevice(d.app_id, d.user_id, d.push_device_id, d.provider, d.address,
                                dict(d.keys), d.device_id, d.locale,
                                d.update_time if found is None else found["create_time"],
                                d.update_time)
            fields: dict[str, Any] = {
                "app_id": d.app_id, "user_id": d.user_id, "push_device_id": d.push_device_id,
                "provider": d.provider, "address": d.address, "keys": dict(d.keys),
                "device_id": d.device_id, "locale": d.locale,
                "create_time": stored.create_time, "update_time": d.update_time}
            await self._devices.replace_one({"_id": key}, fields, upsert=True, session=s)
            return stored, found is None

        try:
            return await self._mongo.transaction(tx)
        except DuplicateKeyError:  # registered concurrently: register again over it
            return await self.put_device(device, limit)

    async def get_device(self, app_id: str, user_id: str, push_device_id: str
                         ) -> PushDevice | None:
        doc = await self._devices.find_one({"_id": f"{app_id}/{push_device_id}",
                                            "user_id": user_id})
        return None if doc is None else _device(doc)

    async def list_devices(self, app_id: str, user_id: str) -> list[PushDevice]:
        cursor = self._devices.find({"app_id": app_id, "user_id": user_id}).sort(
            [("create_time", ASCENDING), ("push_device_id", ASCENDING)])
        return [_device(doc) async for doc in cursor]

    async def delete_device(self, app_id: str, user_id: str, push_device_id: str) -> bool:
        result = await self._devices.delete_one({"_id": f"{app_id}/{push_device_id}",
                                                 "user_id": user_id})
        return result.deleted_count > 0

    async def delete_user_devices(self, app_id: str, user_id: str) -> int:
        result = await self._devices.delete_many({"app_id": app_id, "user_id": user_id})
        return result.deleted_count

    async def get_key(self, app_id: str) -> WebPushKey | None:
        doc = await self._keys.find_one({"_id": f"{app_id}/webPushKey"})
        return None if doc is None else _key(doc)

    async def put_key(self, key: WebPushKey, replaces: bytes) -> WebPushKey:
        fields = {"app_id": key.app_id, "public_key": key.public_key,
                  "private_key": key.sealed_private_key, "create_time": key.create_time,
                  "previous_public_key": key.previous_public_key,
                  "previous_private_key": key.previous_sealed_private_key}
        key_id = f"{key.app_id}/webPushKey"
        try:
            if replaces:
                await self._keys.replace_one({"_id": key_id, "public_key": replaces}, fields)
            else:
                await self._keys.insert_one({"_id": key_id, **fields})
        except DuplicateKeyError:  # made concurrently: that one it is
            pass
        found = await self.get_key(key.app_id)
        assert found is not None
        return found
