"""Unread mention counts of memberships, on every engine: sending, reading, deleting and
joining keep each member's count equal to what a recount from the messages gives, and
the migration that adds the count fills it in for memberships made before it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from services.conversations import mongo_store as conversations_mongo
from services.conversations import sqlite_store as conversations_sqlite
from services.conversations.models import Conversation, Kind, Member, Role
from services.core.clock import to_ms
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.messages import mongo_store as messages_mongo
from services.messages import sqlite_store as messages_sqlite
from services.messages.models import Draft, Mention, MessageChanges
from services.runtime import Stores
from tests.store.chat import SECOND, T0, make_group, member
from tests.support.servers import ExternalServer


def mentioning(*user_ids: str) -> tuple[Mention, ...]:
    return tuple(Mention(u, u.title()) for u in user_ids)


async def say(stores: Stores, sender: str, *mentioned: str, thread_root: int = 0,
              conversation_id: str = "g1") -> int:
    message, created = await stores.messages.append(
        "alpha", conversation_id,
        Draft(sender, f"{sender} to {mentioned}", mentions=mentioning(*mentioned),
              thread_root=thread_root), uuid.uuid4().hex, T0)
    assert created
    return message.sequence


async def counts(stores: Stores, conversation_id: str = "g1") -> dict[str, int]:
    """Each member's stored unread mention count, after checking it against a recount
    from the conversation's messages (after the member's read position, from others,
    not deleted, mentioning the member)."""
    messages = await stores.messages.scan_messages("alpha", conversation_id, 0, 1000)
    found = {}
    for user_id in await stores.conversations.member_ids("alpha", conversation_id):
        m = await stores.conversations.get_member("alpha", conversation_id, user_id)
        assert m is not None
        recount = sum(1 for message in messages
                      if message.sequence > m.read_sequence and not message.deleted
                      and message.sender_id != user_id
                      and user_id in {x.user_id for x in message.mentions})
        assert m.unread_mention_count == recount, (user_id, m)
        found[user_id] = m.unread_mention_count
    return found


async def test_sends_count_mentions_of_other_members(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await say(stores, "alice")
    assert await counts(stores) == {"alice": 0, "bob": 0, "carol": 0}
    await say(stores, "alice", "bob")
    assert await counts(stores) == {"alice": 0, "bob": 1, "carol": 0}
    await say(stores, "carol", "bob", "alice")
    assert await counts(stores) == {"alice": 1, "bob": 2, "carol": 0}
    await say(stores, "bob", "carol", thread_root=1)  # replies count as well
    assert await counts(stores) == {"alice": 1, "bob": 0, "carol": 1}  # sending reads
    await say(stores, "alice")
    assert await counts(stores) == {"alice": 0, "bob": 0, "carol": 1}


async def test_no_count_for_the_sender_nor_non_members(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await make_group(stores, "g2", ["alice", "dave"])
    await say(stores, "alice", "alice", "bob")
    await say(stores, "alice", "dave", "bob")  # dave is no member of g1
    assert await counts(stores) == {"alice": 0, "bob": 2}
    assert await counts(stores, "g2") == {"alice": 0, "dave": 0}
    # The same user twice in one message counts once.
    await stores.messages.append("alpha", "g1", Draft(
        "alice", "twice", mentions=(Mention("bob", "Bob"), Mention("bob", "Bob"))), "r2", T0)
    assert await counts(stores) == {"alice": 0, "bob": 3}
    # Joining later: what was sent before is read, mentions of the joiner included.
    await stores.conversations.add_members(
        "alpha", "g1", [member("g1", "dave", at=T0 + SECOND)], 100)
    assert await counts(stores) == {"alice": 0, "bob": 3, "dave": 0}
    await say(stores, "bob", "dave")
    assert await counts(stores) == {"alice": 0, "bob": 0, "dave": 1}
    joined = await stores.messages.mark("alpha", "g1", "dave", "read", 0, T0)
    assert joined is not None and joined.unread_mention_count == 0


async def test_reading_recounts_from_the_new_position(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await say(stores, "alice", "bob")            # 1
    await say(stores, "alice")                   # 2
    await say(stores, "carol", "bob")            # 3
    await say(stores, "alice", "bob", "carol")   # 4
    await say(stores, "carol", "bob", thread_root=1)  # 5
    await say(stores, "alice")                   # 6
    assert (await counts(stores))["bob"] == 4
    # Past two mentions at once (1 and 3), and a message without one.
    marked = await stores.messages.mark("alpha", "g1", "bob", "read", 3, T0)
    assert marked is not None
    assert (marked.read_sequence, marked.unread_count, marked.unread_mention_count) == (3, 3, 2)
    assert (await counts(stores))["bob"] == 2
    # Delivery moves no read position, so no count.
    await stores.messages.mark("alpha", "g1", "bob", "delivered", 6, T0)
    assert (await counts(stores))["bob"] == 2
    # Never backward.
    back = await stores.messages.mark("alpha", "g1", "bob", "read", 1, T0)
    assert back is not None and (back.read_sequence, back.unread_mention_count) == (3, 2)
    marked = await stores.messages.mark("alpha", "g1", "bob", "read", 4, T0)
    assert marked is not None and marked.unread_mention_count == 1
    everything = await stores.messages.mark("alpha", "g1", "bob", "read", 0, T0)
    assert everything is not None
    assert (everything.read_sequence, everything.unread_mention_count) == (6, 0)
    assert await counts(stores) == {"alice": 0, "bob": 0, "carol": 0}  # carol sent 5


async def test_deleting_takes_off_only_unread_mentions(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    await say(stores, "alice", "bob", "carol")   # 1
    await say(stores, "alice", "bob")            # 2
    await say(stores, "alice", "carol")          # 3
    await say(stores, "alice", "alice", "bob")   # 4: alice mentions herself
    await stores.messages.mark("alpha", "g1", "carol", "read", 2, T0)
    assert await counts(stores) == {"alice": 0, "bob": 3, "carol": 1}
    await stores.messages.delete("alpha", "g1", 1, T0)  # read by carol, not by bob
    assert await counts(stores) == {"alice": 0, "bob": 2, "carol": 1}
    await stores.messages.delete("alpha", "g1", 4, T0)  # never counted for alice
    assert await counts(stores) == {"alice": 0, "bob": 1, "carol": 1}
    await stores.messages.delete("alpha", "g1", 4, T0)  # a tombstone: nothing changes
    await stores.messages.delete("alpha", "g1", 3, T0)
    assert await counts(stores) == {"alice": 0, "bob": 1, "carol": 0}
    # A message that does not mention a member leaves the member's count alone.
    await say(stores, "carol")                   # 5
    await stores.messages.delete("alpha", "g1", 5, T0)
    assert await counts(stores) == {"alice": 0, "bob": 1, "carol": 0}
    marked = await stores.messages.mark("alpha", "g1", "bob", "read", 0, T0)
    assert marked is not None and marked.unread_mention_count == 0


async def test_deleting_spares_members_who_joined_after(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await say(stores, "alice", "bob", "carol")   # carol is not a member yet
    await stores.conversations.add_members(
        "alpha", "g1", [member("g1", "carol", at=T0 + SECOND)], 100)
    await say(stores, "alice", "carol")
    assert await counts(stores) == {"alice": 0, "bob": 1, "carol": 1}
    await stores.messages.delete("alpha", "g1", 1, T0)
    assert await counts(stores) == {"alice": 0, "bob": 0, "carol": 1}


async def test_edits_leave_mention_counts(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await say(stores, "alice", "bob")
    edited = await stores.messages.edit("alpha", "g1", 1, MessageChanges(text="new"), T0)
    assert edited is not None and [m.user_id for m in edited.mentions] == ["bob"]
    assert await counts(stores) == {"alice": 0, "bob": 1}


async def test_mention_counts_stay_in_their_app(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await make_group(stores, "g1", ["alice", "bob"], app_id="beta")
    await stores.messages.append("beta", "g1", Draft("alice", "@bob",
                                                     mentions=mentioning("bob")), "r", T0)
    assert await counts(stores) == {"alice": 0, "bob": 0}
    bob_beta = await stores.conversations.get_member("beta", "g1", "bob")
    assert bob_beta is not None and bob_beta.unread_mention_count == 1


# --- The migration that adds the count --------------------------------------------
#
# c1 in app alpha, last sequence 5, and the messages (sender: mentioned):
#   1 alice: bob, carol   2 alice: bob   3 carol: bob, carol   4 alice: bob (deleted)
#   5 alice: carol, dave, bob
# Read positions: alice 5, bob 1, carol 3, dave 5 (joined after 4); in app beta, c1 has
# bob at 0 and no messages. Counts: bob 2, 3, 5 → 3; carol 5 → 1 (3 is her own); none
# for the others.

OLD_MESSAGES = [(1, "alice", ("bob", "carol"), False), (2, "alice", ("bob",), False),
                (3, "carol", ("bob", "carol"), False), (4, "alice", ("bob",), True),
                (5, "alice", ("carol", "dave", "bob"), False)]
OLD_MEMBERS = [("alpha", "alice", 5), ("alpha", "bob", 1), ("alpha", "carol", 3),
               ("alpha", "dave", 5), ("beta", "bob", 0)]
BACKFILLED = {("alpha", "alice"): 0, ("alpha", "bob"): 3, ("alpha", "carol"): 1,
              ("alpha", "dave"): 0, ("beta", "bob"): 0}


async def test_mention_counts_backfilled_sqlite(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "old.db")
    try:
        await db.migrate("conversations", conversations_sqlite.MIGRATIONS[:2])
        await db.migrate("messages", messages_sqlite.MIGRATIONS[:2])
        at = to_ms(T0)

        def old_rows(conn: Any) -> None:
            for app_id in ("alpha", "beta"):
                conn.execute(
                    "INSERT INTO conversations VALUES (?, 'c1', 'group', '', '', '{}', 0,"
                    " 'alice', 4, 5, NULL, ?, ?, ?, NULL, NULL)", (app_id, at, at, at))
            for app_id, user_id, read in OLD_MEMBERS:
                conn.execute(
                    "INSERT INTO members (app_id, conversation_id, user_id, role, join_time,"
                    " muted, archived, pinned, read_sequence, delivered_sequence,"
                    " unread_count, read_time, activity_time, kind, conversation_create_time)"
                    " VALUES (?, 'c1', ?, 1, ?, 0, 0, 0, ?, ?, 0, NULL, ?, 'group', ?)",
                    (app_id, user_id, at, read, read, at, at))
            for sequence, sender, mentioned, deleted in OLD_MESSAGES:
                conn.execute(
                    "INSERT INTO messages (app_id, conversation_id, sequence, sender_id, text,"
                    " attachments, mentions, metadata, thread_root, reply_count, reactions,"
                    " request_id, create_time, delete_time)"
                    " VALUES ('alpha', 'c1', ?, ?, 'x', '[]', ?, '{}', 0, 0, '[]', ?, ?, ?)",
                    (sequence, sender,
                     json.dumps([{"user_id": u, "display_name": u} for u in mentioned]),
                     f"r{sequence}", at, at if deleted else None))

        await db.write(old_rows)
        await db.migrate("conversations", conversations_sqlite.MIGRATIONS)
        await db.migrate("messages", messages_sqlite.MIGRATIONS)
        rows = await db.read(lambda conn: conn.execute(
            "SELECT app_id, user_id, unread_mention_count FROM members").fetchall())
        assert {(a, u): n for a, u, n in rows} == BACKFILLED
    finally:
        await db.close()


async def test_mention_counts_backfilled_mongodb(mongo: ExternalServer) -> None:
    db = await MongoDatabase.open(mongo.url, f"t{uuid.uuid4().hex[:12]}")
    try:
        await db.migrate("conversations", conversations_mongo.MIGRATIONS[:2])
        await db.migrate("messages", messages_mongo.MIGRATIONS[:2])
        for app_id, user_id, read in OLD_MEMBERS:
            conversation = Conversation(app_id, "c1", Kind.GROUP, "", "", {}, False, "alice",
                                        4, 5, None, T0, T0, T0)
            old = conversations_mongo.member_doc(
                Member(app_id, "c1", user_id, Role.MEMBER, T0, read_sequence=read,
                       delivered_sequence=read), conversation)
            del old["unread_mention_count"]
            await db.db["members"].insert_one(old)
        for sequence, sender, mentioned, deleted in OLD_MESSAGES:
            await db.db["messages"].insert_one(
                {"_id": f"alpha/c1/{sequence}", "app_id": "alpha", "conversation_id": "c1",
                 "sequence": sequence, "sender_id": sender, "text": "x", "attachments": [],
                 "mentions": [{"user_id": u, "display_name": u} for u in mentioned],
                 "metadata": {}, "thread_root": 0, "reply_count": 0,
                 "last_reply_time": None, "reactions": [], "request_id": f"r{sequence}",
                 "create_time": T0, "edit_time": None,
                 "delete_time": T0 if deleted else None})
        await db.migrate("conversations", conversations_mongo.MIGRATIONS)
        await db.migrate("messages", messages_mongo.MIGRATIONS)
        found = {(d["app_id"], d["user_id"]): d["unread_mention_count"]
                 async for d in db.db["members"].find({})}
        assert found == BACKFILLED
    finally:
        await db.client.drop_database(db.db.name)
        await db.close()
