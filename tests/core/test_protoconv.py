from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from services.core.protoconv import duration, timestamp


@pytest.mark.parametrize("moment", [
    datetime(2026, 11, 29, 5, 30, 1, 123000, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-7))),  # another offset
    datetime(2026, 6, 1, 12, 0, 0, 1),  # naive: read as UTC
])
def test_timestamp_matches_the_runtime_conversion(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    assert timestamp(moment) == expected


def test_no_moment_no_timestamp() -> None:
    assert timestamp(None) is None


def test_duration_round_trips_and_none_stays_unset() -> None:
    value = duration(timedelta(days=3650, milliseconds=250))
    assert value is not None and value.ToTimedelta() == timedelta(days=3650, milliseconds=250)
    zero = duration(timedelta(0))
    assert zero is not None and (zero.seconds, zero.nanos) == (0, 0)
    assert duration(None) is None
