"""Push channels and Web Push keys on SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.errors import CapacityExceeded
from services.push.models import PushDevice, WebPushKey

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE push_devices ("
    " app_id TEXT NOT NULL, push_device_id TEXT NOT NULL, user_id TEXT NOT NULL,"
    " provider TEXT NOT NULL, address TEXT NOT NULL, keys TEXT NOT NULL,"
    " device_id TEXT NOT NULL, locale TEXT NOT NULL, create_time INTEGER NOT NULL,"
    " update_time INTEGER NOT NULL, PRIMARY KEY (app_id, push_device_id))",
    "CREATE INDEX push_devices_by_user ON push_devices (app_id, user_id, create_time)",
    "CREATE TABLE web_push_keys ("
    " app_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, private_key BLOB NOT NULL,"
    " create_time INTEGER NOT NULL, previous_public_key BLOB NOT NULL,"
    " previous_private_key BLOB NOT NULL)",
),)

_COLUMNS = ("app_id, user_id, push_device_id, provider, address, keys, device_id, locale,"
            " create_time, update_time")


def _device(row: tuple[Any, ...]) -> PushDevice:
    return PushDevice(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6],
                      row[7], from_ms(row[8]), from_ms(row[9]))


def _select(conn: sqlite3.Connection, app_id: str, push_device_id: str) -> PushDevice | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM push_devices WHERE app_id = ?"
                       " AND push_device_id = ?", (app_id, push_device_id)).fetchone()
    return None if row is None else _device(row)


def _key(row: tuple[Any, ...]) -> WebPushKey:
    return WebPushKey(row[0], bytes(row[1]), bytes(row[2]), from_ms(row[3]), bytes(row[4]),
                      bytes(row[5]))


class SqlitePushStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("push", MIGRATIONS)

    async def put_device(self, device: PushDevice, limit: int) -> tuple[PushDevice, bool]:
        d = device
        now = d.update_time
        assert now is not None

        def body(conn: sqlite3.Connection) -> tuple[PushDevice, bool]:
            found = _select(conn, d.app_id, d.push_device_id)
            if found is None or found.user_id != d.user_id:
                held = conn.execute("SELECT count(*) FROM push_devices WHERE app_id = ?"
                                    " AND user_id = ?", (d.app_id, d.user_id)).fetchone()[0]
                if held >= limit:
                    raise CapacityExceeded("push devices per user", limit)
            created = found is None
            since = now if found is None or found.create_time is None else found.create_time
            stored = PushDevice(d.app_id, d.user_id, d.push_device_id, d.provider, d.address,
                                d.keys, d.device_id, d.locale, since, now)
            conn.execute(
                f"INSERT INTO push_devices ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app_id, push_device_id) DO UPDATE SET user_id = excluded.user_id,"
                " keys = excluded.keys, device_id = excluded.device_id,"
                " locale = excluded.locale, update_time = excluded.update_time",
                (d.app_id, d.user_id, d.push_device_id, d.provider, d.address,
                 json.dumps(dict(d.keys)), d.device_id, d.locale, to_ms(since), to_ms(now)))
            return stored, created

        return await self._db.write(body)

    async def get_device(self, app_id: str, user_id: str, push_device_id: str
                         ) -> PushDevice | None:
        found = await self._db.read(lambda conn: _select(conn, app_id, push_device_id))
        return found if found is not None and found.user_id == user_id else None

    async def list_devices(self, app_id: str, user_id: str) -> list[PushDevice]:
        return await self._db.read(lambda conn: [_device(row) for row in conn.execute(
            f"SELECT {_COLUMNS} FROM push_devices WHERE app_id = ? AND user_id = ?"
            " ORDER BY create_time, push_device_id", (app_id, user_id))])

    async def delete_device(self, app_id: str, user_id: str, push_device_id: str) -> bool:
        return await self._db.write(lambda conn: conn.execute(
            "DELETE FROM push_devices WHERE app_id = ? AND user_id = ? AND push_device_id = ?",
            (app_id, user_id, push_device_id)).rowcount > 0)

    async def delete_user_devices(self, app_id: str, user_id: str) -> int:
        return await self._db.write(lambda conn: conn.execute(
            "DELETE FROM push_devices WHERE app_id = ? AND user_id = ?",
            (app_id, user_id)).rowcount)

    async def get_key(self, app_id: str) -> WebPushKey | None:
        def query(conn: sqlite3.Connection) -> WebPushKey | None:
            row = conn.execute("SELECT * FROM web_push_keys WHERE app_id = ?",
                               (app_id,)).fetchone()
            return None if row is None else _key(row)

        return await self._db.read(query)

    async def put_key(self, key: WebPushKey, replaces: bytes) -> WebPushKey:
        def body(conn: sqlite3.Connection) -> WebPushKey:
            row = conn.execute("SELECT * FROM web_push_keys WHERE app_id = ?",
                               (key.app_id,)).fetchone()
            current = None if row is None else _key(row)
            if (current.public_key if current is not None else b"") != replaces:
                assert current is not None
                return current
            conn.execute(
                "INSERT OR REPLACE INTO web_push_keys VALUES (?, ?, ?, ?, ?, ?)",
                (key.app_id, key.public_key, key.sealed_private_key, to_ms(key.create_time),
                 key.previous_public_key, key.previous_sealed_private_key))
            return key

        return await self._db.write(body)
