"""ConversationStore contract, on every engine: a user's memberships among given
conversations, and who shares a direct or group conversation with a user."""

from __future__ import annotations

from services.conversations.models import Kind
from services.runtime import Stores
from tests.store.chat import SECOND, T0, make_group


async def test_memberships_among_conversations(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await make_group(stores, "c1", ["carol", "bob"], kind=Kind.CHANNEL)
    await make_group(stores, "c2", ["carol"], kind=Kind.CHANNEL)
    await make_group(stores, "c1", ["bob"], app_id="beta", kind=Kind.CHANNEL)
    found = await stores.conversations.get_memberships("alpha", "bob", ["c1", "c2", "g1", "x"])
    assert sorted(found) == ["c1", "g1"]
    assert (found["c1"].user_id, found["c1"].conversation_id) == ("bob", "c1")
    assert found["c1"] == await stores.conversations.get_member("alpha", "c1", "bob")
    assert await stores.conversations.get_memberships("alpha", "bob", []) == {}
    assert list(await stores.conversations.get_memberships("beta", "bob", ["c1", "g1"])) == [
        "c1"]


async def test_partners_share_a_direct_or_group_conversation(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await make_group(stores, "d1", ["alice", "dave"], kind=Kind.DIRECT)
    await make_group(stores, "c1", ["alice", "carol", "erin"], kind=Kind.CHANNEL)
    await make_group(stores, "g2", ["carol", "erin"])
    await make_group(stores, "g3", ["alice", "frank"], at=T0 + SECOND)
    await stores.conversations.delete_conversation("alpha", "g3", T0 + 2 * SECOND)
    await make_group(stores, "g1", ["alice", "carol"], app_id="beta")
    partners = stores.conversations.conversation_partners
    everyone = ["alice", "bob", "carol", "dave", "erin", "frank", "nobody"]
    assert await partners("alpha", "alice", everyone) == {"bob", "dave"}  # not herself
    assert await partners("alpha", "carol", everyone) == {"erin"}  # not through a channel
    assert await partners("alpha", "frank", everyone) == set()  # the group was deleted
    assert await partners("alpha", "alice", []) == set()
    assert await partners("beta", "alice", everyone) == {"carol"}
    assert await partners("alpha", "nobody", everyone) == set()
