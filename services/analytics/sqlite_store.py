"""Usage analytics on SQLite: counters, distinct members, and what has been written
(the log position per app, the last flush per process), each batch one write
transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from services.analytics.models import Changes, Fact, Granularity, Kind, Metric, count_events
from services.analytics.store import LOG, Span
from services.core.db.sqlite import Migration, SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE analytics_counters ("
    " app_id TEXT NOT NULL, metric TEXT NOT NULL, granularity TEXT NOT NULL,"
    " bucket INTEGER NOT NULL, dimension TEXT NOT NULL, value INTEGER NOT NULL,"
    " PRIMARY KEY (app_id, metric, granularity, bucket, dimension)) WITHOUT ROWID",
    "CREATE TABLE analytics_members ("
    " app_id TEXT NOT NULL, kind TEXT NOT NULL, granularity TEXT NOT NULL,"
    " bucket INTEGER NOT NULL, member TEXT NOT NULL,"
    " PRIMARY KEY (app_id, kind, granularity, bucket, member)) WITHOUT ROWID",
    "CREATE TABLE analytics_positions ("
    " app_id TEXT NOT NULL, source TEXT NOT NULL, position INTEGER NOT NULL,"
    " PRIMARY KEY (app_id, source)) WITHOUT ROWID",
    "CREATE TABLE analytics_flushes ("
    " source TEXT PRIMARY KEY, sequence INTEGER NOT NULL, write_time TEXT NOT NULL)"
    " WITHOUT ROWID",
),)

_ADD = ("INSERT INTO analytics_counters VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (app_id, metric, granularity, bucket, dimension)"
        " DO UPDATE SET value = value + excluded.value")
_PEAK = ("INSERT INTO analytics_counters VALUES (?, ?, ?, ?, ?, ?)"
         " ON CONFLICT (app_id, metric, granularity, bucket, dimension)"
         " DO UPDATE SET value = max(value, excluded.value)")
_MEMBER = "INSERT OR IGNORE INTO analytics_members VALUES (?, ?, ?, ?, ?)"


def _write(conn: sqlite3.Connection, changes: Changes) -> None:
    """The changes, in the running transaction: new members first, then the counts
    (those of the new members' counters included)."""
    counts = dict(changes.counts)
    for member, counters in changes.distinct.items():
        if conn.execute(_MEMBER, member).rowcount:
            for key in counters:
                counts[key] = counts.get(key, 0) + 1
    conn.executemany(_ADD, [(*key, value) for key, value in counts.items()])
    conn.executemany(_PEAK, [(*key, value) for key, value in changes.peaks.items()])


def _position(conn: sqlite3.Connection, app_id: str) -> int:
    row = conn.execute("SELECT position FROM analytics_positions WHERE app_id = ?"
                       " AND source = ?", (app_id, LOG)).fetchone()
    return int(row[0]) if row else 0


class SqliteAnalyticsStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("analytics", MIGRATIONS)

    async def apply_events(self, app_id: str, facts: Sequence[Fact], through: int) -> int:
        def body(conn: sqlite3.Connection) -> int:
            done = _position(conn, app_id)
            if through <= done:
                return 0
            fresh = [f for f in facts if f.position > done]
            _write(conn, count_events(app_id, fresh))
            conn.execute("INSERT INTO analytics_positions VALUES (?, ?, ?)"
                         " ON CONFLICT (app_id, source) DO UPDATE SET position = excluded.position",
                         (app_id, LOG, through))
            return len(fresh)

        return await self._db.write(body)

    async def apply_flush(self, source: str, sequence: int, changes: Changes) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT sequence FROM analytics_flushes WHERE source = ?",
                               (source,)).fetchone()
            if row is not None and row[0] >= sequence:
                return False
            _write(conn, changes)
            conn.execute("INSERT INTO analytics_flushes VALUES (?, ?, ?) ON CONFLICT (source)"
                         " DO UPDATE SET sequence = excluded.sequence,"
                         " write_time = excluded.write_time",
                         (source, sequence, datetime.now(UTC).isoformat()))
            return True

        return await self._db.write(body)

    async def is_member(self, app_id: str, kind: Kind, granularity: Granularity, bucket: int,
                        member: str) -> bool:
        def query(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "SELECT 1 FROM analytics_members WHERE app_id = ? AND kind = ?"
                " AND granularity = ? AND bucket = ? AND member = ?",
                (app_id, kind.value, granularity.value, bucket, member)).fetchone() is not None

        return await self._db.read(query)

    async def position(self, app_id: str) -> int:
        def query(conn: sqlite3.Connection) -> int:
            return _position(conn, app_id)

        return await self._db.read(query)

    async def series(self, app_id: str, metric: Metric, span: Span, by_dimension: bool = True
                     ) -> list[tuple[int, str, int]]:
        columns, grouped = (("dimension, value", "") if by_dimension
                            else ("'', sum(value)", " GROUP BY bucket"))

        def query(conn: sqlite3.Connection) -> list[tuple[int, str, int]]:
            return [(row[0], row[1], row[2]) for row in conn.execute(
                f"SELECT bucket, {columns} FROM analytics_counters WHERE app_id = ?"
                " AND metric = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
                f"{grouped} ORDER BY bucket", (app_id, metric.value, span.granularity.value,
                                               span.start, span.end))]

        return await self._db.read(query)

    async def top(self, app_id: str, metric: Metric, spans: Sequence[Span], limit: int
                  ) -> list[tuple[str, int]]:
        if not spans:
            return []
        # One indexed range per span (an OR of them would scan every bucket).
        ranges = " UNION ALL ".join(
            ["SELECT dimension, value FROM analytics_counters WHERE app_id = ? AND metric = ?"
             " AND granularity = ? AND bucket >= ? AND bucket < ?"] * len(spans))
        args: list[object] = []
        for span in spans:
            args += [app_id, metric.value, span.granularity.value, span.start, span.end]

        def query(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return [(row[0], row[1]) for row in conn.execute(
                f"SELECT dimension, sum(value) AS total FROM ({ranges})"
                " GROUP BY dimension ORDER BY total DESC, dimension LIMIT ?", (*args, limit))]

        return await self._db.read(query)

