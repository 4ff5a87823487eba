"""Real-time streams across server restarts and under back-pressure (own servers)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc

from tests.conftest import TEST_CONFIG, create_app, repo_root
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.processes import Process
from tests.support.servers import start_caas
from tests.support.stream import Stream, subscribed


async def test_resume_after_a_restart_with_events_sent_while_nobody_listened(
        tmp_path: Path) -> None:
    first = start_caas(tmp_path, config=TEST_CONFIG)
    client = Client(first.address)
    app = await create_app(client, first.operator_token)
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    stream = await subscribed(bob)
    await alice.send(group.name, "before")
    assert (await stream.event()).message_created.text == "before"
    token = stream.token
    await stream.close()
    await alice.send(group.name, "while bob was away")
    await client.close()
    assert first.process.stop() == 0

    second = start_caas(tmp_path, config=TEST_CONFIG)
    client = Client(second.address)
    try:
        alice.client = bob.client = client
        await alice.send(group.name, "after the restart")
        resumed = Stream(bob, token)
        assert [e.message_created.text for e in await resumed.ready()] == [
            "while bob was away", "after the restart"]
        await alice.send(group.name, "live")
        assert (await resumed.event()).message_created.text == "live"
        await resumed.close()
    finally:
        await client.close()
        assert second.process.stop() == 0


LAGGING_CONFIG = """
stream_queue_limit = 20
[plans.free]
sends_per_conversation = 100000
[plans.free.default]
per_app = 100000
per_user = 100000
"""


async def test_a_stream_that_falls_behind_is_ended_and_resumes_without_loss(
        tmp_path: Path) -> None:
    server = start_caas(tmp_path, config=LAGGING_CONFIG)
    client = Client(server.address)
    reader: Process | None = None
    try:
        app = await create_app(client, server.operator_token)
        alice = await person(client, app.app_id, app.api_key, "alice")
        bob = await person(client, app.app_id, app.api_key, "bob")
        group = await alice.create(GROUP, ("bob",))
        reader = Process([sys.executable, "-m", "tests.support.stream_reader", server.address,
                          bob.name, bob.token], cwd=repo_root(), name="stream reader")
        reader.wait_for_line(lambda line: line.startswith("ready "))
        reader.send_signal(signal.SIGSTOP)  # bob's device freezes; the server goes on
        # Past what the socket buffers and HTTP/2 windows hold (a few MB on loopback).
        texts = [f"{n:04d}" + "x" * 3990 for n in range(1000)]
        for text in texts:
            await alice.send(group.name, text)
        reader.send_signal(signal.SIGCONT)
        ended = reader.wait_for_line(lambda line: line.startswith("status "))
        assert ended.split()[1:] == ["ABORTED", "STREAM_LAGGING"]
        items = [line.split(" ", 2) for line in reader.lines if line.startswith("event ")]
        received = [text for _, _, text in items]
        resumed = Stream(bob, items[-1][1] if items else reader.lines[0].split()[1])
        received += [e.message_created.text for e in await resumed.ready()]
        assert received == texts  # every message once, in order
        await resumed.close()
    finally:
        if reader is not None:
            reader.send_signal(signal.SIGKILL)
        await client.close()
        assert server.process.stop() == 0


async def test_shutdown_ends_streams_with_unavailable(tmp_path: Path) -> None:
    server = start_caas(tmp_path, config=TEST_CONFIG)
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        bob = await person(client, app.app_id, app.api_key, "bob")
        stream = await subscribed(bob)
        server.process.send_signal(signal.SIGTERM)
        ended = await stream.error()
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
        assert "reconnect" in (ended.details() or "")
        assert await asyncio.to_thread(server.process.wait, 30) == 0  # drained, not killed
    finally:
        await client.close()
        server.process.stop()
