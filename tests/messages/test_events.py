"""Chat actions publish domain events after their writes commit, and only then."""

from __future__ import annotations

import pytest

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.errors import DomainError
from services.core.events import DomainEvent
from services.core.principal import User
from services.messages.actions import Outgoing
from services.messages.models import Message
from services.runtime import Runtime


async def test_events_follow_committed_writes(runtime: Runtime) -> None:
    seen: list[DomainEvent] = []
    visible: list[bool] = []

    async def record(event: DomainEvent) -> None:
        seen.append(event)
        if event.type == "message.created":  # the write is already visible to readers
            found = await runtime.stores.messages.get("alpha", event.conversation_id, 1)
            visible.append(found is not None)

    runtime.bus.subscribe(record)
    alice = User("alpha", "alice", "s1")
    conversation, _ = await runtime.conversations.do_create(
        alice, "alpha", NewConversation(Kind.GROUP, member_ids=["bob"]))
    cid = conversation.conversation_id
    await runtime.messages.do_send(alice, "alpha", cid, Outgoing("hi"), "r1")
    await runtime.messages.do_send(alice, "alpha", cid, Outgoing("hi"), "r1")  # a retry
    await runtime.messages.do_react(User("alpha", "bob", "s2"), "alpha", cid, 1, "👍", add=True)
    await runtime.messages.do_mark(User("alpha", "bob", "s2"), "alpha", cid, "read", 0)
    with pytest.raises(DomainError):  # refused: no event
        await runtime.messages.do_send(User("alpha", "mallory", "s3"), "alpha", cid,
                                       Outgoing("x"), "r2")
    assert [e.type for e in seen] == ["conversation.created", "message.created",
                                      "reaction.added", "read.updated"]
    assert visible == [True]
    assert all(e.conversation_id == cid for e in seen)
    sent = seen[1].payload  # as stored: its content sealed (services/messages/sealing.py)
    assert isinstance(sent, Message) and sent.text != "hi"
    assert (await runtime.stores.content.open_message(sent)).text == "hi"
