"""MediaStore on the embedded SQLite engine.

An app's usage is a counter row (`media_usage`) changed in the transactions that
change it — create (+), mark_deleting and remove of a media not DELETING yet (-) —
so the quota check reads one row, not the app's whole table; SQLite's single writer
makes check and insert one atomic step.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.events import DomainEvent
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog
from services.media.models import (
    DELETING,
    PENDING,
    READY,
    UPLOADING,
    Media,
    Outcome,
    Processed,
    Rendition,
    Usage,
)

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE media ("
        " app_id TEXT NOT NULL, media_id TEXT NOT NULL, conversation_id TEXT NOT NULL,"
        " uploader_id TEXT NOT NULL, request_id TEXT NOT NULL, file_name TEXT NOT NULL,"
        " size_bytes INTEGER NOT NULL, declared_content_type TEXT NOT NULL,"
        " state TEXT NOT NULL, upload_id TEXT NOT NULL, part_size INTEGER NOT NULL,"
        " upload_expire_time INTEGER NOT NULL, create_time INTEGER NOT NULL,"
        " update_time INTEGER NOT NULL, processed TEXT, failure_reason TEXT NOT NULL,"
        " attempts INTEGER NOT NULL, claim_until INTEGER NOT NULL DEFAULT 0,"
        " attached INTEGER NOT NULL, delete_after INTEGER,"
        " PRIMARY KEY (app_id, media_id))",
        # Idempotent creates; also the index of schedule_uploader_deletion.
        "CREATE UNIQUE INDEX media_by_request ON media (app_id, uploader_id, request_id)",
        # claim (PENDING, oldest first) and due (DELETING).
        "CREATE INDEX media_by_state ON media (state, update_time)",
        # due: UPLOADING past their expiry; scheduled; READY unattached.
        "CREATE INDEX media_uploads_expiring ON media (state, upload_expire_time)",
        "CREATE INDEX media_scheduled ON media (delete_after) WHERE delete_after IS NOT NULL",
        "CREATE INDEX media_unattached ON media (state, attached, update_time)",
        "CREATE TABLE media_usage ("
        " app_id TEXT PRIMARY KEY, used_bytes INTEGER NOT NULL, media_count INTEGER NOT NULL"
        ") WITHOUT ROWID",
        "CREATE TABLE media_secrets ("
        " id INTEGER PRIMARY KEY CHECK (id = 1), secret BLOB NOT NULL)",
    ),
)

_COLUMNS = ("app_id, media_id, conversation_id, uploader_id, request_id, file_name,"
            " size_bytes, declared_content_type, state, upload_id, part_size,"
            " upload_expire_time, create_time, update_time, processed, failure_reason,"
            " attempts, claim_until, attached, delete_after")
_KEY = "app_id = ? AND media_id = ?"


def _earlier(at: datetime | None) -> tuple[str, tuple[int, ...]]:
    """SQL for the earlier of the stored delete_after and `at` (unset: never), and its
    arguments."""
    if at is None:
        return "delete_after", ()
    return ("CASE WHEN delete_after IS NULL OR delete_after > ? THEN ? ELSE delete_after END",
            (to_ms(at), to_ms(at)))


def _processed_json(processed: Processed | None) -> str | None:
    return None if processed is None else json.dumps(asdict(processed))


def _processed(data: dict[str, Any]) -> Processed:
    return Processed(**{**data, "renditions": tuple(Rendition(**r) for r in data["renditions"])})


def _row(m: Media) -> tuple[Any, ...]:
    return (m.app_id, m.media_id, m.conversation_id, m.uploader_id, m.request_id, m.file_name,
            m.size_bytes, m.declared_content_type, m.state, m.upload_id, m.part_size,
            to_ms(m.upload_expire_time), to_ms(m.create_time), to_ms(m.update_time),
            _processed_json(m.processed), m.failure_reason, m.attempts,
            0 if m.claim_until is None else to_ms(m.claim_until), int(m.attached),
            None if m.delete_after is None else to_ms(m.delete_after))


def _media(row: Sequence[Any]) -> Media:
    return Media(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                 row[9], row[10], from_ms(row[11]), from_ms(row[12]), from_ms(row[13]),
                 None if row[14] is None else _processed(json.loads(row[14])), row[15],
                 row[16], from_ms(row[17]) if row[17] else None, bool(row[18]),
                 opt_from_ms(row[19]))


def _select(conn: sqlite3.Connection, app_id: str, media_id: str) -> Media | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM media WHERE {_KEY}",
                       (app_id, media_id)).fetchone()
    return None if row is None else _media(row)


def _release(conn: sqlite3.Connection, app_id: str, size_bytes: int) -> None:
    """Take one media of `size_bytes` out of the app's usage."""
    conn.execute("UPDATE media_usage SET used_bytes = used_bytes - ?,"
                 " media_count = media_count - 1 WHERE app_id = ?", (size_bytes, app_id))


