"""Shadowed messages (a shadow-banned sender's), on every engine: they take a sequence
number but move nobody else's unread or mention counts, the preview, the activity time
or the thread root's replies; lists show them to their sender alone; their events are
private to the sender; deleting or reading one counts nothing."""

from __future__ import annotations

from services.messages.models import Draft, Mention
from services.runtime import Stores
from tests.store.chat import SECOND, T0, make_group, send


async def shadow(stores: Stores, sender: str, text: str, thread_root: int = 0,
                 mention: str = "") -> int:
    mentions = (Mention(mention, mention.title()),) if mention else ()
    message, created = await stores.messages.append(
        "alpha", "g1", Draft(sender, text, mentions=mentions, thread_root=thread_root,
                             shadowed=True), f"r-{text}", T0 + 5 * SECOND)
    assert created and message.shadowed
    return message.sequence


async def unread(stores: Stores, user_id: str) -> tuple[int, int]:
    member = await stores.conversations.get_member("alpha", "g1", user_id)
    assert member is not None
    return member.unread_count, member.unread_mention_count


async def test_a_shadowed_message_moves_nothing_of_the_others(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    root = await send(stores, "g1", "alice", "hello")
    before = await stores.conversations.get_conversation("alpha", "g1")
    hidden = await shadow(stores, "bob", "spam", mention="carol")
    reply = await shadow(stores, "bob", "more spam", thread_root=root)
    after = await stores.conversations.get_conversation("alpha", "g1")
    assert before is not None and after is not None
    assert (after.last_sequence, after.last_message, after.last_activity_time) == (
        reply, before.last_message, before.last_activity_time)
    assert await unread(stores, "carol") == (1, 0)  # alice's hello only
    assert await unread(stores, "bob") == (0, 0)  # the sender read up to their own
    thread_root = await stores.messages.get("alpha", "g1", root)
    assert thread_root is not None and thread_root.reply_count == 0
    stored = await stores.messages.get("alpha", "g1", hidden)
    assert stored is not None and stored.shadowed
    logged = await stores.events.read("alpha", 0, 20)
    created = [(e.user_id, e.private) for e in logged if e.type == "message.created"]
    assert created == [("alice", False), ("bob", True), ("bob", True)]


async def test_lists_show_shadowed_messages_to_their_sender_alone(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    first = await send(stores, "g1", "alice", "one")
    hidden = await shadow(stores, "bob", "two")
    third = await send(stores, "g1", "alice", "three")

    async def listed(viewer: str | None) -> list[int]:
        page = await stores.messages.list_page("alpha", "g1", 0, "latest", 0, 10,
                                               viewer=viewer)
        return [m.sequence for m in page.messages]

    assert await listed("alice") == [first, third]
    assert await listed("bob") == [first, hidden, third]
    assert await listed(None) == [first, hidden, third]  # the app's backend
    after = await stores.messages.list_page("alpha", "g1", 0, "after", first, 1,
                                            viewer="alice")
    assert [m.sequence for m in after.messages] == [third] and not after.more_after


async def test_reading_and_deleting_count_no_shadowed_message(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await send(stores, "g1", "alice", "one")
    hidden = await shadow(stores, "bob", "two", mention="carol")
    await send(stores, "g1", "alice", "three")
    assert await unread(stores, "carol") == (2, 0)
    await stores.messages.mark("alpha", "g1", "carol", "read", 1, T0 + 9 * SECOND)
    assert await unread(stores, "carol") == (1, 0)  # "three" only
    await stores.messages.delete("alpha", "g1", hidden, T0 + 9 * SECOND)
    assert await unread(stores, "carol") == (1, 0)
