"""What every push provider adapter takes and answers: one notification for one
device, and the provider's verdict (services/push/webpush.py, apns.py, fcm.py).

The notifier (services/push/notifier.py) renders a `Notification` once per device
(its locale) and hands it to the adapter of the device's provider, which shapes the
provider's request (Web Push: an encrypted JSON body; APNs: the `aps` dictionary and
its headers; FCM HTTP v1: a `message`) and reads the answer into a `Delivery`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

# The largest request body each provider takes for one notification.
APNS_MAX_PAYLOAD = 4096  # bytes of the JSON body (alert notifications; VoIP: 5120)
FCM_MAX_PAYLOAD = 4096  # bytes of the message's data and notification


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification, provider-neutral.

    `silent`: no alert — a background push telling the device to clear what it shows
    for `collapse_key` (read elsewhere); title and body are empty then. `data` travels
    to the app on the device (strings only: FCM's rule) — ids such as `conversation`,
    `sequence`, `kind`, `type` (`message`, `clear`, `call`).
    """

    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)
    collapse_key: str = ""  # replaces an earlier one with the same key on the device
    thread_id: str = ""  # groups notifications (APNs thread-id, a conversation)
    badge: int | None = None  # the app icon's count, when known
    silent: bool = False
    urgent: bool = False  # a call ring: delivered at once, woken device
    ttl_seconds: int = 86_400  # how long the provider may hold it for an offline device


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the provider answered: the HTTP status and, when it said, its error (APNs
    `reason`, FCM `errorCode`; what went wrong when it did not answer) and how long to
    wait before trying again."""

    status: int
    error: str = ""
    retry_after: float | None = None  # seconds (429, 503)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """The token or subscription will never work again: forget the device (Web
        Push 404/410, APNs 410 `Unregistered` and 400 `BadDeviceToken`, FCM 404
        `UNREGISTERED`)."""
        return self.status in (404, 410) or self.error in (
            "Unregistered", "BadDeviceToken", "UNREGISTERED")

    @property
    def retryable(self) -> bool:
        """Worth trying again later: throttled, the provider's trouble, no answer, or
        an expired provider or access token (a new one is made for the next try)."""
        return (self.status in (408, 429) or self.status >= 500 or self.status == 0
                or self.error in ("ExpiredProviderToken", "UNAUTHENTICATED"))


def retry_after(value: str | None, now: datetime) -> float | None:
    """A `retry-after` header in seconds (delay seconds or an HTTP date)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


def short_error(error: Exception) -> str:
    """What went wrong with a request that got no answer, in one short line."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:120] if text else type(error).__name__
