"""EventLog contract, on every engine: chat writes log their events atomically, in
commit order, with membership intervals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime

import pytest
from caas.calls.v1 import resources_pb2 as calls_res
from caas.events.v1 import events_pb2

from services.conversations.models import ConversationChanges, MemberChanges, Role
from services.core.errors import CapacityExceeded
from services.core.events import DomainEvent
from services.core.health import Health
from services.events import relay as relay_module
from services.events.consumers import log_consumer
from services.events.log import LoggedEvent, follow, visible
from services.events.relay import LEASE, Relay, Wake
from services.events.types import CALL_SIGNAL
from services.messages.models import Draft, MessageChanges
from services.runtime import Stores
from tests.store.chat import SECOND, T0, make_group, member, send


async def logged(stores: Stores, app_id: str = "alpha") -> list[LoggedEvent]:
    return await stores.events.read(app_id, 0, 1000)


async def test_chat_writes_log_their_events_in_order(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "hi", request_id="r1")
    await send(stores, "g1", "alice", "hi", request_id="r1")  # a retry: nothing new
    await send(stores, "g1", "bob", "yo", at=T0 + SECOND)
    await stores.messages.add_reaction("alpha", "g1", 1, "bob", "👍", T0, 50, 10)
    await stores.messages.edit("alpha", "g1", 1, MessageChanges(text="hi!"), T0 + 2 * SECOND)
    await stores.messages.mark("alpha", "g1", "alice", "read", 0, T0)
    await stores.messages.mark("alpha", "g1", "alice", "read", 0, T0)  # no move: no event
    await stores.messages.delete("alpha", "g1", 2, T0)
    await stores.conversations.update_conversation("alpha", "g1",
                                                   ConversationChanges(title="New"), T0)
    events = await logged(stores)
    assert [e.type for e in events] == [
        "conversation.created", "message.created", "message.created", "reaction.added",
        "message.updated", "read.updated", "message.deleted", "conversation.updated"]
    assert [e.position for e in events] == list(range(1, 9))
    assert {e.conversation_id for e in events} == {"g1"}
    assert [e.user_id for e in events[1:6]] == ["alice", "bob", "bob", "alice", "alice"]
    assert events[0].joiners == ("alice", "bob")
    proto = events_pb2.Event.FromString(await stores.content.open_payload(events[4].payload))
    assert (proto.name, proto.type, proto.message_updated.text) == (
        "apps/alpha/events/5", "message.updated", "hi!")
    reaction = events_pb2.Event.FromString(events[3].payload)
    assert reaction.reaction_added.emoji == "👍"
    assert [(r.emoji, r.count) for r in reaction.reaction_added.message.reactions] == [
        ("👍", 1)]
    assert await stores.events.read("alpha", 6, 100) == events[6:]
    assert await stores.events.read("alpha", 0, 2) == events[:2]
    assert await logged(stores, "beta") == []


async def test_failed_writes_log_nothing(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    with pytest.raises(LookupError):
        await stores.messages.append("alpha", "nowhere", Draft("alice", "x"), "r", T0)
    with pytest.raises(CapacityExceeded):
        await stores.conversations.add_members("alpha", "g1", [member("g1", "carol")], 2)
    assert await stores.messages.edit("alpha", "g1", 9, MessageChanges(text="x"), T0) is None
    assert [e.type for e in await logged(stores)] == ["conversation.created"]


async def test_positions_stay_gapless_under_concurrent_writers(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await make_group(stores, "g2", ["alice", "bob"])
    await asyncio.gather(*[
        stores.messages.append("alpha", f"g{n % 2 + 1}", Draft("alice", str(n)), f"r{n}", T0)
        for n in range(20)])
    events = await logged(stores)
    assert [e.position for e in events] == list(range(1, 23))
    for conversation_id in ("g1", "g2"):  # and each conversation's messages in order
        texts = [events_pb2.Event.FromString(e.payload).message_created.sequence
                 for e in events if e.conversation_id == conversation_id
                 and e.type == "message.created"]
        assert texts == list(range(1, 11))


async def test_memberships_open_and_close_with_the_events(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])  # position 1
    await stores.conversations.add_members("alpha", "g1", [member("g1", "carol")], 10)  # 2
    await stores.conversations.remove_member("alpha", "g1", "bob", T0)  # 3
    await send(stores, "g1", "alice", "after bob left")  # 4
    assert await stores.conversations.delete_conversation("alpha", "g1", T0)  # 5
    assert await stores.events.memberships("alpha", "bob", 0) == {"g1": [(1, 3)]}
    assert await stores.events.memberships("alpha", "carol", 0) == {"g1": [(2, 5)]}
    assert await stores.events.memberships("alpha", "bob", 3) == {}
    assert await stores.events.memberships("beta", "carol", 0) == {}
    events = await logged(stores)
    bob = dict(await stores.events.memberships("alpha", "bob", 0))
    assert [e.position for e in events if visible(bob, e, "bob")] == [1, 2, 3]
    carol: dict[str, list[tuple[int, int | None]]] = {}
    seen = []
    for event in events:  # following the log live gives the same answer
        follow(carol, event, "carol")
        if visible(carol, event, "carol"):
            seen.append(event.position)
    assert seen == [2, 3, 4, 5]


async def test_own_member_settings_are_private(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await stores.conversations.update_member("alpha", "g1", "bob", MemberChanges(muted=True),
                                             T0)
    await stores.conversations.update_member("alpha", "g1", "carol",
                                             MemberChanges(role=Role.ADMIN), T0)
    await stores.conversations.remove_member("alpha", "g1", "alice", T0)  # carol inherits
    events = (await logged(stores))[1:]
    assert [(e.type, e.user_id, e.private) for e in events] == [
        ("member.updated", "bob", True), ("member.updated", "carol", False),
        ("member.removed", "alice", False), ("member.updated", "carol", False)]
    memberships = dict(await stores.events.memberships("alpha", "alice", 0))
    assert not visible(memberships, events[0], "alice")  # bob's settings: bob's only
    public = events_pb2.Event.FromString(events[1].payload).member_updated
    assert public.role == Role.ADMIN and not public.HasField("read_time")


async def test_purge_drops_old_events_and_moves_the_horizon(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "old")
    first = await stores.events.head("alpha")
    assert (first.position, first.purged_through) == (2, 0)
    assert await stores.events.purge(T0 + SECOND) == 2
    await send(stores, "g1", "alice", "new", at=T0 + 2 * SECOND)
    head = await stores.events.head("alpha")
    assert (head.log_id, head.position, head.purged_through) == (first.log_id, 3, 2)
    assert [e.position for e in await logged(stores)] == [3]
    assert await stores.events.purge(T0 + SECOND) == 0


async def test_a_new_log_has_a_head(stores: Stores) -> None:
    head = await stores.events.head("fresh")
    assert (head.position, head.purged_through) == (0, 0) and head.log_id
    assert await stores.events.head("fresh") == head
    assert (await stores.events.head("other")).log_id != head.log_id


class Sink:
    """A sink that keeps what it takes, and can be made to fail."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, int]] = []
        self.failing = False
        self.failures = 0
        self.changed = asyncio.Event()

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        self.changed.set()
        if self.failing:
            self.failures += 1
            raise ConnectionError("the bus is down")
        self.taken += [(e.app_id, e.position) for e in events]

    async def until(self, taken: int = 0, failures: int = 0) -> None:
        while len(self.taken) < taken or self.failures < failures:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


