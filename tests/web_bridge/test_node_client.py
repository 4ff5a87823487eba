"""A client in another language: Node.js with the TypeScript SDK over native gRPC
(Connect's gRPC transport) chats with a Python client through the same server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
from caas.auth.v1 import auth_service_pb2 as auth_pb
from google.protobuf import duration_pb2

from tests.conftest import AppHandle, sign_in
from tests.support.chat import person
from tests.support.client import Client, bearer
from tests.support.processes import Process
from tests.support.servers import CaasServer
from tests.support.stream import subscribed
from tests.web_bridge.nodejs import SDK, built_sdk


async def line_from(process: Process, key: str, start: int = 0) -> dict[str, Any]:
    """The next JSON line of `process` that has `key`."""
    line = await asyncio.to_thread(process.wait_for_line,
                                   lambda text: text.startswith("{") and f'"{key}"' in text,
                                   30, start)
    return dict(json.loads(line))


async def test_node_and_python_chat(client: Client, server: CaasServer, app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    bob = await sign_in(client, app, "bob")
    stream = await subscribed(alice)  # before node adds her to its conversation
    process = Process([built_sdk(), "test/node_chat.mjs"], cwd=SDK, name="node", env={
        "CAAS_ADDRESS": server.address, "APP_NAME": app.name, "ALICE_ID": "alice",
        "BOB_ID": "bob", "BOB_TOKEN": bob.credentials.access_token,
        "BOB_REFRESH": bob.credentials.refresh_token})
    try:
        refused = await line_from(process, "error")
        assert refused == {"error": "Unauthenticated", "reason": "CREDENTIALS_MALFORMED"}
        renewed = await line_from(process, "renewed")  # once, before its first call
        assert renewed["renewed"] == 1 and renewed["rotated"]
        assert renewed["expiresInSeconds"] > 60
        conversation = (await line_from(process, "conversation"))["conversation"]
        assert conversation.startswith(f"{app.name}/conversations/")

        # Python (alice) sees node's message on her stream, then answers.
        while True:
            event = await stream.event()
            if event.type == "message.created":
                break
        assert (event.conversation, event.message_created.text,
                event.message_created.sender_id) == (conversation, "hello from node", "bob")
        assert (await line_from(process, "sent"))["sequence"] == 1
        await alice.send(conversation, "hello from python")

        received = await line_from(process, "received")
        assert received == {"received": "hello from python", "sender": "alice", "sequence": 2}
        await line_from(process, "done")
        assert sum('"renewed"' in line for line in process.lines) == 1
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        await stream.close()
        process.stop()


async def test_node_renews_an_expired_token_and_its_stream_goes_live(
        client: Client, server: CaasServer, app: AppHandle) -> None:
    await person(client, app.app_id, app.api_key, "bob")
    bob = await sign_in(client, app, "bob", access_token_ttl=duration_pb2.Duration(seconds=2))
    token = bob.credentials.access_token
    # Wait (on the server's word, not a clock) until the token is refused as expired.
    auth = Client(server.address)
    try:
        while True:
            try:
                await auth.auth.ListSessions(
                    auth_pb.ListSessionsRequest(parent=f"{app.name}/users/bob"),
                    metadata=bearer(token))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                break
            await asyncio.sleep(0.2)
    finally:
        await auth.close()
    process = Process([built_sdk(), "test/node_expired.mjs"], cwd=SDK, name="node", env={
        "CAAS_ADDRESS": server.address, "APP_NAME": app.name, "BOB_ID": "bob",
        "BOB_TOKEN": token, "BOB_REFRESH": bob.credentials.refresh_token})
    try:
        assert await line_from(process, "live") == {"live": True, "renewed": 1}
        listed = await line_from(process, "listed")
        assert listed["listed"] == 0 and listed["renewed"] >= 1  # it may renew again
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        process.stop()
