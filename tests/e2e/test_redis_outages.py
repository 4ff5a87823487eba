"""Redis on a bad day, for real: stopped, then back (the workers' fan-out recovers by
itself, and says so once), and frozen (calls that need Redis fail fast with
UNAVAILABLE; sends go on, rate-limited by each process alone)."""

from __future__ import annotations

import functools
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import TEST_CONFIG, create_app
from tests.support.chat import GROUP, person
from tests.support.client import Client, details
from tests.support.servers import (
    CaasServer,
    ExternalServer,
    start_caas,
    start_redis,
    wait_for_workers,
)
from tests.support.stream import bob_on_every_connection, subscribed


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[ExternalServer]:
    (tmp_path / "redis").mkdir()
    server = start_redis(tmp_path / "redis")
    yield server
    server.process.stop(signum=signal.SIGKILL)


def component_lines(lines: list[str], component: str, message: str) -> list[dict[str, object]]:
    """The health log records of `component` saying `message` ("is down", "is back")."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("component") == component and message in str(record.get("message")):
            records.append(record)
    return records


def workers_saying(server: CaasServer, component: str, message: str, workers: int = 2
                   ) -> set[object]:
    """The pids of the `workers` processes, once each has logged `message` of
    `component` (waiting for their log lines as they come)."""
    def said() -> set[object]:
        return {r["pid"] for r in component_lines(server.process.lines, component, message)}

    def another(known: set[object], line: str) -> bool:
        return f"{component} {message}" in line and json.loads(line)["pid"] not in known

    while len(known := said()) < workers:
        server.process.wait_for_line(functools.partial(another, known), 60)
    return known


async def test_the_workers_fan_out_comes_back_after_a_redis_outage(
        tmp_path: Path, redis: ExternalServer) -> None:
    port = int(redis.url.rsplit(":", 1)[1].split("/")[0])
    server = start_caas(tmp_path / "data", env={"CAAS_WORKERS": "2",
                                                "CAAS_REDIS_URL": redis.url},
                        config=TEST_CONFIG)
    wait_for_workers(server)
    clients = [Client(server.address, [("grpc.use_local_subchannel_pool", 1)])
               for _ in range(8)]
    try:
        alice, _, group, streams = await bob_on_every_connection(
            clients, server.operator_token)
        await alice.send(group, "before")
        for stream in streams:
            assert (await stream.event()).message_created.text == "before"

        redis.process.stop(signum=signal.SIGKILL)  # Redis is gone: each worker notices
        pids = workers_saying(server, "realtime-fanout", "is down")
        await alice.send(group, "during")  # sends go on; streams poll the log
        for stream in streams:
            assert (await stream.event()).message_created.text == "during"

        restarted = start_redis(tmp_path / "redis", port)  # back, on the same address
        try:
            assert workers_saying(server, "realtime-fanout", "is back") == pids
            # Once per change: however often the listener retried meanwhile.
            downs = component_lines(server.process.lines, "realtime-fanout", "is down")
            assert sorted(str(r["pid"]) for r in downs) == sorted(str(p) for p in pids)
            await alice.send(group, "after")
            for stream in streams:
                assert (await stream.event()).message_created.text == "after"
            for stream in streams:
                await stream.close()
        finally:
            restarted.process.stop(signum=signal.SIGKILL)
    finally:
        for client in clients:
            await client.close()
        assert server.process.stop() == 0


async def test_a_frozen_redis_fails_calls_fast_and_holds_no_send_up(
        tmp_path: Path, redis: ExternalServer) -> None:
    server = start_caas(tmp_path / "data", env={"CAAS_REDIS_URL": redis.url})
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        alice = await person(client, app.app_id, app.api_key, "alice")
        group = await alice.create(GROUP)
        redis.process.send_signal(signal.SIGSTOP)  # alive, answering nothing
        try:
            # A send needs no Redis: rate limits are counted in the process meanwhile.
            for n in range(3):
                sent = await client.messages.CreateMessage(msg_pb.CreateMessageRequest(
                    parent=group.name, message=msg_res.Message(text=f"frozen {n}"),
                    request_id=f"frozen-{n}"), metadata=alice.auth, timeout=3)
                assert sent.created
            # The process says so in its health (the service stays up).
            health = health_pb2_grpc.HealthStub(client.channel)
            component = await health.Check(health_pb2.HealthCheckRequest(
                service="caas.component.rate-limit-redis"), timeout=3)
            assert component.status == health_pb2.HealthCheckResponse.NOT_SERVING
            overall = await health.Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert overall.status == health_pb2.HealthCheckResponse.SERVING
            # Presence needs Redis: UNAVAILABLE well within the caller's deadline.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.realtime.SetPresence(rt_pb.SetPresenceRequest(
                    name=f"{alice.name}", status=rt_pb.Presence.STATUS_AWAY),
                    metadata=alice.auth, timeout=3)
            got = details(refused.value)
            assert (got.code, got.reason) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")
            # A stream goes on without presence.
            stream = await subscribed(alice)
            await alice.send(group.name, "to the stream")
            assert (await stream.event()).message_created.text == "to the stream"
            await stream.close()
        finally:
            redis.process.send_signal(signal.SIGCONT)
        await client.realtime.SetPresence(rt_pb.SetPresenceRequest(
            name=f"{alice.name}", status=rt_pb.Presence.STATUS_AWAY),
            metadata=alice.auth, timeout=10)
        assert component_lines(server.process.lines, "rate-limit-redis", "is down")
    finally:
        await client.close()
        assert server.process.stop() == 0
