"""Durable events reach Kafka from the event log (the outbox), at least once, in order
per conversation — also when the server dies between the commit and the relay."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from caas.events.v1 import events_pb2
from caas.webhooks.v1 import resources_pb2 as webhooks_res
from caas.webhooks.v1 import webhooks_service_pb2 as webhooks_pb
from google.protobuf import json_format

from services.core.tls import self_signed
from services.events.consumers import KafkaConsumerGroup
from services.events.kafka_sink import KafkaBroker
from tests.conftest import TEST_CONFIG, create_app
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.kafka import reader
from tests.support.processes import free_port
from tests.support.servers import CaasServer, ExternalServer, start_caas, start_kafka
from tests.support.tcp_proxy import CuttableProxy
from tests.support.webhook_receiver import running_receiver


@pytest.fixture(scope="module")
def kafka() -> Iterator[ExternalServer]:
    broker = start_kafka()
    yield broker
    broker.process.stop()


def with_kafka(bootstrap: str, prefix: str) -> dict[str, str]:
    return {"CAAS_KAFKA_BOOTSTRAP": bootstrap, "CAAS_KAFKA_TOPIC_PREFIX": prefix,
            "CAAS_KAFKA_PARTITIONS": "3"}


async def records(bootstrap: str | KafkaBroker, topic: str, count: int
                  ) -> AsyncIterator[tuple[bytes, events_pb2.Event]]:
    """The first `count` records of `topic` (from the beginning), as a consumer group
    reads them, committing after each."""
    broker = KafkaBroker(bootstrap) if isinstance(bootstrap, str) else bootstrap
    consumer = reader(broker, topic)
    await consumer.start()
    try:
        for _ in range(count):
            record = await asyncio.wait_for(consumer.getone(), 60)
            yield record.key, events_pb2.Event.FromString(record.value)
            await consumer.commit()
    finally:
        await consumer.stop()


async def chat(server: CaasServer, texts: list[str], webhook_url: str = ""
               ) -> tuple[str, str]:
    """An app (with a webhook endpoint at `webhook_url`, if given), a group of alice and
    bob, and alice's messages: (app id, conversation)."""
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        if webhook_url:
            await client.webhooks.CreateWebhook(webhooks_pb.CreateWebhookRequest(
                parent=app.name, webhook=webhooks_res.Webhook(
                    url=webhook_url, event_types=["message.created"], ordered=True)),
                metadata=app.auth)
        alice = await person(client, app.app_id, app.api_key, "alice")
        await person(client, app.app_id, app.api_key, "bob")
        group = await alice.create(GROUP, ("bob",))
        for text in texts:
            await alice.send(group.name, text)
        return app.app_id, group.name
    finally:
        await client.close()


async def test_events_reach_kafka_keyed_by_conversation_in_order(
        tmp_path: Path, kafka: ExternalServer) -> None:
    server = start_caas(tmp_path, env=with_kafka(kafka.url, "t1"), config=TEST_CONFIG)
    try:
        texts = [f"message {n}" for n in range(1, 21)]
        app_id, conversation = await chat(server, texts)
        got = [(key, event) async for key, event in records(kafka.url, "t1.message", 20)]
    finally:
        assert server.process.stop() == 0
    conversation_id = conversation.rsplit("/", 1)[1]
    assert {key for key, _ in got} == {f"{app_id}/{conversation_id}".encode()}
    # One key, one partition: the conversation's order holds.
    assert [e.message_created.text for _, e in got] == texts
    assert all(e.type == "message.created" and e.name for _, e in got)


