"""Retention policies and legal holds on SQLite."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from services.compliance.models import LegalHold, RetentionPolicy
from services.compliance.operations import Operation
from services.compliance.operations import Position as OperationPosition
from services.compliance.store import Position
from services.core.clock import from_ms, ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = ((
    # Durations in milliseconds; messages_ms NULL: for ever.
    "CREATE TABLE retention_policies ("
    " app_id TEXT NOT NULL PRIMARY KEY, messages_ms INTEGER, types TEXT NOT NULL,"
    " update_time INTEGER)",
    "CREATE TABLE legal_holds ("
    " app_id TEXT NOT NULL, hold_id TEXT NOT NULL, conversation_id TEXT NOT NULL,"
    " user_id TEXT NOT NULL, reason TEXT NOT NULL, create_time INTEGER NOT NULL,"
    " PRIMARY KEY (app_id, hold_id))",
    "CREATE INDEX legal_holds_by_time ON legal_holds (app_id, create_time, hold_id)",
),)

_HOLD = "app_id, hold_id, conversation_id, user_id, reason, create_time"


def _policy(row: tuple[Any, ...]) -> RetentionPolicy:
    return RetentionPolicy(
        row[0], None if row[1] is None else timedelta(milliseconds=row[1]),
        {k: timedelta(milliseconds=v) for k, v in json.loads(row[2]).items()},
        opt_from_ms(row[3]))


def _hold(row: tuple[Any, ...]) -> LegalHold:
    return LegalHold(row[0], row[1], row[2], row[3], row[4], from_ms(row[5]))


class SqliteComplianceStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("compliance", MIGRATIONS)

    async def get_policy(self, app_id: str) -> RetentionPolicy | None:
        def query(conn: sqlite3.Connection) -> RetentionPolicy | None:
            row = conn.execute("SELECT * FROM retention_policies WHERE app_id = ?",
                               (app_id,)).fetchone()
            return None if row is None else _policy(row)

        return await self._db.read(query)

    async def put_policy(self, policy: RetentionPolicy) -> None:
        values = (policy.app_id, None if policy.messages is None else ms(policy.messages),
                  json.dumps({k: ms(v) for k, v in policy.types.items()}, sort_keys=True),
                  None if policy.update_time is None else to_ms(policy.update_time))

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO retention_policies VALUES (?, ?, ?, ?)", values)

        await self._db.write(body)

    async def policies(self) -> list[RetentionPolicy]:
        def query(conn: sqlite3.Connection) -> list[RetentionPolicy]:
            return [_policy(row) for row in conn.execute("SELECT * FROM retention_policies")]

        return await self._db.read(query)

    async def create_hold(self, hold: LegalHold, limit: int) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            (count,) = conn.execute("SELECT count(*) FROM legal_holds WHERE app_id = ?",
                                    (hold.app_id,)).fetchone()
            if count >= limit:
                return False
            conn.execute(f"INSERT INTO legal_holds ({_HOLD}) VALUES (?, ?, ?, ?, ?, ?)",
                         (hold.app_id, hold.hold_id, hold.conversation_id, hold.user_id,
                          hold.reason, to_ms(hold.create_time)))
            return True

        return await self._db.write(body)

    async def list_holds(self, app_id: str, limit: int, after: Position | None
                         ) -> list[LegalHold]:
        where = "app_id = ?"
        args: list[Any] = [app_id]
        if after is not None:
            where += " AND (create_time, hold_id) > (?, ?)"
            args += list(after)

        def query(conn: sqlite3.Connection) -> list[LegalHold]:
            return [_hold(row) for row in conn.execute(
                f"SELECT {_HOLD} FROM legal_holds WHERE {where}"
                " ORDER BY create_time, hold_id LIMIT ?", (*args, limit))]

        return await self._db.read(query)

    async def delete_hold(self, app_id: str, hold_id: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM legal_holds WHERE app_id = ? AND hold_id = ?",
                                (app_id, hold_id)).rowcount == 1

        return await self._db.write(body)


OPERATION_MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE operations ("
    " app_id TEXT NOT NULL, operation_id TEXT NOT NULL, type TEXT NOT NULL,"
    " target TEXT NOT NULL, stage TEXT NOT NULL, progress INTEGER NOT NULL,"
    " counts TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " create_time INTEGER NOT NULL, update_time INTEGER NOT NULL, lease_until INTEGER,"
    " PRIMARY KEY (app_id, operation_id))",
    "CREATE INDEX operations_by_time ON operations (app_id, create_time, operation_id)",
    "CREATE INDEX operations_running ON operations (stage, lease_until)",
),)

_OPERATION = ("app_id, operation_id, type, target, stage, progress, counts, error, attempts,"
            " create_time, update_time, lease_until")


def _operation(row: tuple[Any, ...]) -> Operation:
    return Operation(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                     row[7], row[8], from_ms(row[9]), from_ms(row[10]), opt_from_ms(row[11]))


def _values(op: Operation) -> tuple[Any, ...]:
    assert op.create_time is not None and op.update_time is not None
    return (op.app_id, op.operation_id, op.type, op.target, op.stage, op.progress,
            json.dumps(dict(op.counts), sort_keys=True), op.error, op.attempts,
            to_ms(op.create_time), to_ms(op.update_time),
            None if op.lease_until is None else to_ms(op.lease_until))


class SqliteOperationStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("operations", OPERATION_MIGRATIONS)

    async def start(self, operation: Operation) -> Operation:
        def tx(conn: sqlite3.Connection) -> Operation:
            row = conn.execute(
                f"SELECT {_OPERATION} FROM operations WHERE app_id = ? AND type = ?"
                " AND target = ? AND stage != 'done'",
                (operation.app_id, operation.type, operation.target)).fetchone()
            if row is not None:
                return _operation(row)
            conn.execute(f"INSERT INTO operations ({_OPERATION}) VALUES"
                         " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _values(operation))
            return operation

        return await self._db.write(tx)

    async def get(self, app_id: str, operation_id: str) -> Operation | None:
        def query(conn: sqlite3.Connection) -> Operation | None:
            row = conn.execute(f"SELECT {_OPERATION} FROM operations WHERE app_id = ?"
                               " AND operation_id = ?", (app_id, operation_id)).fetchone()
            return None if row is None else _operation(row)

        return await self._db.read(query)

    async def list_operations(self, app_id: str, limit: int, before: OperationPosition | None
                   ) -> list[Operation]:
        where = "app_id = ?"
        args: list[Any] = [app_id]
        if before is not None:
            where += " AND (create_time, operation_id) < (?, ?)"
            args += list(before)

        def query(conn: sqlite3.Connection) -> list[Operation]:
            return [_operation(row) for row in conn.execute(
                f"SELECT {_OPERATION} FROM operations WHERE {where}"
                " ORDER BY create_time DESC, operation_id DESC LIMIT ?", (*args, limit))]

        return await self._db.read(query)

    async def finished_before(self, type: str, before: datetime, limit: int
                              ) -> list[Operation]:
        def query(conn: sqlite3.Connection) -> list[Operation]:
            return [_operation(row) for row in conn.execute(
                f"SELECT {_OPERATION} FROM operations WHERE stage = 'done' AND type = ?"
                " AND error = '' AND update_time < ? ORDER BY update_time LIMIT ?",
                (type, to_ms(before), limit))]

        return await self._db.read(query)

    async def claim(self, now: datetime, until: datetime) -> Operation | None:
        def tx(conn: sqlite3.Connection) -> Operation | None:
            row = conn.execute(
                f"SELECT {_OPERATION} FROM operations WHERE stage != 'done'"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY create_time LIMIT 1",
                (to_ms(now),)).fetchone()
            if row is None:
                return None
            claimed = replace(_operation(row), lease_until=until, attempts=row[8] + 1)
            conn.execute("UPDATE operations SET lease_until = ?, attempts = ? WHERE app_id = ?"
                         " AND operation_id = ?", (to_ms(until), claimed.attempts,
                                                   claimed.app_id, claimed.operation_id))
            return claimed

        return await self._db.write(tx)

    async def save(self, operation: Operation) -> None:
        values = _values(operation)

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(f"INSERT OR REPLACE INTO operations ({_OPERATION}) VALUES"
                         " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

        await self._db.write(tx)
