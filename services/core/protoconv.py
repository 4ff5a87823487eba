"""Small conversions between domain values and protobuf well-known types."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp for `moment`; None stays None (leaves the field unset)."""
    if moment is None:
        return None
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


def duration_or_none(holder: object, field: str) -> timedelta | None:
    """The Duration field `field` of message `holder` as a timedelta, None when unset."""
    if not holder.HasField(field):  # type: ignore[attr-defined]
        return None
    value: duration_pb2.Duration = getattr(holder, field)
    return value.ToTimedelta()
