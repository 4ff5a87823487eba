"""The audit log on SQLite: one table, a row per record, never updated."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from services.audit.models import GENESIS, ActorKind, AuditEntry, AuditRecord, chained
from services.audit.store import AuditQuery
from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE audit_records ("
    " app_id TEXT NOT NULL, sequence INTEGER NOT NULL, time INTEGER NOT NULL,"
    " actor_kind TEXT NOT NULL, actor_id TEXT NOT NULL, action TEXT NOT NULL,"
    " target TEXT NOT NULL, request_id TEXT NOT NULL, code TEXT NOT NULL,"
    " reason TEXT NOT NULL, details TEXT NOT NULL, previous_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL, PRIMARY KEY (app_id, sequence)) WITHOUT ROWID",
    "CREATE INDEX audit_records_by_time ON audit_records (app_id, time)",
),)

_COLUMNS = ("app_id, sequence, time, actor_kind, actor_id, action, target, request_id,"
            " code, reason, details, previous_hash, hash")


def _record(row: tuple[Any, ...]) -> AuditRecord:
    entry = AuditEntry(row[0], from_ms(row[2]), ActorKind(row[3]), row[4], row[5], row[6],
                       row[7], row[8], row[9], json.loads(row[10]))
    return AuditRecord(entry, row[1], row[11], row[12])


class SqliteAuditStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("audit", MIGRATIONS)

    async def append(self, entry: AuditEntry) -> AuditRecord:
        def body(conn: sqlite3.Connection) -> AuditRecord:
            last = conn.execute(
                "SELECT sequence, hash FROM audit_records WHERE app_id = ?"
                " ORDER BY sequence DESC LIMIT 1", (entry.app_id,)).fetchone()
            record = chained(entry, 1, GENESIS) if last is None else chained(
                entry, last[0] + 1, last[1])
            conn.execute(
                f"INSERT INTO audit_records ({_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.app_id, record.sequence, to_ms(entry.time), entry.actor_kind.value,
                 entry.actor_id, entry.action, entry.target, entry.request_id, entry.code,
                 entry.reason, json.dumps(dict(entry.details), sort_keys=True),
                 record.previous_hash, record.hash))
            return record

        return await self._db.write(body)

    async def list_records(self, app_id: str, query: AuditQuery, limit: int,
                           before: int | None) -> list[AuditRecord]:
        where = ["app_id = ?"]
        args: list[Any] = [app_id]
        for column, value in (("action", query.action), ("target", query.target),
                              ("actor_id", query.actor_id), ("code", query.code),
                              ("actor_kind", query.actor_kind and query.actor_kind.value)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if query.start_time is not None:
            where.append("time >= ?")
            args.append(to_ms(query.start_time))
        if query.end_time is not None:
            where.append("time < ?")
            args.append(to_ms(query.end_time))
        if before is not None:
            where.append("sequence < ?")
            args.append(before)
        sql = (f"SELECT {_COLUMNS} FROM audit_records WHERE {' AND '.join(where)}"
               " ORDER BY sequence DESC LIMIT ?")

        def query_rows(conn: sqlite3.Connection) -> list[AuditRecord]:
            return [_record(row) for row in conn.execute(sql, (*args, limit))]

        return await self._db.read(query_rows)

    async def scan(self, app_id: str, after: int, limit: int) -> list[AuditRecord]:
        def rows(conn: sqlite3.Connection) -> list[AuditRecord]:
            return [_record(row) for row in conn.execute(
                f"SELECT {_COLUMNS} FROM audit_records WHERE app_id = ? AND sequence > ?"
                " ORDER BY sequence LIMIT ?", (app_id, after, limit))]

        return await self._db.read(rows)