async def test_events_committed_before_a_crash_are_relayed_after_the_restart(
        tmp_path: Path) -> None:
    """The broker is away, so nothing can be relayed; the server is killed (no
    goodbye); the broker comes; the restarted server relays what the log holds."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    first = start_caas(tmp_path, env=with_kafka(bootstrap, "t2"), config=TEST_CONFIG)
    texts = ["before the crash 1", "before the crash 2", "before the crash 3"]
    try:
        await chat(first, texts)
    finally:
        first.process.stop(signum=signal.SIGKILL)  # no goodbye: nothing flushes
    broker = start_kafka(port)
    second = start_caas(tmp_path, env=with_kafka(bootstrap, "t2"), config=TEST_CONFIG,
                        port=first.port)
    try:
        got = [e async for _, e in records(bootstrap, "t2.message", 3)]
        assert [e.message_created.text for e in got] == texts
        conversations = [e async for _, e in records(bootstrap, "t2.conversation", 1)]
        assert conversations[0].type == "conversation.created"
    finally:
        assert second.process.stop() == 0
        broker.process.stop()


async def test_a_consumer_group_handles_each_event_and_commits_only_after(
        tmp_path: Path, kafka: ExternalServer) -> None:
    server = start_caas(tmp_path, env=with_kafka(kafka.url, "t3"), config=TEST_CONFIG)
    handled: list[str] = []
    failed_once: set[str] = set()
    done = asyncio.Event()
    expected = 0

    async def handler(event: events_pb2.Event) -> None:
        text = event.message_created.text
        if text == "flaky" and text not in failed_once:
            failed_once.add(text)
            raise ConnectionError("the downstream is down")  # retried, in place
        handled.append(text)
        if len(handled) >= expected:
            done.set()

    try:
        expected = 3
        group = KafkaConsumerGroup(KafkaBroker(kafka.url), "webhooks", ["t3.message"], handler,
                                   session_timeout_ms=6000)
        running = asyncio.create_task(group.run())
        await chat(server, ["first", "flaky", "third"])
        await asyncio.wait_for(done.wait(), 60)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        assert handled == ["first", "flaky", "third"]  # order kept across the retry

        # The same group again: what was committed does not come back; new events do.
        done.clear()
        expected = 4
        running = asyncio.create_task(KafkaConsumerGroup(
            KafkaBroker(kafka.url), "webhooks", ["t3.message"], handler,
            session_timeout_ms=6000).run())
        await chat(server, ["fourth"])
        await asyncio.wait_for(done.wait(), 60)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        assert handled == ["first", "flaky", "third", "fourth"]
    finally:
        assert server.process.stop() == 0


async def test_webhooks_get_events_committed_before_a_crash_through_kafka(
        tmp_path: Path) -> None:
    """With Kafka, webhooks are fed by the consumer group `caas.webhooks`. The broker is
    away when the messages are sent, so they are committed but not relayed when the
    server is killed; after the restart they go log → Kafka → group → endpoint."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    texts = ["hooked 1", "hooked 2", "hooked 3"]
    with running_receiver() as receiver:
        url = receiver.url("ok")
        first = start_caas(tmp_path, env=with_kafka(bootstrap, "t4"), config=TEST_CONFIG)
        try:
            await chat(first, texts, webhook_url=url)
        finally:
            first.process.stop(signum=signal.SIGKILL)
        assert receiver.to(url) == []
        broker = start_kafka(port)
        second = start_caas(tmp_path, env=with_kafka(bootstrap, "t4"), config=TEST_CONFIG,
                            port=first.port)
        try:
            got = await receiver.wait(url, lambda got: len(got) >= len(texts), within=90)
        finally:
            assert second.process.stop() == 0
            broker.process.stop()
    events = [events_pb2.Event() for _ in got]
    for event, request in zip(events, got, strict=True):
        json_format.Parse(request.body, event)
    assert [e.message_created.text for e in events] == texts  # an ordered endpoint
    assert len({e.name for e in events}) == len(texts)


async def test_the_relay_reaches_kafka_over_tls(tmp_path: Path) -> None:
    """A broker behind TLS (a terminating proxy it advertises): CAAS relays to it with
    CAAS_KAFKA_TLS, checking its certificate against CAAS_TLS_CA_FILE."""
    files = self_signed(tmp_path / "pki")
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(files.cert, files.key)
    broker_port = free_port()
    proxy = CuttableProxy("127.0.0.1", broker_port, tls=serving)
    await proxy.start()
    broker = start_kafka(broker_port, advertised_port=proxy.port)
    bootstrap = f"127.0.0.1:{proxy.port}"
    server = start_caas(tmp_path / "caas", config=TEST_CONFIG, env={
        **with_kafka(bootstrap, "t9"), "CAAS_KAFKA_TLS": "true",
        "CAAS_TLS_CA_FILE": str(files.ca)})
    try:
        texts = ["over TLS 1", "over TLS 2"]
        await chat(server, texts)
        trusting = KafkaBroker(bootstrap, ssl.create_default_context(cafile=files.ca))
        got = [e async for _, e in records(trusting, "t9.message", 2)]
        assert [e.message_created.text for e in got] == texts
    finally:  # in a thread: the proxy (on this loop) serves the server's last words
        assert await asyncio.to_thread(server.process.stop) == 0
        broker.process.stop()
        await proxy.close()
