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
hop back to the event loop, only once the commit is done. When the transaction as a
whole fails — SQLite rolls it back itself when the disk is full — every write of the
group gets that error, and none of them happened. Such failures, and the commits
after them, are reported to the engine's listener (`watch_writes`; see
services/core/db/writes.py).

Reads run on the event loop itself, on their own connection, against a consistent
snapshot: in WAL mode readers never wait for writers, and a point read costs a few
microseconds — far less than handing it to a thread and back (measured with
bench/unary_rpc.py: the hop cost about 0.45 ms of CPU per call under load).
Read functions must therefore stay small: indexed lookups and bounded pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.trace import Tracer, get_current_span

from services.core.db.timing import SPAN_KIND, Timer, operation_name
from services.core.db.transient import StoreUnusable, is_storage_full, is_transient
from services.core.db.writes import WriteListener

T = TypeVar("T")

# A migration is the list of statements of one schema version, applied atomically.
Migration = tuple[str, ...]

_PRAGMAS = (
    "PRAGMA busy_timeout=10000",  # first: the next one may wait for a lock
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable at each WAL checkpoint; no torn state on crash
    "PRAGMA foreign_keys=ON",
    # Deleted content is overwritten with zeros, not left in free space (erasure; what
    # the WAL still holds goes at the next checkpoint: `compact`).
    "PRAGMA secure_delete=ON",
)
_TABLES = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
    " PRIMARY KEY (component, version))",
    # One row, written by `probe` to find out whether writes work again.
    "CREATE TABLE IF NOT EXISTS store_probe ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), written_at TEXT NOT NULL)",
)
OPEN_PATIENCE = 30.0  # seconds opening waits for a lock held outside the lock file
OPEN_RETRY = 0.05
WRITE_CHECK_BYTES = 64 * 1024
# Primary result codes that say the file or its directory cannot be used.
_UNUSABLE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
                       sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOTADB,
                       sqlite3.SQLITE_CORRUPT})


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in _PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def check_writable(directory: Path) -> None:
    """Make `directory` if missing, then write (and sync) a small file in it and remove
    it again. Raises StoreUnusable, saying why, when that fails: missing permissions, a
    read-only or full file system, a path that is no directory."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        check = directory / f".write-check.{os.getpid()}"
        try:
            fd = os.open(check, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                data = memoryview(bytes(WRITE_CHECK_BYTES))
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                check.unlink()
    except OSError as error:
        why = ("not a directory" if directory.exists() and not directory.is_dir()
               else error.strerror or str(error))
        raise StoreUnusable(f"cannot write to the data directory {directory}: {why}"
                            ) from error


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
        self._listener: WriteListener | None = None
        self._timer: Timer | None = None
        self._tracer: Tracer | None = None
        self._names: dict[object, str] = {}  # a function's code → its operation name
        self._observers: dict[object, Callable[[float], None]] = {}  # … → its timing

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        """Open the database at `path`, created if new, waiting for other processes'
        locks. Raises StoreUnusable when its directory cannot be written (see
        `check_writable`) or SQLite cannot open or write the file there."""
        check_writable(path.parent)
        try:
            lock_fd = os.open(path.with_name(path.name + ".lock"),
                              os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StoreUnusable(f"cannot open {path}.lock: {error.strerror or error}"
                                ) from error
        write_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        try:
            writer, reader = await asyncio.get_running_loop().run_in_executor(
                write_pool, _open_connections, path, lock_fd)
        except BaseException as error:
            write_pool.shutdown()
            os.close(lock_fd)
            if isinstance(error, sqlite3.Error) and _primary_code(error) in _UNUSABLE:
                raise StoreUnusable(f"cannot use the database {path}: {error}") from error
            raise
        return cls(writer, reader, write_pool, lock_fd)

    def watch_writes(self, listener: WriteListener) -> None:
        """Tell `listener`, on the event loop, of every write refused for want of disk
        space (its error) and of every commit (None)."""
        self._listener = listener

    async def probe(self) -> None:
        """Commit one tiny write (raises what a write raises)."""
        await self.write(_probe)

    async def ping(self) -> None:
        """Read from the file (raises what a read raises)."""
        await self.read(_ping)

    def time_operations(self, timer: Timer) -> None:
        """Tell `timer` how long each read and write takes (a write: from its call to
        its commit, group commit included)."""
        self._timer = timer

    def trace_operations(self, tracer: Tracer) -> None:
        """Make a span of each read and write (tracing on)."""
        self._tracer = tracer

    def _name(self, function: Callable[..., Any]) -> str:
        name = self._names.get(function.__code__)
        if name is None:
            name = self._names[function.__code__] = operation_name(function)
        return name

    def _time(self, function: Callable[..., Any], started: float) -> None:
        observe = self._observers.get(function.__code__)
        if observe is None:
            if self._timer is None:
                return
            observe = self._observers[function.__code__] = self._timer.series(
                self._name(function))
        observe(time.perf_counter() - started)

    def _span(self, function: Callable[..., Any]) -> AbstractContextManager[object]:
        if self._tracer is None or not get_current_span().is_recording():
            return contextlib.nullcontext()  # see services/core/db/timing.py
        name = self._name(function)
        return self._tracer.start_as_current_span(
            f"sqlite {name}", kind=SPAN_KIND,
            attributes={"db.system.name": "sqlite", "db.operation.name": name})

    async def write(self, transaction: Callable[[sqlite3.Connection], T], *,
                    named: Callable[..., Any] | None = None) -> T:
        """Run `transaction` atomically: all its statements commit, or none do.

        Whatever `transaction` raises propagates after the rollback. Its timing is
        named after the function `named`, else `transaction` (see `time_operations`).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queued.append((transaction, future))
            start, self._draining = not self._draining, True
        if start:
            self._write_pool.submit(self._drain, loop)
        if self._timer is None and self._tracer is None:
            return await future
        started = time.perf_counter()
        try:
            if self._tracer is None:
                return await future
            with self._span(named or transaction):
                return await future
        finally:
            self._time(named or transaction, started)

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
                outcomes, committed = _run_group(self._writer, group)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            loop.call_soon_threadsafe(self._answer, outcomes, committed)

    def _answer(self, outcomes: list[_Outcome], committed: bool) -> None:
        """On the event loop: answer the writes of a group, then report it."""
        _settle(outcomes)
        if self._listener is None:
            return
        full = next((e for _, _, e in outcomes if e is not None and is_storage_full(e)), None)
        if full is not None:
            self._listener(full)
        elif committed:
            self._listener(None)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` against one consistent snapshot, on the event loop (keep it small)."""
        if self._timer is None and self._tracer is None:
            return self._read(query)
        started = time.perf_counter()
        try:
            if self._tracer is None:
                return self._read(query)
            with self._span(query):
                return self._read(query)
        finally:
            self._time(query, started)

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
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

    async def purge_app(self, app_id: str, keep: frozenset[str] = frozenset()) -> int:
        """Delete every row of the app from every table that has an `app_id` column
        (but those of `keep`), a table's referrers (foreign keys) before it; how many
        rows went. A table at a time: run again, it finishes what a crash cut short."""
        def tables(conn: sqlite3.Connection) -> list[str]:
            names = [name for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%'")]
            scoped = [name for name in names if name not in keep and any(
                column[1] == "app_id" for column in conn.execute(
                    "SELECT * FROM pragma_table_info(?)", (name,)))]
            refers = {name: {row[2] for row in conn.execute(
                "SELECT * FROM pragma_foreign_key_list(?)", (name,))} for name in scoped}
            ordered: list[str] = []
            while len(ordered) < len(scoped):  # referrers first: no key left dangling
                for name in scoped:
                    waiting = [other for other in scoped if other not in ordered
                               and other != name and name in refers[other]]
                    if name not in ordered and not waiting:
                        ordered.append(name)
            return ordered

        gone = 0
        for table in await self.read(tables):
            def delete(conn: sqlite3.Connection, table: str = table) -> int:
                return int(conn.execute(f'DELETE FROM "{table}" WHERE app_id = ?',  # noqa: S608
                                        (app_id,)).rowcount)

            gone += await self.write(delete)
        return gone

    async def compact(self) -> bool:
        """Copy the WAL into the database file and empty it (checkpoint TRUNCATE): with
        secure_delete, what was deleted then has no copy left on disk. Whether it went
        all the way (a reader in another process can hold part of the WAL back)."""
        return await asyncio.get_running_loop().run_in_executor(self._write_pool,
                                                                self._checkpoint)

    def _checkpoint(self) -> bool:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            busy, _, _ = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return bool(busy == 0)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

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
    writer = connect(path)
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
        return writer, connect(path)
    except BaseException:
        writer.close()
        raise


class _TransactionLost(Exception):
    """SQLite rolled back a group's transaction itself (a full disk, an I/O error)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _run_group(conn: sqlite3.Connection, group: list[_Write]
               ) -> tuple[list[_Outcome], bool]:
    """Commit `group` in one transaction, each write in a savepoint: every write's
    outcome, and whether the transaction committed. When the transaction as a whole
    fails (BEGIN, COMMIT, or SQLite rolling it back under a write, as a full disk
    does), every write of the group fails with that error: none of them happened."""
    outcomes: list[_Outcome] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for body, future in group:
            conn.execute("SAVEPOINT write")
            try:
                result = body(conn)
            except BaseException as error:  # handed to its caller
                if not conn.in_transaction:
                    raise _TransactionLost(error) from error
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
                outcomes.append((future, None, error))
                continue
            if not conn.in_transaction:  # the body caught the error that ended it
                raise _TransactionLost(sqlite3.OperationalError(
                    "the transaction was rolled back under a write"))
            conn.execute("RELEASE write")
            outcomes.append((future, result, None))
        conn.execute("COMMIT")
    except Exception as error:  # none of the group happened
        cause = error.cause if isinstance(error, _TransactionLost) else error
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return [(future, None, cause) for _, future in group], False
    return outcomes, True


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


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO store_probe VALUES (1, datetime('now'))"
                 " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at")


def _primary_code(error: sqlite3.Error) -> int:
    return int(getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF


def _ping(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
