"""APNs delivery to a local APNs (tests/support/push_providers.py: HTTP/2 over TLS, the
provider token checked with the key's public half as Apple does): the request's path,
headers and `aps` payload are what Apple documents for an alert, a background push and a
call; the provider token is reused for 50 minutes and remade when APNs says it expired;
a key APNs does not know is refused; APNs' answers are read (gone, retry later)."""

from __future__ import annotations

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

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.push.apns import ApnsCredentials, ApnsSender, aps_payload
from services.push.models import APNS, PRODUCTION, SANDBOX, PushDevice
from services.push.providers import APNS_MAX_PAYLOAD, Notification
from tests.support.push_providers import (
    Answer,
    ApnsStandIn,
    apns_credentials,
    provider_tls,
    running_apns,
)

TOPIC = "com.example.chat"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return provider_tls(tmp_path_factory.mktemp("apns"))


@pytest.fixture
def apns(tls: tuple[ssl.SSLContext, Path]) -> Iterator[ApnsStandIn]:
    with running_apns(tls[0]) as stand_in:
        yield stand_in


def client(ca_file: Path, http2: bool = True) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=http2, timeout=5,
                             verify=ssl.create_default_context(cafile=ca_file))


def sender(http: httpx.AsyncClient, apns: ApnsStandIn) -> ApnsSender:
    return ApnsSender(http, sandbox_url=apns.sandbox_url, production_url=apns.production_url)


def device(environment: str = SANDBOX, token: str | None = None) -> PushDevice:
    return PushDevice("alpha", "alice", secrets.token_hex(8), APNS,
                      token or secrets.token_hex(32), {"environment": environment})


def jwt_parts(authorization: str) -> tuple[dict[str, Any], dict[str, Any]]:
    scheme, token = authorization.split(" ")
    assert scheme == "bearer"
    head, body, _ = token.split(".")
    return unpadded_json(head), unpadded_json(body)


