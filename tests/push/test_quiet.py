"""Quiet hours (services/push/quiet.py): [start, end) minutes of the user's local day,
across midnight when the end comes first; the local day of a named zone (summer time
included), UTC when the zone is empty or unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.push.models import DoNotDisturb
from services.push.quiet import in_quiet_hours, zone

WORKDAY = DoNotDisturb(9 * 60, 17 * 60 + 30)  # 09:00-17:30 UTC
NIGHT = DoNotDisturb(22 * 60, 7 * 60)  # 22:00-07:00 UTC, across midnight


def utc(hour: int, minute: int, second: int = 0, day: int = 15, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(("at", "quiet"), [
    (utc(8, 59, 59), False),
    (utc(9, 0), True),  # the start is in
    (utc(12, 0), True),
    (utc(17, 29, 59), True),
    (utc(17, 30), False),  # the end is out
    (utc(23, 0), False),
    (utc(0, 0), False),
])
def test_a_span_within_the_day(at: datetime, quiet: bool) -> None:
    assert in_quiet_hours(WORKDAY, at) is quiet


@pytest.mark.parametrize(("at", "quiet"), [
    (utc(21, 59, 59), False),
    (utc(22, 0), True),  # the start is in
    (utc(23, 59, 59), True),
    (utc(0, 0), True),  # past midnight
    (utc(6, 59, 59), True),
    (utc(7, 0), False),  # the end is out
    (utc(12, 0), False),
])
def test_a_span_across_midnight(at: datetime, quiet: bool) -> None:
    assert in_quiet_hours(NIGHT, at) is quiet


def test_minute_edges_of_the_day() -> None:
    first = DoNotDisturb(0, 1)
    assert in_quiet_hours(first, utc(0, 0, 59))
    assert not in_quiet_hours(first, utc(0, 1))
    last = DoNotDisturb(23 * 60 + 59, 0)  # the last minute, across midnight
    assert in_quiet_hours(last, utc(23, 59))
    assert not in_quiet_hours(last, utc(0, 0))
    assert not in_quiet_hours(last, utc(23, 58, 59))


def test_the_users_zone_decides_the_local_time() -> None:
    paris = DoNotDisturb(22 * 60, 7 * 60, "Europe/Paris")
    # Winter (UTC+1): 21:00 UTC is 22:00 in Paris.
    assert in_quiet_hours(paris, utc(21, 0))
    assert not in_quiet_hours(NIGHT, utc(21, 0))
    assert not in_quiet_hours(paris, utc(20, 59))
    assert in_quiet_hours(paris, utc(5, 59))  # 06:59 in Paris
    assert not in_quiet_hours(paris, utc(6, 0))  # 07:00 in Paris
    assert in_quiet_hours(NIGHT, utc(6, 0))
    # Summer (UTC+2): 20:00 UTC is 22:00, 05:00 UTC is 07:00.
    assert in_quiet_hours(paris, utc(20, 0, day=1, month=7))
    assert not in_quiet_hours(paris, utc(19, 59, day=1, month=7))
    assert in_quiet_hours(paris, utc(4, 59, day=1, month=7))
    assert not in_quiet_hours(paris, utc(5, 0, day=1, month=7))
    # The clocks go forward at 01:00 UTC on 29 March 2026: 05:30 UTC is 06:30 the day
    # before (still quiet), and 07:30 that morning (not quiet any more).
    assert in_quiet_hours(paris, utc(5, 30, day=28, month=3))
    assert not in_quiet_hours(paris, utc(5, 30, day=29, month=3))
    assert in_quiet_hours(paris, utc(0, 59, day=29, month=3))  # 01:59 CET
    assert in_quiet_hours(paris, utc(1, 0, day=29, month=3))  # 03:00 CEST


def test_a_zone_west_of_utc_and_any_offset_of_the_moment() -> None:
    evening = DoNotDisturb(18 * 60, 23 * 60, "America/New_York")
    # 23:30 UTC on 15 January is 18:30 in New York (UTC-5); the local day is the 15th.
    assert in_quiet_hours(evening, utc(23, 30))
    assert not in_quiet_hours(evening, utc(22, 59))
    assert in_quiet_hours(evening, utc(3, 59, day=16))  # 22:59 in New York
    assert not in_quiet_hours(evening, utc(4, 0, day=16))
    # The moment's own offset does not matter, only the instant.
    tokyo = datetime(2026, 1, 16, 8, 30, tzinfo=ZoneInfo("Asia/Tokyo"))  # 23:30 UTC
    assert in_quiet_hours(evening, tokyo)
    fixed = datetime(2026, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=-10)))  # 22:00 UTC
    assert in_quiet_hours(NIGHT, fixed)


def test_an_unknown_zone_falls_back_to_utc() -> None:
    for name in ("Mars/Olympus", "../../etc/passwd", "Not a zone"):
        lost = DoNotDisturb(22 * 60, 7 * 60, name)
        assert in_quiet_hours(lost, utc(22, 0))
        assert not in_quiet_hours(lost, utc(21, 0))  # would be quiet in Paris
        assert not in_quiet_hours(lost, utc(7, 0))


def test_zone() -> None:
    assert zone("") is UTC
    assert zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert utc(12, 0).astimezone(zone("Europe/Paris")).hour == 13
    with pytest.raises(ValueError, match="Mars/Olympus"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError):
        zone("../../etc/passwd")