async def test_the_relay_hands_over_every_event_once_in_order(stores: Stores) -> None:
    sink = Sink()
    relay = Relay(stores.events, sink, "bus", batch=2)
    await relay.start()
    await make_group(stores, "g1", ["alice", "bob"])
    for text in ("one", "two", "three"):
        await send(stores, "g1", "alice", text)
    assert await relay.run_once() == 4
    assert sink.taken == [("alpha", p) for p in (1, 2, 3, 4)]
    assert await relay.run_once() == 0  # nothing new, nothing again
    await send(stores, "g1", "bob", "four")
    assert await relay.run_once() == 1 and sink.taken[-1] == ("alpha", 5)


async def test_a_failed_hand_over_is_retried_and_loses_nothing(stores: Stores) -> None:
    sink = Sink()
    relay = Relay(stores.events, sink, "bus")
    await relay.start()
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "one")
    sink.failing = True
    with pytest.raises(ConnectionError):
        await relay.run_once()
    # A new relay (a restarted process) starts where the cursor is: nothing was taken.
    sink.failing = False
    assert await Relay(stores.events, sink, "bus").run_once() == 2
    assert sink.taken == [("alpha", 1), ("alpha", 2)]
    # Another consumer has its own cursor, from the beginning.
    other = Sink()
    assert await Relay(stores.events, other, "webhooks").run_once() == 2


