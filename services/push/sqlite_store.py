"""Push channels and Web Push keys on SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.errors import CapacityExceeded
from services.push.codec import (
    config_dict,
    config_of,
    push_dict,
    push_of,
    settings_dict,
    settings_of,
)
from services.push.models import (
    CANCELED,
    CLEAR,
    PENDING,
    SENT,
    NotificationSettings,
    Outcome,
    Push,
    PushConfig,
    PushDevice,
    WebPushKey,
)
from services.push.queue import collapsed_due, finished, joined, joins

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
), (
    "CREATE TABLE push_configs (app_id TEXT PRIMARY KEY, config TEXT NOT NULL)",
    "CREATE TABLE notification_settings (app_id TEXT NOT NULL, user_id TEXT NOT NULL,"
    " settings TEXT NOT NULL, PRIMARY KEY (app_id, user_id))",
    # A push's whole record is `doc`; the columns are what is searched.
    "CREATE TABLE push_queue ("
    " push_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, user_id TEXT NOT NULL,"
    " push_device_id TEXT NOT NULL, grp TEXT NOT NULL, through INTEGER NOT NULL,"
    " state TEXT NOT NULL, due_time INTEGER NOT NULL, lease_until INTEGER,"
    " create_time INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX push_queue_due ON push_queue (state, due_time)",
    "CREATE UNIQUE INDEX push_queue_group ON push_queue"
    " (app_id, push_device_id, grp, through)",
    "CREATE INDEX push_queue_user ON push_queue (app_id, user_id, grp)",
    "CREATE INDEX push_queue_listed ON push_queue (app_id, user_id, create_time, push_id)",
    "CREATE INDEX push_queue_age ON push_queue (create_time)",
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

    async def forget_user(self, app_id: str, user_id: str) -> int:
        def body(conn: sqlite3.Connection) -> int:
            for table in ("notification_settings", "push_queue"):
                conn.execute(f"DELETE FROM {table} WHERE app_id = ? AND user_id = ?",
                             (app_id, user_id))
            return conn.execute("DELETE FROM push_devices WHERE app_id = ? AND user_id = ?",
                                (app_id, user_id)).rowcount

        return await self._db.write(body)

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

    async def has_devices(self, app_id: str) -> bool:
        return await self._db.read(lambda conn: conn.execute(
            "SELECT 1 FROM push_devices WHERE app_id = ? LIMIT 1", (app_id,)).fetchone()
            is not None)

    async def devices_of(self, app_id: str, user_ids: Collection[str]) -> list[PushDevice]:
        users = sorted(set(user_ids))

        def query(conn: sqlite3.Connection) -> list[PushDevice]:
            found: list[PushDevice] = []
            for start in range(0, len(users), 500):
                chunk = users[start:start + 500]
                found += [_device(row) for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM push_devices WHERE app_id = ? AND user_id IN"
                    f" ({', '.join('?' * len(chunk))}) ORDER BY user_id, create_time",
                    (app_id, *chunk))]
            return found

        return await self._db.read(query)

    async def get_config(self, app_id: str) -> PushConfig | None:
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT config FROM push_configs WHERE app_id = ?", (app_id,)).fetchone())
        return None if row is None else config_of(app_id, json.loads(row[0]))

    async def put_config(self, config: PushConfig) -> None:
        await self._db.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO push_configs VALUES (?, ?)",
            (config.app_id, json.dumps(config_dict(config)))))

    async def get_settings(self, app_id: str, user_ids: Collection[str]
                           ) -> dict[str, NotificationSettings]:
        users = sorted(set(user_ids))

        def query(conn: sqlite3.Connection) -> dict[str, NotificationSettings]:
            found = {}
            for start in range(0, len(users), 500):
                chunk = users[start:start + 500]
                for user_id, data in conn.execute(
                        "SELECT user_id, settings FROM notification_settings WHERE app_id = ?"
                        f" AND user_id IN ({', '.join('?' * len(chunk))})", (app_id, *chunk)):
                    found[user_id] = settings_of(app_id, user_id, json.loads(data))
            return found

        return await self._db.read(query)

    async def put_settings(self, settings: NotificationSettings) -> None:
        await self._db.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO notification_settings VALUES (?, ?, ?)",
            (settings.app_id, settings.user_id, json.dumps(settings_dict(settings)))))

    async def enqueue(self, pushes: Sequence[Push], window: timedelta) -> int:
        def body(conn: sqlite3.Connection) -> int:
            changed = 0
            for push in pushes:
                row = conn.execute(
                    "SELECT doc, lease_until FROM push_queue WHERE app_id = ?"
                    " AND push_device_id = ? AND grp = ? ORDER BY through DESC LIMIT 1",
                    (push.app_id, push.push_device_id, push.group)).fetchone()
                newest = None if row is None else push_of(json.loads(row[0]))
                if newest is not None and newest.through >= push.through:
                    continue  # this event is in it already
                if newest is not None and joins(push, newest, held=row[1] is not None):
                    _store(conn, joined(newest, push), lease_until=None, update=True)
                else:
                    _store(conn, replace(push, due_time=collapsed_due(push, newest, window)),
                           lease_until=None, update=False)
                changed += 1
            return changed

        return await self._db.write(body)

    async def cancel_group(self, app_id: str, user_id: str, group: str, sequence: int,
                           now: datetime) -> list[tuple[str, str]]:
        def body(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            newest: dict[str, Push] = {}
            for doc, lease in conn.execute(
                    "SELECT doc, lease_until FROM push_queue WHERE app_id = ? AND user_id = ?"
                    " AND grp = ? ORDER BY through", (app_id, user_id, group)).fetchall():
                push = push_of(json.loads(doc))
                if (push.state == PENDING and (lease is None or lease <= to_ms(now))
                        and push.kind != CLEAR and push.sequence <= sequence):
                    push = replace(push, state=CANCELED)
                    _store(conn, push, lease_until=None, update=True)
                if push.state != CANCELED:
                    newest[push.push_device_id] = push
            return [(p.push_device_id, p.provider) for p in newest.values()
                    if p.state == SENT and p.kind != CLEAR and p.sequence <= sequence]

        return await self._db.write(body)

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Push]:
        def body(conn: sqlite3.Connection) -> list[Push]:
            rows = conn.execute(
                "SELECT doc FROM push_queue WHERE state = ? AND due_time <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?) ORDER BY due_time LIMIT ?",
                (PENDING, to_ms(now), to_ms(now), limit)).fetchall()
            claimed = [push_of(json.loads(doc)) for (doc,) in rows]
            conn.executemany("UPDATE push_queue SET lease_until = ? WHERE push_id = ?",
                             [(to_ms(now + lease), p.push_id) for p in claimed])
            return claimed

        return await self._db.write(body)

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        def body(conn: sqlite3.Connection) -> None:
            for outcome in outcomes:
                row = conn.execute("SELECT doc FROM push_queue WHERE push_id = ?",
                                   (outcome.push.push_id,)).fetchone()
                if row is not None:
                    _store(conn, finished(push_of(json.loads(row[0])), outcome),
                           lease_until=None, update=True)

        if outcomes:
            await self._db.write(body)

    async def list_pushes(self, app_id: str, user_id: str, limit: int,
                          before: tuple[int, str] | None) -> list[Push]:
        after = "" if before is None else " AND (create_time, push_id) < (?, ?)"
        params: tuple[Any, ...] = (app_id, user_id) + (
            () if before is None else before)
        return await self._db.read(lambda conn: [push_of(json.loads(doc)) for (doc,) in (
            conn.execute("SELECT doc FROM push_queue WHERE app_id = ? AND user_id = ?"
                         f"{after} ORDER BY create_time DESC, push_id DESC LIMIT ?",
                         (*params, limit)))])

    async def purge_pushes(self, before: datetime) -> int:
        return await self._db.write(lambda conn: conn.execute(
            "DELETE FROM push_queue WHERE create_time < ? AND state != ?",
            (to_ms(before), PENDING)).rowcount)


def _store(conn: sqlite3.Connection, push: Push, lease_until: int | None, update: bool) -> None:
    values = (push.app_id, push.user_id, push.push_device_id, push.group, push.through,
              push.state, to_ms(push.due_time), lease_until, to_ms(push.create_time),
              json.dumps(push_dict(push)))
    if update:
        conn.execute("UPDATE push_queue SET app_id = ?, user_id = ?, push_device_id = ?,"
                     " grp = ?, through = ?, state = ?, due_time = ?, lease_until = ?,"
                     " create_time = ?, doc = ? WHERE push_id = ?", (*values, push.push_id))
    else:
        conn.execute("INSERT INTO push_queue VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (push.push_id, *values))
