"""Web Push delivery (RFC 8030) of one notification to one subscription: the payload
encrypted for the browser (RFC 8291, `aes128gcm` of RFC 8188, through `http_ece`, the
web-push-libs reference implementation) and the request signed with the app's VAPID key
(RFC 8292: an ES256 JWT for the push service's origin), posted with aiohttp."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import http_ece
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from services.push.models import PushDevice, b64url, from_b64url
from services.push.providers import Delivery, Notification, retry_after

# A push message body is at most 4096 bytes (RFC 8030 §7.2); aes128gcm adds a header
# (16-byte salt, 4-byte record size, 1-byte key id length, 65-byte key), a padding
# delimiter and a 16-byte tag.
MAX_BODY = 4096
MAX_PAYLOAD = MAX_BODY - 86 - 1 - 16
JWT_LIFETIME = timedelta(hours=12)  # at most 24 h (RFC 8292 §2)
JWT_RENEWAL = timedelta(hours=1)  # a new one this long before the last expires
URGENCIES = frozenset({"very-low", "low", "normal", "high"})


def encrypt(payload: bytes, p256dh: bytes, auth: bytes) -> bytes:
    """The `aes128gcm` body for a subscription's keys (a fresh key and salt each time)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a push payload is at most {MAX_PAYLOAD} bytes")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(payload, private_key=ephemeral, dh=p256dh,
                                   auth_secret=auth, version="aes128gcm")
    return body


def vapid_authorization(endpoint: str, private_scalar: bytes, public_key: bytes,
                        subject: str, now: datetime) -> str:
    """The `Authorization` header of a push request to `endpoint` (RFC 8292)."""
    parts = urlsplit(endpoint)
    claims: dict[str, object] = {"aud": f"{parts.scheme}://{parts.netloc}",
                                 "exp": int((now + JWT_LIFETIME).timestamp())}
    if subject:  # a contact is RECOMMENDED, not required (RFC 8292 §2.1)
        claims["sub"] = subject
    header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    key = ec.derive_private_key(int.from_bytes(private_scalar, "big"), ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"vapid t={header}.{body}.{signature}, k={b64url(public_key)}"


class WebPushSender:
    """Sends over one HTTP session (the caller's: pooled, with its own TLS trust). A
    push service's VAPID header is signed once and reused until an hour before it
    expires (RFC 8292 lets a token serve many requests): a signature per push service
    and key every 11 hours, not one per push."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        # (origin, public key, subject) → (header, when to sign a new one)
        self._headers: dict[tuple[str, bytes, str], tuple[str, datetime]] = {}

    def _authorization(self, endpoint: str, private_scalar: bytes, public_key: bytes,
                       subject: str, now: datetime) -> str:
        parts = urlsplit(endpoint)
        key = (f"{parts.scheme}://{parts.netloc}", public_key, subject)
        cached = self._headers.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        header = vapid_authorization(endpoint, private_scalar, public_key, subject, now)
        self._headers[key] = (header, now + JWT_LIFETIME - JWT_RENEWAL)
        return header

    async def send(self, device: PushDevice, payload: bytes, private_scalar: bytes,
                   public_key: bytes, subject: str, now: datetime, ttl: int = 86_400,
                   urgency: str = "normal", topic: str = "") -> Delivery:
        """Encrypt `payload` for the device's subscription and post it, signed with the
        VAPID key (`public_key`, its `private_scalar`) the subscription was made with.
        `topic` (at most 32 base64url characters) replaces a pending message of the same
        topic; `ttl` is how long the push service may keep it (seconds)."""
        if urgency not in URGENCIES:
            raise ValueError(f"urgency: one of {sorted(URGENCIES)}")
        body = encrypt(payload, from_b64url(device.keys["p256dh"]),
                       from_b64url(device.keys["auth"]))
        headers = {"TTL": str(ttl), "Urgency": urgency, "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream",
                   "Authorization": self._authorization(device.address, private_scalar,
                                                        public_key, subject, now)}
        if topic:
            headers["Topic"] = topic
        async with self._session.post(device.address, data=body, headers=headers) as answer:
            return Delivery(answer.status,
                            retry_after=retry_after(answer.headers.get("retry-after"), now))


def topic_of(key: str) -> str:
    """A push `Topic` header for `key` (a conversation, say): 32 base64url characters
    (RFC 8030 §5.4), the same for the same key."""
    return b64url(hashlib.sha256(key.encode()).digest())[:32]


def web_push_payload(notification: Notification) -> bytes:
    """What a service worker's `push` event gets (`event.data.json()`): `title`, `body`,
    `tag` (the collapse key: a new notification with the same tag replaces the shown
    one, and a silent one closes it), `data` (ids and `type`: message, clear, call),
    `badge` when known, `silent`, `urgent`."""
    body: dict[str, object] = {"title": notification.title, "body": notification.body,
                               "tag": notification.collapse_key, "data": dict(notification.data),
                               "silent": notification.silent, "urgent": notification.urgent}
    if notification.badge is not None:
        body["badge"] = notification.badge
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
