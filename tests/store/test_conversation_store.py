"""ConversationStore contract, on every engine."""

from __future__ import annotations

import pytest

from services.conversations.models import (
    ConversationChanges,
    Kind,
    MemberChanges,
    Role,
    direct_key,
)
from services.core.clock import to_ms
from services.core.errors import CapacityExceeded, StoreConflict
from services.runtime import Stores
from tests.store.chat import SECOND, T0, conversation, make_group, member, send


async def test_create_with_members_and_read_back(stores: Stores) -> None:
    created = await make_group(stores, "g1", ["alice", "bob", "carol"])
    assert created.member_count == 3 and created.last_sequence == 0
    assert created.last_message is None and dict(created.metadata) == {"topic": "x"}
    assert await stores.conversations.get_conversation("alpha", "g1") == created
    owner = await stores.conversations.get_member("alpha", "g1", "alice")
    assert owner is not None and owner.role is Role.OWNER
    assert await stores.conversations.get_conversation("beta", "g1") is None
    assert await stores.conversations.get_member("beta", "g1", "alice") is None


async def test_access_reads_the_conversation_and_the_membership_together(
        stores: Stores) -> None:
    created = await make_group(stores, "g1", ["alice", "bob"])
    found, membership = await stores.conversations.get_access("alpha", "g1", "bob")
    assert found == created and membership is not None and membership.user_id == "bob"
    found, membership = await stores.conversations.get_access("alpha", "g1", "carol")
    assert found == created and membership is None  # not a member
    assert await stores.conversations.get_access("beta", "g1", "bob") == (None, None)
    assert await stores.conversations.delete_conversation("alpha", "g1", T0 + SECOND)
    assert await stores.conversations.get_access("alpha", "g1", "bob") == (None, None)


