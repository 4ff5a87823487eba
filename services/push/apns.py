"""APNs delivery (Apple's HTTP/2 provider API) of one notification to one device: the
`aps` dictionary and its headers made from a `Notification`, the request authorized by
a provider token (an ES256 JWT signed with the team's `.p8` key), Apple's answer read
into a `Delivery`. The caller's httpx client speaks HTTP/2 (`http2=True`): APNs speaks
nothing else."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.push.models import SANDBOX, PushDevice
from services.push.providers import (
    APNS_MAX_PAYLOAD,
    Delivery,
    Notification,
    retry_after,
    short_error,
)

# Apple refuses a token made less than 20 minutes after the last one
# (`TooManyProviderTokenUpdates`) and one older than an hour (`ExpiredProviderToken`).
TOKEN_LIFETIME = timedelta(minutes=50)
MAX_COLLAPSE_ID = 64  # bytes
KEY_ID = re.compile(r"[A-Z0-9]{10}")
TOPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")
DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class ApnsCredentials:
    """A team's APNs authentication key (token-based): its 10-character key id and team
    id, the app's bundle id (`apns-topic`), and the `.p8` file (a PKCS#8 P-256 private
    key, PEM). Checked when made: ValueError says what is wrong."""

    key_id: str
    team_id: str
    topic: str
    private_key_pem: str = field(repr=False)
    _key: ec.EllipticCurvePrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.key_id):
            raise ValueError("APNs key id: 10 characters, A-Z and 0-9")
        if not KEY_ID.fullmatch(self.team_id):
            raise ValueError("APNs team id: 10 characters, A-Z and 0-9")
        if not TOPIC.fullmatch(self.topic):
            raise ValueError("APNs topic: the app's bundle id, such as com.example.chat")
        try:
            key = load_pem_private_key(self.private_key_pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("APNs key: not an unencrypted PEM private key (the .p8 file)"
                             ) from exc
        if not (isinstance(key, ec.EllipticCurvePrivateKey)
                and isinstance(key.curve, ec.SECP256R1)):
            raise ValueError("APNs key: not a P-256 (ES256) private key")
        object.__setattr__(self, "_key", key)

    def provider_token(self, now: datetime) -> str:
        """A new provider token issued at `now` (header alg and kid, claims iss and iat)."""
        return jwt.encode({"iss": self.team_id, "iat": int(now.timestamp())}, self._key,
                          algorithm="ES256", headers={"kid": self.key_id, "typ": None})

    @property
    def cache_key(self) -> tuple[str, str, bytes]:
        """What a provider token stands for: team, key id and the key itself."""
        return (self.team_id, self.key_id,
                hashlib.sha256(self.private_key_pem.encode()).digest())


def collapse_id(key: str) -> str:
    """The `apns-collapse-id` for a collapse key: itself up to 64 bytes, a longer one
    its SHA-256 in hex (64 characters), the same for the same key."""
    if len(key.encode()) <= MAX_COLLAPSE_ID:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def aps_payload(notification: Notification) -> bytes:
    """The JSON body: the `aps` dictionary (an alert, or `content-available` alone for a
    silent one, as Apple requires of background pushes) and the data under `caas`; an
    urgent one (a call ring) is time-sensitive: shown even in a Focus."""
    aps: dict[str, object]
    if notification.silent:
        aps = {"content-available": 1}
    else:
        aps = {"alert": {"title": notification.title, "body": notification.body},
               "sound": "default", "mutable-content": 1}
        if notification.thread_id:
            aps["thread-id"] = notification.thread_id
        if notification.badge is not None:
            aps["badge"] = notification.badge
        if notification.urgent:
            aps["interruption-level"] = "time-sensitive"
    body = {"aps": aps, "caas": dict(notification.data)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def apns_headers(notification: Notification, credentials: ApnsCredentials, token: str,
                 now: datetime) -> dict[str, str]:
    """The request's headers; `apns-expiration` 0 (deliver once, keep nothing) for a
    zero `ttl_seconds`."""
    background = notification.silent
    expiration = (int(now.timestamp()) + notification.ttl_seconds
                  if notification.ttl_seconds > 0 else 0)
    headers = {"authorization": f"bearer {token}", "apns-topic": credentials.topic,
               "apns-push-type": "background" if background else "alert",
               "apns-priority": "5" if background else "10",
               "apns-expiration": str(expiration), "content-type": "application/json"}
    if notification.collapse_key:
        headers["apns-collapse-id"] = collapse_id(notification.collapse_key)
    return headers


def _reason(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else ""


class ApnsSender:
    """Sends over the caller's HTTP/2 client (pooled, with its own TLS trust and
    timeouts), to the sandbox or production service as the device's `environment`
    says; keeps one provider token per key for 50 minutes."""

    def __init__(self, client: httpx.AsyncClient,
                 sandbox_url: str = "https://api.sandbox.push.apple.com",
                 production_url: str = "https://api.push.apple.com") -> None:
        self._client = client
        self._sandbox_url = sandbox_url.rstrip("/")
        self._production_url = production_url.rstrip("/")
        self._tokens: dict[tuple[str, str, bytes], tuple[str, datetime]] = {}

    def _token(self, credentials: ApnsCredentials, now: datetime) -> str:
        cached = self._tokens.get(credentials.cache_key)
        if cached is not None and timedelta(0) <= now - cached[1] < TOKEN_LIFETIME:
            return cached[0]
        token = credentials.provider_token(now)
        self._tokens[credentials.cache_key] = (token, now)
        return token

    async def send(self, device: PushDevice, notification: Notification,
                   credentials: ApnsCredentials, now: datetime) -> Delivery:
        """Post `notification` to the device; ValueError if its body is larger than
        APNs takes. A token that is not hex is answered `BadDeviceToken` without asking
        (it cannot be one, and it goes into the request's path)."""
        body = aps_payload(notification)
        if len(body) > APNS_MAX_PAYLOAD:
            raise ValueError(f"an APNs payload is at most {APNS_MAX_PAYLOAD} bytes")
        if not DEVICE_TOKEN.fullmatch(device.address):
            return Delivery(400, error="BadDeviceToken")
        base = (self._sandbox_url if device.keys.get("environment") == SANDBOX
                else self._production_url)
        token = self._token(credentials, now)
        headers = apns_headers(notification, credentials, token, now)
        try:
            answer = await self._client.post(f"{base}/3/device/{device.address}",
                                             content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Delivery(0, error=short_error(exc))
        reason = "" if answer.is_success else _reason(answer)
        if reason == "ExpiredProviderToken" and self._tokens.get(
                credentials.cache_key, ("",))[0] == token:
            del self._tokens[credentials.cache_key]  # the next try makes a new one
        return Delivery(answer.status_code, error=reason,
                        retry_after=retry_after(answer.headers.get("retry-after"), now))