async def test_purge_keeps_what_a_consumer_has_yet_to_take(stores: Stores) -> None:
    sink = Sink()
    relay = Relay(stores.events, sink, "bus")
    await relay.start()
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "old")
    assert await stores.events.purge(T0 + SECOND) == 0  # the relay has taken nothing
    await stores.events.advance("bus", "alpha", 1)
    assert await stores.events.purge(T0 + SECOND) == 1
    assert await relay.run_once() == 1 and sink.taken == [("alpha", 2)]
    assert await stores.events.purge(T0 + SECOND) == 1
    await stores.events.advance("bus", "alpha", 1)  # a cursor never moves back
    assert await stores.events.behind("bus") == []


async def test_a_consumer_switched_off_stops_holding_purges(stores: Stores) -> None:
    await stores.events.register("kafka")
    assert await stores.events.lease("kafka", "holder", T0, T0 + SECOND)
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "old")
    assert await stores.events.purge(T0 + SECOND) == 0  # its lease is recent: it waits
    # Its last lease ended before the cutoff: it was switched off, and nothing waits.
    assert await stores.events.purge(T0 + 3 * SECOND) == 2


async def test_a_round_can_look_at_the_woken_apps_only(stores: Stores) -> None:
    sink = Sink()
    relay = Relay(stores.events, sink, "bus")
    await relay.start()
    await make_group(stores, "g1", ["alice", "bob"])
    assert await relay.run_once(apps={"beta"}) == 0  # another app: alpha is not read
    assert await relay.run_once(apps=set()) == 0
    assert await relay.run_once(apps={"alpha", "beta"}) == 1
    assert sink.taken == [("alpha", 1)]


async def test_a_relay_skips_the_apps_its_sink_does_not_want(stores: Stores) -> None:
    sink = Sink()
    wanted: set[str] = set()

    async def wants(app_id: str) -> bool:
        return app_id in wanted

    relay = Relay(stores.events, sink, "bus", wants=wants)
    await relay.start()
    await make_group(stores, "g1", ["alice", "bob"])
    # A woken round does not write the cursor of an app it skips (a write per commit);
    # the next round over every app moves it past what it skipped.
    assert await relay.run_once(apps={"alpha"}) == 0
    assert [app for app, _, _ in await stores.events.behind("bus")] == ["alpha"]
    assert await relay.run_once() == 0 and sink.taken == []
    assert await stores.events.behind("bus") == []  # skipped: not pending any more
    wanted.add("alpha")
    await send(stores, "g1", "alice", "now wanted")
    assert await relay.run_once() == 1 and sink.taken == [("alpha", 2)]


async def test_a_running_relay_follows_wakes_and_outlives_failures(stores: Stores) -> None:
    sink = Sink()
    wake = Wake()
    running = asyncio.create_task(Relay(stores.events, sink, "bus").run(wake))
    try:
        await make_group(stores, "g1", ["alice", "bob"])
        wake.app("alpha")
        await sink.until(1)
        sink.failing = True
        await send(stores, "g1", "alice", "during the outage")
        wake.app("alpha")
        await sink.until(failures=1)
        sink.failing = False
        await send(stores, "g1", "alice", "after it")
        wake.app("alpha")
        await sink.until(3)  # the retry brings both, in order
        assert sink.taken == [("alpha", 1), ("alpha", 2), ("alpha", 3)]
    finally:
        running.cancel()


async def test_one_holder_at_a_time_runs_a_consumer(stores: Stores) -> None:
    until = T0 + 10 * SECOND
    assert await stores.events.lease("bus", "p1", T0, until)
    assert not await stores.events.lease("bus", "p2", T0 + SECOND, T0 + 11 * SECOND)
    assert await stores.events.lease("bus", "p1", T0 + SECOND, T0 + 11 * SECOND)  # renewed
    assert await stores.events.lease("webhooks", "p2", T0, until)  # another consumer
    # p1 stops renewing: once its lease has run out, p2 takes over, and p1 is out.
    assert not await stores.events.lease("bus", "p2", T0 + 10 * SECOND, T0 + 20 * SECOND)
    assert await stores.events.lease("bus", "p2", T0 + 11 * SECOND, T0 + 21 * SECOND)
    assert not await stores.events.lease("bus", "p1", T0 + 12 * SECOND, T0 + 22 * SECOND)


