"""RestrictionStore on the embedded SQLite engine."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from typing import Any

from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog
from services.moderation.events import CREATED, DELETED, restriction_event
from services.moderation.models import Restriction, RestrictionType
from services.moderation.store import Position

MIGRATIONS: tuple[Migration, ...] = (
    (
        # expire_time NULL: until lifted. One row per user, place and type.
        "CREATE TABLE restrictions ("
        " app_id TEXT NOT NULL, restriction_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " conversation_id TEXT NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL,"
        " creator TEXT NOT NULL, create_time INTEGER NOT NULL, expire_time INTEGER,"
        " PRIMARY KEY (app_id, restriction_id))",
        "CREATE UNIQUE INDEX restrictions_by_place"
        " ON restrictions (app_id, user_id, conversation_id, type)",
        "CREATE INDEX restrictions_by_time ON restrictions (app_id, create_time, restriction_id)",
    ),
)

_COLUMNS = ("app_id, restriction_id, user_id, conversation_id, type, reason, creator,"
            " create_time, expire_time")
_APPLIES = "(expire_time IS NULL OR expire_time > ?)"


def _restriction(row: Any) -> Restriction:
    return Restriction(row[0], row[1], row[2], row[3], RestrictionType(row[4]), row[5], row[6],
                       from_ms(row[7]), opt_from_ms(row[8]))


def _values(r: Restriction) -> tuple[Any, ...]:
    return (r.app_id, r.restriction_id, r.user_id, r.conversation_id, r.type.value, r.reason,
            r.creator, to_ms(r.create_time),
            None if r.expire_time is None else to_ms(r.expire_time))


class SqliteRestrictionStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("moderation", MIGRATIONS)

    async def put_restriction(self, restriction: Restriction, now: datetime) -> Restriction:
        def body(conn: sqlite3.Connection, emit: Emit) -> Restriction:
            row = conn.execute(
                "SELECT restriction_id FROM restrictions WHERE app_id = ? AND user_id = ?"
                f" AND conversation_id = ? AND type = ? AND {_APPLIES}",
                (restriction.app_id, restriction.user_id, restriction.conversation_id,
                 restriction.type.value, to_ms(now))).fetchone()
            # The one it replaces keeps its id.
            stored = restriction if row is None else replace(restriction, restriction_id=row[0])
            conn.execute(
                f"INSERT INTO restrictions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app_id, user_id, conversation_id, type) DO UPDATE SET"
                " restriction_id = excluded.restriction_id, reason = excluded.reason,"
                " creator = excluded.creator, create_time = excluded.create_time,"
                " expire_time = excluded.expire_time", _values(stored))
            emit(restriction_event(CREATED, stored, now))
            return stored

        return await self._log.transact(body)

    async def get_restriction(self, app_id: str, restriction_id: str) -> Restriction | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM restrictions WHERE app_id = ? AND restriction_id = ?",
            (app_id, restriction_id)).fetchone())
        return None if row is None else _restriction(row)

    async def delete_restriction(self, app_id: str, restriction_id: str, now: datetime
                                 ) -> Restriction | None:
        def body(conn: sqlite3.Connection, emit: Emit) -> Restriction | None:
            row = conn.execute(
                f"DELETE FROM restrictions WHERE app_id = ? AND restriction_id = ?"
                f" AND {_APPLIES} RETURNING {_COLUMNS}",
                (app_id, restriction_id, to_ms(now))).fetchone()
            if row is None:
                return None
            lifted = _restriction(row)
            emit(restriction_event(DELETED, lifted, now))
            return lifted

        return await self._log.transact(body)

    async def list_restrictions(self, app_id: str, now: datetime, limit: int,
                                after: Position | None, *, user_id: str = "",
                                conversation_id: str | None = None) -> list[Restriction]:
        where = [f"app_id = ? AND {_APPLIES}"]
        args: list[Any] = [app_id, to_ms(now)]
        if user_id:
            where.append("user_id = ?")
            args.append(user_id)
        if conversation_id is not None:
            where.append("conversation_id = ?")
            args.append(conversation_id)
        if after is not None:
            where.append("(create_time, restriction_id) > (?, ?)")
            args.extend(after)
        sql = (f"SELECT {_COLUMNS} FROM restrictions WHERE {' AND '.join(where)}"
               " ORDER BY create_time, restriction_id LIMIT ?")
        rows = await self._db.read(lambda conn: conn.execute(sql, (*args, limit)).fetchall())
        return [_restriction(row) for row in rows]

    async def user_restrictions(self, app_id: str, user_id: str, now: datetime
                                ) -> list[Restriction]:
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM restrictions WHERE app_id = ? AND user_id = ?"
            f" AND {_APPLIES}", (app_id, user_id, to_ms(now))).fetchall())
        return [_restriction(row) for row in rows]
