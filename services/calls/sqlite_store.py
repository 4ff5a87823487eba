"""Calls on SQLite: one row per call (the call as JSON, and the columns its queries
use), and one row per user joined in a call that has not ended (who is busy)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.calls.codec import call_doc, call_of, due_time
from services.calls.models import ENDED, Call
from services.calls.store import CallInProgress, CallKey, Position
from services.core.clock import to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.events import DomainEvent
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE calls ("
    " app_id TEXT NOT NULL, conversation_id TEXT NOT NULL, call_id TEXT NOT NULL,"
    " state TEXT NOT NULL, version INTEGER NOT NULL, create_time INTEGER NOT NULL,"
    " due INTEGER, doc TEXT NOT NULL,"
    " PRIMARY KEY (app_id, conversation_id, call_id))",
    # One call at a time per conversation.
    "CREATE UNIQUE INDEX calls_current ON calls (app_id, conversation_id)"
    " WHERE state != 'ended'",
    "CREATE INDEX calls_by_time ON calls (app_id, conversation_id, create_time, call_id)",
    # What the sweeper looks at: `due` is set while the call needs it.
    "CREATE INDEX calls_due ON calls (due) WHERE due IS NOT NULL",
    "CREATE TABLE call_joined ("
    " app_id TEXT NOT NULL, user_id TEXT NOT NULL, conversation_id TEXT NOT NULL,"
    " call_id TEXT NOT NULL, PRIMARY KEY (app_id, user_id, conversation_id, call_id))",
),)

_KEY = "app_id = ? AND conversation_id = ? AND call_id = ?"


def _call(row: tuple[Any, ...]) -> Call:
    return call_of(json.loads(row[0]))


def _joined(conn: sqlite3.Connection, call: Call) -> None:
    key = (call.app_id, call.conversation_id, call.call_id)
    conn.execute("DELETE FROM call_joined WHERE app_id = ? AND conversation_id = ?"
                 " AND call_id = ?", key)
    if call.state != ENDED:
        conn.executemany(
            "INSERT INTO call_joined (app_id, user_id, conversation_id, call_id)"
            " VALUES (?, ?, ?, ?)",
            [(call.app_id, p.user_id, call.conversation_id, call.call_id)
             for p in call.joined()])


def _select(conn: sqlite3.Connection, app_id: str, conversation_id: str, call_id: str
            ) -> Call | None:
    row = conn.execute(f"SELECT doc FROM calls WHERE {_KEY}",
                       (app_id, conversation_id, call_id)).fetchone()
    return None if row is None else _call(row)


class SqliteCallStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("calls", MIGRATIONS)

    async def create(self, call: Call, events: Sequence[DomainEvent]) -> tuple[Call, bool]:
        def tx(conn: sqlite3.Connection, emit: Emit) -> tuple[Call, bool]:
            found = _select(conn, call.app_id, call.conversation_id, call.call_id)
            if found is not None:
                return found, False
            current = conn.execute(
                "SELECT doc FROM calls WHERE app_id = ? AND conversation_id = ?"
                " AND state != 'ended'", (call.app_id, call.conversation_id)).fetchone()
            if current is not None:
                raise CallInProgress(_call(current))
            conn.execute(
                "INSERT INTO calls (app_id, conversation_id, call_id, state, version,"
                " create_time, due, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (call.app_id, call.conversation_id, call.call_id, call.state, call.version,
                 to_ms(call.create_time), due_time(call), json.dumps(call_doc(call))))
            _joined(conn, call)
            for event in events:
                emit(event)
            return call, True

        return await self._log.transact(tx)

    async def update(self, call: Call, events: Sequence[DomainEvent]) -> bool:
        def tx(conn: sqlite3.Connection, emit: Emit) -> bool:
            changed = conn.execute(
                f"UPDATE calls SET state = ?, version = ?, due = ?, doc = ? WHERE {_KEY}"
                " AND version = ?",
                (call.state, call.version, due_time(call), json.dumps(call_doc(call)),
                 call.app_id, call.conversation_id, call.call_id, call.version - 1)).rowcount
            if not changed:
                return False
            _joined(conn, call)
            for event in events:
                emit(event)
            return True

        return await self._log.transact(tx)

    async def get(self, app_id: str, conversation_id: str, call_id: str) -> Call | None:
        return await self._db.read(lambda conn: _select(conn, app_id, conversation_id, call_id))

    async def list_calls(self, app_id: str, conversation_id: str, limit: int,
                         after: Position | None) -> list[Call]:
        query = "SELECT doc FROM calls WHERE app_id = ? AND conversation_id = ?"
        args: list[Any] = [app_id, conversation_id]
        if after is not None:
            query += " AND (create_time, call_id) < (?, ?)"
            args += [after[0], after[1]]
        query += " ORDER BY create_time DESC, call_id DESC LIMIT ?"
        args.append(limit)
        return await self._db.read(lambda conn: [_call(r) for r in conn.execute(query, args)])

    async def current(self, app_id: str, conversation_id: str) -> Call | None:
        def query(conn: sqlite3.Connection) -> Call | None:
            row = conn.execute("SELECT doc FROM calls WHERE app_id = ? AND conversation_id = ?"
                               " AND state != 'ended'", (app_id, conversation_id)).fetchone()
            return None if row is None else _call(row)

        return await self._db.read(query)

    async def busy(self, app_id: str, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        marks = ", ".join("?" * len(user_ids))
        return await self._db.read(lambda conn: {row[0] for row in conn.execute(
            f"SELECT DISTINCT user_id FROM call_joined WHERE app_id = ? AND user_id IN ({marks})",
            (app_id, *user_ids))})

    async def joined_calls(self, app_id: str, user_id: str) -> list[Call]:
        return await self._db.read(lambda conn: [_call(row) for row in conn.execute(
            "SELECT c.doc FROM call_joined AS j JOIN calls AS c ON c.app_id = j.app_id"
            " AND c.conversation_id = j.conversation_id AND c.call_id = j.call_id"
            " WHERE j.app_id = ? AND j.user_id = ?", (app_id, user_id))])

    async def ongoing(self, limit: int, after: CallKey | None) -> list[Call]:
        query = "SELECT doc FROM calls WHERE state != 'ended'"
        args: list[Any] = []
        if after is not None:
            query += " AND (app_id, conversation_id, call_id) > (?, ?, ?)"
            args += after
        query += " ORDER BY app_id, conversation_id, call_id LIMIT ?"
        args.append(limit)
        return await self._db.read(lambda conn: [_call(r) for r in conn.execute(query, args)])

    async def due(self, now: datetime, limit: int) -> list[Call]:
        return await self._db.read(lambda conn: [_call(row) for row in conn.execute(
            "SELECT doc FROM calls WHERE due IS NOT NULL AND due <= ? ORDER BY due LIMIT ?",
            (to_ms(now), limit))])

    async def set_record(self, app_id: str, conversation_id: str, call_id: str,
                         sequence: int) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            call = _select(conn, app_id, conversation_id, call_id)
            if call is None or call.record_sequence:
                return
            doc = call_doc(call)
            doc["record"] = sequence
            conn.execute(f"UPDATE calls SET due = NULL, doc = ? WHERE {_KEY}",
                         (json.dumps(doc), app_id, conversation_id, call_id))

        await self._db.write(tx)

    async def delete_conversation_calls(self, app_id: str, conversation_id: str) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            key = (app_id, conversation_id)
            conn.execute("DELETE FROM call_joined WHERE app_id = ? AND conversation_id = ?", key)
            return conn.execute("DELETE FROM calls WHERE app_id = ? AND conversation_id = ?",
                                key).rowcount

        return await self._db.write(tx)

    async def signal(self, event: DomainEvent) -> None:
        await self._log.transact(lambda conn, emit: emit(event))
