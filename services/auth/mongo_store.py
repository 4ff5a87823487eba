"""AuthStore on MongoDB.

Signing keys of an app live in one document (`signing_keysets`), changed with a
version check, so rotation is a single atomic write. Sessions and refresh tokens
are documents of their own; rotating a refresh token is a transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bson.binary import Binary
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.auth.models import (
    RefreshToken,
    RevokeReason,
    RotateOutcome,
    RotateResult,
    Session,
    SessionState,
    SigningKey,
)
from services.auth.store import KEPT_GENERATIONS, Position
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.core.errors import StoreConflict


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["sessions"].create_index(
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("create_time", DESCENDING),
         ("session_id", DESCENDING)])
    await db["refresh_tokens"].create_index([("app_id", ASCENDING), ("session_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _key_doc(key: SigningKey) -> Document:
    return {"key_id": key.key_id, "private_key": Binary(key.private_key),
            "public_key": Binary(key.public_key), "create_time": key.create_time,
            "expire_time": key.expire_time}


def _key(app_id: str, doc: Document) -> SigningKey:
    return SigningKey(app_id, doc["key_id"], bytes(doc["private_key"]), bytes(doc["public_key"]),
                      doc["create_time"], doc.get("expire_time"))


def _session_doc(session: Session) -> Document:
    return {"_id": f"{session.app_id}/{session.session_id}", "app_id": session.app_id,
            "session_id": session.session_id, "user_id": session.user_id,
            "device_name": session.device_name,
            "access_ttl_ms": int(session.access_ttl.total_seconds() * 1000),
            "create_time": session.create_time, "refresh_time": session.refresh_time,
            "expire_time": session.expire_time, "revoke_time": session.revoke_time,
            "revoke_reason": None if session.revoke_reason is None else session.revoke_reason.value,
            "end_time": session.end_time}


def _session(doc: Document) -> Session:
    reason = doc.get("revoke_reason")
    return Session(doc["app_id"], doc["session_id"], doc["user_id"], doc["device_name"],
                   timedelta(milliseconds=doc["access_ttl_ms"]), doc["create_time"],
                   doc["refresh_time"], doc["expire_time"], doc.get("revoke_time"),
                   None if reason is None else RevokeReason(reason), doc.get("end_time"))


def _token_doc(token: RefreshToken) -> Document:
    return {"_id": f"{token.app_id}/{token.token_hash}", "app_id": token.app_id,
            "session_id": token.session_id, "generation": token.generation,
            "create_time": token.create_time, "used": token.used}


class MongoAuthStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._keysets = db.db["signing_keysets"]
        self._sessions = db.db["sessions"]
        self._tokens = db.db["refresh_tokens"]

    async def migrate(self) -> None:
        await self._mongo.migrate("auth", MIGRATIONS)

    async def signing_keys(self, app_id: str) -> list[SigningKey]:
        doc = await self._keysets.find_one({"_id": app_id})
        if doc is None:
            return []
        keys = [_key(app_id, k) for k in doc["keys"]]
        return sorted(keys, key=lambda k: (k.create_time, k.key_id), reverse=True)

    async def add_first_signing_key(self, key: SigningKey) -> None:
        try:
            await self._keysets.insert_one({"_id": key.app_id, "version": 1,
                                            "keys": [_key_doc(key)]})
        except DuplicateKeyError as exc:
            raise StoreConflict(key.app_id) from exc

    async def rotate_signing_key(self, key: SigningKey, retire_at: datetime) -> None:
        while True:
            doc = await self._keysets.find_one({"_id": key.app_id})
            if doc is None:
                await self.add_first_signing_key(key)
                return
            kept = []
            for old in doc["keys"]:
                if old.get("expire_time") is None:
                    old["expire_time"] = retire_at
                if old["expire_time"] > key.create_time:
                    kept.append(old)
            kept.append(_key_doc(key))
            result = await self._keysets.update_one(
                {"_id": key.app_id, "version": doc["version"]},
                {"$set": {"keys": kept, "version": doc["version"] + 1}})
            if result.modified_count == 1:
                return
            # Another process rotated at the same time: start again from its result.

    async def create_session(self, session: Session, token: RefreshToken) -> None:
        async def tx(s: AsyncClientSession) -> None:
            await self._sessions.insert_one(_session_doc(session), session=s)
            await self._tokens.insert_one(_token_doc(token), session=s)

        try:
            await self._mongo.transaction(tx)
        except DuplicateKeyError as exc:
            raise StoreConflict(session.session_id) from exc

    async def get_session(self, app_id: str, session_id: str) -> Session | None:
        doc = await self._sessions.find_one({"_id": f"{app_id}/{session_id}", "app_id": app_id})
        return None if doc is None else _session(doc)

    async def list_sessions(self, app_id: str, user_id: str, limit: int,
                            after: Position | None) -> list[Session]:
        query = {"app_id": app_id, "user_id": user_id,
                 **after_position(after, "create_time", "session_id", descending=True)}
        cursor = self._sessions.find(query).sort(
            [("create_time", DESCENDING), ("session_id", DESCENDING)]).limit(limit)
        return [_session(doc) async for doc in cursor]

    async def revoke_session(self, app_id: str, session_id: str, when: datetime,
                             reason: RevokeReason) -> Session | None:
        selector = {"_id": f"{app_id}/{session_id}", "app_id": app_id}
        await self._sessions.update_one({**selector, "revoke_time": None},
                                        {"$set": {"revoke_time": when,
                                                  "revoke_reason": reason.value}})
        return await self.get_session(app_id, session_id)

    async def revoke_user_sessions(self, app_id: str, user_id: str, when: datetime,
                                   reason: RevokeReason) -> list[str]:
        selector = {"app_id": app_id, "user_id": user_id, "revoke_time": None}
        live = [doc["session_id"] async for doc in self._sessions.find(selector,
                                                                          {"session_id": 1})]
        if live:
            await self._sessions.update_many(
                {**selector, "session_id": {"$in": live}},
                {"$set": {"revoke_time": when, "revoke_reason": reason.value}})
        return live

    async def find_refresh_token(self, app_id: str, token_hash: str) -> Session | None:
        token = await self._tokens.find_one({"_id": f"{app_id}/{token_hash}", "app_id": app_id})
        return None if token is None else await self.get_session(app_id, token["session_id"])

    async def rotate_refresh_token(self, app_id: str, token_hash: str, new_hash: str,
                                   now: datetime, expire_time: datetime) -> RotateResult:
        async def tx(s: AsyncClientSession) -> RotateResult:
            token = await self._tokens.find_one({"_id": f"{app_id}/{token_hash}",
                                                 "app_id": app_id}, session=s)
            if token is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            selector = {"_id": f"{app_id}/{token['session_id']}", "app_id": app_id}
            doc = await self._sessions.find_one(selector, session=s)
            assert doc is not None
            session = _session(doc)
            if token["used"]:
                if session.revoke_time is None:
                    await self._sessions.update_one(selector, {"$set": {
                        "revoke_time": now,
                        "revoke_reason": RevokeReason.REFRESH_TOKEN_REUSED.value}}, session=s)
                    doc = await self._sessions.find_one(selector, session=s)
                    assert doc is not None
                return RotateResult(RotateOutcome.REUSED, _session(doc))
            if session.state(now) is not SessionState.ACTIVE:
                return RotateResult(RotateOutcome.ENDED, session)
            generation = token["generation"] + 1
            await self._tokens.update_one({"_id": token["_id"], "used": False},
                                          {"$set": {"used": True}}, session=s)
            await self._tokens.insert_one(_token_doc(RefreshToken(
                app_id, new_hash, session.session_id, generation, now)), session=s)
            await self._tokens.delete_many(
                {"app_id": app_id, "session_id": session.session_id,
                 "generation": {"$lte": generation - KEPT_GENERATIONS}}, session=s)
            await self._sessions.update_one(selector, {"$set": {
                "refresh_time": now, "expire_time": session.capped(expire_time)}}, session=s)
            doc = await self._sessions.find_one(selector, session=s)
            assert doc is not None
            return RotateResult(RotateOutcome.ROTATED, _session(doc), generation)

        return await self._mongo.transaction(tx)
