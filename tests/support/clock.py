"""A clock the test moves."""

from __future__ import annotations

from datetime import datetime


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment
