"""The media store contract, on every engine."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from caas.events.v1 import events_pb2

from services.core.events import DomainEvent
from services.media.models import (
    DELETING,
    FAILED,
    IMAGE,
    PENDING,
    QUARANTINED,
    READY,
    UPLOADING,
    Media,
    Outcome,
    Processed,
    Rendition,
    Usage,
)
from services.runtime import MEDIA_SECRET, PLATFORM, Stores

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
APP = "acme"
QUOTA = 10_000

PICTURE = Processed("image/webp", IMAGE, 640, 480, 0, "LEHV6nWB2yk8", "ab" * 32,
                    (Rendition("small", 160, 120, "image/webp", "acme/m/small"),
                     Rendition("large", 640, 480, "image/webp", "acme/m/large")),
                    "acme/m/original")


def media(media_id: str, *, app_id: str = APP, uploader: str = "alice", request_id: str = "",
          size: int = 100, at: datetime = T0) -> Media:
    return Media(app_id, media_id, "c1", uploader, request_id or f"r-{media_id}",
                 f"{media_id}.png", size, "image/png", UPLOADING, f"u-{media_id}", 64,
                 at + 60 * MINUTE, at, at)


async def stored(stores: Stores, app_id: str, media_id: str) -> Media:
    found = await stores.media.get(app_id, media_id)
    assert found is not None
    return found


async def created(stores: Stores, item: Media, quota: int = QUOTA) -> Media:
    made = await stores.media.create(item, quota)
    assert made == item
    return made


async def pending(stores: Stores, media_id: str, at: datetime = T0, size: int = 100
                  ) -> Media:
    """A new media, uploaded and waiting for processing since `at`."""
    await created(stores, media(media_id, at=at, size=size))
    done = await stores.media.complete(APP, media_id, at)
    assert done is not None and done.state == PENDING
    return done


def ready_event(item: Media, now: datetime) -> DomainEvent:
    after = dataclasses.replace(item, state=READY, processed=PICTURE, update_time=now,
                                claim_until=None)
    return DomainEvent(type="media.ready", app_id=item.app_id, time=now,
                       conversation_id=item.conversation_id, payload=after,
                       user_id=item.uploader_id, private=True)


async def processed(stores: Stores, media_id: str, outcome: Outcome, at: datetime = T0,
                    delete_after: datetime | None = None, size: int = 100) -> Media:
    """A new media, taken through processing to `outcome` at `at` (none other pending)."""
    await pending(stores, media_id, at, size)
    taken = await stores.media.claim(at, at + MINUTE)
    assert taken is not None and taken.media_id == media_id
    done = await stores.media.finish(APP, media_id, taken.attempts, outcome, at, delete_after,
                                     None)
    assert done is not None and done.state == outcome.state
    return done


async def test_created_media_are_read_back_per_app(stores: Stores) -> None:
    one = await created(stores, media("m1"))
    two = await created(stores, media("m2", uploader="", size=250))
    assert await stores.media.get(APP, "m1") == one
    assert (await stores.media.get(APP, "m2")) == two
    assert await stores.media.get(APP, "nope") is None
    assert await stores.media.get("other", "m1") is None
    assert await stores.media.usage(APP) == Usage(350, 2)
    assert await stores.media.usage("other") == Usage()

    assert await stores.media.get_many(APP, ["m1", "m2", "nope", "m1"]) == {"m1": one,
                                                                             "m2": two}
    assert await stores.media.get_many(APP, []) == {}
    assert await stores.media.get_many("other", ["m1"]) == {}


async def test_a_create_is_idempotent_per_uploader_and_request(stores: Stores) -> None:
    first = await created(stores, media("m1", request_id="r1"))
    again = await stores.media.create(media("m2", request_id="r1", size=500), QUOTA)
    assert again == first  # the first one, unchanged: its media_id tells
    assert await stores.media.get(APP, "m2") is None
    assert await stores.media.create(media("m3", request_id="r1"), 0) == first  # no quota check
    assert await stores.media.usage(APP) == Usage(100, 1)

    theirs = await created(stores, media("m4", uploader="bob", request_id="r1"))
    backend = await created(stores, media("m5", uploader="", request_id="r1"))
    elsewhere = await created(stores, media("m1", app_id="other", request_id="r1"))
    assert {theirs.media_id, backend.media_id, elsewhere.media_id} == {"m4", "m5", "m1"}
    assert await stores.media.usage(APP) == Usage(300, 3)

    same_request = await asyncio.gather(*(stores.media.create(
        media(f"n{n}", uploader="carol", request_id="r9"), QUOTA) for n in range(4)))
    assert len({m.media_id for m in same_request if m is not None}) == 1
    assert await stores.media.usage(APP) == Usage(400, 4)


async def test_a_create_past_the_quota_writes_nothing(stores: Stores) -> None:
    await created(stores, media("m1", size=100), quota=250)
    await created(stores, media("m2", size=150), quota=250)  # exactly the quota
    assert await stores.media.create(media("m3", size=1), 250) is None
    assert await stores.media.get(APP, "m3") is None
    assert await stores.media.usage(APP) == Usage(250, 2)
    assert await stores.media.create(media("m4", size=300), 250) is None  # bigger than it all
    await created(stores, media("m3", app_id="other", size=250), quota=250)  # per app

    await stores.media.mark_deleting(APP, "m2", T0)  # room again
    await created(stores, media("m3", size=150), quota=250)
    assert await stores.media.usage(APP) == Usage(250, 2)


async def test_concurrent_creates_never_both_pass_the_quota(stores: Stores) -> None:
    made = await asyncio.gather(*(stores.media.create(media(f"m{n}", size=60), 100)
                                  for n in range(2)))
    assert len([m for m in made if m is not None]) == 1
    assert await stores.media.usage(APP) == Usage(60, 1)

    many = await asyncio.gather(*(stores.media.create(
        media(f"x{n}", app_id="other", uploader=f"u{n}", size=40), 100) for n in range(6)))
    kept = [m for m in many if m is not None]
    assert len(kept) == 2
    assert await stores.media.usage("other") == Usage(80, 2)
    assert set(await stores.media.get_many("other", [f"x{n}" for n in range(6)])) == {
        m.media_id for m in kept}


async def test_usage_counts_every_state_but_deleting(stores: Stores) -> None:
    await processed(stores, "re", Outcome(READY, PICTURE), size=100)
    await processed(stores, "fa", Outcome(FAILED, failure_reason="x"), delete_after=T0,
                    size=1000)
    await pending(stores, "pe", size=10)
    await created(stores, media("up", size=1))
    await created(stores, media("de", size=10_000), quota=20_000)
    assert await stores.media.usage(APP) == Usage(11_111, 5)
    assert {m.state for m in (await stores.media.get_many(
        APP, ["up", "pe", "re", "fa"])).values()} == {UPLOADING, PENDING, READY, FAILED}

    await stores.media.mark_deleting(APP, "de", T0)
    await stores.media.mark_deleting(APP, "de", T0)  # once out is out
    assert await stores.media.usage(APP) == Usage(1_111, 4)
    await stores.media.remove(APP, "de")  # out already
    await stores.media.remove(APP, "fa")  # never marked: out now
    await stores.media.remove(APP, "fa")
    assert await stores.media.usage(APP) == Usage(111, 3)


async def test_complete_moves_only_uploading_media_to_pending(stores: Stores) -> None:
    await created(stores, media("m1"))
    done = await stores.media.complete(APP, "m1", T0 + MINUTE)
    assert done == dataclasses.replace(media("m1"), state=PENDING, update_time=T0 + MINUTE)
    assert await stores.media.get(APP, "m1") == done
    assert await stores.media.complete(APP, "m1", T0 + 2 * MINUTE) == done  # harmless
    assert await stores.media.complete(APP, "nope", T0) is None
    assert await stores.media.complete("other", "m1", T0) is None

    ready = await processed(stores, "m2", Outcome(READY, PICTURE))
    assert await stores.media.complete(APP, "m2", T0 + MINUTE) == ready


async def test_claims_take_the_oldest_pending_media_nobody_holds(stores: Stores) -> None:
    await pending(stores, "late", T0 + MINUTE)
    await pending(stores, "early", T0)
    await created(stores, media("uploading"))
    await processed(stores, "ready", Outcome(READY, PICTURE), T0 - MINUTE)
    now, until = T0 + 2 * MINUTE, T0 + 3 * MINUTE

    first = await stores.media.claim(now, until)
    assert first is not None and first.media_id == "early"
    assert (first.attempts, first.claim_until, first.state) == (1, until, PENDING)
    assert await stores.media.get(APP, "early") == first
    second = await stores.media.claim(now, until)
    assert second is not None and second.media_id == "late"
    assert await stores.media.claim(now, until) is None  # held, not pending or ready

    later = until + MINUTE  # the claims ran out: taken again, one more attempt each
    again = await stores.media.claim(later, later + MINUTE)
    assert again is not None and (again.media_id, again.attempts) == ("early", 2)
    assert again.claim_until == later + MINUTE
    again = await stores.media.claim(later, later + MINUTE)
    assert again is not None and (again.media_id, again.attempts) == ("late", 2)
    assert await stores.media.claim(later, later + MINUTE) is None


async def test_finish_at_the_claimed_attempt_writes_the_outcome_and_its_event(
        stores: Stores) -> None:
    await pending(stores, "m1")
    taken = await stores.media.claim(T0, T0 + MINUTE)
    assert taken is not None
    now = T0 + 30 * MINUTE
    event = ready_event(taken, now)
    done = await stores.media.finish(APP, "m1", 1, Outcome(READY, PICTURE), now, None, event)
    assert done == event.payload
    assert done is not None and done.processed == PICTURE and done.claim_until is None
    assert await stores.media.get(APP, "m1") == done

    (logged,) = await stores.events.read(APP, 0, 10)
    assert (logged.type, logged.conversation_id, logged.user_id, logged.private,
            logged.create_time) == ("media.ready", "c1", "alice", True, now)
    proto = events_pb2.Event.FromString(logged.payload)
    assert (proto.type, proto.media_ready.name, proto.media_ready.width,
            len(proto.media_ready.thumbnails)) == ("media.ready", "apps/acme/media/m1", 640, 2)

    # Done: finishing again writes nothing.
    assert await stores.media.finish(APP, "m1", 1, Outcome(FAILED, failure_reason="x"),
                                     now, now, ready_event(taken, now)) is None
    assert await stores.media.get(APP, "m1") == done
    assert len(await stores.events.read(APP, 0, 10)) == 1


async def test_finish_with_a_stale_attempt_writes_nothing(stores: Stores) -> None:
    await pending(stores, "m1")
    first = await stores.media.claim(T0, T0 + MINUTE)  # its processor stalls
    second = await stores.media.claim(T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    assert first is not None and second is not None and second.attempts == 2
    assert await stores.media.finish(APP, "m1", 1, Outcome(READY, PICTURE), T0, None,
                                     ready_event(first, T0)) is None
    assert await stores.media.get(APP, "m1") == second
    assert await stores.events.read(APP, 0, 10) == []
    assert await stores.media.finish("other", "m1", 2, Outcome(READY, PICTURE), T0, None,
                                     None) is None
    assert await stores.media.finish(APP, "nope", 1, Outcome(READY, PICTURE), T0, None,
                                     None) is None

    failed = DomainEvent(type="media.failed", app_id=APP, time=T0, conversation_id="c1",
                         payload=dataclasses.replace(second, state=QUARANTINED),
                         user_id="alice", private=True)
    done = await stores.media.finish(APP, "m1", 2, Outcome(QUARANTINED, failure_reason="virus"),
                                     T0 + 5 * MINUTE, T0 + 6 * MINUTE, failed)
    assert done is not None
    assert (done.state, done.failure_reason, done.processed, done.delete_after,
            done.update_time) == (QUARANTINED, "virus", None, T0 + 6 * MINUTE, T0 + 5 * MINUTE)
    assert [e.type for e in await stores.events.read(APP, 0, 10)] == ["media.failed"]


async def test_finish_keeps_an_earlier_scheduled_deletion(stores: Stores) -> None:
    await pending(stores, "m1")
    await pending(stores, "m2")
    await stores.media.schedule_deletion(APP, ["m1", "m2"], T0 + MINUTE)
    for _ in ("m1", "m2"):
        taken = await stores.media.claim(T0, T0 + MINUTE)
        assert taken is not None and taken.delete_after == T0 + MINUTE
    one = await stores.media.finish(APP, "m1", 1, Outcome(READY, PICTURE), T0, None, None)
    two = await stores.media.finish(APP, "m2", 1, Outcome(FAILED, failure_reason="x"), T0,
                                    T0 + 60 * MINUTE, None)
    assert one is not None and one.delete_after == T0 + MINUTE
    assert two is not None and two.delete_after == T0 + MINUTE


async def test_attachment_and_scheduled_deletion(stores: Stores) -> None:
    for media_id in ("m1", "m2", "m3"):
        await created(stores, media(media_id))
    await created(stores, media("m1", app_id="other"))
    await stores.media.mark_attached(APP, ["m1", "m2", "nope"])
    await stores.media.mark_attached(APP, [])
    found = await stores.media.get_many(APP, ["m1", "m2", "m3"])
    assert [found[m].attached for m in ("m1", "m2", "m3")] == [True, True, False]
    assert found["m1"].update_time == T0
    assert not (await stored(stores, "other", "m1")).attached

    await stores.media.schedule_deletion(APP, ["m1", "m2"], T0 + 10 * MINUTE)
    await stores.media.schedule_deletion(APP, ["m1", "m3"], T0 + 5 * MINUTE)
    await stores.media.schedule_deletion(APP, ["m1", "m2"], T0 + 20 * MINUTE)  # later: no
    await stores.media.schedule_deletion(APP, [], T0)
    found = await stores.media.get_many(APP, ["m1", "m2", "m3"])
    assert [found[m].delete_after for m in ("m1", "m2", "m3")] == [
        T0 + 5 * MINUTE, T0 + 10 * MINUTE, T0 + 5 * MINUTE]
    assert (await stored(stores, "other", "m1")).delete_after is None


async def test_an_uploaders_media_are_scheduled_for_deletion_in_one_app(stores: Stores
                                                                        ) -> None:
    for media_id in ("a1", "a2", "a3", "a4"):
        await created(stores, media(media_id, uploader="alice"))
    await created(stores, media("b1", uploader="bob"))
    await created(stores, media("a1", app_id="other", uploader="alice"))
    await stores.media.schedule_deletion(APP, ["a2"], T0)  # earlier: stays
    await stores.media.mark_deleting(APP, "a4", T0)  # gone already: not counted
    at = T0 + 60 * MINUTE
    assert await stores.media.schedule_uploader_deletion(APP, "alice", at) == 3
    found = await stores.media.get_many(APP, ["a1", "a2", "a3", "b1"])
    assert [found[m].delete_after for m in ("a1", "a2", "a3", "b1")] == [at, T0, at, None]
    assert (await stored(stores, "other", "a1")).delete_after is None
    assert await stores.media.schedule_uploader_deletion(APP, "nobody", at) == 0


async def test_mark_deleting_returns_the_media_as_it_was(stores: Stores) -> None:
    ready = await processed(stores, "m1", Outcome(READY, PICTURE))
    assert await stores.media.mark_deleting(APP, "m1", T0 + MINUTE) == ready
    gone = await stores.media.get(APP, "m1")
    assert gone == dataclasses.replace(ready, state=DELETING, update_time=T0 + MINUTE)
    assert await stores.media.mark_deleting(APP, "m1", T0 + 2 * MINUTE) == gone
    assert await stores.media.get(APP, "m1") == gone
    assert await stores.media.mark_deleting(APP, "nope", T0) is None
    assert await stores.media.mark_deleting("other", "m1", T0) is None


async def test_due_lists_what_the_collector_must_delete(stores: Stores) -> None:
    now = T0 + 120 * MINUTE
    cutoff = now - 60 * MINUTE
    # Due:
    await created(stores, media("deleting"))
    await stores.media.mark_deleting(APP, "deleting", now)
    await created(stores, media("expired", at=now - 60 * MINUTE))  # expires at `now`
    await created(stores, media("scheduled", at=now))
    await stores.media.schedule_deletion(APP, ["scheduled"], now)
    await processed(stores, "failed", Outcome(FAILED, failure_reason="x"), now, now)
    await processed(stores, "unattached", Outcome(READY, PICTURE), cutoff - MINUTE)
    await created(stores, media("elsewhere", app_id="other"))  # every app's
    await stores.media.mark_deleting("other", "elsewhere", now)
    # Not due:
    await created(stores, media("uploading", at=now - 59 * MINUTE))
    await created(stores, media("later", at=now))
    await stores.media.schedule_deletion(APP, ["later"], now + MINUTE)
    await processed(stores, "attached", Outcome(READY, PICTURE), cutoff - MINUTE)
    await stores.media.mark_attached(APP, ["attached"])
    await processed(stores, "fresh", Outcome(READY, PICTURE), cutoff)
    await processed(stores, "failed-later", Outcome(FAILED, failure_reason="x"), now,
                    now + MINUTE)
    await pending(stores, "pending", T0)

    due = await stores.media.due(now, cutoff, 100)
    assert sorted((m.app_id, m.media_id) for m in due) == [
        (APP, "deleting"), (APP, "expired"), (APP, "failed"), (APP, "scheduled"),
        (APP, "unattached"), ("other", "elsewhere")]
    assert due == [await stores.media.get(m.app_id, m.media_id) for m in due]

    some = await stores.media.due(now, cutoff, 4)
    assert len(some) == 4 and {(m.app_id, m.media_id) for m in some} <= {
        (m.app_id, m.media_id) for m in due}
    assert len(await stores.media.due(now, cutoff, 1)) == 1
    early = await stores.media.due(T0 - MINUTE, T0 - 120 * MINUTE, 100)
    assert sorted(m.media_id for m in early) == ["deleting", "elsewhere"]  # due whenever


async def test_remove_forgets_a_media(stores: Stores) -> None:
    await created(stores, media("m1"))
    await created(stores, media("m1", app_id="other"))
    await stores.media.mark_deleting(APP, "m1", T0)
    await stores.media.remove(APP, "m1")
    await stores.media.remove(APP, "m1")  # idempotent
    await stores.media.remove(APP, "nope")
    assert await stores.media.get(APP, "m1") is None
    assert await stores.media.get("other", "m1") is not None
    assert await stores.media.due(T0, T0, 10) == []
    assert await stores.media.usage(APP) == Usage()
    await created(stores, media("m2", request_id="r-m1"))  # its request id is free again


async def test_the_signing_secret_is_the_first_one_stored(stores: Stores) -> None:
    stored = await stores.media.signing_secret(b"first" * 8)
    assert stored != b"first" * 8  # opening the stores stored one, sealed
    assert len(await stores.keyring.open(PLATFORM, MEDIA_SECRET, stored)) == 32
    assert await stores.media.signing_secret(b"second" * 8) == stored
    together = await asyncio.gather(*(stores.media.signing_secret(bytes([n]) * 32)
                                      for n in range(4)))
    assert set(together) == {stored}


async def test_nothing_of_one_app_is_reachable_through_another(stores: Stores) -> None:
    await pending(stores, "m1")
    other = "other"
    assert await stores.media.get(other, "m1") is None
    assert await stores.media.get_many(other, ["m1"]) == {}
    assert await stores.media.usage(other) == Usage()
    assert await stores.media.complete(other, "m1", T0) is None
    assert await stores.media.finish(other, "m1", 0, Outcome(READY, PICTURE), T0, None,
                                     None) is None
    await stores.media.mark_attached(other, ["m1"])
    await stores.media.schedule_deletion(other, ["m1"], T0)
    assert await stores.media.schedule_uploader_deletion(other, "alice", T0) == 0
    assert await stores.media.mark_deleting(other, "m1", T0) is None
    await stores.media.remove(other, "m1")
    mine = await stored(stores, APP, "m1")
    assert (mine.state, mine.attached, mine.delete_after) == (
        PENDING, False, None)
    assert await stores.media.usage(APP) == Usage(100, 1)
