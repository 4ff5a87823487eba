"""The embedded engine: writes committed together stay each all-or-nothing."""

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
