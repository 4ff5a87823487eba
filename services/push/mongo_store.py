"""Push channels and Web Push keys on MongoDB: a document per channel (`_id`
"{app}/{push_device}") and one per app's key (`_id` "{app}/webPushKey"); a per-user
document written by each registration serializes a user's concurrent ones (the
limit)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.clock import to_ms
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.errors import CapacityExceeded
from services.push.codec import (
    attempts_list,
    config_dict,
    config_of,
    push_dict,
    push_of,
    settings_dict,
    settings_of,
)
from services.push.models import (
    CANCELED,
    CLEAR,
    PENDING,
    SENT,
    NotificationSettings,
    Outcome,
    Push,
    PushConfig,
    PushDevice,
    WebPushKey,
)
from services.push.queue import collapsed_due, joined, joins


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["push_devices"].create_index([("app_id", ASCENDING), ("user_id", ASCENDING),
                                           ("create_time", ASCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    """The push queue: documents of `push_dict` (times in epoch ms) and `lease_until`."""
    queue = db["push_queue"]
    await queue.create_index([("state", ASCENDING), ("due_time", ASCENDING)])
    await queue.create_index([("app_id", ASCENDING), ("push_device_id", ASCENDING),
                              ("group", ASCENDING), ("through", ASCENDING)], unique=True)
    await queue.create_index([("app_id", ASCENDING), ("user_id", ASCENDING),
                              ("group", ASCENDING)])
    await queue.create_index([("app_id", ASCENDING), ("user_id", ASCENDING),
                              ("create_time", DESCENDING), ("push_id", DESCENDING)])
    await queue.create_index([("create_time", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2)


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
        self._configs = db.db["push_configs"]
        self._settings = db.db["notification_settings"]
        self._queue = db.db["push_queue"]

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

    async def forget_user(self, app_id: str, user_id: str) -> int:
        of_user = {"app_id": app_id, "user_id": user_id}
        await self._settings.delete_many(of_user)
        await self._queue.delete_many(of_user)
        return (await self._devices.delete_many(of_user)).deleted_count

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

    async def has_devices(self, app_id: str) -> bool:
        return await self._devices.find_one({"app_id": app_id}, {"_id": 1}) is not None

    async def devices_of(self, app_id: str, user_ids: Collection[str]) -> list[PushDevice]:
        cursor = self._devices.find({"app_id": app_id, "user_id": {"$in": sorted(user_ids)}})
        return [_device(doc) async for doc in cursor]

    async def get_config(self, app_id: str) -> PushConfig | None:
        doc = await self._configs.find_one({"_id": app_id})
        return None if doc is None else config_of(app_id, doc["config"])

    async def put_config(self, config: PushConfig) -> None:
        await self._configs.replace_one(
            {"_id": config.app_id}, {"app_id": config.app_id, "config": config_dict(config)},
            upsert=True)

    async def get_settings(self, app_id: str, user_ids: Collection[str]
                           ) -> dict[str, NotificationSettings]:
        cursor = self._settings.find({"app_id": app_id, "user_id": {"$in": sorted(user_ids)}})
        return {doc["user_id"]: settings_of(app_id, doc["user_id"], doc["settings"])
                async for doc in cursor}

    async def put_settings(self, settings: NotificationSettings) -> None:
        await self._settings.replace_one(
            {"_id": f"{settings.app_id}/{settings.user_id}"},
            {"app_id": settings.app_id, "user_id": settings.user_id,
             "settings": settings_dict(settings)}, upsert=True)

    async def enqueue(self, pushes: Sequence[Push], window: timedelta) -> int:
        """In one transaction (the port's promise): a sender claiming a push, or another
        hand-over of the same events, conflicts with it and it runs again on what they
        wrote — nothing is joined to a push a sender took, and no event is lost."""
        if not pushes:
            return 0

        async def tx(s: AsyncClientSession) -> int:
            newest: dict[tuple[str, str, str], Document] = {}
            async for found in self._queue.find(
                    {"app_id": {"$in": sorted({p.app_id for p in pushes})},
                     "push_device_id": {"$in": sorted({p.push_device_id for p in pushes})},
                     "group": {"$in": sorted({p.group for p in pushes})}},
                    session=s).sort("through", ASCENDING):
                newest[found["app_id"], found["push_device_id"], found["group"]] = found
            writes: list[InsertOne[Document] | UpdateOne] = []
            joins_made = 0
            for push in pushes:
                key = (push.app_id, push.push_device_id, push.group)
                doc = newest.get(key)
                before = None if doc is None else push_of(doc)  # its group's newest push
                if before is not None and before.through >= push.through:
                    continue  # this event is in it already
                if doc is not None and before is not None and joins(
                        push, before, held=doc.get("lease_until") is not None):
                    after = {**push_dict(joined(before, push)), "lease_until": None}
                    writes.append(UpdateOne({"_id": before.push_id, "state": PENDING,
                                             "lease_until": None, "through": before.through},
                                            {"$set": after}))
                    joins_made += 1
                    newest[key] = after
                    continue
                due = collapsed_due(push, before, window)
                added = {"_id": push.push_id, **push_dict(push), "due_time": to_ms(due),
                         "lease_until": None}
                writes.append(InsertOne(added))
                newest[key] = added
            if writes:
                result = await self._queue.bulk_write(writes, ordered=True, session=s)
                if result.matched_count != joins_made:  # changed under the snapshot
                    raise RuntimeError("a pending push changed while joining: retry")
            return len(writes)

        # One app's hand-overs queue in this process rather than conflict.
        return await self._mongo.transaction(tx, ("push-queue", pushes[0].app_id))

    async def cancel_group(self, app_id: str, user_id: str, group: str, sequence: int,
                           now: datetime) -> list[tuple[str, str]]:
        await self._queue.update_many(
            {"app_id": app_id, "user_id": user_id, "group": group, "state": PENDING,
             "$or": [{"lease_until": None}, {"lease_until": {"$lte": to_ms(now)}}],
             "kind": {"$ne": CLEAR}, "sequence": {"$lte": sequence}},
            {"$set": {"state": CANCELED}})
        newest: dict[str, Push] = {}
        async for doc in self._queue.find(
                {"app_id": app_id, "user_id": user_id, "group": group,
                 "state": {"$ne": CANCELED}}).sort("through", ASCENDING):
            newest[doc["push_device_id"]] = push_of(doc)
        return [(p.push_device_id, p.provider) for p in newest.values()
                if p.state == SENT and p.kind != CLEAR and p.sequence <= sequence]

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Push]:
        claimed = []
        free = {"state": PENDING, "due_time": {"$lte": to_ms(now)},
                "$or": [{"lease_until": None}, {"lease_until": {"$lte": to_ms(now)}}]}
        async for doc in self._queue.find(free, {"_id": 1}).sort("due_time", ASCENDING
                                                                  ).limit(limit):
            taken = await self._queue.find_one_and_update(
                {"_id": doc["_id"], **free}, {"$set": {"lease_until": to_ms(now + lease)}})
            if taken is not None:  # else another process took it first
                claimed.append(push_of(taken))
        return claimed

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        writes = []
        for outcome in outcomes:
            change: Document = {"$set": {"state": outcome.state, "lease_until": None}}
            if outcome.due_time is not None:
                change["$set"]["due_time"] = to_ms(outcome.due_time)
            attempt = outcome.attempt
            if outcome.state == SENT and attempt is not None:
                change["$set"]["send_time"] = to_ms(attempt.time)
            if attempt is not None:
                change["$push"] = {"attempts": attempts_list((attempt,))[0]}
            writes.append(UpdateOne({"_id": outcome.push.push_id}, change))
        if writes:
            await self._queue.bulk_write(writes, ordered=False)

    async def list_pushes(self, app_id: str, user_id: str, limit: int,
                          before: tuple[int, str] | None) -> list[Push]:
        query: Document = {"app_id": app_id, "user_id": user_id}
        if before is not None:
            at = before[0]
            query["$or"] = [{"create_time": {"$lt": at}},
                            {"create_time": at, "push_id": {"$lt": before[1]}}]
        cursor = self._queue.find(query).sort(
            [("create_time", DESCENDING), ("push_id", DESCENDING)]).limit(limit)
        return [push_of(doc) async for doc in cursor]

    async def purge_pushes(self, before: datetime) -> int:
        result = await self._queue.delete_many({"create_time": {"$lt": to_ms(before)},
                                                "state": {"$ne": PENDING}})
        return result.deleted_count
