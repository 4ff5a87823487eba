"""Which failures of a backing store are transient: the client should retry, not report."""

from __future__ import annotations

import sqlite3

from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def is_transient(error: BaseException) -> bool:
    """True for outages and lock timeouts of SQLite, MongoDB or Redis."""
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return "locked" in text or "busy" in text
    return isinstance(error, ConnectionFailure | RedisConnectionError | RedisTimeoutError)
