"""The embedded store engine: one SQLite file in WAL mode.

Every write is one transaction run on a single writer thread (so writes never
interleave inside this process, a slow commit or a lock wait never stalls the event
loop, and `BEGIN IMMEDIATE` serialises them with other processes on the same file).
A transaction is a plain function of a `sqlite3.Connection`, so the event loop hops
threads once per transaction, not once per statement.

Processes sharing the file (`caas serve --workers N`) take turns through an `flock`
on a lock file beside it before `BEGIN IMMEDIATE`: the kernel hands the lock over the
moment it is released, where SQLite's own busy handler would poll with sleeps of up
to 100 ms. Opening takes the same lock: processes starting together on a new file
switch it to WAL and create their tables in turn, where SQLite would answer
"database is locked" at once to one of two connections upgrading their locks at the
same moment (no busy handler runs for that deadlock).

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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.core.db.transient import is_transient

T = TypeVar("T")

# A migration is the list of statements of one schema version, applied atomically.
Migration = tuple[str, ...]

_PRAGMAS = (
    "PRAGMA busy_timeout=10000",  # first: the next one may wait for a lock
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable at each WAL checkpoint; no torn state on crash
    "PRAGMA foreign_keys=ON",
)
_TABLES = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
    " PRIMARY KEY (component, version))",
)
OPEN_PATIENCE = 30.0  # seconds opening waits for a lock held outside the lock file
OPEN_RETRY = 0.05


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in _PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
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
        """Open the database at `path`, created if new, waiting for other processes'
        locks."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        write_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        try:
            writer, reader = await asyncio.get_running_loop().run_in_executor(
                write_pool, _open_connections, path, lock_fd)
        except BaseException:
            write_pool.shutdown()
            os.close(lock_fd)
            raise
        return cls(writer, reader, write_pool, lock_fd)

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
        await asyncio.get_running_loop().run_in_executor(self._write_pool, self._close)
        self._write_pool.shutdown()
        os.close(self._lock_fd)

    def _close(self) -> None:
        # Holding the lock file: the last connection's checkpoint, which removes the
        # WAL, never meets another process opening the file.
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._reader.close()
            self._writer.close()
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)


MAX_GROUP = 64  # writes committed together at most

_Write = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _open_connections(path: Path, lock_fd: int
                      ) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """The writer and reader connections, opened holding the lock file, with the
    engine's own tables created. A lock held by a process that does not take the lock
    file is waited for (and retried) for up to OPEN_PATIENCE seconds."""
    deadline = time.monotonic() + OPEN_PATIENCE
    while True:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            return _open_locked(path)
        except sqlite3.OperationalError as error:
            if not is_transient(error) or time.monotonic() > deadline:
                raise
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        time.sleep(OPEN_RETRY)


def _open_locked(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    writer = _connect(path)
    try:
        writer.execute("BEGIN IMMEDIATE")
        try:
            for table in _TABLES:
                writer.execute(table)
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise
        return writer, _connect(path)
    except BaseException:
        writer.close()
        raise


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

