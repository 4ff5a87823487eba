"""AuthStore on the embedded SQLite engine."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from services.auth.models import (
    RefreshToken,
    RevokeReason,
    RotateOutcome,
    RotateResult,
    Session,
    SessionState,
    SigningKey,
)
from services.auth.store import KEPT_GENERATIONS, Position
from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.errors import StoreConflict

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE signing_keys ("
        " app_id TEXT NOT NULL, key_id TEXT NOT NULL, private_key BLOB NOT NULL,"
        " public_key BLOB NOT NULL, create_time INTEGER NOT NULL, expire_time INTEGER,"
        " PRIMARY KEY (app_id, key_id))",
        # One primary (unexpiring) key per app.
        "CREATE UNIQUE INDEX signing_keys_one_primary ON signing_keys (app_id)"
        " WHERE expire_time IS NULL",
        "CREATE TABLE sessions ("
        " app_id TEXT NOT NULL, session_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " device_name TEXT NOT NULL, access_ttl_ms INTEGER NOT NULL,"
        " create_time INTEGER NOT NULL, refresh_time INTEGER NOT NULL,"
        " expire_time INTEGER NOT NULL, revoke_time INTEGER, revoke_reason TEXT,"
        " PRIMARY KEY (app_id, session_id))",
        "CREATE INDEX sessions_by_user ON sessions"
        " (app_id, user_id, create_time DESC, session_id DESC)",
        "CREATE TABLE refresh_tokens ("
        " app_id TEXT NOT NULL, token_hash TEXT NOT NULL, session_id TEXT NOT NULL,"
        " generation INTEGER NOT NULL, create_time INTEGER NOT NULL, used INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, token_hash),"
        " FOREIGN KEY (app_id, session_id) REFERENCES sessions (app_id, session_id))",
        "CREATE INDEX refresh_tokens_by_session ON refresh_tokens (app_id, session_id)",
    ),
    # When a session ends however often it refreshes (guests'); NULL: never.
    ("ALTER TABLE sessions ADD COLUMN end_time INTEGER",),
)

_KEY_COLUMNS = "app_id, key_id, private_key, public_key, create_time, expire_time"
_SESSION_COLUMNS = ("app_id, session_id, user_id, device_name, access_ttl_ms, create_time,"
                    " refresh_time, expire_time, revoke_time, revoke_reason, end_time")


def _signing_key(row: Any) -> SigningKey:
    return SigningKey(row[0], row[1], bytes(row[2]), bytes(row[3]), from_ms(row[4]),
                      opt_from_ms(row[5]))


def _session(row: Any) -> Session:
    return Session(row[0], row[1], row[2], row[3], timedelta(milliseconds=row[4]),
                   from_ms(row[5]), from_ms(row[6]), from_ms(row[7]), opt_from_ms(row[8]),
                   None if row[9] is None else RevokeReason(row[9]), opt_from_ms(row[10]))


def _insert_key(conn: sqlite3.Connection, key: SigningKey) -> None:
    conn.execute(f"INSERT INTO signing_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                 (key.app_id, key.key_id, key.private_key, key.public_key,
                  to_ms(key.create_time),
                  None if key.expire_time is None else to_ms(key.expire_time)))


def _select_session(conn: sqlite3.Connection, app_id: str, session_id: str) -> Session | None:
    row = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions"
                       " WHERE app_id = ? AND session_id = ?", (app_id, session_id)).fetchone()
    return None if row is None else _session(row)


def _insert_token(conn: sqlite3.Connection, token: RefreshToken) -> None:
    conn.execute("INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, ?)",
                 (token.app_id, token.token_hash, token.session_id, token.generation,
                  to_ms(token.create_time), int(token.used)))


def _revoke(conn: sqlite3.Connection, app_id: str, session_id: str, when: datetime,
            reason: RevokeReason) -> None:
    conn.execute("UPDATE sessions SET revoke_time = ?, revoke_reason = ?"
                 " WHERE app_id = ? AND session_id = ? AND revoke_time IS NULL",
                 (to_ms(when), reason.value, app_id, session_id))


class SqliteAuthStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("auth", MIGRATIONS)

    async def signing_keys(self, app_id: str) -> list[SigningKey]:
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM signing_keys WHERE app_id = ?"
            " ORDER BY create_time DESC, key_id DESC", (app_id,)).fetchall())
        return [_signing_key(row) for row in rows]

    async def add_first_signing_key(self, key: SigningKey) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM signing_keys WHERE app_id = ?",
                            (key.app_id,)).fetchone():
                raise StoreConflict(key.app_id)
            _insert_key(conn, key)

        await self._db.write(tx)

    async def rotate_signing_key(self, key: SigningKey, retire_at: datetime) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE signing_keys SET expire_time = ?"
                         " WHERE app_id = ? AND expire_time IS NULL",
                         (to_ms(retire_at), key.app_id))
            conn.execute("DELETE FROM signing_keys WHERE app_id = ? AND expire_time <= ?",
                         (key.app_id, to_ms(key.create_time)))
            _insert_key(conn, key)

        await self._db.write(tx)

    async def create_session(self, session: Session, token: RefreshToken) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO sessions ({_SESSION_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (session.app_id, session.session_id, session.user_id, session.device_name,
                     int(session.access_ttl.total_seconds() * 1000), to_ms(session.create_time),
                     to_ms(session.refresh_time), to_ms(session.expire_time), None, None,
                     None if session.end_time is None else to_ms(session.end_time)))
                _insert_token(conn, token)
            except sqlite3.IntegrityError as exc:
                raise StoreConflict(session.session_id) from exc

        await self._db.write(tx)

    async def get_session(self, app_id: str, session_id: str) -> Session | None:
        return await self._db.read(lambda conn: _select_session(conn, app_id, session_id))

    async def list_sessions(self, app_id: str, user_id: str, limit: int,
                            after: Position | None) -> list[Session]:
        def query(conn: sqlite3.Connection) -> list[Session]:
            if after is None:
                rows = conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE app_id = ? AND user_id = ?"
                    " ORDER BY create_time DESC, session_id DESC LIMIT ?",
                    (app_id, user_id, limit))
            else:
                rows = conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE app_id = ? AND user_id = ?"
                    " AND (create_time, session_id) < (?, ?)"
                    " ORDER BY create_time DESC, session_id DESC LIMIT ?",
                    (app_id, user_id, *after, limit))
            return [_session(row) for row in rows]

        return await self._db.read(query)

    async def revoke_session(self, app_id: str, session_id: str, when: datetime,
                             reason: RevokeReason) -> Session | None:
        def tx(conn: sqlite3.Connection) -> Session | None:
            _revoke(conn, app_id, session_id, when, reason)
            return _select_session(conn, app_id, session_id)

        return await self._db.write(tx)

    async def revoke_user_sessions(self, app_id: str, user_id: str, when: datetime,
                                   reason: RevokeReason) -> list[str]:
        def tx(conn: sqlite3.Connection) -> list[str]:
            live = [row[0] for row in conn.execute(
                "SELECT session_id FROM sessions WHERE app_id = ? AND user_id = ?"
                " AND revoke_time IS NULL", (app_id, user_id))]
            for session_id in live:
                _revoke(conn, app_id, session_id, when, reason)
            return live

        return await self._db.write(tx)

    async def find_refresh_token(self, app_id: str, token_hash: str) -> Session | None:
        def query(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute("SELECT session_id FROM refresh_tokens"
                               " WHERE app_id = ? AND token_hash = ?",
                               (app_id, token_hash)).fetchone()
            return None if row is None else _select_session(conn, app_id, row[0])

        return await self._db.read(query)

    async def rotate_refresh_token(self, app_id: str, token_hash: str, new_hash: str,
                                   now: datetime, expire_time: datetime) -> RotateResult:
        def tx(conn: sqlite3.Connection) -> RotateResult:
            row = conn.execute("SELECT session_id, generation, used FROM refresh_tokens"
                               " WHERE app_id = ? AND token_hash = ?",
                               (app_id, token_hash)).fetchone()
            if row is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            session_id, generation, used = row
            session = _select_session(conn, app_id, session_id)
            assert session is not None  # foreign key
            if used:
                _revoke(conn, app_id, session_id, now, RevokeReason.REFRESH_TOKEN_REUSED)
                return RotateResult(RotateOutcome.REUSED,
                                    _select_session(conn, app_id, session_id))
            if session.state(now) is not SessionState.ACTIVE:
                return RotateResult(RotateOutcome.ENDED, session)
            conn.execute("UPDATE refresh_tokens SET used = 1 WHERE app_id = ? AND token_hash = ?",
                         (app_id, token_hash))
            _insert_token(conn, RefreshToken(app_id, new_hash, session_id, generation + 1, now))
            conn.execute("DELETE FROM refresh_tokens WHERE app_id = ? AND session_id = ?"
                         " AND generation <= ?",
                         (app_id, session_id, generation + 1 - KEPT_GENERATIONS))
            conn.execute("UPDATE sessions SET refresh_time = ?, expire_time = ?"
                         " WHERE app_id = ? AND session_id = ?",
                         (to_ms(now), to_ms(session.capped(expire_time)), app_id, session_id))
            return RotateResult(RotateOutcome.ROTATED, _select_session(conn, app_id, session_id),
                                generation + 1)

        return await self._db.write(tx)
