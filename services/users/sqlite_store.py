"""UserStore on the embedded SQLite engine."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db import sqlite_filter as sql
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.db.sqlite_filter import Sql, SqlTerm, column, json_map
from services.core.errors import StoreConflict
from services.core.filtering import Comparison, Expr, Op, Ordering
from services.users.listing import BY_CREATION, DELETED
from services.users.models import Block, User, UserChanges
from services.users.store import Keyset, Position
from services.users.words import WORD_END, matches, user_words

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE users ("
        " app_id TEXT NOT NULL, user_id TEXT NOT NULL, display_name TEXT NOT NULL,"
        " image_uri TEXT NOT NULL, metadata TEXT NOT NULL, create_time INTEGER NOT NULL,"
        " update_time INTEGER NOT NULL, delete_time INTEGER,"
        " PRIMARY KEY (app_id, user_id))",
        "CREATE INDEX users_by_create_time ON users (app_id, create_time, user_id)",
        "CREATE TABLE blocks ("
        " app_id TEXT NOT NULL, user_id TEXT NOT NULL, blocked_id TEXT NOT NULL,"
        " create_time INTEGER NOT NULL, PRIMARY KEY (app_id, user_id, blocked_id))",
        "CREATE INDEX blocks_by_time ON blocks (app_id, user_id, create_time, blocked_id)",
    ),
    (
        # ListUsers ordered by display name.
        "CREATE INDEX users_by_display_name ON users (app_id, display_name, user_id)",
    ),
    (
        # SearchUsers: each live user's words (services/users/words.py), filled from the
        # users table on the first start with it (_fill_words).
        "CREATE TABLE user_words ("
        " app_id TEXT NOT NULL, word TEXT NOT NULL, user_id TEXT NOT NULL,"
        " PRIMARY KEY (app_id, word, user_id)) WITHOUT ROWID",
        "CREATE INDEX user_words_by_user ON user_words (app_id, user_id)",
        "CREATE TABLE user_words_filled (done INTEGER NOT NULL)",
    ),
    (
        # The app role ("": user).
        "ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT ''",
    ),
)
SEARCH_ROUNDS = 8  # pages of candidate words read before a search settles for fewer


def _state(c: Comparison) -> Sql:
    deleted = (c.value == DELETED) == (c.op is Op.EQ)
    return ("delete_time IS NOT NULL" if deleted else "delete_time IS NULL"), []


# ListUsers: the filter's fields (services/users/listing.py) as columns.
_TERMS: dict[str, SqlTerm] = {
    "user_id": column("user_id"), "display_name": column("display_name"),
    "metadata": json_map("metadata"), "state": _state, "create_time": column("create_time")}
_KEYS = {"create_time": "create_time", "display_name": "display_name", "user_id": "user_id"}

_COLUMNS = ("app_id, user_id, display_name, image_uri, metadata, create_time, update_time,"
            " delete_time, role")
_SELECT = f"SELECT {_COLUMNS} FROM users WHERE app_id = ? AND user_id = ?"


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], row[3], json.loads(row[4]), from_ms(row[5]),
                from_ms(row[6]), opt_from_ms(row[7]), row[8])


def _insert(conn: sqlite3.Connection, user: User) -> None:
    try:
        conn.execute(f"INSERT INTO users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (user.app_id, user.user_id, user.display_name, user.image_uri,
                      json.dumps(dict(user.metadata)), to_ms(user.create_time),
                      to_ms(user.update_time),
                      None if user.delete_time is None else to_ms(user.delete_time),
                      user.role))
    except sqlite3.IntegrityError as exc:
        raise StoreConflict(user.user_id) from exc
    if user.delete_time is None:
        _set_words(conn, user.app_id, user.user_id, user.display_name)


def _set_words(conn: sqlite3.Connection, app_id: str, user_id: str, display_name: str | None
               ) -> None:
    """Replace the user's words (none for a deleted user: display_name None)."""
    conn.execute("DELETE FROM user_words WHERE app_id = ? AND user_id = ?", (app_id, user_id))
    if display_name is not None:
        conn.executemany("INSERT INTO user_words (app_id, word, user_id) VALUES (?, ?, ?)",
                         [(app_id, word, user_id)
                          for word in user_words(user_id, display_name)])


