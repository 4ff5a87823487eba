"""Quiet hours (do not disturb): daily, in the user's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.push.models import DoNotDisturb


def zone(name: str) -> tzinfo:
    """The IANA zone `name` (UTC when empty); raises ValueError when unknown."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def in_quiet_hours(dnd: DoNotDisturb, at: datetime) -> bool:
    """Whether `at` falls in the quiet hours: [start, end) minutes of the local day,
    across midnight when the end comes first."""
    try:
        local = at.astimezone(zone(dnd.time_zone))
    except ValueError:
        local = at.astimezone(UTC)
    minute = local.hour * 60 + local.minute
    if dnd.start_minute < dnd.end_minute:
        return dnd.start_minute <= minute < dnd.end_minute
    return minute >= dnd.start_minute or minute < dnd.end_minute
