"""FCM delivery (Firebase Cloud Messaging, HTTP v1 API) of one notification to one
registration token: the `message` made from a `Notification` (with its Android and, for
iOS apps on Firebase, APNs options), the request authorized by an OAuth 2 access token
that the project's service account gets for itself (a signed JWT assertion, RFC 7523),
FCM's answer read into a `Delivery`."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.push.apns import collapse_id
from services.push.models import PushDevice
from services.push.providers import (
    FCM_MAX_PAYLOAD,
    Delivery,
    Notification,
    retry_after,
    short_error,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # seconds: the most Google takes
EARLY = timedelta(seconds=60)  # an access token is renewed this long before it expires
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:\-]*")


def _reserved(key: str) -> bool:
    """A data key FCM refuses (`INVALID_ARGUMENT`)."""
    return key in ("from", "message_type", "notification") or key.startswith(
        ("google", "gcm"))


@dataclass(frozen=True, slots=True)
class FcmCredentials:
    """A Firebase project's service account (its JSON key file): whom FCM's access
    tokens are for, and the RSA key that signs the requests for them. The key never
    shows in repr or str."""

    project_id: str
    client_email: str
    private_key_pem: str = field(repr=False)
    token_uri: str
    private_key_id: str = ""
    _key: rsa.RSAPrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not PROJECT_ID.fullmatch(self.project_id):
            raise ValueError("service account: project_id is not a project id")
        if "@" not in self.client_email:
            raise ValueError("service account: client_email is not an email address")
        if urlsplit(self.token_uri).scheme != "https" or not urlsplit(self.token_uri).netloc:
            raise ValueError("service account: token_uri is not an https URL")
        try:
            key = load_pem_private_key(self.private_key_pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("service account: private_key is not an unencrypted PEM "
                             "private key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("service account: private_key is not an RSA key (RS256)")
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_json(cls, text: str) -> FcmCredentials:
        """The credentials of a service account's JSON key file (what the Firebase
        console downloads); ValueError says what is missing or wrong."""
        try:
            account = json.loads(text)
        except ValueError as exc:
            raise ValueError("service account: not JSON") from exc
        if not isinstance(account, dict) or account.get("type") != "service_account":
            raise ValueError('service account: "type" is not "service_account"')
        fields = ("project_id", "client_email", "private_key", "token_uri")
        missing = [name for name in fields
                   if not isinstance(account.get(name), str) or not account[name]]
        if missing:
            raise ValueError(f"service account: no {', '.join(missing)}")
        key_id = account.get("private_key_id")
        return cls(account["project_id"], account["client_email"], account["private_key"],
                   account["token_uri"], key_id if isinstance(key_id, str) else "")

    def assertion(self, now: datetime) -> str:
        """The signed JWT that the token endpoint trades for an access token."""
        iat = int(now.timestamp())
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
                  "iat": iat, "exp": iat + ASSERTION_LIFETIME}
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)


def fcm_message(token: str, notification: Notification, now: datetime) -> dict[str, Any]:
    """The HTTP v1 `message` for one registration token: `notification` (not for a
    silent one), `data`, and the Android options (priority, ttl, collapse key, the
    notification's tag, which replaces the shown one of the same tag) and the APNs
    ones (an app on iOS gets the same through FCM)."""
    reserved = sorted(key for key in notification.data if _reserved(key))
    if reserved:
        raise ValueError(f"FCM data keys FCM refuses: {', '.join(reserved)}")
    key = notification.collapse_key
    android: dict[str, Any] = {
        "priority": "high" if notification.urgent or not notification.silent else "normal",
        "ttl": f"{notification.ttl_seconds}s"}
    expiration = (int(now.timestamp()) + notification.ttl_seconds
                  if notification.ttl_seconds > 0 else 0)
    apns_headers = {"apns-priority": "5" if notification.silent else "10",
                    "apns-push-type": "background" if notification.silent else "alert",
                    "apns-expiration": str(expiration)}
    aps: dict[str, Any]
    message: dict[str, Any] = {"token": token, "data": dict(notification.data)}
    if key:
        android["collapse_key"] = key
        apns_headers["apns-collapse-id"] = collapse_id(key)
    if notification.silent:
        aps = {"content-available": 1}
    else:
        message["notification"] = {"title": notification.title, "body": notification.body}
        shown: dict[str, Any] = {}
        aps = {"sound": "default"}
        if key:
            shown["tag"] = key
        if notification.badge is not None:
            shown["notification_count"] = notification.badge
            aps["badge"] = notification.badge
        if notification.thread_id:
            aps["thread-id"] = notification.thread_id
        if notification.urgent:
            aps["interruption-level"] = "time-sensitive"
        if shown:
            android["notification"] = shown
    message["android"] = android
    message["apns"] = {"headers": apns_headers, "payload": {"aps": aps}}
    return message


def fcm_reason(answer: httpx.Response) -> str:
    """FCM's error code (`details[].errorCode` of the FcmError), else the error's
    canonical `status` (UNAUTHENTICATED, say), else nothing."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if (isinstance(detail, dict) and detail.get("@type") == FCM_ERROR
                and isinstance(detail.get("errorCode"), str)):
            return str(detail["errorCode"])
    status = error.get("status")
    return status if isinstance(status, str) else ""


