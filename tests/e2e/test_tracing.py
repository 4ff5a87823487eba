"""OpenTelemetry traces from running servers, received by a real collector (rotel): one
message sent as JSON through Envoy with the caller's `traceparent` is one trace, from
the server's span through the Kafka relay and the Kafka consumer to the webhook
receiver; and with tracing off, nothing is exported or propagated."""

from __future__ import annotations

import base64
import secrets
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.events.v1 import events_pb2
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from caas.webhooks.v1 import resources_pb2 as webhooks_res
from caas.webhooks.v1 import webhooks_service_pb2 as webhooks_pb

from services.events.kafka_sink import KafkaBroker
from tests.conftest import TEST_CONFIG, create_app, unique_id
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client, bearer
from tests.support.kafka import reader
from tests.support.rotel import Collector, Span, parse, start_rotel
from tests.support.servers import CaasServer, ExternalServer, start_caas, start_kafka
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver, running_receiver

CREATE_MESSAGE = "/caas.messages.v1.MessagesService/CreateMessage"
SUBSCRIBE = "/caas.realtime.v1.RealtimeService/Subscribe"
GET_APP = "/caas.apps.v1.AppsService/GetApp"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    rotel = start_rotel(tmp_path_factory.mktemp("rotel"))
    yield rotel
    rotel.stop()


@pytest.fixture(scope="module")
def kafka() -> Iterator[ExternalServer]:
    broker = start_kafka()
    yield broker
    broker.process.stop()


def caas_env(request: pytest.FixtureRequest, kafka: ExternalServer, prefix: str,
             **otel: str) -> dict[str, str]:
    env = {"CAAS_KAFKA_BOOTSTRAP": kafka.url, "CAAS_KAFKA_TOPIC_PREFIX": prefix,
           "OTEL_BSP_SCHEDULE_DELAY": "50", **otel}
    if request.param == "mongodb":
        mongo: ExternalServer = request.getfixturevalue("mongo")
        env |= {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
                "CAAS_MONGODB_DATABASE": unique_id("traces")}
    return env


@dataclass
class Traced:
    server: CaasServer
    prefix: str  # of its Kafka topics
    store: str  # its engine: sqlite or mongodb


@pytest.fixture(scope="module", params=["sqlite", "mongodb"])
def traced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           collector: Collector, kafka: ExternalServer) -> Iterator[Traced]:
    """A server with tracing on (its Kafka topics of its own), on each store engine."""
    prefix = unique_id("traced")
    server = start_caas(tmp_path_factory.mktemp("caas"), config=TEST_CONFIG, http=True,
                        env=caas_env(request, kafka, prefix,
                                     OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
                                     OTEL_SERVICE_NAME=f"caas-{prefix}"))
    yield Traced(server, prefix, request.param)
    assert server.process.stop() == 0


def new_traceparent() -> tuple[str, str, str]:
    """(traceparent, its trace id, its span id): the caller's span, sampled."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@dataclass
class Chat:
    alice: Person
    conversation: str
    webhook_url: str


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    with running_receiver() as running:
        yield running


async def chat(server: CaasServer, receiver: Receiver) -> Chat:
    """An app with a webhook endpoint for new messages, and alice's group with bob."""
    client = Client(server.address)
    app = await create_app(client, server.operator_token)
    url = receiver.url("ok")
    await client.webhooks.CreateWebhook(webhooks_pb.CreateWebhookRequest(
        parent=app.name, webhook=webhooks_res.Webhook(
            url=url, event_types=["message.created"])), metadata=app.auth)
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    return Chat(alice, group.name, url)


