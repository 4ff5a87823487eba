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
