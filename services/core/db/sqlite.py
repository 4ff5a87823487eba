"""The embedded store engine: one SQLite file in WAL mode.

Every write is one transaction run on a single writer thread (so writes never
interleave inside this process, a slow commit or a lock wait never stalls the event
loop, and `BEGIN IMMEDIATE` serialises them with other processes on the same file).
A transaction is a plain function of a `sqlite3.Connection`, so the event loop hops
threads once per transaction, not once per statement.

Processes sharing the file (`caas serve --workers N`) take turns through an `flock`
on a lock file beside it before `BEGIN IMMEDIATE`: the kernel hands the lock over the
moment it is released, where SQLite's own busy handler would poll with sleeps of up
to 100 ms.

Writes that arrive while the writer is busy are committed together (group commit):
each runs in a savepoint of one `BEGIN IMMEDIATE … COMMIT`, so each is still all or
nothing — one that raises is rolled back alone — and all of them are answered, in one
hop back to the event loop, only once the commit is done.

Reads run on the event loop itself, on their own connection, against a consistent
snapshot: in WAL mode readers never wait for writers, and a point read costs a few
microseconds — far less than handing it to a thread and back (measured with
bench/unary_rpc.py: the hop cost about 0.45 ms of CPU per call under load).
Read functions must therefore stay small: indexed lookups and bounded pages.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# A migration is the list of statements of one schema version, applied atomically.
Migration = tuple[str, ...]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable at each WAL checkpoint; no torn state on crash
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


class SqliteDatabase:
    """An open SQLite database. Create with `await SqliteDatabase.open(path)`."""

    def __init__(self, writer: sqlite3.Connection, reader: sqlite3.Connection,
                 write_pool: ThreadPoolExecutor, lock_fd: int) -> None:
        self._writer = writer
        self._lock_fd = lock_fd
        self._reader = reader
        self._write_pool = write_pool
        self._queued: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._draining = False

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        write_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        writer = await loop.run_in_executor(write_pool, _connect, path)
        lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        db = cls(writer, _connect(path), write_pool, lock_fd)
        await db.write(lambda conn: conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
            " PRIMARY KEY (component, version))"))
        return db

    async def write(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        """Run `transaction` atomically: all its statements commit, or none do.

        Whatever `transaction` raises propagates after the rollback.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queued.append((transaction, future))
            start, self._draining = not self._draining, True
        if start:
            self._write_pool.submit(self._drain, loop)
        return await future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the writer thread: commit what is queued, in groups, until none is left."""
        while True:
            with self._queue_lock:
                group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
                if not group:
                    self._draining = False
                    return
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                outcomes = _run_group(self._writer, group)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            loop.call_soon_threadsafe(_settle, outcomes)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` against one consistent snapshot, on the event loop (keep it small)."""
        self._reader.execute("BEGIN")
        try:
            result = query(self._reader)
        except BaseException:
            self._reader.execute("ROLLBACK")
            raise
        self._reader.execute("COMMIT")
        return result

    async def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply the migrations of `component` not applied yet, in order, each atomically.

        Version N is `migrations[N-1]`; applied versions are recorded, so running
        this on every start (from any number of processes) is safe.
        """
        for version, statements in enumerate(migrations, start=1):
            def apply(conn: sqlite3.Connection, v: int = version,
                      s: Migration = statements) -> None:
                _apply(conn, component, v, s)

            await self.write(apply)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._write_pool, self._writer.close)
        self._reader.close()
        self._write_pool.shutdown()
        os.close(self._lock_fd)


MAX_GROUP = 64  # writes committed together at most

_Write = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _run_group(conn: sqlite3.Connection, group: list[_Write]) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for body, future in group:
            conn.execute("SAVEPOINT write")
            try:
                result = body(conn)
            except BaseException as error:  # handed to its caller
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
                outcomes.append((future, None, error))
                continue
            conn.execute("RELEASE write")
            outcomes.append((future, result, None))
        conn.execute("COMMIT")
    except sqlite3.Error as error:  # BEGIN or COMMIT failed: none of the group happened
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(future, None, error) for _, future in group]
    return outcomes


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _apply(conn: sqlite3.Connection, component: str, version: int,
           statements: Migration) -> None:
    done = conn.execute("SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?",
                        (component, version)).fetchone()
    if done:
        return
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))",
                 (component, version))

