"""The embedded engine: writes committed together stay each all-or-nothing, a full disk
fails a group as a whole and is reported, and opening waits for other processes."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from services.core.db.sqlite import SqliteDatabase
from services.core.db.transient import StoreUnusable, is_storage_full


class Refused(Exception):
    pass


async def test_concurrent_writes_commit_together_yet_fail_alone(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "t.db")
    await db.write(lambda conn: conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))

    def insert(n: int) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t VALUES (?)", (n,))
            conn.execute("INSERT INTO t VALUES (?)", (n + 1000,))
            if n % 3 == 0:
                raise Refused(n)  # after writing: its rows must vanish, nobody else's
            return n

        return db.write(tx)  # type: ignore[return-value]

    outcomes = await asyncio.gather(*[insert(n) for n in range(60)], return_exceptions=True)
    for n, outcome in enumerate(outcomes):
        if n % 3 == 0:
            assert isinstance(outcome, Refused) and outcome.args == (n,)
        else:
            assert outcome == n
    stored = await db.read(lambda conn: [r[0] for r in conn.execute("SELECT n FROM t")])
    kept = [n for n in range(60) if n % 3]
    assert sorted(stored) == sorted(kept + [n + 1000 for n in kept])
    # A write that breaks a constraint fails alone, too.
    results = await asyncio.gather(insert(1), insert(2000), return_exceptions=True)
    assert isinstance(results[0], sqlite3.IntegrityError) and results[1] == 2000
    await db.close()


async def test_a_failed_write_leaves_the_writer_usable(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError):
        await db.write(lambda conn: conn.execute("INSERT INTO missing VALUES (1)"))
    await db.write(lambda conn: conn.execute("CREATE TABLE t (n INTEGER)"))
    assert await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    await db.close()


async def test_opening_waits_for_a_lock_another_connection_holds(tmp_path: Path) -> None:
    """Switching a new file to WAL while another connection writes it fails at once in
    SQLite ("database is locked", no busy wait): opening waits for the lock instead,
    as a process starting beside another one must."""
    path = tmp_path / "t.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as another process creating its tables
    other.execute("CREATE TABLE theirs (n INTEGER)")
    opening = asyncio.create_task(SqliteDatabase.open(path))
    await asyncio.sleep(0.3)  # long enough to meet the lock: opening must outwait it
    assert not opening.done()
    other.execute("COMMIT")
    other.close()
    db = await opening
    await db.migrate("t", [("CREATE TABLE ours (n INTEGER)",)])
    tables = await db.read(lambda conn: {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")})
    assert {"theirs", "ours"} <= tables
    assert await db.read(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    await db.close()


async def test_a_full_disk_fails_the_whole_group_writes_nothing_and_is_reported(
        tmp_path: Path) -> None:
    """SQLite rolls the whole transaction back when the disk is full (here: the file may
    not grow past `max_page_count`, which fails the same way): every write committed
    with it fails with that error, none is half written, and the listener hears of the
    failure, then of the next commit."""
    db = await SqliteDatabase.open(tmp_path / "t.db")
    reports: list[BaseException | None] = []
    db.watch_writes(reports.append)
    await db.write(lambda conn: conn.execute("CREATE TABLE t (v TEXT)"))
    pages = await db.read(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    await db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
    assert reports == [None, None]

    started, gate = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:  # keeps the writer busy meanwhile
        started.set()
        gate.wait(10)

    held = asyncio.ensure_future(db.write(hold))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    texts = ["small", "x" * 100_000, "small too"]  # committed together: one group
    writes = [asyncio.ensure_future(db.write(
        lambda conn, text=text: conn.execute("INSERT INTO t VALUES (?)", (text,))))
        for text in texts]
    await asyncio.sleep(0)  # each write is queued
    gate.set()
    await held
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, sqlite3.OperationalError) and is_storage_full(outcome)
    assert await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    assert len(reports) == 4 and reports[2] is None and reports[3] is outcomes[0]

    await db.write(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))  # space
    await db.write(lambda conn: conn.execute("INSERT INTO t VALUES ('after')"))
    assert reports[-1] is None
    assert await db.read(lambda conn: [r[0] for r in conn.execute("SELECT v FROM t")]) == [
        "after"]
    await db.probe()
    await db.close()


async def test_opening_an_unwritable_directory_says_why(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(StoreUnusable) as refused:
        await SqliteDatabase.open(not_a_directory / "t.db")
    assert str(refused.value) == (
        f"cannot write to the data directory {not_a_directory}: not a directory")
