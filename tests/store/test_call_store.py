"""The call store (services/calls/store.py) on both engines: a call created once per id
(a retry finds it), one call at a time per conversation — under concurrent starts too
(exactly one wins, the others see it) — and another once it has ended; updates are
compare-and-set on the version (exactly one of concurrent changes wins), written with
their events in one transaction (and no event when the change lost); who is busy and
in which calls, only while they have not ended; what the sweeper is due to look at;
calls listed newest first by pages; the record message noted once; nothing of another
app ever answered; an app's purge takes its calls and nobody else's."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from caas.calls.v1 import resources_pb2 as calls_res

from services.calls import models
from services.calls.models import AUDIO, Call
from services.calls.mongo_store import MongoCallStore
from services.calls.sqlite_store import SqliteCallStore
from services.calls.store import CallInProgress, CallStore
from services.compliance.offboarding import KEEP
from services.core.clock import to_ms
from services.core.db.mongo import MongoDatabase
from services.core.events import DomainEvent
from services.runtime import Stores

T0 = datetime(2026, 12, 5, 9, 30, 0, 125_000, tzinfo=UTC)  # milliseconds: both engines keep them
SECOND = timedelta(seconds=1)
MS = timedelta(milliseconds=1)
RING = timedelta(seconds=45)


@pytest.fixture
async def calls(stores: Stores) -> CallStore:
    """The call store of `stores` (recording in its event log), on its engine's adapter."""
    adapter = MongoCallStore if isinstance(stores.engine, MongoDatabase) else SqliteCallStore
    assert isinstance(stores.calls, adapter)
    await stores.calls.migrate()  # again: idempotent
    return stores.calls


def started(call_id: str = "k1", conversation_id: str = "c1", app_id: str = "alpha",
            caller: str = "alice", invitees: tuple[str, ...] = ("bob",), at: datetime = T0,
            busy: tuple[str, ...] = ()) -> Call:
    return models.start(app_id, conversation_id, call_id, AUDIO, caller, "phone",
                        list(invitees), list(busy), 8, at, RING)


def event(kind: str, call: Call, at: datetime = T0) -> DomainEvent:
    return DomainEvent(kind, call.app_id, at, conversation_id=call.conversation_id,
                       payload=call, user_id=call.caller_id)


async def create(calls: CallStore, call: Call) -> Call:
    stored, created = await calls.create(call, [event("call.started", call)])
    assert created and stored == call
    return stored


async def change(calls: CallStore, call: Call) -> Call:
    kind = "call.ended" if call.ended else "call.updated"
    assert await calls.update(call, [event(kind, call)])
    return call


async def logged(stores: Stores, app_id: str = "alpha") -> list[str]:
    """The types of the app's events in the log, in order."""
    return [e.type for e in await stores.events.read(app_id, 0, 1000)]


async def test_a_call_is_created_once_and_a_retry_finds_it(stores: Stores,
                                                           calls: CallStore) -> None:
    call = started()
    assert await calls.get("alpha", "c1", "k1") is None
    made, created = await calls.create(call, [event("call.started", call)])
    assert created and made == call
    assert await calls.get("alpha", "c1", "k1") == call
    assert await calls.current("alpha", "c1") == call
    # A retried start (made again, a moment later): the call stored, no event again.
    retry = started(at=T0 + SECOND)
    again, created = await calls.create(retry, [event("call.started", retry)])
    assert not created and again == call
    assert await logged(stores) == ["call.started"]
    # Both its events in the one transaction: a call that ends at once (all busy).
    busy = started("k2", "c2", busy=("bob",))
    assert busy.ended
    _, created = await calls.create(busy, [event("call.started", busy),
                                           event("call.ended", busy)])
    assert created
    assert await logged(stores) == ["call.started", "call.started", "call.ended"]
    (one,) = await stores.events.read("alpha", 2, 1)
    assert one.conversation_id == "c2" and one.user_id == "alice"