def _fill_words(conn: sqlite3.Connection) -> None:
    """Once: the words of the users that were there before the table."""
    if conn.execute("SELECT 1 FROM user_words_filled").fetchone():
        return
    for app_id, user_id, display_name in conn.execute(
            "SELECT app_id, user_id, display_name FROM users WHERE delete_time IS NULL"
            ).fetchall():
        _set_words(conn, app_id, user_id, display_name)
    conn.execute("INSERT INTO user_words_filled (done) VALUES (1)")


def _select(conn: sqlite3.Connection, app_id: str, user_id: str) -> User | None:
    row = conn.execute(_SELECT, (app_id, user_id)).fetchone()
    return None if row is None else _user(row)


class SqliteUserStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("users", MIGRATIONS)
        await self._db.write(_fill_words)

    async def create_user(self, user: User) -> None:
        await self._db.write(lambda conn: _insert(conn, user))

    async def get_user(self, app_id: str, user_id: str) -> User | None:
        return await self._db.read(lambda conn: _select(conn, app_id, user_id))

    async def get_users(self, app_id: str, user_ids: Iterable[str]) -> dict[str, User]:
        wanted = sorted(set(user_ids))
        if not wanted:
            return {}

        def query(conn: sqlite3.Connection) -> dict[str, User]:
            marks = ", ".join("?" * len(wanted))
            rows = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE app_id = ?"
                                f" AND user_id IN ({marks})", (app_id, *wanted))
            return {user.user_id: user for user in map(_user, rows)}

        return await self._db.read(query)

    async def list_users(self, app_id: str, limit: int, after: Keyset | None, *,
                         where: Expr | None = None, ordering: Ordering = BY_CREATION
                         ) -> list[User]:
        matching, params = sql.where(where, _TERMS)
        beyond, start, order = sql.keyset([_KEYS[k] for k in ordering.keys],
                                          ordering.descending, after)

        def query(conn: sqlite3.Connection) -> list[User]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM users WHERE app_id = ?{matching}{beyond}"
                f" ORDER BY {order} LIMIT ?", (app_id, *params, *start, limit))
            return [_user(row) for row in rows]

        return await self._db.read(query)

    async def update_user(self, app_id: str, user_id: str, changes: UserChanges,
                          now: datetime, create: User | None = None) -> User | None:
        def tx(conn: sqlite3.Connection) -> User | None:
            current = _select(conn, app_id, user_id)
            if current is None:
                if create is None:
                    return None
                _insert(conn, create)
                return create
            if current.deleted:
                return current
            conn.execute(
                "UPDATE users SET display_name = coalesce(?, display_name),"
                " image_uri = coalesce(?, image_uri), metadata = coalesce(?, metadata),"
                " role = coalesce(?, role), update_time = ? WHERE app_id = ? AND user_id = ?",
                (changes.display_name, changes.image_uri,
                 None if changes.metadata is None else json.dumps(dict(changes.metadata)),
                 changes.role, to_ms(now), app_id, user_id))
            if changes.display_name is not None:
                _set_words(conn, app_id, user_id, changes.display_name)
            return _select(conn, app_id, user_id)

        return await self._db.write(tx)

    async def delete_user(self, app_id: str, user_id: str, now: datetime) -> User | None:
        def tx(conn: sqlite3.Connection) -> User | None:
            conn.execute(
                "UPDATE users SET display_name = '', image_uri = '', metadata = '{}',"
                " update_time = ?, delete_time = ?"
                " WHERE app_id = ? AND user_id = ? AND delete_time IS NULL",
                (to_ms(now), to_ms(now), app_id, user_id))
            _set_words(conn, app_id, user_id, None)
            return _select(conn, app_id, user_id)

        return await self._db.write(tx)

    async def create_block(self, block: Block) -> Block:
        def tx(conn: sqlite3.Connection) -> Block:
            conn.execute("INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?)",
                         (block.app_id, block.user_id, block.blocked_id,
                          to_ms(block.create_time)))
            row = conn.execute("SELECT create_time FROM blocks WHERE app_id = ?"
                               " AND user_id = ? AND blocked_id = ?",
                               (block.app_id, block.user_id, block.blocked_id)).fetchone()
            return Block(block.app_id, block.user_id, block.blocked_id, from_ms(row[0]))

        return await self._db.write(tx)

    async def delete_block(self, app_id: str, user_id: str, blocked_id: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM blocks WHERE app_id = ? AND user_id = ?"
                                  " AND blocked_id = ?", (app_id, user_id, blocked_id))
            return cursor.rowcount > 0

        return await self._db.write(tx)

    async def list_blocks(self, app_id: str, user_id: str, limit: int,
                          after: Position | None) -> list[Block]:
        def query(conn: sqlite3.Connection) -> list[Block]:
            start = after or (2**62, "")
            rows = conn.execute(
                "SELECT blocked_id, create_time FROM blocks WHERE app_id = ? AND user_id = ?"
                " AND (create_time, blocked_id) < (?, ?)"
                " ORDER BY create_time DESC, blocked_id DESC LIMIT ?",
                (app_id, user_id, *start, limit))
            return [Block(app_id, user_id, row[0], from_ms(row[1])) for row in rows]

        return await self._db.read(query)

    async def blocked_either_way(self, app_id: str, a: str, b: str) -> bool:
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT 1 FROM blocks WHERE app_id = ? AND ((user_id = ? AND blocked_id = ?)"
            " OR (user_id = ? AND blocked_id = ?)) LIMIT 1", (app_id, a, b, b, a)).fetchone())
        return row is not None

    async def blockers_among(self, app_id: str, blocked_id: str, among: Collection[str]
                             ) -> set[str]:
        users = sorted(set(among))

        def query(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(users), 500):
                chunk = users[start:start + 500]
                found.update(user_id for (user_id,) in conn.execute(
                    "SELECT user_id FROM blocks WHERE app_id = ? AND blocked_id = ? AND user_id"
                    f" IN ({', '.join('?' * len(chunk))})", (app_id, blocked_id, *chunk)))
            return found

        return await self._db.read(query)

    async def search_users(self, app_id: str, words: Sequence[str], limit: int,
                           among: Collection[str] | None = None) -> list[User]:
        first = words[0]
        members = sorted(among) if among is not None else None

        def query(conn: sqlite3.Connection) -> list[User]:
            found: dict[str, User] = {}
            after = (first, "")
            for _ in range(SEARCH_ROUNDS):
                sql = ("SELECT word, user_id FROM user_words WHERE app_id = ?"
                       " AND (word, user_id) > (?, ?) AND word < ?")
                values: list[Any] = [app_id, *after, first + WORD_END]
                if members is not None:
                    sql += f" AND user_id IN ({', '.join('?' * len(members))})"
                    values += members
                rows = conn.execute(sql + " ORDER BY word, user_id LIMIT ?",
                                    (*values, limit * 2)).fetchall()
                fresh = list(dict.fromkeys(u for _, u in rows if u not in found))
                if fresh:
                    marks = ", ".join("?" * len(fresh))
                    users = {user.user_id: user for user in map(_user, conn.execute(
                        f"SELECT {_COLUMNS} FROM users WHERE app_id = ?"
                        f" AND user_id IN ({marks}) AND delete_time IS NULL",
                        (app_id, *fresh)))}
                    for user_id in fresh:  # in the order of the word that matched
                        user = users.get(user_id)
                        if user is not None and matches(
                                user_words(user_id, user.display_name), words):
                            found[user_id] = user
                if len(rows) < limit * 2 or len(found) >= limit:
                    break
                after = rows[-1]
            return list(found.values())[:limit]

        return await self._db.read(query)
