"""AppStore on MongoDB."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.apps.models import KEEP, NO_GUESTS, ApiKey, App, GuestAccess, Keep
from services.apps.store import Position
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.core.errors import StoreConflict
from services.core.principal import FULL_SCOPE


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["apps"].create_index([("create_time", ASCENDING), ("_id", ASCENDING)])
    await db["api_keys"].create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("key_id", ASCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    await db["apps"].create_index(
        [("organization_id", ASCENDING), ("create_time", ASCENDING), ("_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2)


def _retention_ms(value: timedelta) -> int:
    return value // timedelta(milliseconds=1)


def _app_doc(app: App) -> Document:
    doc: Document = {"_id": app.app_id, "display_name": app.display_name, "plan": app.plan,
                     "create_time": app.create_time, "update_time": app.update_time,
                     "organization_id": app.organization_id}
    if app.media_retention is not None:  # absent: the server's default
        doc["media_retention_ms"] = _retention_ms(app.media_retention)
    if app.guest_access != NO_GUESTS:  # absent: no guests
        doc["guest_access"] = _guests_doc(app.guest_access)
    return doc


def _guests_doc(guests: GuestAccess) -> Document:
    lifetime = guests.session_lifetime
    return {"enabled": guests.enabled,
            "session_lifetime_ms": None if lifetime is None else _retention_ms(lifetime)}


def _guests(doc: Document | None) -> GuestAccess:
    if doc is None:  # never set (and apps stored before guests existed): no guests
        return NO_GUESTS
    lifetime_ms = doc.get("session_lifetime_ms")
    return GuestAccess(bool(doc.get("enabled")),
                       None if lifetime_ms is None else timedelta(milliseconds=lifetime_ms))


def _app(doc: Document) -> App:
    retention_ms = doc.get("media_retention_ms")
    return App(doc["_id"], doc["display_name"], doc["plan"], doc["create_time"],
               doc["update_time"],
               None if retention_ms is None else timedelta(milliseconds=retention_ms),
               doc.get("delete_time"), doc.get("purge_time"), doc.get("organization_id", ""),
               _guests(doc.get("guest_access")))


def _key_doc(key: ApiKey) -> Document:
    # _id joins app and key id: a key is only ever found through its app.
    return {"_id": f"{key.app_id}/{key.key_id}", "app_id": key.app_id, "key_id": key.key_id,
            "display_name": key.display_name, "secret_hash": key.secret_hash,
            "create_time": key.create_time, "revoke_time": key.revoke_time,
            "scopes": sorted(key.scopes), "expire_time": key.expire_time}


def _key(doc: Document) -> ApiKey:
    # Keys stored before scopes existed have none recorded: they keep every scope.
    return ApiKey(doc["app_id"], doc["key_id"], doc["display_name"], doc["secret_hash"],
                  doc["create_time"], doc.get("revoke_time"),
                  frozenset(doc.get("scopes", FULL_SCOPE)), doc.get("expire_time"))


class MongoAppStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._apps = db.db["apps"]
        self._keys = db.db["api_keys"]

    async def migrate(self) -> None:
        await self._mongo.migrate("apps", MIGRATIONS)

    async def create_app(self, app: App, first_key: ApiKey | None) -> None:
        async def tx(session: AsyncClientSession) -> None:
            await self._apps.insert_one(_app_doc(app), session=session)
            if first_key is not None:
                await self._keys.insert_one(_key_doc(first_key), session=session)

        try:
            await self._mongo.transaction(tx)
        except DuplicateKeyError as exc:
            raise StoreConflict(app.app_id) from exc

    async def get_app(self, app_id: str) -> App | None:
        doc = await self._apps.find_one({"_id": app_id})
        return None if doc is None else _app(doc)

    async def list_apps(self, limit: int, after: Position | None,
                        organization_id: str | None = None) -> list[App]:
        query = after_position(after, "create_time", "_id")
        if organization_id is not None:
            query["organization_id"] = organization_id
        cursor = self._apps.find(query).sort(
            [("create_time", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [_app(doc) async for doc in cursor]

    async def update_app(self, app_id: str, update_time: datetime, *,
                         display_name: str | None = None, plan: str | None = None,
                         media_retention: timedelta | Keep | None = KEEP,
                         guest_access: GuestAccess | None = None) -> App | None:
        changes: Document = {"update_time": update_time}
        if guest_access is not None:
            changes["guest_access"] = _guests_doc(guest_access)
        update: Document = {"$set": changes}
        if display_name is not None:
            changes["display_name"] = display_name
        if plan is not None:
            changes["plan"] = plan
        if media_retention is None:
            update["$unset"] = {"media_retention_ms": ""}
        elif not isinstance(media_retention, Keep):
            changes["media_retention_ms"] = _retention_ms(media_retention)
        doc = await self._apps.find_one_and_update(
            {"_id": app_id}, update, return_document=ReturnDocument.AFTER)
        return None if doc is None else _app(doc)

    async def mark_deleted(self, app_id: str, when: datetime | None,
                           purge_time: datetime | None) -> App | None:
        doc = await self._apps.find_one_and_update(
            {"_id": app_id}, {"$set": {"delete_time": when, "purge_time": purge_time}},
            return_document=ReturnDocument.AFTER)
        return None if doc is None else _app(doc)

    async def create_api_key(self, key: ApiKey) -> None:
        try:
            await self._keys.insert_one(_key_doc(key))
        except DuplicateKeyError as exc:
            raise StoreConflict(key.key_id) from exc

    async def get_api_key(self, app_id: str, key_id: str) -> ApiKey | None:
        doc = await self._keys.find_one({"_id": f"{app_id}/{key_id}", "app_id": app_id})
        return None if doc is None else _key(doc)

    async def list_api_keys(self, app_id: str, limit: int, after: Position | None
                            ) -> list[ApiKey]:
        query = {"app_id": app_id, **after_position(after, "create_time", "key_id")}
        cursor = self._keys.find(query).sort(
            [("create_time", ASCENDING), ("key_id", ASCENDING)]).limit(limit)
        return [_key(doc) async for doc in cursor]

    async def revoke_api_key(self, app_id: str, key_id: str, when: datetime) -> ApiKey | None:
        selector = {"_id": f"{app_id}/{key_id}", "app_id": app_id}
        await self._keys.update_one({**selector, "revoke_time": None},
                                    {"$set": {"revoke_time": when}})
        doc = await self._keys.find_one(selector)
        return None if doc is None else _key(doc)