async def test_a_call_comes_back_as_written(calls: CallStore) -> None:
    call = await create(calls, started(invitees=("bob", "carol"), at=T0 + 7 * MS))
    # Odd milliseconds everywhere: times in the call (1001 ms) are kept exactly.
    call = await change(calls, models.accept(call, "bob", "tab", T0 + SECOND + 3 * MS))
    call = await change(calls, models.leave(call, "bob", T0 + 2 * SECOND + 4 * MS))
    call = await change(calls, models.accept(call, "dan", "pc", T0 + 3 * SECOND + 9 * MS))
    assert call.participant("bob").in_call == SECOND + MS  # type: ignore[union-attr]
    assert await calls.get("alpha", "c1", "k1") == call
    ended = await change(calls, models.end(call, T0 + 5 * SECOND + 11 * MS))
    assert await calls.get("alpha", "c1", "k1") == ended
    assert await calls.list_calls("alpha", "c1", 1, None) == [ended]


async def test_one_call_at_a_time_per_conversation(stores: Stores, calls: CallStore) -> None:
    first = await create(calls, started("k1"))
    with pytest.raises(CallInProgress) as refused:
        await calls.create(started("k2", caller="bob", invitees=("alice",)),
                           [event("call.started", first)])
    assert refused.value.call == first
    assert await calls.get("alpha", "c1", "k2") is None  # nothing stored
    assert await logged(stores) == ["call.started"]  # nor recorded
    # Other conversations, and the same conversation id in another app, are free.
    await create(calls, started("k3", "c2"))
    await create(calls, started("k1", app_id="beta"))
    # Answered, the call still holds the conversation; ended, it does not.
    accepted = await change(calls, models.accept(first, "bob", "tab", T0 + SECOND))
    with pytest.raises(CallInProgress) as refused:
        await calls.create(started("k2", at=T0 + 2 * SECOND), [])
    assert refused.value.call == accepted
    ended = await change(calls, models.end(accepted, T0 + 3 * SECOND))
    assert await calls.current("alpha", "c1") is None
    second = await create(calls, started("k2", at=T0 + 4 * SECOND))
    assert await calls.current("alpha", "c1") == second
    assert await calls.get("alpha", "c1", "k1") == ended
    # The ended one is found by its id still (a retry of its start), not refused.
    assert (await calls.create(started("k1"), []))[0] == ended


@pytest.mark.parametrize("with_events", [True, False], ids=["events", "no-events"])
async def test_concurrent_starts_in_a_conversation_make_one_call(
        stores: Stores, calls: CallStore, with_events: bool) -> None:
    candidates = [started(f"k{i}", invitees=(f"u{i}",)) for i in range(8)]
    results = await asyncio.gather(*[
        calls.create(c, [event("call.started", c)] if with_events else [])
        for c in candidates], return_exceptions=True)
    won = [r for r in results if isinstance(r, tuple)]
    lost = [r for r in results if isinstance(r, CallInProgress)]
    assert len(won) == 1 and len(lost) == 7, results
    winner, created = won[0]
    assert created and winner in candidates
    assert all(r.call == winner for r in lost)
    assert await calls.current("alpha", "c1") == winner
    assert await calls.list_calls("alpha", "c1", 10, None) == [winner]
    assert await logged(stores) == (["call.started"] if with_events else [])


async def test_concurrent_retries_of_a_start_make_one_call(stores: Stores,
                                                           calls: CallStore) -> None:
    call = started()
    results = await asyncio.gather(*[calls.create(call, [event("call.started", call)])
                                     for _ in range(8)])
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert all(stored == call for stored, _ in results)
    assert await logged(stores) == ["call.started"]


