"""Store failures that are no bug: which errors say the disk is full (SQLite and
MongoDB), what clients are told, how MongoDB's writes are watched, and how readiness
follows the writes ("store-writes": down on the first refused, up on the next that
commits, found by a probe when no client writes)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from typing import Any

import grpc
import pytest
from pymongo import monitoring
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    OperationFailure,
    WriteConcernError,
    WriteError,
)

from services.core.db.mongo import MongoDatabase, WriteMonitor
from services.core.db.transient import (
    MONGO_OUT_OF_DISK_SPACE,
    is_storage_full,
    is_transient,
    mongo_reply_is_full,
    store_outage,
)
from services.core.db.writes import COMPONENT, WriteListener, WriteWatch
from services.core.health import Health
from tests.conftest import unique_id
from tests.support.servers import ExternalServer
from tests.support.waiting import eventually


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


FULL_REPLY = {"ok": 0.0, "code": MONGO_OUT_OF_DISK_SPACE, "codeName": "OutOfDiskSpace",
              "errmsg": "Detected low disk space: 1 MB free, below the threshold"}
WIREDTIGER_FULL = {"ok": 0.0, "code": 8, "codeName": "UnknownError",
                   "errmsg": "WiredTiger error (28) [1700000000:0][1:0x7f], file:collection-"
                             "2.wt, WT_CURSOR.insert: __posix_file_write, 619: No space left "
                             "on device"}

FULL = [
    pytest.param(sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), id="sqlite"),
    pytest.param(OperationFailure("out of disk", MONGO_OUT_OF_DISK_SPACE, FULL_REPLY),
                 id="mongo-code"),
    pytest.param(WriteError(FULL_REPLY["errmsg"], MONGO_OUT_OF_DISK_SPACE, FULL_REPLY),
                 id="mongo-write-error"),
    pytest.param(OperationFailure(WIREDTIGER_FULL["errmsg"], 8, WIREDTIGER_FULL),
                 id="wiredtiger-enospc"),
    pytest.param(BulkWriteError({"writeErrors": [
        {"index": 0, "code": MONGO_OUT_OF_DISK_SPACE, "errmsg": "OutOfDiskSpace"}],
        "nInserted": 0}), id="mongo-bulk"),
    pytest.param(WriteConcernError("waiting for replication failed", 100, {
        "writeConcernError": {"code": 100, "errmsg": "No space left on device"}}),
        id="mongo-write-concern"),
]
NOT_FULL = [
    pytest.param(sqlite_error("database is locked", sqlite3.SQLITE_BUSY), id="sqlite-locked"),
    pytest.param(sqlite3.OperationalError("no such table: t"), id="sqlite-bug"),
    pytest.param(sqlite3.IntegrityError("UNIQUE constraint failed"), id="sqlite-constraint"),
    pytest.param(DuplicateKeyError("E11000 duplicate key", 11000), id="mongo-duplicate"),
    pytest.param(OperationFailure("WriteConflict", 112, {"code": 112, "errmsg": "conflict"}),
                 id="mongo-conflict"),
    pytest.param(BulkWriteError({"writeErrors": [{"index": 0, "code": 11000,
                                                  "errmsg": "E11000"}]}), id="mongo-bulk"),
    pytest.param(AutoReconnect("connection reset"), id="mongo-outage"),
    pytest.param(OSError(28, "No space left on device"), id="not-a-store-error"),
]


@pytest.mark.parametrize("error", FULL)
def test_a_full_disk_is_storage_full_and_answered_unavailable(error: Exception) -> None:
    assert is_storage_full(error)
    outage = store_outage(error)
    assert outage is not None
    assert (outage.code, outage.reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_FULL")
    assert outage.retry_after == timedelta(seconds=5)
    assert str(error) not in outage.message  # no internals reach the client


@pytest.mark.parametrize("error", NOT_FULL)
def test_other_failures_are_not_storage_full(error: Exception) -> None:
    assert not is_storage_full(error)
    outage = store_outage(error)
    if is_transient(error):
        assert outage is not None and outage.reason == "UNAVAILABLE"
    else:
        assert outage is None  # a bug: INTERNAL


def test_mongo_replies_that_say_the_disk_is_full() -> None:
    assert mongo_reply_is_full(FULL_REPLY)
    assert mongo_reply_is_full(WIREDTIGER_FULL)
    assert mongo_reply_is_full({"ok": 1.0, "n": 0, "writeErrors": [
        {"index": 0, "code": MONGO_OUT_OF_DISK_SPACE, "errmsg": "OutOfDiskSpace"}]})
    assert mongo_reply_is_full({"ok": 1.0, "n": 1, "writeConcernError": {
        "code": 100, "errmsg": "No space left on device"}})
    assert not mongo_reply_is_full({"ok": 1.0, "n": 1})
    assert not mongo_reply_is_full({"ok": 0.0, "code": 112, "errmsg": "WriteConflict"})


# MongoDB's writes, as the driver reports them.

class Commands:
    """Feeds a WriteMonitor the events the driver would send."""

    def __init__(self, monitor: WriteMonitor) -> None:
        self.monitor = monitor
        self.next_id = 0

    def started(self, name: str, **fields: Any) -> int:
        self.next_id += 1
        self.monitor.started(monitoring.CommandStartedEvent(
            {name: "c", **fields}, "db", self.next_id, ("127.0.0.1", 27017), None))
        return self.next_id

    def succeeded(self, request_id: int, name: str, reply: dict[str, Any]) -> None:
        self.monitor.succeeded(monitoring.CommandSucceededEvent(
            timedelta(0), reply, name, request_id, ("127.0.0.1", 27017), None))

    def failed(self, request_id: int, name: str, failure: dict[str, Any]) -> None:
        self.monitor.failed(monitoring.CommandFailedEvent(
            timedelta(0), failure, name, request_id, ("127.0.0.1", 27017), None))


def test_the_mongo_monitor_reports_full_writes_and_the_writes_that_succeed() -> None:
    reports: list[BaseException | None] = []
    monitor = WriteMonitor()
    monitor.listener = reports.append
    commands = Commands(monitor)

    commands.succeeded(commands.started("find"), "find", {"ok": 1.0})  # no write
    commands.succeeded(commands.started("insert"), "insert", {"ok": 1.0, "n": 1})
    assert reports == [None]

    commands.failed(commands.started("update"), "update", FULL_REPLY)
    commands.succeeded(commands.started("insert"), "insert", {"ok": 1.0, "n": 0, "writeErrors": [
        {"index": 0, "code": MONGO_OUT_OF_DISK_SPACE, "errmsg": "OutOfDiskSpace"}]})
    assert len(reports) == 3
    assert all(isinstance(r, OperationFailure) and is_storage_full(r) for r in reports[1:])

    # A write that failed otherwise (a duplicate key) says nothing of the disk.
    commands.succeeded(commands.started("insert"), "insert", {"ok": 1.0, "n": 0, "writeErrors": [
        {"index": 0, "code": 11000, "errmsg": "E11000"}]})
    commands.failed(commands.started("delete"), "delete", {"ok": 0.0, "code": 112})
    assert len(reports) == 3

    # Inside a transaction, writes count at the commit.
    commands.succeeded(commands.started("insert", autocommit=False), "insert", {"ok": 1.0})
    assert len(reports) == 3
    commit = commands.started("commitTransaction", autocommit=False)
    commands.failed(commit, "commitTransaction", WIREDTIGER_FULL)
    assert len(reports) == 4 and is_storage_full(reports[3])  # type: ignore[arg-type]
    commit = commands.started("commitTransaction", autocommit=False)
    commands.succeeded(commit, "commitTransaction", {"ok": 1.0})
    assert reports[4:] == [None]


async def test_mongo_writes_reach_the_listener(mongo: ExternalServer) -> None:
    db = await MongoDatabase.open(mongo.url, unique_id("writes"))
    reports: list[BaseException | None] = []
    db.watch_writes(reports.append)
    try:
        await db.db["things"].find_one({})
        assert reports == []
        await db.db["things"].insert_one({"_id": 1})
        await db.probe()
        assert reports == [None, None]
        assert await db.db["store_probe"].count_documents({}) == 1
    finally:
        await db.client.drop_database(db.db.name)
        await db.close()


# Readiness.

class FakeEngine:
    """An engine whose disk is full until `space_back()`; its probe fails meanwhile."""

    def __init__(self) -> None:
        self.listener: WriteListener | None = None
        self.full = True
        self.probes = 0

    def watch_writes(self, listener: WriteListener) -> None:
        self.listener = listener

    async def probe(self) -> None:
        self.probes += 1
        assert self.listener is not None
        error = sqlite_error("database or disk is full", sqlite3.SQLITE_FULL)
        self.listener(error if self.full else None)
        if self.full:
            raise error


async def test_readiness_is_down_while_writes_fail_and_back_by_itself() -> None:
    health = Health()
    changes: list[tuple[str, bool, bool]] = []
    health.listen(lambda name, ok, readiness: changes.append((name, ok, readiness)))
    engine = FakeEngine()
    watch = WriteWatch(health, engine, probe_seconds=0.001)
    assert health.ready() and changes == [(COMPONENT, True, True)]
    assert engine.listener is not None
    engine.listener(None)  # writes commit: nothing changes
    assert changes == [(COMPONENT, True, True)]

    for _ in range(3):  # however many writes fail, one change
        engine.listener(sqlite_error("database or disk is full", sqlite3.SQLITE_FULL))
    assert not health.ready()
    assert health.states()[COMPONENT][1].startswith("the disk is full")
    await eventually(lambda: _probed(engine, 3))  # probes while down...
    assert not health.ready()
    engine.full = False  # ...until one commits
    await eventually(lambda: _ready(health))
    assert changes == [(COMPONENT, True, True), (COMPONENT, False, True),
                       (COMPONENT, True, True)]
    probes = engine.probes
    await asyncio.sleep(0.01)
    assert engine.probes == probes  # no probing while writes work
    await watch.close()


async def _probed(engine: FakeEngine, times: int) -> bool:
    return engine.probes >= times


async def _ready(health: Health) -> bool:
    return health.ready()
