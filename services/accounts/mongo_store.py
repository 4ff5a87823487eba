"""AccountStore on MongoDB: a document per record (times as milliseconds)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.accounts.models import Account, AccountSession, AccountToken, LoginEvent, Purpose
from services.accounts.store import (
    Change,
    Position,
    account_doc,
    account_of,
    login_event_doc,
    login_event_of,
    session_doc,
    session_of,
    token_of,
)
from services.core.clock import to_ms
from services.core.db.mongo import Document, MongoDatabase, MongoMigration


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["accounts"].create_index("email", unique=True)
    await db["account_tokens"].create_index([("account_id", ASCENDING),
                                             ("purpose", ASCENDING)])
    # Ascending: newest-first listings walk them backwards.
    await db["account_sessions"].create_index(
        [("account_id", ASCENDING), ("create_time", ASCENDING), ("session_id", ASCENDING)])
    await db["login_events"].create_index(
        [("account_id", ASCENDING), ("time", ASCENDING), ("event_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)
ATTEMPTS = 20  # of an account update that loses to concurrent ones


def _page(position: Position | None, time_field: str, id_field: str) -> Document:
    """Newest first: the documents below the previous page's last (time, id)."""
    if position is None:
        return {}
    return {"$or": [{time_field: {"$lt": position[0]}},
                    {time_field: position[0], id_field: {"$lt": position[1]}}]}


class MongoAccountStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._accounts = db.db["accounts"]
        self._tokens = db.db["account_tokens"]
        self._sessions = db.db["account_sessions"]
        self._logins = db.db["login_events"]

    async def migrate(self) -> None:
        await self._mongo.migrate("accounts", MIGRATIONS)

    async def create_account(self, account: Account) -> bool:
        try:
            await self._accounts.insert_one({"_id": account.account_id,
                                             **account_doc(account)})
        except DuplicateKeyError:
            return False
        return True

    async def get_account(self, account_id: str) -> Account | None:
        doc = await self._accounts.find_one({"_id": account_id})
        return None if doc is None else account_of(doc)

    async def account_by_email(self, email: str) -> Account | None:
        doc = await self._accounts.find_one({"email": email})
        return None if doc is None else account_of(doc)

    async def update_account(self, account_id: str, change: Change) -> Account | None:
        for _ in range(ATTEMPTS):
            doc = await self._accounts.find_one({"_id": account_id})
            if doc is None:
                return None
            old = account_of(doc)
            new = replace(change(old), version=old.version + 1)
            done = await self._accounts.replace_one(
                {"_id": account_id, "version": old.version},
                {"_id": account_id, **account_doc(new)})
            if done.modified_count == 1:
                return new
        raise RuntimeError(f"account {account_id}: too many concurrent updates")

    async def put_token(self, token: AccountToken) -> None:
        async def tx(session: AsyncClientSession) -> None:
            await self._tokens.delete_many({"account_id": token.account_id,
                                            "purpose": token.purpose.value}, session=session)
            await self._tokens.insert_one(
                {"_id": token.token_hash, "token_hash": token.token_hash,
                 "purpose": token.purpose.value, "account_id": token.account_id,
                 "create_time": to_ms(token.create_time),
                 "expire_time": to_ms(token.expire_time)}, session=session)
        await self._mongo.transaction(tx)

    async def take_token(self, purpose: Purpose, token_hash: str, now: datetime
                         ) -> AccountToken | None:
        doc = await self._tokens.find_one_and_delete({"_id": token_hash,
                                                      "purpose": purpose.value})
        token = None if doc is None else token_of(doc)
        return token if token is not None and now < token.expire_time else None

    async def create_session(self, session: AccountSession) -> None:
        await self._sessions.insert_one(
            {"_id": f"{session.account_id}/{session.session_id}", **session_doc(session)})

    async def get_session(self, account_id: str, session_id: str) -> AccountSession | None:
        doc = await self._sessions.find_one({"_id": f"{account_id}/{session_id}"})
        return None if doc is None else session_of(doc)

    async def list_sessions(self, account_id: str, now: datetime, limit: int,
                            after: Position | None) -> list[AccountSession]:
        query: dict[str, Any] = {"account_id": account_id, "expire_time": {"$gt": to_ms(now)},
                                 **_page(after, "create_time", "session_id")}
        cursor = self._sessions.find(query).sort(
            [("create_time", DESCENDING), ("session_id", DESCENDING)]).limit(limit)
        return [session_of(doc) async for doc in cursor]

    async def revoke_sessions(self, account_id: str, now: datetime,
                              session_id: str | None = None) -> list[str]:
        query: dict[str, Any] = {"account_id": account_id, "expire_time": {"$gt": to_ms(now)},
                                 "revoke_time": None}
        if session_id is not None:
            query["session_id"] = session_id
        revoked = [doc["session_id"] async for doc in self._sessions.find(query)]
        if revoked:
            await self._sessions.update_many(
                {**query, "session_id": {"$in": revoked}}, {"$set": {"revoke_time": to_ms(now)}})
        return revoked

    async def verify_session_mfa(self, account_id: str, session_id: str) -> None:
        await self._sessions.update_one({"_id": f"{account_id}/{session_id}"},
                                        {"$set": {"mfa_verified": True}})

    async def add_login_event(self, event: LoginEvent) -> None:
        await self._logins.insert_one({"_id": f"{event.account_id}/{event.event_id}",
                                       **login_event_doc(event)})

    async def list_login_events(self, account_id: str, since: datetime, limit: int,
                                after: Position | None) -> list[LoginEvent]:
        query: dict[str, Any] = {"account_id": account_id, "time": {"$gte": to_ms(since)},
                                 **_page(after, "time", "event_id")}
        cursor = self._logins.find(query).sort(
            [("time", DESCENDING), ("event_id", DESCENDING)]).limit(limit)
        return [login_event_of(doc) async for doc in cursor]