async def test_an_update_is_compare_and_set_on_the_version(stores: Stores,
                                                           calls: CallStore) -> None:
    call = await create(calls, started(invitees=("bob", "carol")))
    accepted = models.accept(call, "bob", "tab", T0 + SECOND)
    assert accepted.version == call.version + 1
    assert await calls.update(accepted, [event("call.updated", accepted)])
    assert await calls.get("alpha", "c1", "k1") == accepted
    # A change made from the version before: refused, nothing written, nothing recorded.
    stale = models.decline(call, "carol", False, T0 + 2 * SECOND)
    assert stale.version == accepted.version
    assert not await calls.update(stale, [event("call.updated", stale)])
    assert await calls.get("alpha", "c1", "k1") == accepted
    assert await logged(stores) == ["call.started", "call.updated"]
    # Made from the stored version, it lands.
    declined = models.decline(accepted, "carol", False, T0 + 2 * SECOND)
    assert await calls.update(declined, [event("call.updated", declined)])
    assert await calls.get("alpha", "c1", "k1") == declined
    # A call never stored is not written by an update.
    ghost = started("k9", "c9")
    assert not await calls.update(replace(ghost, version=2), [event("call.updated", ghost)])
    assert await calls.get("alpha", "c9", "k9") is None
    assert await logged(stores) == ["call.started", "call.updated", "call.updated"]


async def test_one_of_concurrent_updates_wins(stores: Stores, calls: CallStore) -> None:
    users = tuple(f"u{i}" for i in range(16))
    call = await create(calls, replace(started(invitees=users), max_participants=32))
    changes = [models.accept(call, u, "phone", T0 + SECOND) for u in users]
    results = await asyncio.gather(*[calls.update(c, [event("call.updated", c)])
                                     for c in changes])
    assert sorted(results) == [False] * 15 + [True]
    assert await calls.get("alpha", "c1", "k1") == changes[results.index(True)]
    assert await logged(stores) == ["call.started", "call.updated"]
    assert await calls.busy("alpha", users) == {users[results.index(True)]}


async def test_who_is_busy_while_the_call_has_not_ended(calls: CallStore) -> None:
    call = await create(calls, started(invitees=("bob", "carol")))
    assert await calls.busy("alpha", ["alice", "bob", "carol", "dan"]) == {"alice"}
    assert await calls.busy("alpha", []) == set()
    assert await calls.joined_calls("alpha", "alice") == [call]
    assert await calls.joined_calls("alpha", "bob") == []  # rung is not joined
    accepted = await change(calls, models.accept(call, "bob", "tab", T0 + SECOND))
    assert await calls.busy("alpha", ["alice", "bob", "carol"]) == {"alice", "bob"}
    assert await calls.joined_calls("alpha", "bob") == [accepted]
    # Another call of alice's elsewhere: both listed.
    other = await create(calls, started("k2", "c2", at=T0 + 2 * SECOND))
    assert sorted(await calls.joined_calls("alpha", "alice"), key=lambda c: c.call_id) == [
        accepted, other]
    left = await change(calls, models.leave(accepted, "bob", T0 + 3 * SECOND))
    assert not left.ended  # carol is still rung
    assert await calls.busy("alpha", ["bob", "carol"]) == set()
    assert await calls.joined_calls("alpha", "bob") == []
    ended = await change(calls, models.end(left, T0 + 4 * SECOND))
    assert ended.ended
    assert await calls.busy("alpha", ["alice", "bob", "carol"]) == {"alice"}  # in c2
    assert await calls.joined_calls("alpha", "alice") == [other]
    await change(calls, models.end(other, T0 + 5 * SECOND))
    assert await calls.busy("alpha", ["alice", "bob", "carol"]) == set()
    assert await calls.joined_calls("alpha", "alice") == []


