"""A resume token older than the events kept is refused with a clear status."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.errors import FailedPrecondition, InvalidArgument, OutOfRange
from services.core.principal import User
from services.messages.actions import Outgoing
from services.realtime.hub import encode_token
from services.runtime import Runtime
from services.webhooks.worker import CONSUMER
from tests.support.waiting import eventually


async def test_a_token_behind_the_purge_horizon_is_expired(runtime: Runtime) -> None:
    alice, bob = User("alpha", "alice", "s1"), User("alpha", "bob", "s2")
    conversation, _ = await runtime.conversations.do_create(
        alice, "alpha", NewConversation(Kind.GROUP, member_ids=["bob"]))
    for n in range(3):
        await runtime.messages.do_send(alice, "alpha", conversation.conversation_id,
                                       Outgoing(f"m{n}"), f"r{n}")
    head = await runtime.stores.events.head("alpha")
    kept = encode_token(head.log_id, 1)
    stream = runtime.realtime.subscribe(bob, "alpha", "bob", kept, "")
    first = await anext(stream)  # replay works while the events are kept
    assert first
    await stream.aclose()

    async def consumers_caught_up() -> bool:  # purging keeps what they have yet to take
        return await runtime.stores.events.behind(CONSUMER) == []

    await eventually(consumers_caught_up)
    await runtime.stores.events.purge(runtime.clock.now() + timedelta(seconds=1))
    with pytest.raises(FailedPrecondition) as refused:
        await anext(runtime.realtime.subscribe(bob, "alpha", "bob", kept, ""))
    assert refused.value.reason == "RESUME_TOKEN_EXPIRED"
    # The newest position is still a valid place to resume from.
    latest = encode_token(head.log_id, head.position)
    fresh = runtime.realtime.subscribe(bob, "alpha", "bob", latest, "")
    assert await anext(fresh)  # `ready`
    await fresh.aclose()


async def test_a_token_of_another_log_or_from_the_future_is_not_called_expired(
        runtime: Runtime) -> None:
    alice = User("alpha", "alice", "s1")
    conversation, _ = await runtime.conversations.do_create(
        alice, "alpha", NewConversation(Kind.GROUP))
    await runtime.messages.do_send(alice, "alpha", conversation.conversation_id,
                                   Outgoing("m"), "r1")
    head = await runtime.stores.events.head("alpha")
    with pytest.raises(InvalidArgument) as foreign:
        await anext(runtime.realtime.subscribe(
            alice, "alpha", "alice", encode_token("another-log", head.position), ""))
    assert foreign.value.reason == "RESUME_TOKEN_FOREIGN"
    assert "another event log" in foreign.value.message
    with pytest.raises(OutOfRange) as ahead:
        await anext(runtime.realtime.subscribe(
            alice, "alpha", "alice", encode_token(head.log_id, head.position + 5), ""))
    assert ahead.value.reason == "RESUME_TOKEN_AHEAD"
    assert ahead.value.metadata == {"position": str(head.position + 5),
                                    "newest_position": str(head.position)}
    assert "past the newest event" in ahead.value.message
