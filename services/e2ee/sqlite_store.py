"""The device directory on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.errors import CapacityExceeded
from services.e2ee.models import Claimed, Device, low_stock
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE devices ("
    " app_id TEXT NOT NULL, user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
    " cipher_suite INTEGER NOT NULL, signature_key BLOB NOT NULL, session_id TEXT NOT NULL,"
    " create_time INTEGER NOT NULL, last_resort BLOB,"
    " PRIMARY KEY (app_id, user_id, device_id))",
    "CREATE INDEX devices_by_session ON devices (app_id, user_id, session_id)",
    "CREATE TABLE key_packages ("
    " app_id TEXT NOT NULL, user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
    " ref BLOB NOT NULL, data BLOB NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " UNIQUE (app_id, user_id, device_id, ref))",
),)

_COLUMNS = ("d.app_id, d.user_id, d.device_id, d.cipher_suite, d.signature_key, d.session_id,"
            " d.create_time, (SELECT count(*) FROM key_packages AS k WHERE k.app_id = d.app_id"
            " AND k.user_id = d.user_id AND k.device_id = d.device_id),"
            " d.last_resort IS NOT NULL")
_BARE_COLUMNS = ("d.app_id, d.user_id, d.device_id, d.cipher_suite, d.signature_key,"
                 " d.session_id, d.create_time, 0, d.last_resort IS NOT NULL")
_DEVICE = "app_id = ? AND user_id = ? AND device_id = ?"


def _device(row: tuple[Any, ...]) -> Device:
    return Device(row[0], row[1], row[2], row[3], bytes(row[4]), row[5], from_ms(row[6]),
                  row[7], bool(row[8]))


def _select(conn: sqlite3.Connection, app_id: str, user_id: str, device_id: str
            ) -> Device | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM devices AS d WHERE d.app_id = ?"
                       " AND d.user_id = ? AND d.device_id = ?",
                       (app_id, user_id, device_id)).fetchone()
    return None if row is None else _device(row)


def _delete(conn: sqlite3.Connection, app_id: str, user_id: str, device_id: str) -> bool:
    key = (app_id, user_id, device_id)
    conn.execute(f"DELETE FROM key_packages WHERE {_DEVICE}", key)
    return conn.execute(f"DELETE FROM devices WHERE {_DEVICE}", key).rowcount > 0


class SqliteDeviceStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("e2ee", MIGRATIONS)

    async def create_device(self, device: Device, limit: int) -> tuple[Device, bool]:
        d = device

        def body(conn: sqlite3.Connection) -> tuple[Device, bool]:
            found = _select(conn, d.app_id, d.user_id, d.device_id)
            if found is not None:
                return found, False
            count = conn.execute("SELECT count(*) FROM devices WHERE app_id = ? AND user_id = ?",
                                 (d.app_id, d.user_id)).fetchone()[0]
            if count >= limit:
                raise CapacityExceeded("devices per user", limit)
            conn.execute("INSERT INTO devices (app_id, user_id, device_id, cipher_suite,"
                         " signature_key, session_id, create_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (d.app_id, d.user_id, d.device_id, d.cipher_suite, d.signature_key,
                          d.session_id, to_ms(d.create_time)))
            return d, True

        return await self._db.write(body)

    async def get_device(self, app_id: str, user_id: str, device_id: str) -> Device | None:
        return await self._db.read(lambda conn: _select(conn, app_id, user_id, device_id))

    async def list_devices(self, app_id: str, user_ids: Sequence[str], stock: bool = True
                           ) -> list[Device]:
        if not user_ids:
            return []
        columns = _COLUMNS if stock else _BARE_COLUMNS

        def query(conn: sqlite3.Connection) -> list[Device]:
            marks = ", ".join("?" * len(user_ids))
            return [_device(row) for row in conn.execute(
                f"SELECT {columns} FROM devices AS d WHERE d.app_id = ?"
                f" AND d.user_id IN ({marks}) ORDER BY d.create_time, d.user_id, d.device_id",
                (app_id, *user_ids))]

        return await self._db.read(query)

    async def delete_device(self, app_id: str, user_id: str, device_id: str) -> bool:
        return await self._db.write(lambda conn: _delete(conn, app_id, user_id, device_id))

    async def delete_session_devices(self, app_id: str, user_id: str, session_ids: Sequence[str]
                                     ) -> list[str]:
        if not session_ids:
            return []

        def body(conn: sqlite3.Connection) -> list[str]:
            marks = ", ".join("?" * len(session_ids))
            ids = [row[0] for row in conn.execute(
                "SELECT device_id FROM devices WHERE app_id = ? AND user_id = ?"
                f" AND session_id IN ({marks})", (app_id, user_id, *session_ids))]
            for device_id in ids:
                _delete(conn, app_id, user_id, device_id)
            return ids

        return await self._db.write(body)

    async def add_key_packages(self, app_id: str, user_id: str, device_id: str,
                               packages: Sequence[tuple[bytes, bytes]], last_resort: bytes,
                               limit: int) -> Device | None:
        key = (app_id, user_id, device_id)

        def body(conn: sqlite3.Connection) -> Device | None:
            if _select(conn, *key) is None:
                return None
            conn.executemany(
                "INSERT INTO key_packages (app_id, user_id, device_id, ref, data)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(*key, ref, data) for ref, data in packages])
            held = conn.execute(f"SELECT count(*) FROM key_packages WHERE {_DEVICE}",
                                key).fetchone()[0]
            if held > limit:
                raise CapacityExceeded("KeyPackages per device", limit)  # rolls back
            if last_resort:
                conn.execute(f"UPDATE devices SET last_resort = ? WHERE {_DEVICE}",
                             (last_resort, *key))
            return _select(conn, *key)

        return await self._db.write(body)

    async def claim(self, app_id: str, devices: Sequence[Device], low: int,
                    now: datetime) -> list[Claimed]:
        def tx(conn: sqlite3.Connection, emit: Emit) -> list[Claimed]:
            claimed = []
            for device in devices:
                key = (app_id, device.user_id, device.device_id)
                row = conn.execute(f"SELECT seq, data FROM key_packages WHERE {_DEVICE}"
                                   " ORDER BY seq LIMIT 1", key).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM key_packages WHERE seq = ?", (row[0],))
                    claimed.append(Claimed(device, bytes(row[1]), False))
                    left = conn.execute(f"SELECT count(*) FROM key_packages WHERE {_DEVICE}",
                                        key).fetchone()[0]
                    if left < low:
                        emit(low_stock(device, left, now))
                    continue
                last = conn.execute(f"SELECT last_resort FROM devices WHERE {_DEVICE}",
                                    key).fetchone()
                if last is not None and last[0] is not None:
                    claimed.append(Claimed(device, bytes(last[0]), True))
                    emit(low_stock(device, 0, now))
            return claimed

        return await self._log.transact(tx)