async def test_calls_are_due_at_their_ring_deadline_and_until_recorded(
        calls: CallStore) -> None:
    ringing = await create(calls, started("k1", "c1"))
    later = await create(calls, started("k2", "c2", at=T0 + SECOND))
    assert await calls.due(T0 + RING - MS, 10) == []
    assert await calls.due(T0 + RING, 10) == [ringing]
    assert await calls.due(T0 + RING + SECOND, 10) == [ringing, later]
    assert await calls.due(T0 + RING + SECOND, 1) == [ringing]
    # Answered with nobody else rung: nothing to sweep.
    answered = await change(calls, models.accept(ringing, "bob", "tab", T0 + 2 * SECOND))
    assert await calls.due(T0 + RING + SECOND, 10) == [later]
    # Ended: due at once (first), until its record is written.
    ended = await change(calls, models.end(answered, T0 + 3 * SECOND))
    assert await calls.due(T0, 10) == [ended]
    assert await calls.due(T0 + RING + SECOND, 10) == [ended, later]
    await calls.set_record("alpha", "c1", "k1", 7)
    assert await calls.due(T0 + RING + SECOND, 10) == [later]
    # Expired: it ends (missed), and is due until recorded.
    missed = await change(calls, models.expire_ringing(later, T0 + RING + SECOND))
    assert missed.outcome == models.MISSED
    assert await calls.due(T0, 10) == [missed]
    await calls.set_record("alpha", "c2", "k2", 8)
    assert await calls.due(T0 + 10 * RING, 10) == []


async def test_calls_are_listed_newest_first_by_pages(calls: CallStore) -> None:
    made: list[Call] = []
    for i, at in enumerate([T0, T0 + SECOND, T0 + SECOND, T0 + 2 * SECOND, T0 + 3 * SECOND]):
        call = await create(calls, started(f"k{i}", at=at))
        made.append(await change(calls, models.end(call, at + MS)))
    await create(calls, started("x", "c2", at=T0 + 9 * SECOND))  # another conversation's
    await create(calls, started("y", app_id="beta", at=T0 + 9 * SECOND))  # another app's
    newest_first = [made[4], made[3], made[2], made[1], made[0]]
    assert await calls.list_calls("alpha", "c1", 10, None) == newest_first
    pages, after = [], None
    while True:
        page = await calls.list_calls("alpha", "c1", 2, after)
        if not page:
            break
        pages.append([c.call_id for c in page])
        after = (to_ms(page[-1].create_time), page[-1].call_id)
    assert pages == [["k4", "k3"], ["k2", "k1"], ["k0"]]
    assert await calls.list_calls("alpha", "nothing", 10, None) == []


async def test_the_record_is_noted_once(calls: CallStore) -> None:
    call = await create(calls, started())
    ended = await change(calls, models.end(call, T0 + SECOND))
    await calls.set_record("alpha", "c1", "k1", 7)
    recorded = await calls.get("alpha", "c1", "k1")
    assert recorded == replace(ended, record_sequence=7)
    assert recorded.version == ended.version  # not a change of the call
    await calls.set_record("alpha", "c1", "k1", 9)  # again (the sweeper too): kept
    assert await calls.get("alpha", "c1", "k1") == recorded
    await calls.set_record("alpha", "c1", "nothing", 3)  # no such call: nothing
    assert await calls.get("alpha", "c1", "nothing") is None


async def test_a_signal_is_recorded_alone(stores: Stores, calls: CallStore) -> None:
    call = await create(calls, started())
    signal = calls_res.Signal(call=models.call_name("alpha", "c1", "k1"),
                              from_user_id="alice", from_device_id="phone",
                              to_user_id="bob", to_device_id="tab")
    await calls.signal(DomainEvent("call.signal", "alpha", T0, {"device": "tab"}, "c1",
                                   signal, "bob", private=True))
    *_, last = await stores.events.read("alpha", 0, 10)
    assert (last.type, last.user_id, last.private) == ("call.signal", "bob", True)
    assert await calls.get("alpha", "c1", "k1") == call  # the call is not touched


