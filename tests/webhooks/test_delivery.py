"""Webhook delivery attempts against a real local HTTP receiver, and the reference
signature verifier."""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.core.settings import Settings
from services.core.tracing import TraceHeaders
from services.webhooks.delivery import Deliverer, next_delay
from services.webhooks.signing import HEADER, TOLERANCE_SECONDS, sign, verify
from tests.support.processes import free_port
from tests.support.webhook_receiver import Receiver, running_receiver, self_signed

BODY = json.dumps({"name": "apps/a/events/1", "type": "message.created"}).encode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    async with Deliverer(0.5, public_only=False) as deliverer:  # the receiver is local
        yield deliverer


async def test_a_delivery_is_signed_and_verifies(receiver: Receiver,
                                                 deliverer: Deliverer) -> None:
    now = int(time.time())
    url = receiver.url("ok")
    attempt = await deliverer.attempt(url, ["whsec_one"], "event-1", BODY, now)
    assert (attempt.ok, attempt.status_code, attempt.error) == (True, 200, "")
    assert attempt.response_excerpt == "thanks"
    (got,) = receiver.to(url)
    headers, body = got.headers, got.body
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
    url = receiver.url("fail")
    attempt = await deliverer.attempt(url, ["s"], "e", BODY, int(time.time()))
    assert (attempt.ok, attempt.status_code, attempt.error) == (False, 500, "status 500")
    assert attempt.response_excerpt.startswith("upstream exploded")
    assert len(attempt.response_excerpt) <= 4096 + 64  # kept short, whatever it sent


async def test_a_hanging_endpoint_times_out(receiver: Receiver, deliverer: Deliverer) -> None:
    url = receiver.url("hang")
    attempt = await deliverer.attempt(url, ["s"], "e", BODY, int(time.time()))
    assert (attempt.ok, attempt.status_code, attempt.error) == (False, 0, "timeout")
    assert len(receiver.to(url)) == 1  # it did arrive; the answer never came


async def test_a_redirect_is_not_followed(receiver: Receiver, deliverer: Deliverer) -> None:
    url = receiver.url("move")
    attempt = await deliverer.attempt(url, ["s"], "e", BODY, int(time.time()))
    assert (attempt.ok, attempt.status_code) == (False, 302)
    assert len(receiver.to(url)) == 1


async def test_a_refused_connection_is_a_failure(deliverer: Deliverer) -> None:
    attempt = await deliverer.attempt(f"http://127.0.0.1:{free_port()}/hook", ["s"], "e",
                                      BODY, int(time.time()))
    assert not attempt.ok and attempt.status_code == 0
    assert attempt.error.startswith("connect")


def test_retries_back_off_with_jitter_for_about_a_day_then_stop() -> None:
    rng = random.Random(7)
    schedule = [d.total_seconds() for d in Settings().webhook_retry_delays]
    delays = [next_delay(n, schedule, rng) for n in range(1, len(schedule) + 1)]
    for delay, scheduled in zip(delays, schedule, strict=True):
        assert delay is not None and scheduled / 2 <= delay <= scheduled
    assert sum(schedule) > 20 * 3600
    assert next_delay(len(schedule) + 1, schedule, rng) is None  # dead letter
    assert next_delay(0, schedule, rng) is None
    again = [next_delay(3, schedule, random.Random(seed)) for seed in range(20)]
    assert len(set(again)) > 1  # jittered: retries of many events do not line up


async def test_https_deliveries_check_the_receivers_certificate(tmp_path: Path) -> None:
    server_tls, certificate = self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=str(certificate))
    with running_receiver(server_tls) as receiver:
        url = receiver.url("ok")
        assert url.startswith("https://")
        async with Deliverer(2.0, public_only=False, tls=trusting) as deliverer:
            attempt = await deliverer.attempt(url, ["s"], "e", BODY, int(time.time()))
        assert (attempt.ok, attempt.status_code) == (True, 200)
        # The system's authorities do not vouch for it: no request is made.
        async with Deliverer(2.0, public_only=False) as deliverer:
            refused = await deliverer.attempt(url, ["s"], "e", BODY, int(time.time()))
        assert (refused.ok, refused.status_code) == (False, 0)
        assert "Certificate" in refused.error
        assert len(receiver.to(url)) == 1


RECORDED = TraceHeaders("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


async def test_a_traced_attempt_is_a_client_span_of_its_events_trace(
        receiver: Receiver) -> None:
    """Tracing on: the attempt is a CLIENT span whose parent is the context the log
    recorded with the event, and the receiver gets that span's traceparent."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    looked_up: list[tuple[str, int]] = []

    async def recorded(app_id: str, position: int) -> TraceHeaders:
        looked_up.append((app_id, position))
        return RECORDED

    async with Deliverer(0.5, public_only=False, tracer=provider.get_tracer("test"),
                         traces=recorded) as deliverer:
        ok_url, failing_url = receiver.url("ok"), receiver.url("fail")
        assert (await deliverer.attempt(ok_url, ["s"], "apps/a/events/7", BODY,
                                        int(time.time()))).ok
        assert not (await deliverer.attempt(failing_url, ["s"], "apps/a/events/8", BODY,
                                            int(time.time()))).ok
    assert looked_up == [("a", 7), ("a", 8)]
    delivered, failed = exported.get_finished_spans()
    for span, url in ((delivered, ok_url), (failed, failing_url)):
        assert span.kind is SpanKind.CLIENT and span.name == "POST"
        assert span.parent is not None and span.parent.span_id == 0xb7ad6b7169203331
        assert span.context.trace_id == 0x0af7651916cd43dd8448eb211c80319c
        (got,) = receiver.to(url)
        assert got.headers["traceparent"] == (
            f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01")
    assert delivered.attributes is not None and failed.attributes is not None
    assert delivered.attributes["http.response.status_code"] == 200
    assert delivered.status.status_code is StatusCode.UNSET
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.attributes["error.type"] == "500"
    assert failed.status.status_code is StatusCode.ERROR


async def test_an_untraced_attempt_sends_no_trace_context(receiver: Receiver,
                                                          deliverer: Deliverer) -> None:
    url = receiver.url("ok")
    assert (await deliverer.attempt(url, ["s"], "apps/a/events/7", BODY,
                                    int(time.time()))).ok
    (got,) = receiver.to(url)
    assert "traceparent" not in got.headers and "tracestate" not in got.headers
