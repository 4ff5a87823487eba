"""Webhook endpoints, the deliveries waiting for them, attempts and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.core.ids import new_id
from services.events.types import family

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_HINT_LENGTH = len(SECRET_PREFIX) + 4
EXPIRED = "expired: not delivered within the retention"


@dataclass(frozen=True, slots=True)
class Webhook:
    app_id: str
    webhook_id: str
    url: str
    event_types: tuple[str, ...]  # empty: every type
    ordered: bool
    active: bool  # False: paused (deliveries wait)
    description: str
    secret: str
    previous_secret: str | None
    previous_secret_expire_time: datetime | None
    create_time: datetime
    update_time: datetime
    revision: int = 1  # every change adds one: concurrent changes cannot lose each other
    blocked_until: datetime | None = None  # failing: nothing is sent to it before then

    @property
    def secret_hint(self) -> str:
        return self.secret[:SECRET_HINT_LENGTH]

    def secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a delivery made at `now`: the current one, and the
        previous one while its rotation overlap lasts."""
        expire = self.previous_secret_expire_time
        if self.previous_secret and expire is not None and now < expire:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def wants(self, event_type: str) -> bool:
        return wants(self.event_types, event_type)


def wants(filters: tuple[str, ...], event_type: str) -> bool:
    """Whether an endpoint filtering on `filters` (exact types, `family.*`, `*`; empty:
    all) receives events of `event_type`."""
    if not filters:
        return True
    return any(f in ("*", event_type, f"{family(event_type)}.*") for f in filters)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event waiting to reach one endpoint (one per endpoint and event)."""

    app_id: str
    webhook_id: str
    event: str  # the event's stable name, apps/{app}/events/{position}
    event_type: str
    conversation: str
    position: int  # in the app's event log: orders one conversation's deliveries
    body: bytes  # the event as JSON, as POSTed
    failures: int
    next_attempt_time: datetime
    create_time: datetime

    def buried(self, attempts: int, reason: str, now: datetime) -> DeadLetter:
        """This delivery as a dead letter, after `attempts` attempts, for `reason`."""
        return DeadLetter(self.app_id, self.webhook_id, new_id(), self.event,
                          self.event_type, self.conversation, self.position, self.body,
                          attempts, reason, now)

    def expired(self, now: datetime) -> DeadLetter:
        """The dead letter of a delivery still waiting when the retention ran out (its
        endpoint was paused, or kept failing, that long)."""
        return self.buried(self.failures, EXPIRED, now)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    app_id: str
    webhook_id: str
    attempt_id: str
    event: str
    event_type: str
    attempt_number: int
    succeeded: bool
    status_code: int
    error: str
    latency_ms: int
    response_excerpt: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery whose every attempt failed, kept (with its body) for a replay."""

    app_id: str
    webhook_id: str
    dead_letter_id: str
    event: str
    event_type: str
    conversation: str
    position: int
    body: bytes
    attempts: int
    last_error: str
    create_time: datetime

    def replayed(self, now: datetime) -> Delivery:
        """This dead letter as a delivery again, due at `now`, with a fresh schedule."""
        return Delivery(self.app_id, self.webhook_id, self.event, self.event_type,
                        self.conversation, self.position, self.body, 0, now, now)
