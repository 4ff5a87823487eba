"""EventLog on the embedded SQLite engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id
from services.core.tracing import NO_TRACE, TraceHeaders, current_headers
from services.events.log import (
    CommitListener,
    Emit,
    Encoder,
    Head,
    Interval,
    LoggedEvent,
    joiners,
    leaves,
)

T = TypeVar("T")

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE event_heads ("
        " app_id TEXT PRIMARY KEY, log_id TEXT NOT NULL, position INTEGER NOT NULL,"
        " purged_through INTEGER NOT NULL)",
        "CREATE TABLE events ("
        " app_id TEXT NOT NULL, position INTEGER NOT NULL, conversation_id TEXT NOT NULL,"
        " type TEXT NOT NULL, user_id TEXT NOT NULL, private INTEGER NOT NULL,"
        " joiners TEXT NOT NULL, create_time INTEGER NOT NULL, payload BLOB NOT NULL,"
        " PRIMARY KEY (app_id, position)) WITHOUT ROWID",
        "CREATE INDEX events_by_conversation ON events (app_id, conversation_id, position)",
        "CREATE INDEX events_by_time ON events (create_time)",
        "CREATE TABLE event_memberships ("
        " app_id TEXT NOT NULL, user_id TEXT NOT NULL, conversation_id TEXT NOT NULL,"
        " from_position INTEGER NOT NULL, to_position INTEGER,"
        " PRIMARY KEY (app_id, user_id, conversation_id, from_position))",
        "CREATE INDEX event_memberships_open ON event_memberships (app_id, conversation_id)"
        " WHERE to_position IS NULL",
        # Members from before the log: members since the beginning.
        "INSERT INTO event_memberships SELECT app_id, user_id, conversation_id, 0, NULL"
        " FROM members",
    ),
    (
        "CREATE TABLE event_consumers (consumer TEXT PRIMARY KEY) WITHOUT ROWID",
        "CREATE TABLE event_cursors ("
        " consumer TEXT NOT NULL, app_id TEXT NOT NULL, position INTEGER NOT NULL,"
        " PRIMARY KEY (consumer, app_id)) WITHOUT ROWID",
    ),
    (  # who runs each consumer, and until when
        "ALTER TABLE event_consumers ADD COLUMN holder TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE event_consumers ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0",
    ),
    (  # the W3C trace context of the request that recorded each event (tracing on)
        "ALTER TABLE events ADD COLUMN traceparent TEXT",
        "ALTER TABLE events ADD COLUMN tracestate TEXT",
    ),
    (  # WebRTC signals, purged soon (purge_types)
        "CREATE INDEX events_signals ON events (create_time) WHERE type = 'call.signal'",
    ),
)

_COLUMNS = ("app_id, position, conversation_id, type, user_id, private, create_time, payload,"
            " joiners, traceparent, tracestate")


def _event(row: Any) -> LoggedEvent:
    return LoggedEvent(row[0], row[1], row[2], row[3], row[4], bool(row[5]), from_ms(row[6]),
                       row[7], tuple(u for u in row[8].split(",") if u),
                       TraceHeaders.of(row[9], row[10]))


class SqliteEventLog:
    def __init__(self, db: SqliteDatabase, bus: EventBus, encode: Encoder, *,
                 traced: bool = False) -> None:
        """With `traced`, events keep the trace context current when they are recorded."""
        self._db = db
        self._bus = bus
        self._encode = encode
        self._traced = traced
        self._listener: CommitListener | None = None

    async def migrate(self) -> None:
        await self._db.migrate("events", MIGRATIONS)

    async def transact(self, body: Callable[[sqlite3.Connection, Emit], T]) -> T:
        """Run `body` as one write transaction; the events it emits are recorded in the
        same transaction and published on the bus after the commit."""
        events: list[DomainEvent] = []
        logged: list[LoggedEvent] = []
        # Read here: the transaction runs on the writer's thread, outside this context.
        trace = current_headers() if self._traced else NO_TRACE

        def tx(conn: sqlite3.Connection) -> T:
            events.clear()
            result = body(conn, events.append)
            if events:
                logged[:] = self._record(conn, events, trace)
            return result

        result = await self._db.write(tx, named=body)
        if logged and self._listener is not None:
            self._listener(logged)
        for event in events:
            await self._bus.publish(event)
        return result

    def watch_commits(self, listener: CommitListener) -> None:
        self._listener = listener

    def _record(self, conn: sqlite3.Connection, events: Sequence[DomainEvent],
                trace: TraceHeaders) -> list[LoggedEvent]:
        app_id = events[0].app_id
        assert all(e.app_id == app_id for e in events), "one transaction, one app"
        last = conn.execute(
            "INSERT INTO event_heads VALUES (?, ?, ?, 0) ON CONFLICT (app_id)"
            " DO UPDATE SET position = position + excluded.position RETURNING position",
            (app_id, new_id(), len(events))).fetchone()[0]
        logged = []
        for position, event in enumerate(events, start=last - len(events) + 1):
            joined = joiners(event)
            payload = self._encode(event, position)
            at = to_ms(event.time)
            conn.execute(
                f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (app_id, position, event.conversation_id, event.type, event.user_id,
                 int(event.private), at, payload,
                 ",".join(joined), trace.traceparent or None, trace.tracestate or None))
            logged.append(LoggedEvent(app_id, position, event.conversation_id, event.type,
                                      event.user_id, event.private, from_ms(at), payload,
                                      joined, trace))
            conn.executemany("INSERT OR IGNORE INTO event_memberships VALUES (?, ?, ?, ?, NULL)",
                             [(app_id, u, event.conversation_id, position) for u in joined])
            if leaves(event, event.user_id):
                who = "" if event.type == "conversation.deleted" else " AND user_id = ?"
                conn.execute(
                    f"UPDATE event_memberships SET to_position = ? WHERE app_id = ?"
                    f" AND conversation_id = ? AND to_position IS NULL{who}",
                    (position, app_id, event.conversation_id,
                     *([] if not who else [event.user_id])))
        return logged

    async def head(self, app_id: str) -> Head:
        def query(conn: sqlite3.Connection) -> Head | None:
            row = conn.execute("SELECT log_id, position, purged_through FROM event_heads"
                               " WHERE app_id = ?", (app_id,)).fetchone()
            return None if row is None else Head(*row)

        found = await self._db.read(query)
        if found is None:
            await self._db.write(lambda conn: conn.execute(
                "INSERT OR IGNORE INTO event_heads VALUES (?, ?, 0, 0)", (app_id, new_id())))
            found = await self._db.read(query)
            assert found is not None
        return found

    async def read(self, app_id: str, after: int, limit: int,
                   conversations: Sequence[str] | None = None) -> list[LoggedEvent]:
        def query(conn: sqlite3.Connection) -> list[LoggedEvent]:
            args: tuple[str, ...]
            among, args = "", ()
            if conversations is not None:
                if not conversations:
                    return []
                among = f" AND conversation_id IN ({', '.join('?' * len(conversations))})"
                args = tuple(conversations)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE app_id = ? AND position > ?{among}"
                " ORDER BY position LIMIT ?", (app_id, after, *args, limit))
            return [_event(row) for row in rows]

        return await self._db.read(query)

    async def memberships(self, app_id: str, user_id: str, after: int
                          ) -> Mapping[str, list[Interval]]:
        def query(conn: sqlite3.Connection) -> dict[str, list[Interval]]:
            found: dict[str, list[Interval]] = {}
            for conversation_id, start, end in conn.execute(
                    "SELECT conversation_id, from_position, to_position FROM event_memberships"
                    " WHERE app_id = ? AND user_id = ? AND (to_position IS NULL"
                    " OR to_position > ?) ORDER BY from_position", (app_id, user_id, after)):
                found.setdefault(conversation_id, []).append((start, end))
            return found

        return await self._db.read(query)

    async def appended(self) -> int:
        return int(await self._db.read(lambda conn: conn.execute(
            "SELECT coalesce(sum(position), 0) FROM event_heads").fetchone()[0]))

    async def redact(self, app_id: str, types: Collection[str],
                     redact: Callable[[bytes], bytes | None]) -> list[int]:
        kinds = sorted(types)

        def tx(conn: sqlite3.Connection) -> list[int]:
            changed = []
            for position, payload in conn.execute(
                    f"SELECT position, payload FROM events WHERE app_id = ?"
                    f" AND type IN ({', '.join('?' * len(kinds))})",
                    (app_id, *kinds)).fetchall():
                redacted = redact(bytes(payload))
                if redacted is not None:
                    conn.execute("UPDATE events SET payload = ? WHERE app_id = ?"
                                 " AND position = ?", (redacted, app_id, position))
                    changed.append(position)
            return changed

        return await self._db.write(tx)

    async def purge(self, before: datetime) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            gone = 0
            consumers = [c for (c,) in conn.execute(
                "SELECT consumer FROM event_consumers"
                " WHERE lease_until = 0 OR lease_until >= ?", (to_ms(before),))]  # 0: never leased
            for app_id, old in conn.execute(
                    "SELECT app_id, max(position) FROM events WHERE create_time < ?"
                    " GROUP BY app_id", (to_ms(before),)).fetchall():
                through = old
                if consumers:  # keep what a consumer has yet to take
                    taken = dict(conn.execute("SELECT consumer, position FROM event_cursors"
                                              " WHERE app_id = ?", (app_id,)).fetchall())
                    through = min(through, *(taken.get(c, 0) for c in consumers))
                if through <= 0:
                    continue
                gone += conn.execute("DELETE FROM events WHERE app_id = ? AND position <= ?",
                                     (app_id, through)).rowcount
                conn.execute("UPDATE event_heads SET purged_through = max(purged_through, ?)"
                             " WHERE app_id = ?", (through, app_id))
                conn.execute("DELETE FROM event_memberships WHERE app_id = ?"
                             " AND to_position <= ?", (app_id, through))
            return gone

        return await self._db.write(tx)

    async def purge_types(self, types: Collection[str], before: datetime) -> int:
        marks = ", ".join("?" * len(types))
        return await self._db.write(lambda conn: conn.execute(
            f"DELETE FROM events WHERE type IN ({marks}) AND create_time < ?",
            (*types, to_ms(before))).rowcount)

    async def register(self, consumer: str) -> None:
        await self._db.write(lambda conn: conn.execute(
            "INSERT OR IGNORE INTO event_consumers (consumer) VALUES (?)", (consumer,)))

    async def behind(self, consumer: str, apps: Collection[str] | None = None
                     ) -> list[tuple[str, int, int]]:
        query = ("SELECT h.app_id, coalesce(c.position, 0), h.position FROM event_heads h"
                 " LEFT JOIN event_cursors c ON c.consumer = ? AND c.app_id = h.app_id"
                 " WHERE h.position > coalesce(c.position, 0)")
        args: list[str] = [consumer]
        if apps is not None:
            if not apps:
                return []
            query += f" AND h.app_id IN ({','.join('?' * len(apps))})"
            args.extend(apps)
        return await self._db.read(lambda conn: [(r[0], r[1], r[2]) for r in conn.execute(
            query + " ORDER BY h.app_id", args)])

    async def advance(self, consumer: str, app_id: str, position: int) -> None:
        await self._db.write(lambda conn: conn.execute(
            "INSERT INTO event_cursors VALUES (?, ?, ?) ON CONFLICT (consumer, app_id)"
            " DO UPDATE SET position = max(position, excluded.position)",
            (consumer, app_id, position)))

    async def trace(self, app_id: str, position: int) -> TraceHeaders:
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT traceparent, tracestate FROM events WHERE app_id = ? AND position = ?",
            (app_id, position)).fetchone())
        return NO_TRACE if row is None else TraceHeaders.of(*row)

    async def lease(self, consumer: str, holder: str, now: datetime, until: datetime
                    ) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT OR IGNORE INTO event_consumers (consumer) VALUES (?)",
                         (consumer,))
            return conn.execute(
                "UPDATE event_consumers SET holder = ?, lease_until = ? WHERE consumer = ?"
                " AND (holder = ? OR lease_until <= ?)",
                (holder, to_ms(until), consumer, holder, to_ms(now))).rowcount == 1

        return await self._db.write(tx)
