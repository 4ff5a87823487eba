"""FCM delivery to a local FCM and Google token endpoint (tests/support/push_providers.py:
HTTP/2 over TLS; the assertion checked with the service account's public key, only the
access tokens it issued taken): the HTTP v1 message is what Google documents for an
alert, a silent push and a call; the access token is fetched once, reused until a minute
before it expires and fetched again after a 401; FCM's answers are read (gone, retry
later); service account files are checked."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.push.fcm import FcmCredentials, FcmSender, fcm_message
from services.push.models import FCM, PushDevice
from services.push.providers import FCM_MAX_PAYLOAD, Notification
from tests.support.push_providers import (
    Answer,
    FcmStandIn,
    provider_tls,
    running_fcm,
    service_account_json,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return provider_tls(tmp_path_factory.mktemp("fcm"))


@pytest.fixture
def fcm(tls: tuple[ssl.SSLContext, Path]) -> Iterator[FcmStandIn]:
    with running_fcm(tls[0]) as stand_in:
        yield stand_in


def client(ca_file: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, timeout=5,
                             verify=ssl.create_default_context(cafile=ca_file))


def device(token: str | None = None) -> PushDevice:
    return PushDevice("alpha", "alice", secrets.token_hex(8), FCM,
                      token or secrets.token_urlsafe(100))


def unpadded_json(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def at(fcm: FcmStandIn, moment: datetime) -> datetime:
    """Set the stand-in's clock to `moment` (and answer it, for the sender's `now`)."""
    fcm.clock = moment.timestamp
    return moment


MESSAGE = Notification(title="Alice ✨", body="héllo 👋", data={"conversation": "c1",
                                                              "sequence": "42",
                                                              "type": "message"},
                       collapse_key="c1", thread_id="c1", badge=3, ttl_seconds=600)


async def test_a_notification_reaches_fcm_as_google_documents(
        fcm: FcmStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    account = json.loads(fcm.new_service_account(project_id="caas-test"))
    credentials = FcmCredentials.from_json(json.dumps(account))
    now = datetime.now(UTC).replace(microsecond=0)
    phone = device()
    async with client(tls[1]) as http:
        delivery = await FcmSender(http, fcm.url).send(phone, MESSAGE, credentials, now)
    assert delivery.accepted and delivery.status == 200 and delivery.error == ""
    token_request, send = fcm.requests
    # The token endpoint: a form with the JWT bearer grant and an assertion signed by
    # the service account's key (the stand-in checked the signature).
    assert (token_request.service, token_request.method, token_request.status) == (
        "oauth", "POST", 200)
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_request.body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    head, claims, _ = form["assertion"][0].split(".")
    assert unpadded_json(head) == {"alg": "RS256", "typ": "JWT",
                                   "kid": account["private_key_id"]}
    iat = int(now.timestamp())
    assert unpadded_json(claims) == {"iss": account["client_email"], "scope": SCOPE,
                                     "aud": fcm.token_uri, "iat": iat, "exp": iat + 3600}
    # The message.
    assert (send.service, send.method, send.path, send.status) == (
        "fcm", "POST", "/v1/projects/caas-test/messages:send", 200)
    assert send.headers["authorization"].startswith("Bearer ya29.")
    assert send.json() == {"message": {
        "token": phone.address,
        "notification": {"title": "Alice ✨", "body": "héllo 👋"},
        "data": {"conversation": "c1", "sequence": "42", "type": "message"},
        "android": {"priority": "high", "ttl": "600s", "collapse_key": "c1",
                    "notification": {"tag": "c1", "notification_count": 3}},
        "apns": {"headers": {"apns-priority": "10", "apns-push-type": "alert",
                             "apns-expiration": str(iat + 600), "apns-collapse-id": "c1"},
                 "payload": {"aps": {"sound": "default", "badge": 3, "thread-id": "c1"}}}}}
    assert send.connection == token_request.connection  # one HTTP/2 connection


async def test_a_silent_push_and_a_call(fcm: FcmStandIn,
                                        tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = FcmCredentials.from_json(fcm.new_service_account())
    now = datetime.now(UTC)
    phone = device()
    clear = Notification("", "", data={"conversation": "c1", "type": "clear"},
                         collapse_key="c1", silent=True, ttl_seconds=0)
    ring = Notification("Bob", "Incoming call", data={"call": "k9", "type": "call"},
                        urgent=True, ttl_seconds=30)
    async with client(tls[1]) as http:
        fcm_sender = FcmSender(http, fcm.url)
        assert (await fcm_sender.send(phone, clear, credentials, now)).accepted
        assert (await fcm_sender.send(phone, ring, credentials, now)).accepted
    silent, call = (request.json()["message"] for request in fcm.to(phone.address))
    assert silent == {
        "token": phone.address, "data": {"conversation": "c1", "type": "clear"},
        "android": {"priority": "normal", "ttl": "0s", "collapse_key": "c1"},
        "apns": {"headers": {"apns-priority": "5", "apns-push-type": "background",
                             "apns-expiration": "0", "apns-collapse-id": "c1"},
                 "payload": {"aps": {"content-available": 1}}}}
    assert call["notification"] == {"title": "Bob", "body": "Incoming call"}
    assert call["android"] == {"priority": "high", "ttl": "30s"}
    assert call["apns"]["payload"]["aps"] == {"sound": "default",
                                              "interruption-level": "time-sensitive"}


async def test_the_access_token_is_fetched_once_and_again_when_refused_or_expiring(
        fcm: FcmStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = FcmCredentials.from_json(fcm.new_service_account())
    start = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    phone = device()
    async with client(tls[1]) as http:
        fcm_sender = FcmSender(http, fcm.url)
        now = at(fcm, start)
        # Many sends at once wait for one token.
        answers = await asyncio.gather(*(fcm_sender.send(phone, MESSAGE, credentials, now)
                                         for _ in range(5)))
        assert all(answer.accepted for answer in answers)
        assert len(fcm.token_requests) == 1
        # Its lifetime (3599 s) less a minute: until then it is used.
        now = at(fcm, start + timedelta(seconds=3599 - 61))
        assert (await fcm_sender.send(phone, MESSAGE, credentials, now)).accepted
        assert len(fcm.token_requests) == 1
        first = {request.headers["authorization"] for request in fcm.to(phone.address)}
        assert len(first) == 1
        now = at(fcm, start + timedelta(seconds=3599 - 60))
        assert (await fcm_sender.send(phone, MESSAGE, credentials, now)).accepted
        assert len(fcm.token_requests) == 2
        renewed = fcm.to(phone.address)[-1].headers["authorization"]
        assert renewed not in first
        # Refused (revoked): a 401, and the next send gets a new token.
        fcm.revoke_tokens()
        refused = await fcm_sender.send(phone, MESSAGE, credentials, now)
        assert (refused.status, refused.error) == (401, "UNAUTHENTICATED")
        assert not refused.accepted and not refused.gone
        assert fcm.to(phone.address)[-1].headers["authorization"] == renewed
        assert (await fcm_sender.send(phone, MESSAGE, credentials, now)).accepted
        assert len(fcm.token_requests) == 3
        assert fcm.to(phone.address)[-1].headers["authorization"] not in (first | {renewed})
        # THIRD_PARTY_AUTH_ERROR (a 401 too) is about the app's APNs key: the token stays.
        fcm.answer(phone.address, Answer(401, "THIRD_PARTY_AUTH_ERROR"), Answer(200))
        apns_key = await fcm_sender.send(phone, MESSAGE, credentials, now)
        assert (apns_key.status, apns_key.error) == (401, "THIRD_PARTY_AUTH_ERROR")
        assert (await fcm_sender.send(phone, MESSAGE, credentials, now)).accepted
        assert len(fcm.token_requests) == 3


async def test_fcm_answers_are_read(fcm: FcmStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = FcmCredentials.from_json(fcm.new_service_account())
    now = datetime.now(UTC)
    unregistered, throttled, unavailable, failing, invalid, flaky = (
        device() for _ in range(6))
    fcm.answer(unregistered.address, Answer(404, "UNREGISTERED"))
    fcm.answer(throttled.address, Answer(429, "QUOTA_EXCEEDED", retry_after=30))
    fcm.answer(unavailable.address, Answer(503, "UNAVAILABLE"))
    fcm.answer(failing.address, Answer(500, "INTERNAL"))
    fcm.answer(invalid.address, Answer(400, "INVALID_ARGUMENT"))
    fcm.answer(flaky.address, Answer(503, "UNAVAILABLE", retry_after=5), Answer(200))
    async with client(tls[1]) as http:
        fcm_sender = FcmSender(http, fcm.url)

        async def send(phone: PushDevice) -> Any:
            return await fcm_sender.send(phone, MESSAGE, credentials, now)

        gone = await send(unregistered)
        assert (gone.status, gone.error) == (404, "UNREGISTERED")
        assert gone.gone and not gone.retryable
        quota = await send(throttled)
        assert (quota.status, quota.error, quota.retry_after) == (429, "QUOTA_EXCEEDED", 30)
        assert quota.retryable and not quota.gone
        down = await send(unavailable)
        assert (down.status, down.error, down.retryable) == (503, "UNAVAILABLE", True)
        broken = await send(failing)
        assert (broken.status, broken.error, broken.retryable) == (500, "INTERNAL", True)
        bad = await send(invalid)
        assert (bad.status, bad.error) == (400, "INVALID_ARGUMENT")
        assert not bad.retryable and not bad.gone
        first = await send(flaky)
        assert first.retryable and first.retry_after == 5 and (await send(flaky)).accepted
        # A message FCM cannot take is refused by the stand-in as FCM does.
        strange = await fcm_sender.send(device(), replace(MESSAGE, ttl_seconds=-1),
                                        credentials, now)
        assert (strange.status, strange.error) == (400, "INVALID_ARGUMENT")
    assert len(fcm.token_requests) == 1


async def test_a_service_account_fcm_does_not_know_gets_no_token(
        fcm: FcmStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    stranger = FcmCredentials.from_json(service_account_json(fcm.token_uri))
    known = FcmCredentials.from_json(fcm.new_service_account(project_id="caas-test"))
    now = datetime.now(UTC)
    phone = device()
    async with client(tls[1]) as http:
        fcm_sender = FcmSender(http, fcm.url)
        refused = await fcm_sender.send(phone, MESSAGE, stranger, now)
        assert (refused.status, refused.error) == (400, "oauth2 invalid_grant")
        assert not refused.retryable and not refused.gone and not refused.accepted
        assert fcm.to(phone.address) == []
        # The account's email and key id with another key; an assertion for another
        # audience.
        impostor = replace(FcmCredentials.from_json(service_account_json(
            fcm.token_uri, client_email=known.client_email)),
            private_key_id=known.private_key_id)
        elsewhere_aud = FcmCredentials.from_json(fcm.new_service_account())
        for credentials in (impostor, replace(elsewhere_aud,
                                              token_uri=f"{fcm.token_uri}?aud=other")):
            refused = await fcm_sender.send(phone, MESSAGE, credentials, now)
            assert (refused.status, refused.error) == (400, "oauth2 invalid_grant")
        assert [request.status for request in fcm.token_requests] == [400, 400, 400]
        # Known, but not of the project sent to.
        elsewhere = await fcm_sender.send(phone, MESSAGE,
                                          replace(known, project_id="someone-else"), now)
        assert (elsewhere.status, elsewhere.error) == (403, "PERMISSION_DENIED")
        assert fcm.to(phone.address)[-1].path == "/v1/projects/someone-else/messages:send"
        # An assertion from another time (an hour and more off) is refused too.
        other = FcmCredentials.from_json(fcm.new_service_account())
        stale = await fcm_sender.send(phone, MESSAGE, other, now - timedelta(hours=2))
        assert (stale.status, stale.error) == (400, "oauth2 invalid_grant")


async def test_too_large_or_reserved_is_refused_before_any_request(
        fcm: FcmStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = FcmCredentials.from_json(fcm.new_service_account())
    now = datetime.now(UTC)
    phone = device("t" * 100)
    base = len(json.dumps(fcm_message(phone.address, Notification("t", ""), now),
                          separators=(",", ":")))
    room = FCM_MAX_PAYLOAD - base
    largest = Notification("t", "é" * (room // 2) + "x" * (room % 2))
    async with client(tls[1]) as http:
        fcm_sender = FcmSender(http, fcm.url)
        with pytest.raises(ValueError, match="at most 4096 bytes"):
            await fcm_sender.send(phone, replace(largest, body=largest.body + "x"),
                                  credentials, now)
        with pytest.raises(ValueError, match=r"google\.sent, message_type"):
            await fcm_sender.send(phone, replace(MESSAGE, data={
                "message_type": "x", "google.sent": "y", "ok": "z"}), credentials, now)
        assert fcm.requests == []  # not even a token
        assert (await fcm_sender.send(phone, largest, credentials, now)).accepted
    (request,) = fcm.to(phone.address)
    assert len(json.dumps(request.json()["message"], separators=(",", ":"),
                          ensure_ascii=False).encode()) == FCM_MAX_PAYLOAD


async def test_no_answer_is_status_0(fcm: FcmStandIn,
                                     tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = FcmCredentials.from_json(fcm.new_service_account())
    now = datetime.now(UTC)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"https://127.0.0.1:{unused.getsockname()[1]}"
        async with client(tls[1]) as http:
            # The token endpoint answers, FCM does not.
            no_fcm = await FcmSender(http, nowhere).send(device(), MESSAGE, credentials, now)
            assert (no_fcm.status, no_fcm.retryable) == (0, True)
            assert no_fcm.error.startswith("ConnectError")
            # The token endpoint does not answer.
            no_token = await FcmSender(http, fcm.url).send(
                device(), MESSAGE, replace(credentials, token_uri=f"{nowhere}/token"), now)
            assert (no_token.status, no_token.retryable) == (0, True)
    assert [request.service for request in fcm.requests] == ["oauth"]


def test_service_account_files_are_checked(fcm: FcmStandIn) -> None:
    account = json.loads(service_account_json(fcm.token_uri))
    credentials = FcmCredentials.from_json(json.dumps(account))
    assert (credentials.project_id, credentials.client_email, credentials.token_uri,
            credentials.private_key_id) == (account["project_id"], account["client_email"],
                                            fcm.token_uri, account["private_key_id"])
    assert "PRIVATE" not in repr(credentials) and "PRIVATE" not in str(credentials)

    def broken(**changes: object) -> str:
        return json.dumps({**account, **changes})

    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    cases = {
        "not JSON": "{nope",
        '"type" is not "service_account"': broken(type="authorized_user"),
        "no private_key": broken(private_key=None),
        "no project_id, token_uri": json.dumps(
            {k: v for k, v in account.items() if k not in ("project_id", "token_uri")}),
        "not an unencrypted PEM private key": broken(private_key="-----BEGIN PRIVATE KEY-----"),
        "not an RSA key": broken(private_key=ec_key),
        "token_uri is not an https URL": broken(token_uri="http://oauth2.example/token"),
        "client_email is not an email address": broken(client_email="push"),
        "project_id is not a project id": broken(project_id="a/b"),
    }
    for message, text in cases.items():
        with pytest.raises(ValueError, match=message):
            FcmCredentials.from_json(text)
