"""Data keys on SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.keys.models import DataKey, WrappedKey

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE data_keys ("
    " app_id TEXT NOT NULL, owner TEXT NOT NULL, key_id TEXT NOT NULL,"
    " kek_id TEXT NOT NULL, wrapped BLOB NOT NULL, create_time INTEGER NOT NULL,"
    " PRIMARY KEY (app_id, owner))",
    "CREATE INDEX data_keys_by_kek ON data_keys (kek_id)",
),)

_COLUMNS = "app_id, owner, key_id, kek_id, wrapped, create_time"


def _key(row: tuple[Any, ...]) -> DataKey:
    return DataKey(row[0], row[1], row[2], WrappedKey(row[3], bytes(row[4])), from_ms(row[5]))


class SqliteDataKeyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("keys", MIGRATIONS)

    async def get_key(self, app_id: str, owner: str) -> DataKey | None:
        def query(conn: sqlite3.Connection) -> DataKey | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM data_keys WHERE app_id = ? AND owner = ?",
                               (app_id, owner)).fetchone()
            return None if row is None else _key(row)

        return await self._db.read(query)

    async def add_key(self, key: DataKey) -> DataKey:
        def body(conn: sqlite3.Connection) -> DataKey:
            conn.execute(f"INSERT INTO data_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                         " ON CONFLICT (app_id, owner) DO NOTHING",
                         (key.app_id, key.owner, key.key_id, key.wrapped.kek_id,
                          key.wrapped.blob, to_ms(key.create_time)))
            return _key(conn.execute(
                f"SELECT {_COLUMNS} FROM data_keys WHERE app_id = ? AND owner = ?",
                (key.app_id, key.owner)).fetchone())

        return await self._db.write(body)

    async def wrapped_by_other(self, kek_id: str, limit: int) -> list[DataKey]:
        def query(conn: sqlite3.Connection) -> list[DataKey]:
            return [_key(row) for row in conn.execute(
                f"SELECT {_COLUMNS} FROM data_keys WHERE kek_id != ? LIMIT ?", (kek_id, limit))]

        return await self._db.read(query)

    async def rewrap(self, key: DataKey, wrapped: WrappedKey) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE data_keys SET kek_id = ?, wrapped = ? WHERE app_id = ? AND owner = ?"
                " AND key_id = ? AND kek_id = ? AND wrapped = ?",
                (wrapped.kek_id, wrapped.blob, key.app_id, key.owner, key.key_id,
                 key.wrapped.kek_id, key.wrapped.blob)).rowcount == 1

        return await self._db.write(body)

    async def delete_key(self, app_id: str, owner: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM data_keys WHERE app_id = ? AND owner = ?",
                                (app_id, owner)).rowcount == 1

        return await self._db.write(body)