async def send_json(server: CaasServer, chat: Chat, text: str, traceparent: str) -> None:
    """alice's message, sent as JSON through Envoy, as a browser would."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        response = await http.post(
            f"/v1/{chat.conversation}/messages", json={"text": text},
            params={"request_id": uuid.uuid4().hex},
            headers={"authorization": f"Bearer {chat.alice.token}",
                     "traceparent": traceparent, "tracestate": "caller=1"})
    assert response.status_code == 200, response.text


async def kafka_record(bootstrap: str, topic: str, text: str) -> dict[str, bytes]:
    """The headers of the record of `topic` whose message is `text` (read with a
    consumer group of the test's own, from the beginning)."""
    consumer = reader(KafkaBroker(bootstrap), topic)
    await consumer.start()
    try:
        while True:
            record = await consumer.getone()
            if events_pb2.Event.FromString(record.value).message_created.text == text:
                return dict(record.headers)
    finally:
        await consumer.stop()


async def spans_of(collector: Collector, trace_id: str, *wanted: tuple[str, str]
                   ) -> list[Span]:
    """The trace's spans once it holds a span of each (kind, name) in `wanted`."""
    def complete() -> list[Span] | None:
        spans = [s for s in collector.spans() if s.trace_id == trace_id]
        have = {(s.kind, s.name) for s in spans}
        return spans if all(w in have for w in wanted) else None

    async def check() -> bool:
        return complete() is not None

    try:
        await eventually(check, within=60, every=0.05)
    except TimeoutError:
        have = sorted((s.kind, s.name) for s in collector.spans() if s.trace_id == trace_id)
        raise AssertionError(f"trace {trace_id}: wanted {wanted}, got {have}") from None
    found = complete()
    assert found is not None
    return found


def one(spans: list[Span], kind: str, name: str) -> Span:
    matching = [s for s in spans if s.kind == kind and s.name == name]
    assert len(matching) == 1, (kind, name, spans)
    return matching[0]


async def test_one_send_is_one_trace_from_the_browser_to_the_webhook_receiver(
        traced: Traced, collector: Collector, kafka: ExternalServer,
        receiver: Receiver) -> None:
    server = traced.server
    talk = await chat(server, receiver)
    traceparent, trace_id, caller_span = new_traceparent()
    logged_from = len(server.process.lines)
    await send_json(server, talk, "traced", traceparent)
    topic = f"{traced.prefix}.message"
    spans = await spans_of(collector, trace_id, ("SERVER", CREATE_MESSAGE),
                           ("PRODUCER", f"send {topic}"), ("CONSUMER", f"process {topic}"),
                           ("CLIENT", "POST"))

    # The server's span continues the caller's (its traceparent came through Envoy).
    send = one(spans, "SERVER", CREATE_MESSAGE)
    assert send.parent_id == caller_span
    assert send.service == f"caas-{traced.prefix}"
    assert send.attributes["rpc.system"] == "grpc"
    assert send.attributes["rpc.service"] == "caas.messages.v1.MessagesService"
    assert send.attributes["rpc.method"] == "CreateMessage"
    assert send.attributes["rpc.grpc.status_code"] == "0"
    # The store's operations are spans of the call: the message's write among them.
    store_calls = [s for s in spans if s.parent_id == send.span_id and s.kind == "CLIENT"
                   and s.attributes.get("db.system.name") == traced.store]
    operations = {s.attributes["db.operation.name"] for s in store_calls}
    assert {"sqlite": "message.append", "mongodb": "insert"}[traced.store] in operations
    # The event log kept the request's context: the relay's produce span and the webhook
    # attempt, made later by background tasks, are children of the send.
    produce = one(spans, "PRODUCER", f"send {topic}")
    assert produce.parent_id == send.span_id
    assert produce.attributes["messaging.system"] == "kafka"
    assert produce.attributes["messaging.destination.name"] == topic
    deliver = one(spans, "CLIENT", "POST")
    assert deliver.parent_id == send.span_id
    assert deliver.attributes["http.response.status_code"] == "200"
    # The webhook intake consumed the record in a span of the same trace.
    consume = one(spans, "CONSUMER", f"process {topic}")
    assert consume.parent_id == produce.span_id
    assert consume.attributes["messaging.consumer.group.name"] == "caas.webhooks"

    # The Kafka record and the webhook request carry the trace on.
    headers = await kafka_record(kafka.url, topic, "traced")
    assert headers["traceparent"].decode() == f"00-{trace_id}-{produce.span_id}-01"
    assert headers["tracestate"] == b"caller=1"
    got = await receiver.wait(talk.webhook_url, lambda got: len(got) >= 1)
    assert got[0].headers["traceparent"] == f"00-{trace_id}-{deliver.span_id}-01"
    assert got[0].headers["tracestate"] == "caller=1"

    # The call's access-log line names its trace and span.
    access = [entry for entry in server.logs(logged_from)
              if entry.get("message") == "rpc" and entry.get("method") == CREATE_MESSAGE[1:]]
    assert len(access) == 1
    assert (access[0]["trace_id"], access[0]["span_id"]) == (trace_id, send.span_id)
    assert access[0]["request_id"] and access[0]["app"]


def grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


async def test_a_refused_native_call_is_a_span_with_its_status_code(
        traced: Traced, collector: Collector) -> None:
    """Native gRPC: the caller's traceparent in the metadata; a client's error (NOT_FOUND)
    is the span's code, not a server fault."""
    traceparent, trace_id, caller_span = new_traceparent()
    client = Client(traced.server.address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.apps.GetApp(apps_pb.GetAppRequest(name="apps/nowhere"),
                                     metadata=(*bearer(traced.server.operator_token),
                                               ("traceparent", traceparent)))
    finally:
        await client.close()
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    spans = await spans_of(collector, trace_id, ("SERVER", GET_APP))
    get_app = one(spans, "SERVER", GET_APP)
    assert get_app.parent_id == caller_span
    assert get_app.attributes["rpc.grpc.status_code"] == "5"
    assert get_app.status != "ERROR"  # a client's mistake, not the server's


async def test_a_stream_over_grpc_web_is_a_server_span_of_the_callers_trace(
        traced: Traced, collector: Collector, receiver: Receiver) -> None:
    server = traced.server
    talk = await chat(server, receiver)
    traceparent, trace_id, caller_span = new_traceparent()
    request = rt_pb.SubscribeRequest(name=talk.alice.name).SerializeToString()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        preflight = await http.options(
            SUBSCRIBE, headers={"origin": "http://localhost:5173",
                                "access-control-request-method": "POST",
                                "access-control-request-headers": "traceparent,tracestate"})
        allowed = preflight.headers["access-control-allow-headers"]
        assert "traceparent" in allowed and "tracestate" in allowed  # browsers may send it
        async with http.stream(
                "POST", SUBSCRIBE, content=base64.b64encode(grpc_web_frame(request)),
                headers={"authorization": f"Bearer {talk.alice.token}",
                         "content-type": "application/grpc-web-text",
                         "accept": "application/grpc-web-text",
                         "traceparent": traceparent}) as stream:
            assert stream.status_code == 200
            await anext(stream.aiter_bytes())  # the stream has started; the client leaves
    spans = await spans_of(collector, trace_id, ("SERVER", SUBSCRIBE))
    subscribe = one(spans, "SERVER", SUBSCRIBE)
    assert subscribe.parent_id == caller_span
    assert subscribe.attributes["rpc.method"] == "Subscribe"
    assert subscribe.attributes["rpc.grpc.status_code"] == "1"  # CANCELLED: it went away


@pytest.fixture(params=["sqlite", "mongodb"])
def untraced(request: pytest.FixtureRequest, tmp_path: Path, collector: Collector,
             kafka: ExternalServer) -> Iterator[Traced]:
    """A server whose OTLP endpoint is set, but whose SDK is disabled."""
    prefix = unique_id("untraced")
    server = start_caas(tmp_path, config=TEST_CONFIG, http=True,
                        env=caas_env(request, kafka, prefix,
                                     OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
                                     OTEL_SDK_DISABLED="true"))
    yield Traced(server, prefix, request.param)
    server.process.stop()


async def test_with_tracing_off_nothing_is_exported_or_propagated(
        untraced: Traced, collector: Collector, kafka: ExternalServer,
        receiver: Receiver) -> None:
    server = untraced.server
    talk = await chat(server, receiver)
    traceparent, trace_id, _ = new_traceparent()
    await send_json(server, talk, "untraced", traceparent)
    headers = await kafka_record(kafka.url, f"{untraced.prefix}.message", "untraced")
    assert set(headers) == {"caas-app", "caas-position"}
    got = await receiver.wait(talk.webhook_url, lambda got: len(got) >= 1, within=90)
    assert "traceparent" not in got[0].headers and "tracestate" not in got[0].headers
    assert server.process.stop() == 0  # a provider would flush its spans now
    assert not [entry for entry in server.logs() if "trace_id" in entry]
    # What the server could have exported came before this span of our own.
    await sentinel(collector)
    assert not [s for s in collector.spans() if s.trace_id == trace_id]


async def sentinel(collector: Collector) -> None:
    """Export a span of the test's own and wait until the collector shows it."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415

    provider = TracerProvider(resource=Resource({"service.name": "sentinel"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=collector.endpoint, insecure=True)))
    name = f"sentinel-{uuid.uuid4().hex}"
    provider.get_tracer("test").start_span(name).end()
    provider.shutdown()

    async def shown() -> bool:
        return any(s.name == name for s in collector.spans())

    await eventually(shown, within=30)


def test_the_collectors_debug_log_parses_into_spans() -> None:
    """The parser the tests above rely on, on a sample of rotel's output."""
    sample = [
        "ResourceSpans #0", "Resource attributes:",
        "     -> service.name: Str(caas-x)", "ScopeSpans #0", "Span #0",
        "    Trace ID       : 0af7651916cd43dd8448eb211c80319c",
        "    Parent ID      : b7ad6b7169203331", "    ID             : 00f067aa0ba902b7",
        "    Name           : send t.message", "    Kind           : SPAN_KIND_PRODUCER",
        "    Status code    : STATUS_CODE_UNSET", "Attributes:",
        "     -> messaging.system: Str(kafka)", "     -> caas.event.position: Int(7)"]
    [span] = parse(sample)
    assert (span.trace_id, span.parent_id, span.span_id, span.name, span.kind,
            span.status, span.service) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00f067aa0ba902b7",
        "send t.message", "PRODUCER", "UNSET", "caas-x")
    assert span.attributes == {"messaging.system": "kafka", "caas.event.position": "7"}
