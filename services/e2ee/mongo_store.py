"""The device directory on MongoDB: a document per device (`_id` "{app}/{user}/{device}"),
and one per KeyPackage (claimed with an atomic find-and-delete)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.errors import CapacityExceeded
from services.e2ee.models import Claimed, Device, low_stock
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["devices"].create_index([("app_id", ASCENDING), ("user_id", ASCENDING),
                                      ("create_time", ASCENDING)])
    await db["key_packages"].create_index([("device", ASCENDING), ("ref", ASCENDING)],
                                          unique=True)
    await db["key_packages"].create_index([("app_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _id(app_id: str, user_id: str, device_id: str) -> str:
    return f"{app_id}/{user_id}/{device_id}"


def _device(doc: Document, count: int) -> Device:
    return Device(doc["app_id"], doc["user_id"], doc["device_id"], doc["cipher_suite"],
                  bytes(doc["signature_key"]), doc["session_id"], doc["create_time"], count,
                  doc.get("last_resort") is not None)


class MongoDeviceStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._devices = db.db["devices"]
        self._packages = db.db["key_packages"]
        self._owners = db.db["device_owners"]  # a document per user, written to serialize

    async def migrate(self) -> None:
        await self._mongo.migrate("e2ee", MIGRATIONS)

    async def _with_stock(self, doc: Document, session: AsyncClientSession | None = None
                          ) -> Device:
        return _device(doc, await self._packages.count_documents({"device": doc["_id"]},
                                                                 session=session))

    async def create_device(self, device: Device, limit: int) -> tuple[Device, bool]:
        d = device
        key = _id(d.app_id, d.user_id, d.device_id)

        async def tx(s: AsyncClientSession) -> tuple[Device, bool]:
            found = await self._devices.find_one({"_id": key}, session=s)
            if found is not None:
                return await self._with_stock(found, s), False
            # Two registrations of the user's at once both write this document: one waits
            # (the driver runs it again), and then counts the other's device.
            await self._owners.update_one({"_id": f"{d.app_id}/{d.user_id}"},
                                          {"$inc": {"writes": 1},
                                           "$setOnInsert": {"app_id": d.app_id}},
                                          upsert=True, session=s)
            count = await self._devices.count_documents(
                {"app_id": d.app_id, "user_id": d.user_id}, session=s)
            if count >= limit:
                raise CapacityExceeded("devices per user", limit)
            await self._devices.insert_one(
                {"_id": key, "app_id": d.app_id, "user_id": d.user_id,
                 "device_id": d.device_id, "cipher_suite": d.cipher_suite,
                 "signature_key": d.signature_key, "session_id": d.session_id,
                 "create_time": d.create_time, "last_resort": None}, session=s)
            return d, True

        try:
            return await self._mongo.transaction(tx)
        except DuplicateKeyError:  # registered concurrently: that one it is
            found = await self.get_device(d.app_id, d.user_id, d.device_id)
            if found is None:
                raise
            return found, False

    async def get_device(self, app_id: str, user_id: str, device_id: str) -> Device | None:
        doc = await self._devices.find_one({"_id": _id(app_id, user_id, device_id)})
        return None if doc is None else await self._with_stock(doc)

    async def list_devices(self, app_id: str, user_ids: Sequence[str], stock: bool = True
                           ) -> list[Device]:
        if not user_ids:
            return []
        cursor = self._devices.find({"app_id": app_id, "user_id": {"$in": list(user_ids)}}
                                    ).sort([("create_time", ASCENDING), ("_id", ASCENDING)])
        if stock:
            return [await self._with_stock(doc) async for doc in cursor]
        return [_device(doc, 0) async for doc in cursor]

    async def _delete(self, key: str, s: AsyncClientSession) -> bool:
        await self._packages.delete_many({"device": key}, session=s)
        return (await self._devices.delete_one({"_id": key}, session=s)).deleted_count > 0

    async def delete_device(self, app_id: str, user_id: str, device_id: str) -> bool:
        key = _id(app_id, user_id, device_id)
        return await self._mongo.transaction(lambda s: self._delete(key, s))

    async def delete_session_devices(self, app_id: str, user_id: str, session_ids: Sequence[str]
                                     ) -> list[str]:
        if not session_ids:
            return []

        async def tx(s: AsyncClientSession) -> list[str]:
            cursor = self._devices.find({"app_id": app_id, "user_id": user_id,
                                         "session_id": {"$in": list(session_ids)}}, session=s)
            ids = [doc["device_id"] async for doc in cursor]
            for device_id in ids:
                await self._delete(_id(app_id, user_id, device_id), s)
            return ids

        return await self._mongo.transaction(tx)

    async def add_key_packages(self, app_id: str, user_id: str, device_id: str,
                               packages: Sequence[tuple[bytes, bytes]], last_resort: bytes,
                               limit: int) -> Device | None:
        key = _id(app_id, user_id, device_id)

        async def tx(s: AsyncClientSession) -> Device | None:
            # Two uploads to the device at once both write its document: one waits, then
            # counts what the other added.
            doc = await self._devices.find_one_and_update(
                {"_id": key}, {"$inc": {"writes": 1}}, return_document=ReturnDocument.AFTER,
                session=s)
            if doc is None:
                return None
            for ref, data in packages:
                await self._packages.update_one(
                    {"device": key, "ref": ref},
                    {"$setOnInsert": {"app_id": app_id, "data": data}},
                    upsert=True, session=s)
            if await self._packages.count_documents({"device": key}, session=s) > limit:
                raise CapacityExceeded("KeyPackages per device", limit)  # aborts
            if last_resort:
                doc = await self._devices.find_one_and_update(
                    {"_id": key}, {"$set": {"last_resort": last_resort}},
                    return_document=ReturnDocument.AFTER, session=s)
                assert doc is not None
            return await self._with_stock(doc, s)

        return await self._mongo.transaction(tx)

    async def claim(self, app_id: str, devices: Sequence[Device], low: int,
                    now: datetime) -> list[Claimed]:
        async def tx(s: AsyncClientSession, emit: Emit) -> list[Claimed]:
            claimed = []
            for device in devices:
                key = _id(app_id, device.user_id, device.device_id)
                taken = await self._packages.find_one_and_delete(
                    {"device": key}, sort=[("_id", ASCENDING)], session=s)
                if taken is not None:
                    claimed.append(Claimed(device, bytes(taken["data"]), False))
                    left = await self._packages.count_documents({"device": key}, session=s)
                    if left < low:
                        emit(low_stock(device, left, now))
                    continue
                doc = await self._devices.find_one({"_id": key}, {"last_resort": 1}, session=s)
                if doc is not None and doc.get("last_resort") is not None:
                    claimed.append(Claimed(device, bytes(doc["last_resort"]), True))
                    emit(low_stock(device, 0, now))
            return claimed

        return await self._log.transact(tx)