class _NoToken(Exception):
    """The token endpoint gave no access token: what to answer for the send."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.error)
        self.delivery = delivery


class FcmSender:
    """Sends over the caller's httpx client (pooled, HTTP/2, its own TLS trust and
    timeouts); keeps each service account's access token until a minute before it
    expires, and fetches it once however many sends wait for it."""

    def __init__(self, client: httpx.AsyncClient,
                 base_url: str = "https://fcm.googleapis.com") -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._tokens: dict[str, tuple[str, datetime]] = {}  # client_email: token, expiry
        self._locks: dict[str, asyncio.Lock] = {}

    async def _access_token(self, credentials: FcmCredentials, now: datetime) -> str:
        email = credentials.client_email
        async with self._locks.setdefault(email, asyncio.Lock()):
            cached = self._tokens.get(email)
            if cached is not None and now < cached[1] - EARLY:
                return cached[0]
            form = {"grant_type": GRANT_TYPE, "assertion": credentials.assertion(now)}
            try:
                answer = await self._client.post(credentials.token_uri, data=form)
            except httpx.HTTPError as exc:
                raise _NoToken(Delivery(0, error=short_error(exc))) from exc
            try:
                body = answer.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            token, lifetime = body.get("access_token"), body.get("expires_in")
            if not answer.is_success or not isinstance(token, str) or not isinstance(
                    lifetime, int | float):
                error = body.get("error")
                reason = f"oauth2 {error}" if isinstance(error, str) else "oauth2"
                raise _NoToken(Delivery(answer.status_code if not answer.is_success else 502,
                                        error=reason,
                                        retry_after=retry_after(
                                            answer.headers.get("retry-after"), now)))
            self._tokens[email] = (token, now + timedelta(seconds=lifetime))
            return token

    async def send(self, device: PushDevice, notification: Notification,
                   credentials: FcmCredentials, now: datetime) -> Delivery:
        """Post `notification` to the device's registration token; ValueError, before
        anything is sent, if the message is larger than FCM takes or its data uses a
        key FCM reserves."""
        message = fcm_message(device.address, notification, now)
        encoded = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        if len(encoded) > FCM_MAX_PAYLOAD:
            raise ValueError(f"an FCM message is at most {FCM_MAX_PAYLOAD} bytes")
        try:
            token = await self._access_token(credentials, now)
        except _NoToken as refused:
            return refused.delivery
        url = f"{self._base_url}/v1/projects/{credentials.project_id}/messages:send"
        try:
            answer = await self._client.post(
                url, content=b'{"message":' + encoded + b"}",
                headers={"authorization": f"Bearer {token}",
                         "content-type": "application/json; charset=utf-8"})
        except httpx.HTTPError as exc:
            return Delivery(0, error=short_error(exc))
        reason = "" if answer.is_success else fcm_reason(answer)
        if (answer.status_code == 401 and reason != "THIRD_PARTY_AUTH_ERROR"
                and self._tokens.get(credentials.client_email, ("",))[0] == token):
            # Refused (revoked, or expired early): the next try gets a new one. (A
            # THIRD_PARTY_AUTH_ERROR is about the app's APNs or Web Push key, not it.)
            del self._tokens[credentials.client_email]
        return Delivery(answer.status_code, error=reason,
                        retry_after=retry_after(answer.headers.get("retry-after"), now))
