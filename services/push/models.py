"""Push channels of users' devices, and the app's Web Push (VAPID) keys."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

WEB_PUSH, APNS, FCM = "web_push", "apns", "fcm"
MAX_PUSH_DEVICES = 20  # per user
SANDBOX, PRODUCTION = "sandbox", "production"  # APNs environments


@dataclass(frozen=True, slots=True)
class PushDevice:
    app_id: str
    user_id: str
    push_device_id: str  # the same for the same channel (channel_id)
    provider: str  # web_push, apns, fcm
    address: str  # the Web Push endpoint, the APNs or FCM token
    # Web Push: p256dh, auth and the VAPID key it subscribed with (base64url);
    # APNs: environment.
    keys: Mapping[str, str] = field(default_factory=dict)
    device_id: str = ""  # the Subscribe device id, if any
    locale: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def name(self) -> str:
        return push_device_name(self.app_id, self.user_id, self.push_device_id)


def push_device_name(app_id: str, user_id: str, push_device_id: str) -> str:
    return f"apps/{app_id}/users/{user_id}/pushDevices/{push_device_id}"


def channel_id(app_id: str, provider: str, address: str) -> str:
    """A channel's id in its app: whoever registers it (16 characters of [a-z2-7])."""
    digest = hashlib.sha256(f"{app_id}\n{provider}\n{address}".encode()).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class WebPushKey:
    """An app's VAPID key pair (P-256): the public key as the uncompressed point, the
    private one sealed with the app's data key (services/keys)."""

    app_id: str
    public_key: bytes
    sealed_private_key: bytes
    create_time: datetime
    previous_public_key: bytes = b""
    previous_sealed_private_key: bytes = b""

    def knows(self, public_key: bytes) -> bool:
        return public_key in (self.public_key, self.previous_public_key) and bool(public_key)


def new_key_pair() -> tuple[bytes, bytes]:
    """(public key: the uncompressed point, 65 bytes; private key: the scalar, 32
    bytes) of a new P-256 key."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return public, private.private_numbers().private_value.to_bytes(32, "big")


# Notification kinds (caas.push.v1.NotificationKind) and levels (NotificationLevel).
MESSAGE, MENTION, THREAD_REPLY, REACTION, CALL, CLEAR = (
    "message", "mention", "thread_reply", "reaction", "call", "clear")
KINDS = (MESSAGE, MENTION, THREAD_REPLY, REACTION, CALL, CLEAR)
ALL, MENTIONS, NONE = "all", "mentions", "none"
# Delivery states (PushDelivery.State).
PENDING, SENT, FAILED, PRUNED, CANCELED = "pending", "sent", "failed", "pruned", "canceled"


@dataclass(frozen=True, slots=True)
class Template:
    kind: str
    locale: str  # "" for every language without its own
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class PushConfig:
    """An app's push settings; the provider secrets sealed with its data key."""

    app_id: str
    web_push_contact: str = ""
    apns: Mapping[str, str] = field(default_factory=dict)  # key_id, team_id, topic
    apns_sealed_key: bytes = b""
    fcm: Mapping[str, str] = field(default_factory=dict)  # project_id, client_email
    fcm_sealed_account: bytes = b""
    templates: tuple[Template, ...] = ()
    default_locale: str = ""
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DoNotDisturb:
    start_minute: int
    end_minute: int
    time_zone: str = ""  # IANA; "" for UTC


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    app_id: str
    user_id: str
    level: str = ALL
    do_not_disturb: DoNotDisturb | None = None
    conversations: Mapping[str, str] = field(default_factory=dict)  # id → level
    update_time: datetime | None = None

    def level_of(self, conversation_id: str) -> str:
        return self.conversations.get(conversation_id, self.level)


@dataclass(frozen=True, slots=True)
class Attempt:
    time: datetime
    status: int
    error: str
    latency_ms: int


@dataclass(frozen=True, slots=True)
class Push:
    """One notification for one push channel, from its first event to its provider.

    `group` collapses: a push for the same channel and group (a user's conversation)
    while one is pending joins it (`count` grows, the newest event's content wins);
    `through` is the newest event position it carries (an event seen again is not
    counted twice)."""

    push_id: str
    app_id: str
    user_id: str
    push_device_id: str
    provider: str
    kind: str
    conversation_id: str
    group: str
    through: int
    content: Mapping[str, str]  # the template's values and the device's data
    create_time: datetime
    due_time: datetime
    count: int = 1
    state: str = PENDING
    attempts: tuple[Attempt, ...] = ()
    send_time: datetime | None = None
    sequence: int = 0  # the newest message it tells of (a read up to it clears it)

    @property
    def name(self) -> str:
        return f"apps/{self.app_id}/users/{self.user_id}/pushDeliveries/{self.push_id}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed push: its new state, the try made (if one was), and
    when it is due again if pending."""

    push: Push
    state: str
    attempt: Attempt | None = None
    due_time: datetime | None = None