async def test_ids_are_unique_per_app(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    with pytest.raises(StoreConflict):
        await make_group(stores, "g1", ["carol", "dave"])
    assert (await stores.conversations.get_member("alpha", "g1", "carol")) is None
    await make_group(stores, "g1", ["alice", "bob"], app_id="beta")  # another app: fine


async def test_direct_conversation_exists_once_per_pair(stores: Stores) -> None:
    first = await make_group(stores, "d1", ["alice", "bob"], kind=Kind.DIRECT)
    again, created = await stores.conversations.create_conversation(
        conversation("d2", Kind.DIRECT, creator="bob"),
        [member("d2", "bob"), member("d2", "alice")], direct_key("bob", "alice"))
    assert not created and again.conversation_id == first.conversation_id
    assert await stores.conversations.get_conversation("alpha", "d2") is None


async def test_update_and_delete(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    later = T0 + SECOND
    updated = await stores.conversations.update_conversation(
        "alpha", "g1", ConversationChanges(title="New", frozen=True), later)
    assert updated is not None
    assert (updated.title, updated.frozen, updated.update_time) == ("New", True, later)
    assert dict(updated.metadata) == {"topic": "x"}
    await send(stores, "g1", "alice", "hello")
    assert await stores.conversations.delete_conversation("alpha", "g1", later)
    assert await stores.conversations.get_conversation("alpha", "g1") is None
    assert await stores.conversations.get_member("alpha", "g1", "bob") is None
    assert await stores.messages.get("alpha", "g1", 1) is None
    assert not await stores.conversations.delete_conversation("alpha", "g1", later)
    assert await stores.conversations.update_conversation(
        "alpha", "g1", ConversationChanges(title="x"), later) is None


async def test_add_members_skips_existing_and_respects_the_cap(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "before carol")
    added = await stores.conversations.add_members(
        "alpha", "g1", [member("g1", "bob"), member("g1", "carol", at=T0 + SECOND)], 10)
    assert [m.user_id for m in added] == ["carol"]
    assert added[0].read_sequence == 1 and added[0].unread_count == 0  # joins caught up
    with pytest.raises(CapacityExceeded):
        await stores.conversations.add_members(
            "alpha", "g1", [member("g1", "dave"), member("g1", "erin")], 4)
    assert await stores.conversations.get_member("alpha", "g1", "dave") is None
    conversation_now = await stores.conversations.get_conversation("alpha", "g1")
    assert conversation_now is not None and conversation_now.member_count == 3


async def test_owner_leaving_hands_over_to_the_oldest_admin(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol", "dave"])
    await stores.conversations.update_member("alpha", "g1", "dave",
                                             MemberChanges(role=Role.ADMIN), T0)
    removed = await stores.conversations.remove_member("alpha", "g1", "alice", T0)
    assert removed is not None and removed.role is Role.OWNER
    heir = await stores.conversations.get_member("alpha", "g1", "dave")
    assert heir is not None and heir.role is Role.OWNER
    removed = await stores.conversations.remove_member("alpha", "g1", "dave", T0)
    heir = await stores.conversations.get_member("alpha", "g1", "bob")  # no admin: oldest
    assert heir is not None and heir.role is Role.OWNER
    assert await stores.conversations.remove_member("alpha", "g1", "dave", T0) is None
    left = await stores.conversations.get_conversation("alpha", "g1")
    assert left is not None and left.member_count == 2


async def test_member_settings(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    changed = await stores.conversations.update_member(
        "alpha", "g1", "bob", MemberChanges(muted=True, pinned=True), T0)
    assert changed is not None and (changed.muted, changed.pinned, changed.archived) == (
        True, True, False)
    assert changed.role is Role.MEMBER
    assert await stores.conversations.update_member(
        "beta", "g1", "bob", MemberChanges(muted=False), T0) is None


async def test_list_members_in_join_order(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    page = await stores.conversations.list_members("alpha", "g1", 2, None)
    assert [m.user_id for m in page] == ["alice", "bob"]
    rest = await stores.conversations.list_members("alpha", "g1", 2,
                                                   (to_ms(page[-1].join_time), "bob"))
    assert [m.user_id for m in rest] == ["carol"]


async def test_inbox_orders_pinned_then_by_activity(stores: Stores) -> None:
    for index, conversation_id in enumerate(["g1", "g2", "g3", "g4"]):
        await make_group(stores, conversation_id, ["alice", "bob"], at=T0 + index * SECOND)
    await send(stores, "g1", "bob", "wake g1", at=T0 + 10 * SECOND)
    await stores.conversations.update_member("alpha", "g2", "alice", MemberChanges(pinned=True), T0)
    await stores.conversations.update_member("alpha", "g3", "alice",
                                             MemberChanges(archived=True), T0)
    inbox = await stores.conversations.list_user_conversations("alpha", "alice", False, 2, None)
    assert [c.conversation_id for _, c in inbox] == ["g2", "g1"]
    member_of_g1, conversation_g1 = inbox[1]
    assert member_of_g1.unread_count == 1
    assert conversation_g1.last_message is not None
    assert conversation_g1.last_message.text == "wake g1"
    position = (int(member_of_g1.pinned), to_ms(conversation_g1.last_activity_time), "g1")
    rest = await stores.conversations.list_user_conversations("alpha", "alice", False, 5,
                                                              position)
    assert [c.conversation_id for _, c in rest] == ["g4"]
    everything = await stores.conversations.list_user_conversations("alpha", "alice", True, 9,
                                                                    None)
    assert [c.conversation_id for _, c in everything] == ["g2", "g1", "g4", "g3"]
    assert await stores.conversations.list_user_conversations("beta", "alice", True, 9,
                                                              None) == []


async def test_channels_newest_first(stores: Stores) -> None:
    await make_group(stores, "c1", ["alice"], kind=Kind.CHANNEL)
    await make_group(stores, "g1", ["alice", "bob"], at=T0 + SECOND)
    await make_group(stores, "c2", ["bob"], kind=Kind.CHANNEL, at=T0 + 2 * SECOND)
    page = await stores.conversations.list_channels("alpha", 1, None)
    assert [c.conversation_id for c in page] == ["c2"]
    rest = await stores.conversations.list_channels("alpha", 5,
                                                    (to_ms(page[0].create_time), "c2"))
    assert [c.conversation_id for c in rest] == ["c1"]


async def test_unread_totals_skip_muted(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await make_group(stores, "g2", ["alice", "bob"])
    await make_group(stores, "g3", ["alice", "bob"])
    for conversation_id, count in (("g1", 2), ("g2", 3), ("g3", 1)):
        for index in range(count):
            await send(stores, conversation_id, "bob", f"m{index}")
    await stores.conversations.update_member("alpha", "g3", "alice", MemberChanges(muted=True), T0)
    assert await stores.conversations.unread_totals("alpha", "alice") == (5, 2)
    assert await stores.conversations.unread_totals("alpha", "bob") == (0, 0)
