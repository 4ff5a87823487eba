"""Small conversions between domain values and protobuf well-known types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp for `moment`; None stays None (leaves the field unset)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # as Timestamp.FromDatetime reads it
    # FromDatetime's own arithmetic (calendar.timegm) costs three times this, and every
    # message, event and list item carries a few timestamps.
    since = moment - _EPOCH
    return timestamp_pb2.Timestamp(seconds=since.days * 86_400 + since.seconds,
                                   nanos=since.microseconds * 1000)


def duration(value: timedelta | None) -> duration_pb2.Duration | None:
    """A Duration for `value`; None stays None (leaves the field unset)."""
    if value is None:
        return None
    result = duration_pb2.Duration()
    result.FromTimedelta(value)
    return result


def duration_or_none(holder: object, field: str) -> timedelta | None:
    """The Duration field `field` of message `holder` as a timedelta, None when unset."""
    if not holder.HasField(field):  # type: ignore[attr-defined]
        return None
    value: duration_pb2.Duration = getattr(holder, field)
    return value.ToTimedelta()


def timestamp_or_none(holder: object, field: str) -> datetime | None:
    """The Timestamp field `field` of message `holder` as a UTC datetime, None when
    unset."""
    if not holder.HasField(field):  # type: ignore[attr-defined]
        return None
    value: timestamp_pb2.Timestamp = getattr(holder, field)
    return value.ToDatetime(tzinfo=UTC)
