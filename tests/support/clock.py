"""A clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from services.core.clock import truncate_ms


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


def from_now(**delta: float) -> Timestamp:
    """The time `delta` from now (`hours=1`, `seconds=-60`), to the millisecond."""
    moment = Timestamp()
    moment.FromDatetime(truncate_ms(datetime.now(UTC) + timedelta(**delta)))
    return moment
