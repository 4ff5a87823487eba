"""Under load, a process's streams of one app take the events of the commits within
the batch window together: one message per stream for all of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from caas.realtime.v1 import realtime_service_pb2 as pb

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import Operator, User
from services.core.settings import load_settings
from services.messages.actions import Outgoing
from services.runtime import Runtime, build_runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    # A long window, so that the sends below surely fall within it.
    built = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40,
        stream_batch_window=timedelta(seconds=1)))
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob"):
        await built.users.ensure_user("alpha", user_id)
    yield built
    await built.close()


def texts(item: bytes) -> list[str]:
    response = pb.SubscribeResponse.FromString(item)
    events = response.events.events if response.HasField("events") else [response.event]
    return [e.message_created.text for e in events if e.type == "message.created"]


async def test_events_within_the_window_go_out_together(runtime: Runtime) -> None:
    alice, bob = User("alpha", "alice", "s1"), User("alpha", "bob", "s2")
    conversation, _ = await runtime.conversations.do_create(
        alice, "alpha", NewConversation(Kind.GROUP, member_ids=["bob"]))
    stream = runtime.realtime.subscribe(bob, "alpha", "bob", "", "")
    assert pb.SubscribeResponse.FromString(await anext(stream)).HasField("ready")

    async def send(text: str) -> None:
        await runtime.messages.do_send(alice, "alpha", conversation.conversation_id,
                                       Outgoing(text), text)

    await send("first")  # after a quiet moment: sent at once, alone
    assert texts(await anext(stream)) == ["first"]
    for text in ("second", "third", "fourth"):  # within the window after that read
        await send(text)
    assert texts(await anext(stream)) == ["second", "third", "fourth"]
    await stream.aclose()


async def test_a_calls_events_never_wait_for_the_window(tmp_path: Path) -> None:
    # A window longer than the test may take: only a call's event can end the wait.
    built = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40,
        stream_batch_window=timedelta(hours=1)))
    try:
        await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
        for user_id in ("alice", "bob"):
            await built.users.ensure_user("alpha", user_id)
        alice, bob = User("alpha", "alice", "s1"), User("alpha", "bob", "s2")
        conversation, _ = await built.conversations.do_create(
            alice, "alpha", NewConversation(Kind.GROUP, member_ids=["bob"]))
        stream = built.realtime.subscribe(bob, "alpha", "bob", "", "b1")
        assert pb.SubscribeResponse.FromString(await anext(stream)).HasField("ready")
        await built.messages.do_send(alice, "alpha", conversation.conversation_id,
                                     Outgoing("first"), "r1")
        assert texts(await anext(stream)) == ["first"]  # after a quiet moment: at once
        await built.messages.do_send(alice, "alpha", conversation.conversation_id,
                                     Outgoing("second"), "r2")  # held for the window…
        await built.calls.start(alice, "alpha", conversation.conversation_id, "audio",
                                "a1", "k1", [])
        # … until the call rings: both go now, in order.
        response = pb.SubscribeResponse.FromString(
            await asyncio.wait_for(anext(stream), 10))
        events = response.events.events if response.HasField("events") else [response.event]
        assert [e.type for e in events] == ["message.created", "call.started"]
        await stream.aclose()
    finally:
        await built.close()
