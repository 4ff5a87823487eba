"""The SDK's chat store against a recorded stream: alice's realtime events while three
people chat, edit, delete, react, reply in a thread and read, recorded from a running
server, replayed into the TypeScript reducer as recorded and as streams may also deliver
them (repeated, replayed after a resume from an old token, partly lost then resynced);
each outcome must show what the server lists at the end (web_bridge/sdk/test/replay.mjs)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message

from tests.conftest import AppHandle
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.stream import subscribed
from tests.web_bridge.nodejs import SDK, built_sdk


def as_json(message: Message) -> object:
    return json.loads(json_format.MessageToJson(message))


async def react(who: Person, message: str, emoji: str, add: bool = True) -> None:
    if add:
        await who.client.messages.AddReaction(
            msg_pb.AddReactionRequest(name=message, emoji=emoji), metadata=who.auth)
    else:
        await who.client.messages.RemoveReaction(
            msg_pb.RemoveReactionRequest(name=message, emoji=emoji), metadata=who.auth)


async def test_the_store_shows_what_the_server_has_however_the_stream_delivers(
        client: Client, app: AppHandle, tmp_path: Path) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    carol = await person(client, app.app_id, app.api_key, "carol")
    group = await alice.create(GROUP, ("bob", "carol"), title="Replay")
    stream = await subscribed(alice)
    initial = await alice.client.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=group.name), metadata=alice.auth)

    first = (await bob.send(group.name, "one")).message
    second = (await bob.send(group.name, "two")).message
    third = (await carol.send(group.name, "three")).message
    mine = (await alice.send(group.name, "four")).message
    await bob.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=second.name, text="two, edited"),
        update_mask=field_mask_pb2.FieldMask(paths=["text"])), metadata=bob.auth)
    await react(bob, first.name, "👍")
    await react(alice, first.name, "👍")
    await react(alice, mine.name, "❤️")
    await react(carol, mine.name, "❤️")
    await react(bob, first.name, "👍", add=False)
    await carol.client.messages.DeleteMessage(
        msg_pb.DeleteMessageRequest(name=third.name), metadata=carol.auth)
    await carol.send(group.name, "a reply", thread_root_sequence=first.sequence)
    reply = (await bob.send(group.name, "another reply",
                            thread_root_sequence=first.sequence)).message
    await alice.mark_read(group.name, reply.sequence)
    await bob.mark_read(group.name, mine.sequence)
    await bob.send(group.name, "@alice look", mention_ids=["alice"])
    last = (await carol.send(group.name, "the end")).message

    # The stream is ordered: once "the end" is in, everything before it is.
    events = []
    while True:
        event = await stream.event()
        events.append(event)
        if event.type == "message.created" and event.message_created.name == last.name:
            break
    await stream.close()
    assert {event.type for event in events} >= {
        "message.created", "message.updated", "message.deleted", "reaction.added",
        "reaction.removed", "read.updated"}

    listed = await alice.messages(group.name, page_size=200)
    thread = await alice.messages(group.name, page_size=200,
                                  thread_root_sequence=first.sequence)
    final = await alice.client.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=group.name), metadata=alice.auth)
    assert final.conversation.membership.unread_count == 2  # after alice's read position
    recording = tmp_path / "recording.json"
    recording.write_text(json.dumps({
        "me": "alice",
        "threadRoot": str(first.sequence),
        "initial": {"conversation": as_json(initial.conversation)},
        "events": [as_json(event) for event in events],
        "final": {
            "messages": [as_json(message) for message in listed.messages],
            "thread": [as_json(message) for message in thread.messages],
            "conversation": as_json(final.conversation),
        },
    }))
    process = await asyncio.create_subprocess_exec(
        built_sdk(), "test/replay.mjs", str(recording), cwd=SDK,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert output.decode().startswith("ok 5 variants"), output.decode()
