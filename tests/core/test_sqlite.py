"""The embedded engine: writes committed together stay each all-or-nothing, and opening
waits for other processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from services.core.db.sqlite import SqliteDatabase


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
