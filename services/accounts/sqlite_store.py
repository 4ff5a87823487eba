"""AccountStore on SQLite: a row per record, its fields as JSON beside the columns
that are looked up or ordered by."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime
from typing import Any

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
from services.core.db.sqlite import Migration, SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE accounts (account_id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
    " doc TEXT NOT NULL)",
    "CREATE TABLE account_tokens (token_hash TEXT PRIMARY KEY, purpose TEXT NOT NULL,"
    " account_id TEXT NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX account_tokens_by_account ON account_tokens (account_id, purpose)",
    "CREATE TABLE account_sessions (account_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    " create_time INTEGER NOT NULL, expire_time INTEGER NOT NULL, doc TEXT NOT NULL,"
    " PRIMARY KEY (account_id, session_id))",
    "CREATE INDEX account_sessions_by_time ON account_sessions"
    " (account_id, create_time, session_id)",
    "CREATE TABLE login_events (account_id TEXT NOT NULL, event_id TEXT NOT NULL,"
    " time INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (account_id, event_id))",
    "CREATE INDEX login_events_by_time ON login_events (account_id, time, event_id)",
),)


def _doc(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return None if row is None else dict(json.loads(row[0]))


class SqliteAccountStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("accounts", MIGRATIONS)

    async def create_account(self, account: Account) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute("INSERT INTO accounts VALUES (?, ?, ?)",
                             (account.account_id, account.email,
                              json.dumps(account_doc(account))))
            except sqlite3.IntegrityError:
                return False
            return True
        return await self._db.write(body)

    async def get_account(self, account_id: str) -> Account | None:
        doc = await self._db.read(lambda c: _doc(c.execute(
            "SELECT doc FROM accounts WHERE account_id = ?", (account_id,)).fetchone()))
        return None if doc is None else account_of(doc)

    async def account_by_email(self, email: str) -> Account | None:
        doc = await self._db.read(lambda c: _doc(c.execute(
            "SELECT doc FROM accounts WHERE email = ?", (email,)).fetchone()))
        return None if doc is None else account_of(doc)

    async def update_account(self, account_id: str, change: Change) -> Account | None:
        def body(conn: sqlite3.Connection) -> Account | None:
            doc = _doc(conn.execute("SELECT doc FROM accounts WHERE account_id = ?",
                                    (account_id,)).fetchone())
            if doc is None:
                return None
            old = account_of(doc)
            new = replace(change(old), version=old.version + 1)
            conn.execute("UPDATE accounts SET email = ?, doc = ? WHERE account_id = ?",
                         (new.email, json.dumps(account_doc(new)), account_id))
            return new
        return await self._db.write(body)

    async def put_token(self, token: AccountToken) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM account_tokens WHERE account_id = ? AND purpose = ?",
                         (token.account_id, token.purpose.value))
            conn.execute("INSERT INTO account_tokens VALUES (?, ?, ?, ?)",
                         (token.token_hash, token.purpose.value, token.account_id,
                          json.dumps({"token_hash": token.token_hash,
                                      "purpose": token.purpose.value,
                                      "account_id": token.account_id,
                                      "create_time": to_ms(token.create_time),
                                      "expire_time": to_ms(token.expire_time)})))
        await self._db.write(body)

    async def take_token(self, purpose: Purpose, token_hash: str, now: datetime
                         ) -> AccountToken | None:
        def body(conn: sqlite3.Connection) -> AccountToken | None:
            doc = _doc(conn.execute(
                "DELETE FROM account_tokens WHERE token_hash = ? AND purpose = ?"
                " RETURNING doc", (token_hash, purpose.value)).fetchone())
            token = None if doc is None else token_of(doc)
            return token if token is not None and now < token.expire_time else None
        return await self._db.write(body)

    async def create_session(self, session: AccountSession) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO account_sessions VALUES (?, ?, ?, ?, ?)",
                         (session.account_id, session.session_id,
                          to_ms(session.create_time), to_ms(session.expire_time),
                          json.dumps(session_doc(session))))
        await self._db.write(body)

    async def get_session(self, account_id: str, session_id: str) -> AccountSession | None:
        doc = await self._db.read(lambda c: _doc(c.execute(
            "SELECT doc FROM account_sessions WHERE account_id = ? AND session_id = ?",
            (account_id, session_id)).fetchone()))
        return None if doc is None else session_of(doc)

    async def list_sessions(self, account_id: str, now: datetime, limit: int,
                            after: Position | None) -> list[AccountSession]:
        where, args = _page("account_id = ? AND expire_time > ?", [account_id, to_ms(now)],
                            "create_time", "session_id", after)
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT doc FROM account_sessions WHERE {where}"
            " ORDER BY create_time DESC, session_id DESC LIMIT ?", (*args, limit)).fetchall())
        return [session_of(json.loads(r[0])) for r in rows]

    async def revoke_sessions(self, account_id: str, now: datetime,
                              session_id: str | None = None) -> list[str]:
        def body(conn: sqlite3.Connection) -> list[str]:
            sql = "SELECT doc FROM account_sessions WHERE account_id = ? AND expire_time > ?"
            args: list[Any] = [account_id, to_ms(now)]
            if session_id is not None:
                sql += " AND session_id = ?"
                args.append(session_id)
            revoked = []
            for (text,) in conn.execute(sql, args).fetchall():
                doc = json.loads(text)
                if doc["revoke_time"] is not None:
                    continue
                doc["revoke_time"] = to_ms(now)
                conn.execute("UPDATE account_sessions SET doc = ? WHERE account_id = ?"
                             " AND session_id = ?", (json.dumps(doc), account_id,
                                                     doc["session_id"]))
                revoked.append(doc["session_id"])
            return revoked
        return await self._db.write(body)

    async def verify_session_mfa(self, account_id: str, session_id: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE account_sessions SET doc = json_set(doc, '$.mfa_verified',"
                         " json('true')) WHERE account_id = ? AND session_id = ?",
                         (account_id, session_id))
        await self._db.write(body)

    async def add_login_event(self, event: LoginEvent) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO login_events VALUES (?, ?, ?, ?)",
                         (event.account_id, event.event_id, to_ms(event.time),
                          json.dumps(login_event_doc(event))))
        await self._db.write(body)

    async def list_login_events(self, account_id: str, since: datetime, limit: int,
                                after: Position | None) -> list[LoginEvent]:
        where, args = _page("account_id = ? AND time >= ?", [account_id, to_ms(since)],
                            "time", "event_id", after)
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT doc FROM login_events WHERE {where}"
            " ORDER BY time DESC, event_id DESC LIMIT ?", (*args, limit)).fetchall())
        return [login_event_of(json.loads(r[0])) for r in rows]


def _page(where: str, args: list[Any], time_column: str, id_column: str,
          after: Position | None) -> tuple[str, list[Any]]:
    """Newest first: the rows below the previous page's last (time, id)."""
    if after is None:
        return where, args
    return (f"{where} AND ({time_column} < ? OR ({time_column} = ? AND {id_column} < ?))",
            [*args, after[0], after[0], after[1]])
