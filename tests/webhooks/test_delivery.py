"""Webhook delivery attempts against a real local HTTP receiver, and the reference
signature verifier."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.webhooks.delivery import RETRY_DELAYS_SECONDS, Deliverer, next_delay
from services.webhooks.signing import HEADER, TOLERANCE_SECONDS, sign, verify
from tests.support.processes import free_port

BODY = json.dumps({"name": "apps/a/events/1", "type": "message.created"}).encode()


@dataclass
class Receiver:
    """A local HTTP endpoint that answers as told: `mode` is ok, fail, hang or move."""

    url: str
    mode: str = "ok"
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if state.mode == "hang":
                state.release.wait(30)
                return
            status = {"ok": 200, "fail": 500, "move": 302}[state.mode]
            self.send_response(status)
            if status == 302:
                self.send_header("location", state.url + "/elsewhere")
            answer = b"thanks" if status == 200 else b"upstream exploded " * 500
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    async with httpx.AsyncClient() as client:
        yield Deliverer(client, timeout_seconds=0.5)


async def test_a_delivery_is_signed_and_verifies(receiver: Receiver,
                                                 deliverer: Deliverer) -> None:
    now = int(time.time())
    attempt = await deliverer.attempt(receiver.url, ["whsec_one"], "event-1", BODY, now)
    assert (attempt.ok, attempt.status_code, attempt.error) == (True, 200, "")
    assert attempt.response_excerpt == "thanks"
    headers, body = receiver.received[0]
    assert body == BODY and headers["caas-event-id"] == "event-1"
    assert headers["content-type"] == "application/json"
    assert verify(headers[HEADER], body, "whsec_one", now)
    assert not verify(headers[HEADER], body, "whsec_other", now)  # the wrong secret
    assert not verify(headers[HEADER], body + b" ", "whsec_one", now)  # a changed body
    # A replay later than the tolerance is refused, though the signature is right.
    assert not verify(headers[HEADER], body, "whsec_one", now + TOLERANCE_SECONDS + 1)


def test_during_a_rotation_either_secret_verifies() -> None:
    header = sign(["whsec_new", "whsec_old"], 1_800_000_000, BODY)
    assert verify(header, BODY, "whsec_new", 1_800_000_000)
    assert verify(header, BODY, "whsec_old", 1_800_000_000)
    assert not verify(header, BODY, "whsec_gone", 1_800_000_000)
    assert not verify("v1=abc", BODY, "whsec_new", 1_800_000_000)  # no timestamp


async def test_a_500_is_a_failure_with_its_status_and_an_excerpt(
        receiver: Receiver, deliverer: Deliverer) -> None:
    receiver.mode = "fail"
    attempt = await deliverer.attempt(receiver.url, ["s"], "e", BODY, int(time.time()))
    assert (attempt.ok, attempt.status_code, attempt.error) == (False, 500, "status 500")
    assert attempt.response_excerpt.startswith("upstream exploded")
    assert len(attempt.response_excerpt) <= 4096 + 64  # kept short, whatever it sent


async def test_a_hanging_endpoint_times_out(receiver: Receiver, deliverer: Deliverer) -> None:
    receiver.mode = "hang"
    attempt = await deliverer.attempt(receiver.url, ["s"], "e", BODY, int(time.time()))
    assert (attempt.ok, attempt.status_code, attempt.error) == (False, 0, "timeout")
    assert len(receiver.received) == 1  # it did arrive; the answer never came


async def test_a_redirect_is_not_followed(receiver: Receiver, deliverer: Deliverer) -> None:
    receiver.mode = "move"
    attempt = await deliverer.attempt(receiver.url, ["s"], "e", BODY, int(time.time()))
    assert (attempt.ok, attempt.status_code) == (False, 302)
    assert len(receiver.received) == 1


async def test_a_refused_connection_is_a_failure(deliverer: Deliverer) -> None:
    attempt = await deliverer.attempt(f"http://127.0.0.1:{free_port()}/hook", ["s"], "e",
                                      BODY, int(time.time()))
    assert not attempt.ok and attempt.status_code == 0
    assert attempt.error.startswith("connect")


def test_retries_back_off_with_jitter_for_about_a_day_then_stop() -> None:
    rng = random.Random(7)
    delays = [next_delay(n, rng) for n in range(1, len(RETRY_DELAYS_SECONDS) + 1)]
    for delay, scheduled in zip(delays, RETRY_DELAYS_SECONDS, strict=True):
        assert delay is not None and scheduled / 2 <= delay <= scheduled
    assert sum(RETRY_DELAYS_SECONDS) > 20 * 3600
    assert next_delay(len(RETRY_DELAYS_SECONDS) + 1, rng) is None  # dead letter
    assert next_delay(0, rng) is None
    again = [next_delay(3, random.Random(seed)) for seed in range(20)]
    assert len(set(again)) > 1  # jittered: retries of many events do not line up