def _marks(count: int) -> str:
    return ",".join("?" * count)


class SqliteMediaStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("media", MIGRATIONS)

    async def create(self, media: Media, quota_bytes: int) -> Media | None:
        def tx(conn: sqlite3.Connection) -> Media | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM media"
                " WHERE app_id = ? AND uploader_id = ? AND request_id = ?",
                (media.app_id, media.uploader_id, media.request_id)).fetchone()
            if row is not None:
                return _media(row)
            used = conn.execute("SELECT used_bytes FROM media_usage WHERE app_id = ?",
                                (media.app_id,)).fetchone()
            if (0 if used is None else used[0]) + media.size_bytes > quota_bytes:
                return None
            conn.execute(f"INSERT INTO media ({_COLUMNS}) VALUES ({_marks(20)})", _row(media))
            conn.execute(
                "INSERT INTO media_usage VALUES (?, ?, 1) ON CONFLICT (app_id) DO UPDATE SET"
                " used_bytes = used_bytes + excluded.used_bytes, media_count = media_count + 1",
                (media.app_id, media.size_bytes))
            return media

        return await self._db.write(tx)

    async def get(self, app_id: str, media_id: str) -> Media | None:
        return await self._db.read(lambda conn: _select(conn, app_id, media_id))

    async def get_many(self, app_id: str, media_ids: Sequence[str]) -> dict[str, Media]:
        ids = list(set(media_ids))
        if not ids:
            return {}
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM media WHERE app_id = ? AND media_id IN ({_marks(len(ids))})",
            (app_id, *ids)).fetchall())
        return {m.media_id: m for m in map(_media, rows)}

    async def usage(self, app_id: str) -> Usage:
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT used_bytes, media_count FROM media_usage WHERE app_id = ?",
            (app_id,)).fetchone())
        return Usage() if row is None else Usage(row[0], row[1])

    async def complete(self, app_id: str, media_id: str, now: datetime) -> Media | None:
        def tx(conn: sqlite3.Connection) -> Media | None:
            conn.execute(f"UPDATE media SET state = ?, update_time = ? WHERE {_KEY} AND state = ?",
                         (PENDING, to_ms(now), app_id, media_id, UPLOADING))
            return _select(conn, app_id, media_id)

        return await self._db.write(tx)

    async def claim(self, now: datetime, until: datetime) -> Media | None:
        def tx(conn: sqlite3.Connection) -> Media | None:
            row = conn.execute(
                f"UPDATE media SET claim_until = ?, attempts = attempts + 1 WHERE rowid = ("
                " SELECT rowid FROM media"
                " WHERE state = ? AND claim_until < ? ORDER BY update_time LIMIT 1)"
                f" RETURNING {_COLUMNS}", (to_ms(until), PENDING, to_ms(now))).fetchone()
            return None if row is None else _media(row)

        return await self._db.write(tx)

    async def finish(self, app_id: str, media_id: str, attempt: int, outcome: Outcome,
                     now: datetime, delete_after: datetime | None,
                     event: DomainEvent | None) -> Media | None:
        earlier, at = _earlier(delete_after)

        def body(conn: sqlite3.Connection, emit: Emit) -> Media | None:
            row = conn.execute(
                f"UPDATE media SET state = ?, processed = ?, failure_reason = ?,"
                f" update_time = ?, claim_until = 0, delete_after = {earlier}"
                f" WHERE {_KEY} AND state = ? AND attempts = ? RETURNING {_COLUMNS}",
                (outcome.state, _processed_json(outcome.processed), outcome.failure_reason,
                 to_ms(now), *at, app_id, media_id, PENDING, attempt)).fetchone()
            if row is None:
                return None
            if event is not None:
                emit(event)
            return _media(row)

        return await self._log.transact(body)

    async def mark_attached(self, app_id: str, media_ids: Sequence[str]) -> None:
        ids = list(set(media_ids))
        if ids:
            await self._db.write(lambda conn: conn.execute(
                f"UPDATE media SET attached = 1 WHERE app_id = ?"
                f" AND media_id IN ({_marks(len(ids))})", (app_id, *ids)))

    async def schedule_deletion(self, app_id: str, media_ids: Sequence[str],
                                at: datetime) -> None:
        ids = list(set(media_ids))
        earlier, args = _earlier(at)
        if ids:
            await self._db.write(lambda conn: conn.execute(
                f"UPDATE media SET delete_after = {earlier} WHERE app_id = ?"
                f" AND media_id IN ({_marks(len(ids))})", (*args, app_id, *ids)))

    async def schedule_uploader_deletion(self, app_id: str, uploader_id: str,
                                         at: datetime) -> int:
        earlier, args = _earlier(at)

        def tx(conn: sqlite3.Connection) -> int:
            return conn.execute(
                f"UPDATE media SET delete_after = {earlier}"
                " WHERE app_id = ? AND uploader_id = ? AND state != ?",
                (*args, app_id, uploader_id, DELETING)).rowcount

        return await self._db.write(tx)

    async def mark_deleting(self, app_id: str, media_id: str, now: datetime) -> Media | None:
        def tx(conn: sqlite3.Connection) -> Media | None:
            before = _select(conn, app_id, media_id)
            if before is None or before.state == DELETING:
                return before
            conn.execute(f"UPDATE media SET state = ?, update_time = ? WHERE {_KEY}",
                         (DELETING, to_ms(now), app_id, media_id))
            _release(conn, app_id, before.size_bytes)
            return before

        return await self._db.write(tx)

    async def due(self, now: datetime, unattached_before: datetime, limit: int
                  ) -> list[Media]:
        # One indexed query per case, in the order they matter (crashed deletions first).
        cases = (
            ("state = ?", (DELETING,)),
            ("state = ? AND upload_expire_time <= ?", (UPLOADING, to_ms(now))),
            ("delete_after <= ?", (to_ms(now),)),
            ("state = ? AND attached = 0 AND update_time < ?",
             (READY, to_ms(unattached_before))),
        )

        def query(conn: sqlite3.Connection) -> list[Media]:
            found: dict[tuple[str, str], Media] = {}
            for where, args in cases:
                if len(found) >= limit:
                    break
                for row in conn.execute(f"SELECT {_COLUMNS} FROM media WHERE {where} LIMIT ?",
                                        (*args, limit)):
                    found.setdefault((row[0], row[1]), _media(row))
            return list(found.values())[:limit]

        return await self._db.read(query)

    async def remove(self, app_id: str, media_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            row = conn.execute(f"DELETE FROM media WHERE {_KEY} RETURNING state, size_bytes",
                               (app_id, media_id)).fetchone()
            if row is not None and row[0] != DELETING:
                _release(conn, app_id, row[1])

        await self._db.write(tx)

    async def signing_secret(self, candidate: bytes) -> bytes:
        def tx(conn: sqlite3.Connection) -> bytes:
            conn.execute("INSERT OR IGNORE INTO media_secrets VALUES (1, ?)", (candidate,))
            (secret,) = conn.execute("SELECT secret FROM media_secrets WHERE id = 1").fetchone()
            return bytes(secret)

        return await self._db.write(tx)
