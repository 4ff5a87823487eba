"""RestrictionStore contract, on every engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.core.clock import to_ms
from services.moderation.models import APP_WIDE, Restriction, RestrictionType
from services.runtime import Stores

T0 = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
MUTE, BAN = RestrictionType.MUTE, RestrictionType.BAN


def restriction(restriction_id: str, user_id: str = "bob", conversation_id: str = APP_WIDE,
                kind: RestrictionType = MUTE, at: datetime = T0,
                expire_time: datetime | None = None) -> Restriction:
    return Restriction("alpha", restriction_id, user_id, conversation_id, kind, "spam",
                       "operator", at, expire_time)


async def test_a_restriction_round_trips_and_is_logged(stores: Stores) -> None:
    muted = restriction("r1", conversation_id="c1", expire_time=T0 + timedelta(hours=1))
    assert await stores.moderation.put_restriction(muted, T0) == muted
    assert await stores.moderation.get_restriction("alpha", "r1") == muted
    assert await stores.moderation.get_restriction("beta", "r1") is None  # another app
    assert await stores.moderation.delete_restriction("alpha", "r1", T0) == muted
    assert await stores.moderation.get_restriction("alpha", "r1") is None
    logged = await stores.events.read("alpha", 0, 10)
    assert [(e.type, e.conversation_id, e.user_id, e.private) for e in logged] == [
        ("restriction.created", "c1", "bob", True), ("restriction.deleted", "c1", "bob", True)]


async def test_restricting_again_replaces_while_it_applies(stores: Stores) -> None:
    first = restriction("r1", expire_time=T0 + timedelta(hours=1))
    await stores.moderation.put_restriction(first, T0)
    later = T0 + timedelta(minutes=10)
    again = await stores.moderation.put_restriction(
        replace(restriction("r2", at=later), reason="worse"), later)
    assert (again.restriction_id, again.reason, again.expire_time) == ("r1", "worse", None)
    assert await stores.moderation.get_restriction("alpha", "r2") is None
    # Another type or place is another restriction.
    banned = await stores.moderation.put_restriction(restriction("r3", kind=BAN), later)
    elsewhere = await stores.moderation.put_restriction(
        restriction("r4", conversation_id="c1"), later)
    assert (banned.restriction_id, elsewhere.restriction_id) == ("r3", "r4")
    mine = await stores.moderation.user_restrictions("alpha", "bob", later)
    assert sorted(r.restriction_id for r in mine) == ["r1", "r3", "r4"]


async def test_expired_restrictions_do_not_apply_and_are_replaced_whole(
        stores: Stores) -> None:
    ended = T0 + timedelta(minutes=5)
    await stores.moderation.put_restriction(restriction("r1", expire_time=ended), T0)
    assert [r.restriction_id for r in await stores.moderation.user_restrictions(
        "alpha", "bob", ended - timedelta(milliseconds=1))] == ["r1"]
    assert await stores.moderation.user_restrictions("alpha", "bob", ended) == []
    assert await stores.moderation.list_restrictions("alpha", ended, 10, None) == []
    assert await stores.moderation.delete_restriction("alpha", "r1", ended) is None
    fresh = await stores.moderation.put_restriction(restriction("r2", at=ended), ended)
    assert fresh.restriction_id == "r2"
    assert await stores.moderation.get_restriction("alpha", "r1") is None


async def test_listing_pages_and_filters(stores: Stores) -> None:
    rows = [restriction("r1", "bob", at=T0),
            restriction("r2", "carol", "c1", BAN, at=T0 + timedelta(seconds=1)),
            restriction("r3", "bob", "c1", at=T0 + timedelta(seconds=1)),
            restriction("r4", "dave", "c2", at=T0 + timedelta(seconds=2))]
    for row in rows:
        await stores.moderation.put_restriction(row, row.create_time)
    now = T0 + timedelta(seconds=3)
    first = await stores.moderation.list_restrictions("alpha", now, 2, None)
    assert [r.restriction_id for r in first] == ["r1", "r2"]
    last = first[-1]
    rest = await stores.moderation.list_restrictions(
        "alpha", now, 10, (to_ms(last.create_time), last.restriction_id))
    assert [r.restriction_id for r in rest] == ["r3", "r4"]
    by_user = await stores.moderation.list_restrictions("alpha", now, 10, None, user_id="bob")
    assert [r.restriction_id for r in by_user] == ["r1", "r3"]
    here = await stores.moderation.list_restrictions("alpha", now, 10, None,
                                                     conversation_id="c1")
    assert [r.restriction_id for r in here] == ["r2", "r3"]
    app_wide = await stores.moderation.list_restrictions("alpha", now, 10, None,
                                                         conversation_id=APP_WIDE)
    assert [r.restriction_id for r in app_wide] == ["r1"]
    assert await stores.moderation.list_restrictions("beta", now, 10, None) == []
