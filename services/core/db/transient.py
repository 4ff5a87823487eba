"""Which failures of a backing store are no bug: the client should retry, not report.

- Transient failures (outages, lock timeouts of SQLite, MongoDB or Redis): answered
  UNAVAILABLE with a short retry delay.
- A full disk (SQLite's SQLITE_FULL; MongoDB's OutOfDiskSpace, 14031, or a storage
  engine's "No space left on device"): the write did not happen, and writes fail
  until an operator frees space; answered UNAVAILABLE with the reason STORAGE_FULL
  and a longer retry delay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from pymongo.errors import ConnectionFailure, OperationFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.core.errors import DomainError, Unavailable

MONGO_OUT_OF_DISK_SPACE = 14031  # MongoDB's error code OutOfDiskSpace
_NO_SPACE = ("no space left on device", "enospc", "out of disk space", "disk is full",
             "disk full")
STORAGE_FULL_RETRY = timedelta(seconds=5)
OUTAGE_RETRY = timedelta(seconds=1)


class StoreUnusable(Exception):
    """The store cannot be used at all (a data directory that cannot be written: missing
    permissions, a read-only or full file system). Raised when opening it; the message
    says which and why, in one line fit for an operator."""


def is_transient(error: BaseException) -> bool:
    """True for outages and lock timeouts of SQLite, MongoDB or Redis."""
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return "locked" in text or "busy" in text
    return isinstance(error, ConnectionFailure | RedisConnectionError | RedisTimeoutError)


def is_storage_full(error: BaseException) -> bool:
    """True when a store refused a write for want of disk space (SQLite or MongoDB)."""
    if isinstance(error, sqlite3.Error):
        return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL
    if isinstance(error, OperationFailure):
        # WriteError, BulkWriteError and WriteConcernError are OperationFailures too.
        return (error.code == MONGO_OUT_OF_DISK_SPACE or _says_no_space(str(error))
                or any(_reply_is_full(reply) for reply in _replies(error.details)))
    return False


def mongo_reply_is_full(reply: Mapping[str, Any]) -> bool:
    """Whether a MongoDB server reply (a command's, or a failure document) says that a
    write found the disk full: its own code or message, or one of its write errors'
    or its write-concern error's."""
    return any(_reply_is_full(part) for part in _replies(reply))


def store_outage(error: BaseException) -> DomainError | None:
    """What a client is told about a store failure that is no bug (None for a bug)."""
    if is_storage_full(error):
        return Unavailable("STORAGE_FULL", "the server's storage is full; nothing was "
                           "written: retry later", retry_after=STORAGE_FULL_RETRY)
    if is_transient(error):
        return Unavailable("UNAVAILABLE", "a backing store is unavailable: retry",
                           retry_after=OUTAGE_RETRY)
    return None


def _says_no_space(text: str) -> bool:
    lowered = text.lower()
    return any(words in lowered for words in _NO_SPACE)


def _replies(reply: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    """A reply and the write errors and write-concern error inside it."""
    if not reply:
        return
    yield reply
    for write_error in reply.get("writeErrors") or ():
        if isinstance(write_error, Mapping):
            yield write_error
    concern = reply.get("writeConcernError")
    if isinstance(concern, Mapping):
        yield concern


def _reply_is_full(part: Mapping[str, Any]) -> bool:
    return (part.get("code") == MONGO_OUT_OF_DISK_SPACE
            or part.get("codeName") == "OutOfDiskSpace"
            or _says_no_space(str(part.get("errmsg", ""))))
