"""A commit's events reach the streams as the commit recorded them, without being
read back from the log; the log is read only after a gap (events that were not
carried), so nothing is lost either way."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from caas.realtime.v1 import realtime_service_pb2 as pb

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import User
from services.core.tracing import TraceHeaders
from services.events.log import LoggedEvent
from services.messages.actions import Outgoing
from services.realtime.fanout import decode_events, encode_events
from services.runtime import Runtime

ALICE, BOB = User("alpha", "alice", "s1"), User("alpha", "bob", "s2")


def texts(item: bytes) -> list[str]:
    response = pb.SubscribeResponse.FromString(item)
    events = response.events.events if response.HasField("events") else [response.event]
    return [e.message_created.text for e in events if e.type == "message.created"]


class ReadCounter:
    """Counts the feeds' log reads that found events (not the relays')."""

    def __init__(self, runtime: Runtime) -> None:
        self.found = 0
        events = runtime.stores.events
        read = events.read

        async def counted(app_id: str, after: int, limit: int,
                          conversations: Sequence[str] | None = None) -> list[LoggedEvent]:
            by_feed = sys._getframe(1).f_code.co_qualname == "Feed._follow"
            batch = await read(app_id, after, limit, conversations)
            self.found += by_feed and bool(batch)
            return batch

        events.read = counted  # type: ignore[method-assign]


@pytest.fixture
async def group(runtime: Runtime) -> str:
    conversation, _ = await runtime.conversations.do_create(
        ALICE, "alpha", NewConversation(Kind.GROUP, member_ids=["bob"]))
    return conversation.conversation_id


@pytest.fixture
async def stream(runtime: Runtime, group: str) -> AsyncIterator[AsyncIterator[bytes]]:
    subscription = runtime.realtime.subscribe(BOB, "alpha", "bob", "", "")
    assert pb.SubscribeResponse.FromString(await anext(subscription)).HasField("ready")
    yield subscription
    await subscription.aclose()


async def test_committed_events_reach_the_streams_without_a_log_read(
        runtime: Runtime, group: str, stream: AsyncIterator[bytes]) -> None:
    reads = ReadCounter(runtime)
    got: list[str] = []
    for n in range(3):
        await runtime.messages.do_send(ALICE, "alpha", group, Outgoing(f"m{n}"), f"r{n}")
        while len(got) < n + 1:
            got += texts(await anext(stream))
    assert got == ["m0", "m1", "m2"]
    assert reads.found == 0


async def test_after_a_gap_the_feed_reads_the_log(
        runtime: Runtime, group: str, stream: AsyncIterator[bytes]) -> None:
    reads = ReadCounter(runtime)
    runtime.stores.events.watch_commits(lambda events: None)  # this commit goes uncarried
    await runtime.messages.do_send(ALICE, "alpha", group, Outgoing("lost on the way"), "r1")
    runtime.stores.events.watch_commits(runtime.fanout.deliver)
    await runtime.messages.do_send(ALICE, "alpha", group, Outgoing("carried"), "r2")
    got: list[str] = []
    while len(got) < 2:
        got += texts(await anext(stream))
    assert got == ["lost on the way", "carried"]  # in order, the first from the log
    assert reads.found >= 1


def test_events_travel_between_processes_as_logged() -> None:
    at = datetime(2026, 12, 3, 12, 0, 0, 123000, tzinfo=UTC)
    events = [
        LoggedEvent("alpha", 7, "g1", "message.created", "alice", False, at, b"\x00\x01 bytes",
                    ("bob",), TraceHeaders("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "k=v")),
        LoggedEvent("alpha", 8, "", "user.updated", "bob", True, at, b""),
    ]
    assert decode_events("alpha", encode_events(events)) == events
    with pytest.raises(ValueError):
        decode_events("alpha", encode_events(events)[:-3])  # a payload cut short