async def test_another_apps_calls_are_never_answered(calls: CallStore) -> None:
    ours = await create(calls, started())
    theirs = await create(calls, started(app_id="beta", caller="bob", invitees=("alice",)))
    assert theirs != ours
    assert await calls.get("alpha", "c1", "k1") == ours
    assert await calls.get("beta", "c1", "k1") == theirs
    assert await calls.get("gamma", "c1", "k1") is None
    assert await calls.current("alpha", "c1") == ours
    assert await calls.current("gamma", "c1") is None
    assert await calls.list_calls("alpha", "c1", 10, None) == [ours]
    assert await calls.list_calls("gamma", "c1", 10, None) == []
    assert await calls.busy("alpha", ["alice", "bob"]) == {"alice"}
    assert await calls.busy("beta", ["alice", "bob"]) == {"bob"}
    assert await calls.busy("gamma", ["alice", "bob"]) == set()
    assert await calls.joined_calls("alpha", "alice") == [ours]
    assert await calls.joined_calls("alpha", "bob") == []
    assert await calls.joined_calls("beta", "bob") == [theirs]
    # Ending one app's call leaves the other's under way.
    await change(calls, models.end(ours, T0 + SECOND))
    assert await calls.current("beta", "c1") == theirs
    assert await calls.busy("beta", ["bob"]) == {"bob"}


async def test_an_apps_purge_takes_its_calls_only(stores: Stores, calls: CallStore) -> None:
    gone = await create(calls, started(app_id="gone"))
    await change(calls, models.end(await create(calls, started("k2", "c2", app_id="gone")),
                                   T0 + SECOND))
    kept = [await create(calls, started(app_id="kept")),
            await create(calls, started(app_id="gone2"))]  # an app id the first one begins
    assert await stores.purge_app("gone", KEEP) >= 2
    assert await calls.get("gone", "c1", "k1") is None
    assert await calls.list_calls("gone", "c2", 10, None) == []
    assert await calls.busy("gone", ["alice"]) == set()
    assert await calls.joined_calls("gone", "alice") == []
    assert {c.app_id for c in await calls.due(T0 + 10 * RING, 10)} == {"kept", "gone2"}
    for one in kept:
        assert await calls.get(one.app_id, "c1", "k1") == one
        assert await calls.busy(one.app_id, ["alice"]) == {"alice"}
    # Nothing of it holds the conversation any more.
    assert await calls.current("gone", "c1") is None
    assert (await calls.create(gone, []))[1]


async def test_a_deleted_conversations_calls_go_and_nobody_elses(calls: CallStore) -> None:
    ringing = await create(calls, started("k1", "c1", invitees=("bob",)))
    joined = models.accept(ringing, "bob", "b1", T0 + SECOND)
    assert await calls.update(joined, [event("call.updated", joined)])
    await create(calls, started("k2", "c2", caller="carol", invitees=("dave",)))
    await create(calls, started("k3", "c1", app_id="beta"))
    assert await calls.delete_conversation_calls("alpha", "c1") == 1
    assert await calls.get("alpha", "c1", "k1") is None
    assert await calls.busy("alpha", ["alice", "bob", "carol"]) == {"carol"}
    assert await calls.get("alpha", "c2", "k2") is not None
    assert await calls.get("beta", "c1", "k3") is not None
    assert await calls.delete_conversation_calls("alpha", "c1") == 0


async def test_ongoing_calls_are_listed_over_every_app_by_key(calls: CallStore) -> None:
    first = await create(calls, started("k1", "c1", app_id="alpha"))
    await create(calls, started("k2", "c2", app_id="alpha"))
    third = await create(calls, started("k3", "c1", app_id="beta"))
    ended = models.end(first, T0 + SECOND)
    assert await calls.update(ended, [event("call.ended", ended)])
    await create(calls, started("k4", "c1", app_id="alpha"))  # c1's next call
    page = await calls.ongoing(2, None)
    assert [(c.app_id, c.conversation_id, c.call_id) for c in page] == [
        ("alpha", "c1", "k4"), ("alpha", "c2", "k2")]
    rest = await calls.ongoing(2, ("alpha", "c2", "k2"))
    assert rest == [third]
    assert await calls.ongoing(2, ("beta", "c1", "k3")) == []
