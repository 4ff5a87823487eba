"""Web Push delivery to a local push service (an HTTPS stand-in that records the
requests and answers as a push service does): the body is what RFC 8291 makes of the
payload for that subscription — decrypted here by an implementation of the RFC written
for the test, not the sender's library — and the request carries what RFC 8030 and
RFC 8292 ask (TTL, urgency, topic, a VAPID JWT for the service's origin, signed by the
app's key); the service's answers are read: accepted, gone (forget the subscription),
retry later."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.push.models import WEB_PUSH, PushDevice, b64url, new_key_pair
from services.push.webpush import MAX_PAYLOAD, WebPushSender, topic_of
from tests.support.web_push_client import decrypt, verify_vapid
from tests.support.webhook_receiver import Receiver, running_receiver, self_signed

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SUBJECT = "mailto:push@example.com"


@pytest.fixture(scope="module")
def push_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    context, certificate = self_signed(tmp_path_factory.mktemp("push-service"))
    with running_receiver(context) as receiver:
        yield receiver, certificate


def session_trusting(certificate: Path) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=ssl.create_default_context(cafile=certificate)))


def subscription(endpoint: str) -> tuple[PushDevice, ec.EllipticCurvePrivateKey, bytes]:
    browser = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = browser.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    device = PushDevice("alpha", "alice", "p1", WEB_PUSH, endpoint,
                        {"p256dh": b64url(public), "auth": b64url(auth)})
    return device, browser, auth


async def test_a_notification_reaches_the_push_service_encrypted_and_signed(
        push_service: tuple[Receiver, Path]) -> None:
    receiver, certificate = push_service
    public, private = new_key_pair()
    payload = json.dumps({"title": "alice", "body": "héllo 👋"}).encode()
    async with session_trusting(certificate) as http:
        sender = WebPushSender(http)
        device, browser, auth = subscription(receiver.url("created"))
        delivery = await sender.send(device, payload, private, public, SUBJECT, NOW,
                                     ttl=600, urgency="high", topic=topic_of("conv-1"))
        assert delivery.accepted and not delivery.gone
        (request,) = receiver.to(device.address)
        headers = request.headers
        assert (headers["ttl"], headers["urgency"], headers["content-encoding"]) == (
            "600", "high", "aes128gcm")
        assert headers["topic"] == topic_of("conv-1") and len(headers["topic"]) == 32
        claims = verify_vapid(headers["authorization"], public, receiver.base)
        assert claims["sub"] == SUBJECT
        assert claims["exp"] == int((NOW + timedelta(hours=12)).timestamp())
        assert decrypt(request.body, browser, auth) == payload
        # Each message has its own key and salt: the same payload twice differs.
        await sender.send(device, payload, private, public, SUBJECT, NOW)
        first, second = receiver.to(device.address)
        assert first.body[:16] != second.body[:16] and first.body[21:86] != second.body[21:86]
        assert decrypt(second.body, browser, auth) == payload
        # Another subscription's keys cannot open it.
        _, stranger, stranger_auth = subscription(device.address)
        with pytest.raises(InvalidTag):
            decrypt(second.body, stranger, stranger_auth)


async def test_the_push_services_answers_are_read(push_service: tuple[Receiver, Path]) -> None:
    receiver, certificate = push_service
    public, private = new_key_pair()
    async with session_trusting(certificate) as http:
        sender = WebPushSender(http)
        gone = await sender.send(subscription(receiver.url("gone"))[0], b"x", private, public,
                                 SUBJECT, NOW)
        assert gone.gone and not gone.accepted and not gone.retryable
        busy = await sender.send(subscription(receiver.url("busy"))[0], b"x", private,
                                 public, SUBJECT, NOW)
        assert busy.retryable and busy.retry_after == 7
        failed = await sender.send(subscription(receiver.url("fail"))[0], b"x", private,
                                   public, SUBJECT, NOW)
        assert failed.retryable and failed.retry_after is None
        # Too large for a push message: refused before anything is sent.
        too_big = subscription(receiver.url("ok"))[0]
        with pytest.raises(ValueError, match="at most"):
            await sender.send(too_big, b"x" * (MAX_PAYLOAD + 1), private, public, SUBJECT, NOW)
        assert receiver.to(too_big.address) == []
        biggest = subscription(receiver.url("created"))
        assert (await sender.send(biggest[0], b"y" * MAX_PAYLOAD, private, public, SUBJECT,
                                  NOW)).accepted
        (request,) = receiver.to(biggest[0].address)
        assert len(request.body) == 4096  # the limit of RFC 8030, exactly
        assert decrypt(request.body, biggest[1], biggest[2]) == b"y" * MAX_PAYLOAD