async def test_one_of_two_relays_hands_over_until_it_stops(stores: Stores) -> None:
    clock = [T0]
    sink = Sink()
    first, second = (Relay(stores.events, sink, "bus", now=lambda: clock[0])
                     for _ in range(2))
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "one")
    assert await first.step() == 2
    assert await second.step() is None  # the first holds the lease
    await send(stores, "g1", "alice", "two")
    assert await second.step() is None
    assert await first.step() == 1
    clock[0] = T0 + LEASE + SECOND  # the first stopped renewing: the second takes over
    await send(stores, "g1", "alice", "three")
    assert await second.step() == 1
    assert await first.step() is None
    assert sink.taken == [("alpha", p) for p in (1, 2, 3, 4)]  # each once, in order


async def test_a_log_consumer_gets_every_event_at_least_once(stores: Stores) -> None:
    handled: list[str] = []
    failing = {"two"}

    async def handler(event: events_pb2.Event) -> None:
        await stores.content.open_event(event)  # the log holds content sealed
        if event.message_created.text in failing:
            failing.clear()
            raise ConnectionError("downstream is down")
        handled.append(event.type)

    consumer = log_consumer(stores.events, "webhooks", handler)
    await make_group(stores, "g1", ["alice", "bob"])
    for text in ("one", "two", "three"):
        await send(stores, "g1", "alice", text)
    with pytest.raises(ConnectionError):
        await consumer.step()
    assert await consumer.step() == 4  # from the cursor again: nothing is lost
    assert handled == ["conversation.created", "message.created",  # before the failure
                       "conversation.created", "message.created", "message.created",
                       "message.created"]
    assert await consumer.step() == 0


async def test_a_failing_relay_says_so_once_per_change(
        stores: Stores, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "RETRY_SECONDS", (0.001, 0.002))
    health = Health()
    back = asyncio.Event()
    health.listen(lambda name, ok, _: back.set() if ok and sink.failures else None)
    sink = Sink()
    sink.failing = True
    relay = Relay(stores.events, sink, "bus", health=health)
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "one")
    with caplog.at_level(logging.DEBUG, logger="caas"):
        running = asyncio.create_task(relay.run(Wake()))
        await sink.until(failures=5)  # retried again and again
        assert health.states()["relay-bus"][0] is False
        sink.failing = False
        await asyncio.wait_for(back.wait(), 10)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert said == ["relay-bus is down: ConnectionError: the bus is down", "relay-bus is back"]
    assert health.states()["relay-bus"] == (True, "")
    assert sink.taken == [("alpha", 1), ("alpha", 2)]


async def test_a_new_apps_head_asked_for_at_once_is_one(stores: Stores) -> None:
    heads = await asyncio.gather(*(stores.events.head(f"new{n % 3}") for n in range(12)))
    assert len({(h.log_id, h.position) for h in heads}) == 3


async def _signal(stores: Stores, conversation_id: str, to_user: str, device: str,
                  at: datetime) -> None:
    payload = calls_res.Signal(call=f"apps/alpha/conversations/{conversation_id}/calls/k1",
                               from_user_id="alice", from_device_id="a1", to_user_id=to_user,
                               to_device_id=device)
    await stores.calls.signal(DomainEvent(CALL_SIGNAL, "alpha", at, {"device": device},
                                          conversation_id, payload, to_user, private=True))


async def test_signals_are_for_streams_only_and_purged_on_their_own(stores: Stores) -> None:
    sink = Sink()
    relay = Relay(stores.events, sink, "bus")
    await relay.start()
    await make_group(stores, "g1", ["alice", "bob"])
    await _signal(stores, "g1", "bob", "b1", T0)
    await send(stores, "g1", "alice", "hi", at=T0 + SECOND)
    await _signal(stores, "g1", "bob", "b1", T0 + 3 * SECOND)
    events = await logged(stores)
    assert [e.type for e in events] == [
        "conversation.created", CALL_SIGNAL, "message.created", CALL_SIGNAL]
    assert events[1].private and events[1].user_id == "bob"
    assert events_pb2.Event.FromString(events[1].payload).call_signal.to_device_id == "b1"
    # A consumer never gets them, yet its cursor passes them.
    await relay.run_once()
    assert sink.taken == [("alpha", 1), ("alpha", 3)]
    assert await stores.events.behind("bus") == []
    # Purged by type before a time, whatever the consumers; the rest stays.
    assert await stores.events.purge_types({CALL_SIGNAL}, T0 + 2 * SECOND) == 1
    assert [e.position for e in await logged(stores)] == [1, 3, 4]
    assert (await stores.events.head("alpha")).purged_through == 0
