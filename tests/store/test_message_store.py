"""MessageStore contract, on every engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.core.clock import to_ms
from services.core.errors import CapacityExceeded
from services.messages.models import Attachment, Draft, Mention, MessageChanges
from services.runtime import Stores
from tests.store.chat import SECOND, T0, make_group, send


async def test_append_numbers_and_updates_everything_together(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    draft = Draft("alice", "hi", (Attachment("image", "https://x/y.png", "y", "image/png", 10,
                                             3, 4),),
                  (Mention("bob", "Bob"),), {"k": "v"})
    message, created = await stores.messages.append("alpha", "g1", draft, "req-1", T0)
    assert created and message.sequence == 1
    assert message.attachments[0].mime_type == "image/png"
    assert message.mentions == (Mention("bob", "Bob"),) and dict(message.metadata) == {"k": "v"}
    assert await stores.messages.get("alpha", "g1", 1) == message
    second = await send(stores, "g1", "bob", "yo", at=T0 + SECOND)
    assert second == 2
    conversation = await stores.conversations.get_conversation("alpha", "g1")
    assert conversation is not None and conversation.last_sequence == 2
    assert conversation.last_message is not None
    assert (conversation.last_message.sender_id, conversation.last_message.text) == ("bob", "yo")
    assert conversation.last_activity_time == T0 + SECOND
    bob = await stores.conversations.get_member("alpha", "g1", "bob")
    carol = await stores.conversations.get_member("alpha", "g1", "carol")
    assert bob is not None and carol is not None
    assert (bob.read_sequence, bob.unread_count) == (2, 0)  # sending reads
    assert (carol.read_sequence, carol.unread_count) == (0, 2)


async def test_same_request_id_returns_the_first_message(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    first, created = await stores.messages.append("alpha", "g1", Draft("alice", "once"),
                                                  "same", T0)
    again, created_again = await stores.messages.append("alpha", "g1",
                                                        Draft("alice", "other text"), "same",
                                                        T0 + SECOND)
    assert created and not created_again and again == first
    other, created_other = await stores.messages.append("alpha", "g1", Draft("bob", "mine"),
                                                        "same", T0)
    assert created_other and other.sequence == 2  # keys are per sender
    bob = await stores.conversations.get_member("alpha", "g1", "bob")
    assert bob is not None and bob.read_sequence == 2


async def test_concurrent_senders_get_gapless_sequences(stores: Stores) -> None:
    senders = [f"u{i}" for i in range(10)]
    await make_group(stores, "g1", senders)
    results = await asyncio.gather(*[
        stores.messages.append("alpha", "g1", Draft(sender, f"{sender}-{n}"),
                               f"{sender}-{n}", T0)
        for sender in senders for n in range(3)])
    sequences = sorted(m.sequence for m, _ in results)
    assert sequences == list(range(1, 31))
    conversation = await stores.conversations.get_conversation("alpha", "g1")
    assert conversation is not None and conversation.last_sequence == 30
    member = await stores.conversations.get_member("alpha", "g1", "u0")
    assert member is not None and member.unread_count + 3 <= 30


class _Commands:
    def __init__(self) -> None:
        self.names: list[str] = []

    def observe(self, operation: str, seconds: float) -> None:
        self.names.append(operation)

    def series(self, operation: str) -> Callable[[float], None]:
        return lambda seconds: self.observe(operation, seconds)


@pytest.mark.parametrize("stores", ["mongodb"], indirect=True)
async def test_one_process_senders_queue_instead_of_conflicting(stores: Stores) -> None:
    """Twenty sends at once to one conversation from one process: no transaction is
    aborted and retried (a write conflict storm, which starves senders under load)."""
    senders = [f"u{i}" for i in range(20)]
    await make_group(stores, "g1", senders)
    commands = _Commands()
    assert stores.engine is not None
    stores.engine.time_operations(commands)
    results = await asyncio.gather(*[
        stores.messages.append("alpha", "g1", Draft(sender, "hi"), f"{sender}-1", T0)
        for sender in senders])
    assert sorted(m.sequence for m, _ in results) == list(range(1, 21))
    assert commands.names.count("admin.commitTransaction") == 20
    assert "admin.abortTransaction" not in commands.names


async def test_concurrent_retries_send_once(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    results = await asyncio.gather(*[
        stores.messages.append("alpha", "g1", Draft("alice", "once"), "retry", T0)
        for _ in range(5)])
    assert len({m.sequence for m, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    conversation = await stores.conversations.get_conversation("alpha", "g1")
    assert conversation is not None and conversation.last_sequence == 1


async def test_append_to_a_missing_conversation(stores: Stores) -> None:
    with pytest.raises(LookupError):
        await stores.messages.append("alpha", "nope", Draft("alice", "x"), "r", T0)


async def test_threads_count_replies_and_list_apart(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    root = await send(stores, "g1", "alice", "root")
    await send(stores, "g1", "bob", "reply 1", thread_root=root, at=T0 + SECOND)
    await send(stores, "g1", "alice", "top 2")
    await send(stores, "g1", "alice", "reply 2", thread_root=root, at=T0 + 2 * SECOND)
    top = await stores.messages.list_page("alpha", "g1", 0, "latest", 0, 10)
    assert [m.text for m in top.messages] == ["root", "top 2"]
    assert top.messages[0].reply_count == 2
    assert top.messages[0].last_reply_time == T0 + 2 * SECOND
    thread = await stores.messages.list_page("alpha", "g1", root, "latest", 0, 10)
    assert [m.sequence for m in thread.messages] == [2, 4]
    conversation = await stores.conversations.get_conversation("alpha", "g1")
    assert conversation is not None and conversation.last_message is not None
    assert conversation.last_message.text == "top 2"  # replies do not change the preview
    assert conversation.last_sequence == 4


async def test_list_positions_both_ways(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    for n in range(1, 11):
        await send(stores, "g1", "alice", f"m{n}")

    async def seqs(direction: str, sequence: int, limit: int) -> tuple[list[int], bool, bool]:
        page = await stores.messages.list_page("alpha", "g1", 0, direction,  # type: ignore[arg-type]
                                          sequence, limit)
        return [m.sequence for m in page.messages], page.more_before, page.more_after

    assert await seqs("latest", 0, 3) == ([8, 9, 10], True, False)
    assert await seqs("before", 8, 3) == ([5, 6, 7], True, True)
    assert await seqs("before", 3, 5) == ([1, 2], False, True)
    assert await seqs("after", 7, 3) == ([8, 9, 10], True, False)
    assert await seqs("after", 0, 3) == ([1, 2, 3], False, True)
    assert await seqs("after", 10, 3) == ([], True, False)
    assert await seqs("around", 5, 4) == ([3, 4, 5, 6], True, True)
    assert await seqs("around", 1, 4) == ([1, 2, 3, 4], False, True)
    assert await seqs("around", 10, 4) == ([7, 8, 9, 10], True, False)
    assert await seqs("latest", 0, 10) == (list(range(1, 11)), False, False)
    empty = await stores.messages.list_page("alpha", "other", 0, "latest", 0, 5)
    assert (empty.messages, empty.more_before, empty.more_after) == ([], False, False)


async def test_edit_keeps_revisions(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "first")
    edited = await stores.messages.edit("alpha", "g1", 1, MessageChanges(text="second"),
                                        T0 + SECOND)
    assert edited is not None and (edited.text, edited.edit_time) == ("second", T0 + SECOND)
    await stores.messages.edit("alpha", "g1", 1, MessageChanges(text="third"), T0 + 2 * SECOND)
    meta_only = await stores.messages.edit("alpha", "g1", 1, MessageChanges(metadata={"a": "b"}),
                                           T0 + 3 * SECOND)
    assert meta_only is not None and meta_only.edit_time == T0 + 2 * SECOND
    revisions = await stores.messages.revisions("alpha", "g1", 1)
    assert [(r.revision, r.text) for r in revisions] == [(1, "first"), (2, "second"),
                                                         (3, "third")]
    assert revisions[0].create_time == T0
    assert await stores.messages.edit("alpha", "g1", 99, MessageChanges(text="x"), T0) is None
    assert await stores.messages.edit("beta", "g1", 1, MessageChanges(text="x"), T0) is None


async def test_delete_makes_a_tombstone_and_fixes_counts(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await send(stores, "g1", "alice", "one")
    await send(stores, "g1", "alice", "two")
    await stores.messages.add_reaction("alpha", "g1", 2, "bob", "👍", T0, 50, 10)
    await stores.messages.edit("alpha", "g1", 2, MessageChanges(text="two!"), T0)
    await stores.messages.mark("alpha", "g1", "carol", "read", 1, T0)
    gone = await stores.messages.delete("alpha", "g1", 2, T0 + SECOND)
    assert gone is not None and gone.deleted and gone.sequence == 2
    assert (gone.text, gone.attachments, dict(gone.reactions)) == ("", (), {})
    assert await stores.messages.revisions("alpha", "g1", 2) == []
    assert await stores.messages.list_reactions("alpha", "g1", 2, 10, None) == []
    bob = await stores.conversations.get_member("alpha", "g1", "bob")
    carol = await stores.conversations.get_member("alpha", "g1", "carol")
    assert bob is not None and carol is not None
    assert (bob.unread_count, carol.unread_count) == (1, 0)
    conversation = await stores.conversations.get_conversation("alpha", "g1")
    assert conversation is not None and conversation.last_message is not None
    assert (conversation.last_message.deleted, conversation.last_message.text) == (True, "")
    again = await stores.messages.delete("alpha", "g1", 2, T0 + 2 * SECOND)
    assert again is not None and again.delete_time == T0 + SECOND
    page = await stores.messages.list_page("alpha", "g1", 0, "latest", 0, 10)
    assert [m.sequence for m in page.messages] == [1, 2]  # the tombstone keeps its place


async def test_reactions_counts_limits_and_listing(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await send(stores, "g1", "alice", "react to me")
    add = stores.messages.add_reaction
    await add("alpha", "g1", 1, "bob", "👍", T0, 3, 2)
    await add("alpha", "g1", 1, "carol", "👍", T0 + SECOND, 3, 2)
    same = await add("alpha", "g1", 1, "bob", "👍", T0 + 2 * SECOND, 3, 2)
    assert same is not None and dict(same.reactions) == {"👍": 2}
    await add("alpha", "g1", 1, "bob", "🎉", T0 + 3 * SECOND, 3, 2)
    with pytest.raises(CapacityExceeded):
        await add("alpha", "g1", 1, "bob", "🔥", T0, 3, 2)  # bob already has 2
    await add("alpha", "g1", 1, "carol", "🔥", T0 + 4 * SECOND, 3, 2)
    with pytest.raises(CapacityExceeded):
        await add("alpha", "g1", 1, "alice", "🌈", T0, 3, 2)  # 3 distinct emoji already
    message = await stores.messages.get("alpha", "g1", 1)
    assert message is not None
    assert dict(message.reactions) == {"👍": 2, "🎉": 1, "🔥": 1}
    assert await stores.messages.reacted("alpha", "g1", [1], "bob") == {1: {"👍", "🎉"}}
    page = await stores.messages.list_reactions("alpha", "g1", 1, 2, None)
    assert [(r.user_id, r.emoji) for r in page] == [("bob", "👍"), ("carol", "👍")]
    last = page[-1]
    rest = await stores.messages.list_reactions(
        "alpha", "g1", 1, 5, (to_ms(last.create_time), f"{last.user_id}\x1f{last.emoji}"))
    assert [(r.user_id, r.emoji) for r in rest] == [("bob", "🎉"), ("carol", "🔥")]
    removed = await stores.messages.remove_reaction("alpha", "g1", 1, "bob", "👍", T0)
    assert removed is not None and dict(removed.reactions) == {"👍": 1, "🎉": 1, "🔥": 1}
    await stores.messages.remove_reaction("alpha", "g1", 1, "bob", "👍", T0)  # nothing to remove
    final = await stores.messages.remove_reaction("alpha", "g1", 1, "carol", "👍", T0)
    assert final is not None and dict(final.reactions) == {"🎉": 1, "🔥": 1}


async def test_read_and_delivered_positions(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    for n in range(4):
        await send(stores, "g1", "alice", f"m{n}")
    read = await stores.messages.mark("alpha", "g1", "bob", "read", 2, T0 + SECOND)
    assert read is not None
    assert (read.read_sequence, read.unread_count, read.delivered_sequence) == (2, 2, 2)
    assert read.read_time == T0 + SECOND
    back = await stores.messages.mark("alpha", "g1", "bob", "read", 1, T0 + 2 * SECOND)
    assert back is not None and back.read_sequence == 2  # never backwards
    delivered = await stores.messages.mark("alpha", "g1", "carol", "delivered", 0, T0)
    assert delivered is not None
    assert (delivered.delivered_sequence, delivered.read_sequence) == (4, 0)
    everything = await stores.messages.mark("alpha", "g1", "bob", "read", 99, T0)
    assert everything is not None and (everything.read_sequence, everything.unread_count) == (
        4, 0)
    assert await stores.messages.mark("alpha", "g1", "mallory", "read", 1, T0) is None
    message = await stores.messages.get("alpha", "g1", 3)
    assert message is not None
    members, summary = await stores.messages.receipts("alpha", "g1", message, 10, None)
    assert [m.user_id for m in members] == ["bob", "carol"]  # not the sender
    assert (summary.read, summary.delivered) == (1, 2)


async def test_get_many_is_scoped(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await send(stores, "g1", "alice", "one")
    await send(stores, "g1", "alice", "two")
    found = await stores.messages.get_many("alpha", "g1", [2, 1, 7])
    assert sorted(found) == [1, 2]
    assert await stores.messages.get_many("beta", "g1", [1]) == {}
