"""Data keys on SQLite, in a database of their own (`keys.db` in the key directory),
apart from the data they seal: a backup of the store holds no key, and a key erased
(crypto-shredding) is gone from where the data's backups never were."""

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
    def __init__(self, db: SqliteDatabase, legacy: SqliteDatabase | None = None) -> None:
        """`legacy`: the store's own database, where data keys were kept before; they
        move from there on migrating."""
        self._db = db
        self._legacy = legacy

    async def migrate(self) -> None:
        await self._db.migrate("keys", MIGRATIONS)
        if self._legacy is not None:
            await self._move_from(self._legacy)

    async def _move_from(self, legacy: SqliteDatabase) -> None:
        """Copy the keys `legacy` holds, then drop them there (a crash between the two
        copies them again: a key already here stays)."""
        def found(conn: sqlite3.Connection) -> list[Any]:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                            " AND name = 'data_keys'").fetchone() is None:
                return []
            return conn.execute(f"SELECT {_COLUMNS} FROM data_keys").fetchall()

        rows = await legacy.read(found)
        if not rows:
            return
        await self._db.write(lambda conn: conn.executemany(
            f"INSERT INTO data_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (app_id, owner) DO NOTHING", rows))
        await legacy.write(lambda conn: conn.execute("DROP TABLE data_keys"))

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

    async def delete_app(self, app_id: str) -> int:
        return await self._db.write(lambda conn: conn.execute(
            "DELETE FROM data_keys WHERE app_id = ?", (app_id,)).rowcount)

    async def compact(self) -> bool:
        return await self._db.compact()

    async def close(self) -> None:
        await self._db.close()
