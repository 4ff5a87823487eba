"""AppStore on the embedded SQLite engine."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from services.apps.models import KEEP, ApiKey, App, GuestAccess, Keep
from services.apps.store import Position
from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.errors import StoreConflict

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE apps ("
        " app_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, plan TEXT NOT NULL,"
        " create_time INTEGER NOT NULL, update_time INTEGER NOT NULL)",
        "CREATE INDEX apps_by_create_time ON apps (create_time, app_id)",
        "CREATE TABLE api_keys ("
        " app_id TEXT NOT NULL REFERENCES apps (app_id), key_id TEXT NOT NULL,"
        " display_name TEXT NOT NULL, secret_hash TEXT NOT NULL,"
        " create_time INTEGER NOT NULL, revoke_time INTEGER,"
        " PRIMARY KEY (app_id, key_id))",
        "CREATE INDEX api_keys_by_create_time ON api_keys (app_id, create_time, key_id)",
    ),
    # NULL: the server's default retention.
    ("ALTER TABLE apps ADD COLUMN media_retention_ms INTEGER",),
    # Scopes, space-separated: the keys that exist keep every scope. NULL: no expiry.
    ("ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '*'",
     "ALTER TABLE api_keys ADD COLUMN expire_time INTEGER"),
    # DeleteApp: NULL while the app lives.
    ("ALTER TABLE apps ADD COLUMN delete_time INTEGER",
     "ALTER TABLE apps ADD COLUMN purge_time INTEGER"),
    # The owning organization ('': none, an app of the operator's alone).
    ("ALTER TABLE apps ADD COLUMN organization_id TEXT NOT NULL DEFAULT ''",
     "CREATE INDEX apps_by_organization ON apps (organization_id, create_time, app_id)"),
    # Guests (CreateGuestSession): off unless enabled; NULL lifetime: the default.
    ("ALTER TABLE apps ADD COLUMN guests_enabled INTEGER NOT NULL DEFAULT 0",
     "ALTER TABLE apps ADD COLUMN guest_session_lifetime_ms INTEGER"),
)

_APP_COLUMNS = ("app_id, display_name, plan, create_time, update_time, media_retention_ms,"
                " delete_time, purge_time, organization_id, guests_enabled,"
                " guest_session_lifetime_ms")
_KEY_COLUMNS = ("app_id, key_id, display_name, secret_hash, create_time, revoke_time,"
                " scopes, expire_time")


def _app(row: tuple[Any, ...]) -> App:
    return App(row[0], row[1], row[2], from_ms(row[3]), from_ms(row[4]), _from_ms(row[5]),
               opt_from_ms(row[6]), opt_from_ms(row[7]), row[8],
               GuestAccess(bool(row[9]), _from_ms(row[10])))


def _to_ms(value: timedelta | None) -> int | None:
    return None if value is None else value // timedelta(milliseconds=1)


def _from_ms(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(milliseconds=value)


def _key(row: tuple[str, str, str, str, int, int | None, str, int | None]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], from_ms(row[4]), opt_from_ms(row[5]),
                  frozenset(row[6].split()), opt_from_ms(row[7]))


def _insert_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(
        f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key.app_id, key.key_id, key.display_name, key.secret_hash, to_ms(key.create_time),
         None if key.revoke_time is None else to_ms(key.revoke_time),
         " ".join(sorted(key.scopes)),
         None if key.expire_time is None else to_ms(key.expire_time)))


class SqliteAppStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("apps", MIGRATIONS)

    async def create_app(self, app: App, first_key: ApiKey | None) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO apps ({_APP_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
                    (app.app_id, app.display_name, app.plan, to_ms(app.create_time),
                     to_ms(app.update_time), _to_ms(app.media_retention),
                     app.organization_id, int(app.guest_access.enabled),
                     _to_ms(app.guest_access.session_lifetime)))
            except sqlite3.IntegrityError as exc:
                raise StoreConflict(app.app_id) from exc
            if first_key is not None:
                _insert_key(conn, first_key)

        await self._db.write(tx)

    async def get_app(self, app_id: str) -> App | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_APP_COLUMNS} FROM apps WHERE app_id = ?", (app_id,)).fetchone())
        return None if row is None else _app(row)

    async def list_apps(self, limit: int, after: Position | None,
                        organization_id: str | None = None) -> list[App]:
        def query(conn: sqlite3.Connection) -> list[App]:
            where: list[str] = ["1"]
            args: list[Any] = []
            if organization_id is not None:
                where.append("organization_id = ?")
                args.append(organization_id)
            if after is not None:
                where.append("(create_time, app_id) > (?, ?)")
                args.extend(after)
            rows = conn.execute(
                f"SELECT {_APP_COLUMNS} FROM apps WHERE {' AND '.join(where)}"
                " ORDER BY create_time, app_id LIMIT ?", (*args, limit))
            return [_app(row) for row in rows]

        return await self._db.read(query)

    async def update_app(self, app_id: str, update_time: datetime, *,
                         display_name: str | None = None, plan: str | None = None,
                         media_retention: timedelta | Keep | None = KEEP,
                         guest_access: GuestAccess | None = None) -> App | None:
        keep_retention = isinstance(media_retention, Keep)
        retention_ms = None if isinstance(media_retention, Keep) else _to_ms(media_retention)
        guests = guest_access or GuestAccess()

        def tx(conn: sqlite3.Connection) -> App | None:
            conn.execute(
                "UPDATE apps SET display_name = coalesce(?, display_name),"
                " plan = coalesce(?, plan),"
                " media_retention_ms = CASE WHEN ? THEN media_retention_ms ELSE ? END,"
                " guests_enabled = CASE WHEN ? THEN guests_enabled ELSE ? END,"
                " guest_session_lifetime_ms ="
                " CASE WHEN ? THEN guest_session_lifetime_ms ELSE ? END,"
                " update_time = ? WHERE app_id = ?",
                (display_name, plan, keep_retention, retention_ms,
                 guest_access is None, int(guests.enabled),
                 guest_access is None, _to_ms(guests.session_lifetime),
                 to_ms(update_time), app_id))
            row = conn.execute(f"SELECT {_APP_COLUMNS} FROM apps WHERE app_id = ?",
                               (app_id,)).fetchone()
            return None if row is None else _app(row)

        return await self._db.write(tx)

    async def mark_deleted(self, app_id: str, when: datetime | None,
                           purge_time: datetime | None) -> App | None:
        def tx(conn: sqlite3.Connection) -> App | None:
            conn.execute("UPDATE apps SET delete_time = ?, purge_time = ? WHERE app_id = ?",
                         (None if when is None else to_ms(when),
                          None if purge_time is None else to_ms(purge_time), app_id))
            row = conn.execute(f"SELECT {_APP_COLUMNS} FROM apps WHERE app_id = ?",
                               (app_id,)).fetchone()
            return None if row is None else _app(row)

        return await self._db.write(tx)

    async def create_api_key(self, key: ApiKey) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            try:
                _insert_key(conn, key)
            except sqlite3.IntegrityError as exc:
                raise StoreConflict(key.key_id) from exc

        await self._db.write(tx)

    async def get_api_key(self, app_id: str, key_id: str) -> ApiKey | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE app_id = ? AND key_id = ?",
            (app_id, key_id)).fetchone())
        return None if row is None else _key(row)

    async def list_api_keys(self, app_id: str, limit: int, after: Position | None
                            ) -> list[ApiKey]:
        def query(conn: sqlite3.Connection) -> list[ApiKey]:
            if after is None:
                rows = conn.execute(
                    f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE app_id = ?"
                    " ORDER BY create_time, key_id LIMIT ?", (app_id, limit))
            else:
                rows = conn.execute(
                    f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE app_id = ?"
                    " AND (create_time, key_id) > (?, ?) ORDER BY create_time, key_id LIMIT ?",
                    (app_id, *after, limit))
            return [_key(row) for row in rows]

        return await self._db.read(query)

    async def revoke_api_key(self, app_id: str, key_id: str, when: datetime) -> ApiKey | None:
        def tx(conn: sqlite3.Connection) -> ApiKey | None:
            conn.execute(
                "UPDATE api_keys SET revoke_time = ?"
                " WHERE app_id = ? AND key_id = ? AND revoke_time IS NULL",
                (to_ms(when), app_id, key_id))
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE app_id = ? AND key_id = ?",
                (app_id, key_id)).fetchone()
            return None if row is None else _key(row)

        return await self._db.write(tx)
