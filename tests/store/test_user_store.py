"""UserStore contract, on every engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.core.clock import to_ms
from services.core.errors import StoreConflict
from services.runtime import Stores
from services.users.models import Block, User, UserChanges

T0 = datetime(2026, 2, 3, 4, 5, 6, 789_000, tzinfo=UTC)


def user(user_id: str, app_id: str = "alpha", at: datetime = T0) -> User:
    return User(app_id, user_id, f"User {user_id}", "https://img.example/u.png",
                {"team": "blue"}, at, at)


async def test_round_trip_and_conflict(stores: Stores) -> None:
    await stores.users.create_user(user("alice"))
    assert await stores.users.get_user("alpha", "alice") == user("alice")
    with pytest.raises(StoreConflict):
        await stores.users.create_user(user("alice"))
    assert await stores.users.get_user("beta", "alice") is None


async def test_get_many_is_scoped(stores: Stores) -> None:
    await stores.users.create_user(user("alice"))
    await stores.users.create_user(user("bob"))
    await stores.users.create_user(user("carol", app_id="beta"))
    found = await stores.users.get_users("alpha", ["alice", "carol", "bob", "nobody"])
    assert sorted(found) == ["alice", "bob"]
    assert await stores.users.get_users("alpha", []) == {}


async def test_list_pages_in_creation_order(stores: Stores) -> None:
    for index, user_id in enumerate(["c", "a", "b"]):
        await stores.users.create_user(user(user_id, at=T0 + timedelta(seconds=index // 2)))
    first = await stores.users.list_users("alpha", 2, None)
    assert [u.user_id for u in first] == ["a", "c"]
    rest = await stores.users.list_users("alpha", 2, (to_ms(first[-1].create_time), "c"))
    assert [u.user_id for u in rest] == ["b"]


async def test_update_changes_given_fields_or_creates(stores: Stores) -> None:
    later = T0 + timedelta(minutes=1)
    assert await stores.users.update_user("alpha", "alice", UserChanges(display_name="A"),
                                          later) is None
    created = await stores.users.update_user("alpha", "alice", UserChanges(), later,
                                             create=user("alice"))
    assert created == user("alice")
    changed = await stores.users.update_user(
        "alpha", "alice", UserChanges(display_name="Alice", metadata={"k": "v"}), later)
    assert changed is not None
    assert (changed.display_name, changed.image_uri, dict(changed.metadata)) == (
        "Alice", "https://img.example/u.png", {"k": "v"})
    assert changed.update_time == later


async def test_delete_leaves_a_tombstone_that_does_not_change(stores: Stores) -> None:
    await stores.users.create_user(user("alice"))
    gone = await stores.users.delete_user("alpha", "alice", T0 + timedelta(hours=1))
    assert gone is not None and gone.deleted
    assert (gone.display_name, gone.image_uri, dict(gone.metadata)) == ("", "", {})
    again = await stores.users.delete_user("alpha", "alice", T0 + timedelta(hours=2))
    assert again is not None and again.delete_time == T0 + timedelta(hours=1)
    untouched = await stores.users.update_user("alpha", "alice", UserChanges(display_name="X"),
                                               T0 + timedelta(hours=3), create=user("alice"))
    assert untouched == gone
    assert await stores.users.delete_user("alpha", "nobody", T0) is None


async def test_blocks(stores: Stores) -> None:
    users = stores.users
    first = await users.create_block(Block("alpha", "alice", "bob", T0))
    again = await users.create_block(Block("alpha", "alice", "bob", T0 + timedelta(days=1)))
    assert again == first  # blocking twice keeps the first block
    await users.create_block(Block("alpha", "alice", "carol", T0 + timedelta(seconds=1)))
    assert await users.blocked_either_way("alpha", "bob", "alice")
    assert await users.blocked_either_way("alpha", "alice", "bob")
    assert not await users.blocked_either_way("alpha", "bob", "carol")
    assert not await users.blocked_either_way("beta", "alice", "bob")
    page = await users.list_blocks("alpha", "alice", 1, None)
    assert [b.blocked_id for b in page] == ["carol"]
    rest = await users.list_blocks("alpha", "alice", 5, (to_ms(page[0].create_time), "carol"))
    assert [b.blocked_id for b in rest] == ["bob"]
    assert await users.delete_block("alpha", "alice", "bob")
    assert not await users.delete_block("alpha", "alice", "bob")
    assert not await users.blocked_either_way("alpha", "alice", "bob")
