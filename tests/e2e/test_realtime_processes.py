"""Three `caas serve` processes sharing MongoDB and Redis: real time crosses them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from tests.conftest import TEST_CONFIG, create_app
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer, ExternalServer, start_caas
from tests.support.stream import Stream, subscribed

ONLINE, AWAY, OFFLINE = (rt_pb.Presence.STATUS_ONLINE, rt_pb.Presence.STATUS_AWAY,
                         rt_pb.Presence.STATUS_OFFLINE)


@pytest.fixture
def cluster(tmp_path: Path, mongo: ExternalServer, redis_server: ExternalServer
            ) -> Iterator[list[CaasServer]]:
    env = {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
           "CAAS_MONGODB_DATABASE": f"rt{uuid.uuid4().hex[:10]}",
           "CAAS_REDIS_URL": redis_server.url,
           # Servers of one deployment share the master keys (a mounted secret).
           "CAAS_KEY_DIR": str(tmp_path / "keys")}
    servers = [start_caas(tmp_path / str(n), env=env, config=TEST_CONFIG) for n in range(3)]
    yield servers
    for server in servers:
        assert server.process.stop() == 0


async def test_events_typing_and_presence_cross_processes(cluster: list[CaasServer]) -> None:
    clients = [Client(server.address) for server in cluster]
    try:
        app = await create_app(clients[0], cluster[0].operator_token)
        alice, bob, carol = [await person(client, app.app_id, app.api_key, user_id)
                             for client, user_id in zip(clients, ("alice", "bob", "carol"),
                                                        strict=True)]
        bob_stream, carol_stream = await subscribed(bob), await subscribed(carol)
        group = await alice.create(GROUP, ("bob", "carol"))
        sent = await alice.send(group.name, "across")
        await alice.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
            message=msg_res.Message(name=sent.message.name, text="across!"),
            update_mask={"paths": ["text"]}), metadata=alice.auth)
        for stream in (bob_stream, carol_stream):
            got = await stream.events(3)
            assert [e.type for e in got] == ["conversation.created", "message.created",
                                             "message.updated"]
            assert got[2].message_updated.text == "across!"

        await alice.client.realtime.SendTyping(
            rt_pb.SendTypingRequest(conversation=group.name, typing=True), metadata=alice.auth)
        for stream in (bob_stream, carol_stream):
            assert (await stream.next("typing")).typing.user_id == "alice"

        alice_stream = await subscribed(alice, device_id="phone")  # on process 0
        assert (await bob_stream.next("presence")).presence.status == ONLINE
        # Her next call lands on process 2, which holds none of her streams.
        away = Person(clients[2], app.app_id, "alice", alice.token)
        answer = await away.client.realtime.SetPresence(
            rt_pb.SetPresenceRequest(name=alice.name, status=AWAY, device_id="phone"),
            metadata=alice.auth)
        assert answer.presence.status == AWAY
        assert (await bob_stream.next("presence")).presence.status == AWAY
        seen_elsewhere = await clients[1].realtime.BatchGetPresences(
            rt_pb.BatchGetPresencesRequest(parent=f"apps/{app.app_id}",
                                           names=[f"{alice.name}/presence"]),
            metadata=bob.auth)
        assert seen_elsewhere.presences[0].status == AWAY
        await alice_stream.close()
        assert (await bob_stream.next("presence")).presence.status == OFFLINE

        # Bob resumes on another process: exactly what he missed.
        token = bob_stream.token
        await bob_stream.close()
        await alice.send(group.name, "while bob moved")
        moved = Stream(Person(clients[2], app.app_id, "bob", bob.token), token)
        assert [e.message_created.text for e in await moved.ready()] == ["while bob moved"]
        await alice.send(group.name, "live again")
        assert (await moved.event()).message_created.text == "live again"
        await moved.close()
        await carol_stream.close()
    finally:
        for client in clients:
            await client.close()