def unpadded_json(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def at(apns: ApnsStandIn, moment: datetime) -> datetime:
    """Set the stand-in's clock to `moment` (and answer it, for the sender's `now`)."""
    apns.clock = moment.timestamp
    return moment


MESSAGE = Notification(title="Alice ✨", body="héllo 👋", data={"conversation": "c1",
                                                              "sequence": "42",
                                                              "type": "message"},
                       collapse_key="c1", thread_id="c1", badge=3, ttl_seconds=600)


async def test_an_alert_reaches_apns_as_apple_documents(
        apns: ApnsStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = apns.new_credentials(topic=TOPIC)
    now = datetime.now(UTC).replace(microsecond=0)
    phone = device()
    async with client(tls[1]) as http:
        delivery = await sender(http, apns).send(phone, MESSAGE, credentials, now)
        assert delivery.accepted and delivery.status == 200 and delivery.error == ""
        (request,) = apns.to(phone.address)
        assert (request.service, request.method, request.path) == (
            "sandbox", "POST", f"/3/device/{phone.address}")
        headers = request.headers
        assert {name: headers[name] for name in (
            "apns-topic", "apns-push-type", "apns-priority", "apns-expiration",
            "apns-collapse-id")} == {
            "apns-topic": TOPIC, "apns-push-type": "alert", "apns-priority": "10",
            "apns-expiration": str(int(now.timestamp()) + 600), "apns-collapse-id": "c1"}
        assert jwt_parts(headers["authorization"]) == (
            {"alg": "ES256", "kid": credentials.key_id},
            {"iss": credentials.team_id, "iat": int(now.timestamp())})
        assert request.json() == {
            "aps": {"alert": {"title": "Alice ✨", "body": "héllo 👋"}, "sound": "default",
                    "thread-id": "c1", "badge": 3, "mutable-content": 1},
            "caas": {"conversation": "c1", "sequence": "42", "type": "message"}}
        # A production device goes to the production service, on a connection of its
        # own; the sandbox's connection is reused (HTTP/2: one for many requests).
        store_phone = device(PRODUCTION)
        assert (await sender(http, apns).send(store_phone, MESSAGE, credentials,
                                              now)).accepted
        again = await sender(http, apns).send(phone, MESSAGE, credentials, now)
        assert again.accepted
        (in_production,) = apns.to(store_phone.address)
        first, second = apns.to(phone.address)
        assert in_production.service == "production"
        assert second.connection == first.connection != in_production.connection
    assert apns.refused_connections == 0


async def test_a_background_push_and_a_call(apns: ApnsStandIn,
                                            tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = apns.new_credentials(topic=TOPIC)
    now = datetime.now(UTC)
    phone = device()
    clear = Notification("", "", data={"conversation": "c1", "type": "clear"},
                         collapse_key="c1", silent=True, ttl_seconds=0)
    ring = Notification("Bob", "Incoming call", data={"call": "k9", "type": "call"},
                        collapse_key="call-k9", urgent=True, ttl_seconds=30)
    long_key = "apps/alpha/conversations/" + "x" * 80
    async with client(tls[1]) as http:
        apns_sender = sender(http, apns)
        assert (await apns_sender.send(phone, clear, credentials, now)).accepted
        assert (await apns_sender.send(phone, ring, credentials, now)).accepted
        for _ in range(2):
            plain = Notification("a", "b", collapse_key=long_key)
            assert (await apns_sender.send(phone, plain, credentials, now)).accepted
    silent, call, long_1, long_2 = apns.to(phone.address)
    assert (silent.headers["apns-push-type"], silent.headers["apns-priority"],
            silent.headers["apns-expiration"], silent.headers["apns-collapse-id"]) == (
        "background", "5", "0", "c1")  # 0: deliver once, keep nothing
    assert silent.json() == {"aps": {"content-available": 1},
                             "caas": {"conversation": "c1", "type": "clear"}}
    assert (call.headers["apns-push-type"], call.headers["apns-priority"],
            call.headers["apns-expiration"]) == ("alert", "10", str(int(now.timestamp()) + 30))
    assert call.json() == {
        "aps": {"alert": {"title": "Bob", "body": "Incoming call"}, "sound": "default",
                "mutable-content": 1, "interruption-level": "time-sensitive"},
        "caas": {"call": "k9", "type": "call"}}
    # A collapse key longer than APNs takes (64 bytes) becomes a digest, the same each time.
    collapse = long_1.headers["apns-collapse-id"]
    assert len(collapse) == 64 and collapse == long_2.headers["apns-collapse-id"]
    assert "thread-id" not in long_1.json()["aps"] and "badge" not in long_1.json()["aps"]


async def test_the_provider_token_is_reused_for_50_minutes_and_remade_when_expired(
        apns: ApnsStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = apns.new_credentials(topic=TOPIC)
    other_key = apns.new_credentials(topic=TOPIC, team_id="TEAM000002")
    start = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    phone = device()
    async with client(tls[1]) as http:
        apns_sender = sender(http, apns)

        async def token_at(moment: datetime, key: ApnsCredentials = credentials) -> str:
            assert (await apns_sender.send(phone, MESSAGE, key, at(apns, moment))).accepted
            return apns.to(phone.address)[-1].headers["authorization"]

        first = await token_at(start)
        assert await token_at(start + timedelta(minutes=49, seconds=59)) == first
        other = await token_at(start + timedelta(minutes=1), other_key)
        assert other != first and jwt_parts(other)[0]["kid"] == other_key.key_id
        renewed = await token_at(start + timedelta(minutes=50))
        assert renewed != first
        assert jwt_parts(renewed)[1]["iat"] == int((start + timedelta(minutes=50)).timestamp())
        # APNs' clock is an hour and more past the token (this one thinks 10 minutes):
        # refused as expired — worth trying again — and the token is dropped.
        apns.clock = (start + timedelta(minutes=111)).timestamp
        later = start + timedelta(minutes=60)
        expired = await apns_sender.send(phone, MESSAGE, credentials, later)
        assert (expired.status, expired.error) == (403, "ExpiredProviderToken")
        assert expired.retryable and not expired.gone and not expired.accepted
        assert apns.to(phone.address)[-1].headers["authorization"] == renewed
        retried = await apns_sender.send(phone, MESSAGE, credentials,
                                         later + timedelta(seconds=1))
        assert retried.accepted
        remade = apns.to(phone.address)[-1].headers["authorization"]
        assert remade != renewed and jwt_parts(remade)[1]["iat"] == int(
            (later + timedelta(seconds=1)).timestamp())


async def test_a_key_apns_does_not_know_is_refused(
        apns: ApnsStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    trusted = apns.new_credentials(topic=TOPIC)
    now = datetime.now(UTC)
    phone = device()
    stranger = apns_credentials(topic=TOPIC, key_id=trusted.key_id)  # same id, other key
    other_team = replace(trusted, team_id="TEAM999999")
    other_app = replace(trusted, topic="com.example.other")
    async with client(tls[1]) as http:
        apns_sender = sender(http, apns)
        for credentials in (stranger, other_team, apns_credentials(topic=TOPIC)):
            refused = await apns_sender.send(phone, MESSAGE, credentials, now)
            assert (refused.status, refused.error) == (403, "InvalidProviderToken")
            assert not refused.retryable and not refused.gone and not refused.accepted
        wrong_topic = await apns_sender.send(phone, MESSAGE, other_app, now)
        assert (wrong_topic.status, wrong_topic.error) == (400, "TopicDisallowed")
        assert not wrong_topic.gone
        assert (await apns_sender.send(phone, MESSAGE, trusted, now)).accepted
    assert [r.status for r in apns.to(phone.address)] == [403, 403, 403, 400, 200]


async def test_apns_answers_are_read(apns: ApnsStandIn,
                                     tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = apns.new_credentials(topic=TOPIC)
    now = datetime.now(UTC)
    unregistered, bad, busy, failing, down, flaky = (device() for _ in range(6))
    apns.answer(unregistered.address, Answer(410, "Unregistered"))
    apns.answer(bad.address, Answer(400, "BadDeviceToken"))
    apns.answer(busy.address, Answer(429, "TooManyRequests", retry_after=7))
    apns.answer(failing.address, Answer(500, "InternalServerError"))
    apns.answer(down.address, Answer(503, "ServiceUnavailable", retry_after=30))
    apns.answer(flaky.address, Answer(503, "ServiceUnavailable"), Answer(200))
    async with client(tls[1]) as http:
        apns_sender = sender(http, apns)

        async def send(phone: PushDevice) -> Any:
            return await apns_sender.send(phone, MESSAGE, credentials, now)

        gone = await send(unregistered)
        assert (gone.status, gone.error) == (410, "Unregistered")
        assert gone.gone and not gone.retryable and not gone.accepted
        not_a_token = await send(bad)
        assert (not_a_token.status, not_a_token.error) == (400, "BadDeviceToken")
        assert not_a_token.gone and not not_a_token.retryable
        throttled = await send(busy)
        assert (throttled.status, throttled.error, throttled.retry_after) == (
            429, "TooManyRequests", 7)
        assert throttled.retryable and not throttled.gone
        broken = await send(failing)
        assert broken.retryable and broken.retry_after is None and not broken.gone
        unavailable = await send(down)
        assert unavailable.retryable and unavailable.retry_after == 30
        assert (await send(flaky)).status == 503 and (await send(flaky)).accepted
        # A token that is not hex cannot be one (and would change the path): answered
        # BadDeviceToken without asking.
        mangled = device(token="../../3/device/" + secrets.token_hex(8))
        local = await send(mangled)
        assert (local.status, local.error) == (400, "BadDeviceToken") and local.gone
        assert apns.to(mangled.address) == []


async def test_a_payload_too_large_is_refused_before_any_request(
        apns: ApnsStandIn, tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = apns.new_credentials(topic=TOPIC)
    now = datetime.now(UTC)
    phone = device()
    room = APNS_MAX_PAYLOAD - len(aps_payload(Notification("t", "")))
    largest = Notification("t", "é" * (room // 2) + "x" * (room % 2))  # bytes, not characters
    assert len(aps_payload(largest)) == APNS_MAX_PAYLOAD
    async with client(tls[1]) as http:
        apns_sender = sender(http, apns)
        with pytest.raises(ValueError, match="at most 4096 bytes"):
            await apns_sender.send(phone, replace(largest, body=largest.body + "x"),
                                   credentials, now)
        assert apns.requests == []
        assert (await apns_sender.send(phone, largest, credentials, now)).accepted
    (request,) = apns.to(phone.address)
    assert len(request.body) == APNS_MAX_PAYLOAD


async def test_no_answer_is_status_0(apns: ApnsStandIn,
                                     tls: tuple[ssl.SSLContext, Path]) -> None:
    credentials = apns.new_credentials(topic=TOPIC)
    now = datetime.now(UTC)
    # A client that cannot speak HTTP/2: APNs closes the connection.
    async with client(tls[1], http2=False) as http:
        closed = await sender(http, apns).send(device(), MESSAGE, credentials, now)
    assert closed.status == 0 and closed.retryable and closed.error
    assert apns.refused_connections == 1 and apns.requests == []
    # Nobody listening.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"https://127.0.0.1:{unused.getsockname()[1]}"
        async with client(tls[1]) as http:
            refused = await ApnsSender(http, nowhere, nowhere).send(device(), MESSAGE,
                                                                    credentials, now)
    assert (refused.status, refused.retryable) == (0, True)
    assert refused.error.startswith("ConnectError")


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_credentials_are_checked_when_made() -> None:
    good = apns_credentials(topic=TOPIC)
    assert good.private_key_pem not in repr(good) and "PRIVATE" not in str(good)
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        replace(good, private_key_pem="-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")).decode()
        replace(good, private_key_pem=encrypted)
    with pytest.raises(ValueError, match="not a P-256"):
        replace(good, private_key_pem=pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ValueError, match="not a P-256"):
        replace(good, private_key_pem=pem(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(ValueError, match="key id"):
        replace(good, key_id="ABC123")
    with pytest.raises(ValueError, match="team id"):
        replace(good, team_id="team000001")
    with pytest.raises(ValueError, match="topic"):
        replace(good, topic="")
