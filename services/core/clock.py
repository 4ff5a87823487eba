"""Time, injectable so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


def truncate_ms(moment: datetime) -> datetime:
    """The same instant at millisecond precision: what every store keeps exactly."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current UTC time, timezone-aware, at millisecond precision."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return truncate_ms(datetime.now(UTC))


def to_ms(moment: datetime) -> int:
    """A UTC datetime as integer milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def ms(duration: timedelta) -> int:
    """A duration as whole milliseconds."""
    return duration // timedelta(milliseconds=1)


def opt_from_ms(value: int | None) -> datetime | None:
    return None if value is None else from_ms(value)
