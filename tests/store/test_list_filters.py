"""Filters and orderings of the List calls, on every engine: each field, combinations,
negation, pages that resume under a filter, and no filter reaching past the app or the
user it lists for. Filters are parsed from text, as the actions do, so these tests hold
the parser and both translations (services/core/db/{sqlite,mongo}_filter.py) to one
meaning."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from services.conversations import mongo_store as conversations_mongo
from services.conversations import sqlite_store as conversations_sqlite
from services.conversations.listing import (
    CONVERSATION_FILTER,
    CONVERSATION_ORDERINGS,
    INBOX,
    MEMBER_FILTER,
    MEMBER_ORDERINGS,
)
from services.conversations.models import Conversation, Kind, Member, MemberChanges, Role
from services.core.clock import to_ms
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.core.filter_syntax import parse_filter
from services.core.filtering import Ordering, parse_order_by
from services.messages.listing import MESSAGE_FILTER
from services.messages.models import Attachment, Draft, Mention
from services.runtime import Stores
from services.users.listing import USER_FILTER, USER_ORDERINGS
from services.users.models import User
from tests.store.chat import SECOND, T0, make_group, send
from tests.support.servers import ExternalServer

# --- ListConversations -------------------------------------------------------------


async def inbox_world(stores: Stores) -> None:
    """alice's conversations, oldest first: d1 (direct with bob), g1 (group, bob wrote
    once, muted), g2 (group alice owns with carol, two unread), c1 (channel, pinned),
    g3 (archived group); and the same ids in app beta, where alice has all unread."""
    await make_group(stores, "d1", ["alice", "bob"], kind=Kind.DIRECT, at=T0)
    await make_group(stores, "g1", ["bob", "alice"], at=T0 + SECOND)
    await make_group(stores, "g2", ["alice", "carol"], at=T0 + 2 * SECOND)
    await make_group(stores, "c1", ["bob", "alice"], kind=Kind.CHANNEL, at=T0 + 3 * SECOND)
    await make_group(stores, "g3", ["bob", "alice"], at=T0 + 4 * SECOND)
    await send(stores, "g1", "bob", "hi", at=T0 + 10 * SECOND)
    await send(stores, "g2", "carol", "one", at=T0 + 11 * SECOND)
    await send(stores, "g2", "carol", "two", at=T0 + 12 * SECOND)
    conversations = stores.conversations
    await conversations.update_member("alpha", "g1", "alice", MemberChanges(muted=True), T0)
    await conversations.update_member("alpha", "c1", "alice", MemberChanges(pinned=True), T0)
    await conversations.update_member("alpha", "g3", "alice", MemberChanges(archived=True), T0)
    for conversation_id in ("g1", "g2", "g3"):
        await make_group(stores, conversation_id, ["bob", "alice"], app_id="beta")
        await send(stores, conversation_id, "bob", "beta", app_id="beta")


async def inbox(stores: Stores, text: str = "", *, user: str = "alice", app: str = "alpha",
                include_archived: bool = False, ordering: Ordering = INBOX) -> list[str]:
    rows = await stores.conversations.list_user_conversations(
        app, user, include_archived, 50, None,
        where=parse_filter(text, CONVERSATION_FILTER), ordering=ordering)
    return [c.conversation_id for _, c in rows]


@pytest.mark.parametrize(("text", "expected"), [
    ("", ["c1", "g2", "g1", "d1"]),
    ("kind = group", ["g2", "g1"]),
    ("kind = KIND_CHANNEL", ["c1"]),
    ("kind != group", ["c1", "d1"]),
    ("unread = true", ["g2", "g1"]),
    ("unread = false", ["c1", "d1"]),
    ("unread != true", ["c1", "d1"]),
    ("unread_count >= 2", ["g2"]),
    ("unread_count = 1", ["g1"]),
    ("unread_count < 1", ["c1", "d1"]),
    ("muted = true", ["g1"]),
    ("muted = false", ["c1", "g2", "d1"]),
    ("pinned = true", ["c1"]),
    ("pinned != true", ["g2", "g1", "d1"]),
    ("role = owner", ["g2", "d1"]),  # the builder makes the first user owner
    ("role >= admin", ["g2", "d1"]),
    ("role = member", ["c1", "g1"]),
    (f'last_activity_time >= "{(T0 + 11 * SECOND).isoformat()}"', ["g2"]),
    (f'last_activity_time < "{(T0 + 10 * SECOND).isoformat()}"', ["c1", "d1"]),
    (f'create_time = "{(T0 + SECOND).isoformat()}"', ["g1"]),
    (f'create_time > "{(T0 + SECOND).isoformat()}" AND create_time <= '
     f'"{(T0 + 3 * SECOND).isoformat()}"', ["c1", "g2"]),
    ("kind = group AND unread = true AND NOT muted = true", ["g2"]),
    ("kind = direct OR pinned = true", ["c1", "d1"]),
    ("(kind = direct OR pinned = true) AND unread = false", ["c1", "d1"]),
    ("kind = direct OR pinned = true AND unread = true", []),  # OR binds first
    ("-(kind = group OR kind = direct)", ["c1"]),
    ("NOT (unread = true AND muted = true)", ["c1", "g2", "d1"]),
    ("kind = group AND kind = direct", []),
])
async def test_inbox_filters(stores: Stores, text: str, expected: list[str]) -> None:
    await inbox_world(stores)
    assert await inbox(stores, text) == expected


async def test_inbox_filters_stay_in_the_users_app_and_memberships(stores: Stores) -> None:
    await inbox_world(stores)
    assert await inbox(stores, "unread = true", app="beta") == ["g3", "g2", "g1"]
    assert await inbox(stores, "kind = group", user="carol") == ["g2"]
    assert await inbox(stores, "kind = group", user="mallory") == []
    assert await inbox(stores, "kind = group OR kind != group", app="gamma") == []


async def test_archived_conversations_only_when_asked(stores: Stores) -> None:
    await inbox_world(stores)
    assert await inbox(stores, "archived = true") == []  # the store keeps include_archived
    assert await inbox(stores, "archived = true", include_archived=True) == ["g3"]
    assert await inbox(stores, "archived = false", include_archived=True) == [
        "c1", "g2", "g1", "d1"]
    assert await inbox(stores, "kind = group", include_archived=True) == ["g2", "g1", "g3"]


async def test_inbox_filters_on_unread_mentions(stores: Stores) -> None:
    """m1: two unread mentions of alice; m2: one, and muted; m3: unread, no mention;
    m4: a mention of alice she has read."""
    for index, conversation_id in enumerate(("m1", "m2", "m3", "m4")):
        await make_group(stores, conversation_id, ["bob", "alice"], at=T0 + index * SECOND)
    at_alice = (Mention("alice", "Alice"),)
    for index, (conversation_id, mentions) in enumerate((
            ("m1", at_alice), ("m1", at_alice), ("m2", at_alice), ("m3", ()),
            ("m4", at_alice))):
        await stores.messages.append("alpha", conversation_id,
                                     Draft("bob", "hi", mentions=mentions), f"r{index}",
                                     T0 + (10 + index) * SECOND)
    await stores.messages.mark("alpha", "m4", "alice", "read", 0, T0)
    await stores.conversations.update_member("alpha", "m2", "alice", MemberChanges(muted=True),
                                             T0)
    assert await inbox(stores, "has_mentions = true") == ["m2", "m1"]
    assert await inbox(stores, "has_mentions != true") == ["m4", "m3"]
    assert await inbox(stores, "has_mentions = false AND unread = true") == ["m3"]
    assert await inbox(stores, "has_mentions = true AND NOT muted = true") == ["m1"]
    assert await inbox(stores, "unread_mention_count >= 2") == ["m1"]
    assert await inbox(stores, "unread_mention_count = 1") == ["m2"]
    assert await inbox(stores, "unread_mention_count < 1") == ["m4", "m3"]
    assert await inbox(stores, "has_mentions = true", user="bob") == []  # bob's own
    await stores.messages.mark("alpha", "m1", "alice", "read", 1, T0)
    assert await inbox(stores, "unread_mention_count = 1") == ["m2", "m1"]
    await stores.messages.delete("alpha", "m1", 2, T0)
    assert await inbox(stores, "has_mentions = true") == ["m2"]


@pytest.mark.parametrize(("order_by", "expected"), [
    ("last_activity_time desc", ["g2", "g1", "g3", "c1", "d1"]),
    ("last_activity_time", ["d1", "c1", "g3", "g1", "g2"]),
    ("create_time desc", ["g3", "c1", "g2", "g1", "d1"]),
    ("create_time", ["d1", "g1", "g2", "c1", "g3"]),
    ("pinned desc, last_activity_time desc", ["c1", "g2", "g1", "g3", "d1"]),
])
async def test_inbox_orderings(stores: Stores, order_by: str, expected: list[str]) -> None:
    await inbox_world(stores)
    ordering = parse_order_by(order_by, CONVERSATION_ORDERINGS)
    assert await inbox(stores, include_archived=True, ordering=ordering) == expected


@pytest.mark.parametrize("order_by", [o.text for o in CONVERSATION_ORDERINGS])
async def test_inbox_pages_under_a_filter(stores: Stores, order_by: str) -> None:
    """Page by page (two at a time), each conversation that matches once, in order."""
    ordering = parse_order_by(order_by, CONVERSATION_ORDERINGS)
    for index in range(7):
        conversation_id = f"p{index}"
        await make_group(stores, conversation_id, ["bob", "alice"],
                         kind=Kind.CHANNEL if index % 3 == 0 else Kind.GROUP,
                         at=T0 + (index // 2) * SECOND)  # pairs made in the same ms
        if index in (2, 5):
            await stores.conversations.update_member(
                "alpha", conversation_id, "alice", MemberChanges(pinned=True), T0)
    where = parse_filter("kind = group", CONVERSATION_FILTER)
    whole = await inbox(stores, "kind = group", ordering=ordering)
    assert sorted(whole) == ["p1", "p2", "p4", "p5"]
    keys: dict[str, Callable[[Member, Conversation], int | str]] = {
        "pinned": lambda m, c: int(m.pinned),
        "last_activity_time": lambda m, c: to_ms(c.last_activity_time),
        "create_time": lambda m, c: to_ms(c.create_time),
        "conversation_id": lambda m, c: c.conversation_id}
    seen: list[str] = []
    after = None
    while True:
        rows = await stores.conversations.list_user_conversations(
            "alpha", "alice", False, 2, after, where=where, ordering=ordering)
        seen += [c.conversation_id for _, c in rows]
        if len(rows) < 2:
            break
        member, conversation = rows[-1]
        after = tuple(keys[key](member, conversation) for key in ordering.keys)
    assert seen == whole


async def test_memberships_made_before_filters_get_their_kind_sqlite(tmp_path: Path) -> None:
    """The migration that puts kind and creation time on memberships fills in the
    memberships that exist already."""
    db = await SqliteDatabase.open(tmp_path / "old.db")
    try:
        await db.migrate("conversations", conversations_sqlite.MIGRATIONS[:1])
        at = to_ms(T0)

        def old_rows(conn: object) -> None:
            execute = conn.execute  # type: ignore[attr-defined]
            execute("INSERT INTO conversations VALUES ('alpha', 'c1', 'channel', '', '', '{}',"
                    " 0, 'bob', 1, 0, NULL, ?, ?, ?, NULL, NULL)", (at, at, at))
            execute("INSERT INTO members VALUES ('alpha', 'c1', 'bob', 4, ?, 0, 0, 0, 0, 0, 0,"
                    " NULL, ?)", (at, at))

        await db.write(old_rows)
        await db.migrate("conversations", conversations_sqlite.MIGRATIONS)
        row = await db.read(lambda conn: conn.execute(
            "SELECT kind, conversation_create_time FROM members").fetchone())
        assert tuple(row) == ("channel", at)
    finally:
        await db.close()


async def test_memberships_made_before_filters_get_their_kind_mongodb(
        mongo: ExternalServer) -> None:
    db = await MongoDatabase.open(mongo.url, f"t{uuid.uuid4().hex[:12]}")
    try:
        await db.migrate("conversations", conversations_mongo.MIGRATIONS[:1])
        conversation = Conversation("alpha", "c1", Kind.CHANNEL, "", "", {}, False, "bob", 1,
                                    0, None, T0, T0, T0)
        old = conversations_mongo.member_doc(Member("alpha", "c1", "bob", Role.OWNER, T0),
                                             conversation)
        del old["kind"], old["conversation_create_time"]
        await db.db["conversations"].insert_one(
            {"app_id": "alpha", "conversation_id": "c1", "kind": "channel", "create_time": T0})
        await db.db["members"].insert_one(old)
        await db.migrate("conversations", conversations_mongo.MIGRATIONS)
        doc = await db.db["members"].find_one({})
        assert doc is not None
        assert (doc["kind"], doc["conversation_create_time"]) == ("channel", T0)
    finally:
        await db.client.drop_database(db.db.name)
        await db.close()


# --- ListMembers ---------------------------------------------------------------------


async def members(stores: Stores, text: str = "", order_by: str = "",
                  conversation_id: str = "g1", app: str = "alpha") -> list[str]:
    rows = await stores.conversations.list_members(
        app, conversation_id, 50, None, where=parse_filter(text, MEMBER_FILTER),
        ordering=parse_order_by(order_by, MEMBER_ORDERINGS))
    return [m.user_id for m in rows]


async def member_world(stores: Stores) -> None:
    """g1: alice (owner), bob (admin), carol, bot-1 (moderator), bot-2, joined a second
    apart in that order; the same group in app beta with alice only."""
    await make_group(stores, "g1", ["alice", "bob", "carol", "bot-1", "bot-2"])
    for user_id, role in (("bob", Role.ADMIN), ("bot-1", Role.MODERATOR)):
        await stores.conversations.update_member("alpha", "g1", user_id,
                                                 MemberChanges(role=role), T0)
    await make_group(stores, "g1", ["alice", "zed"], app_id="beta")


@pytest.mark.parametrize(("text", "order_by", "expected"), [
    ("", "", ["alice", "bob", "carol", "bot-1", "bot-2"]),
    ("", "join_time desc", ["bot-2", "bot-1", "carol", "bob", "alice"]),
    ("role = admin", "", ["bob"]),
    ("role >= moderator", "", ["alice", "bob", "bot-1"]),
    ("role < admin", "join_time desc", ["bot-2", "bot-1", "carol"]),
    ("role != member", "", ["alice", "bob", "bot-1"]),
    ('user_id = "bot-*"', "", ["bot-1", "bot-2"]),
    ('user_id != "bot-*"', "", ["alice", "bob", "carol"]),
    ('user_id = "bot-1"', "", ["bot-1"]),
    ('user_id = "*"', "", ["alice", "bob", "carol", "bot-1", "bot-2"]),
    (f'join_time >= "{(T0 + 2 * SECOND).isoformat()}"', "", ["carol", "bot-1", "bot-2"]),
    ('user_id = "bot*" AND role = member OR role = owner', "", ["bot-2"]),
    ('(user_id = "bot*" AND role = member) OR role = owner', "", ["alice", "bot-2"]),
])
async def test_member_filters(stores: Stores, text: str, order_by: str,
                              expected: list[str]) -> None:
    await member_world(stores)
    assert await members(stores, text, order_by) == expected


async def test_member_filters_stay_in_the_conversation(stores: Stores) -> None:
    await member_world(stores)
    assert await members(stores, "role = member", app="beta") == ["zed"]
    assert await members(stores, "role >= member", conversation_id="other") == []


async def test_members_page_under_a_filter(stores: Stores) -> None:
    await make_group(stores, "g1", [f"u{n}" for n in range(9)])
    where = parse_filter('user_id != "u3" AND role = member', MEMBER_FILTER)
    for ordering in MEMBER_ORDERINGS:
        seen: list[str] = []
        after = None
        while True:
            rows = await stores.conversations.list_members(
                "alpha", "g1", 3, after, where=where, ordering=ordering)
            seen += [m.user_id for m in rows]
            if len(rows) < 3:
                break
            after = (to_ms(rows[-1].join_time), rows[-1].user_id)
        expected = [f"u{n}" for n in range(1, 9) if n != 3]
        assert seen == (expected[::-1] if ordering.descending else expected)


# --- ListMessages --------------------------------------------------------------------

PICTURE = Attachment("image", "https://img.example/p.png")


async def message_world(stores: Stores) -> None:
    """g1's top-level messages 1-8 and a thread under 1 (9, 10); sent a second apart."""
    await make_group(stores, "g1", ["alice", "bob", "carol"])
    drafts = [
        Draft("alice", "hello", metadata={"lang": "en"}),                           # 1
        Draft("bob", "look", attachments=(PICTURE,)),                               # 2
        Draft("carol", "@bob", mentions=(Mention("bob", "Bob"),)),                  # 3
        Draft("alice", "@bob @carol", mentions=(Mention("bob", "Bob"), Mention("carol", "C")),
              metadata={"a.b": "x"}),                                               # 4
        Draft("bob", "gone"),                                                       # 5
        Draft("alice", "pic", attachments=(PICTURE,), metadata={"lang": "fr"}),     # 6
        Draft("bob-bot", "beep"),                                                   # 7
        Draft("carol", "late", metadata={"lang": "en", "a.b": "y"}),                # 8
        Draft("bob", "in thread", thread_root=1),                                   # 9
        Draft("carol", "@bob in thread", mentions=(Mention("bob", "Bob"),),
              thread_root=1),                                                       # 10
    ]
    for index, draft in enumerate(drafts):
        await stores.messages.append("alpha", "g1", draft, f"r{index}", T0 + index * SECOND)
    await stores.messages.delete("alpha", "g1", 5, T0 + 20 * SECOND)
    await make_group(stores, "g1", ["alice", "bob"], app_id="beta")
    await stores.messages.append("beta", "g1", Draft("bob", "other app"), "r", T0)


async def sequences(stores: Stores, text: str, direction: str = "latest", sequence: int = 0,
                    limit: int = 50, thread_root: int = 0, app: str = "alpha"
                    ) -> tuple[list[int], bool, bool]:
    page = await stores.messages.list_page(app, "g1", thread_root, direction,  # type: ignore[arg-type]
                                           sequence, limit,
                                           where=parse_filter(text, MESSAGE_FILTER))
    return [m.sequence for m in page.messages], page.more_before, page.more_after


@pytest.mark.parametrize(("text", "expected"), [
    ("", [1, 2, 3, 4, 5, 6, 7, 8]),
    ('sender_id = "bob"', [2, 5]),
    ('sender_id = "bob*"', [2, 5, 7]),
    ('sender_id != "bob*"', [1, 3, 4, 6, 8]),
    ("has_attachments = true", [2, 6]),
    ("has_attachments = false", [1, 3, 4, 5, 7, 8]),
    ('mention_ids:"bob"', [3, 4]),
    ('mention_ids:"carol"', [4]),
    ('NOT mention_ids:"bob"', [1, 2, 5, 6, 7, 8]),
    ("state = deleted", [5]),
    ("state = active", [1, 2, 3, 4, 6, 7, 8]),
    ("state != STATE_ACTIVE", [5]),
    ("reply_count > 0", [1]),
    ("reply_count = 0", [2, 3, 4, 5, 6, 7, 8]),
    (f'create_time >= "{(T0 + 2 * SECOND).isoformat()}" AND create_time < '
     f'"{(T0 + 5 * SECOND).isoformat()}"', [3, 4, 5]),
    ('metadata.lang = "en"', [1, 8]),
    ('metadata.lang != "en"', [6]),  # messages without the key do not count
    ('NOT metadata.lang = "en"', [2, 3, 4, 5, 6, 7]),
    ("metadata:lang", [1, 6, 8]),
    ('metadata.a.b = "x"', [4]),
    ('metadata.a.b != "x"', [8]),
    ('metadata:"a.b"', [4, 8]),
    ('-metadata:"a.b"', [1, 2, 3, 5, 6, 7]),
    ('sender_id = "alice" AND has_attachments = true OR mention_ids:"carol"', [4, 6]),
    ('(sender_id = "alice" AND has_attachments = true) OR mention_ids:"carol"', [4, 6]),
    ('sender_id = "carol" OR sender_id = "bob" AND state = active', [2, 3, 8]),
])
async def test_message_filters(stores: Stores, text: str, expected: list[int]) -> None:
    await message_world(stores)
    assert (await sequences(stores, text))[0] == expected


async def test_message_filters_compose_with_threads_and_apps(stores: Stores) -> None:
    await message_world(stores)
    assert (await sequences(stores, 'mention_ids:"bob"', thread_root=1))[0] == [10]
    assert (await sequences(stores, 'sender_id = "bob"', thread_root=1))[0] == [9]
    assert (await sequences(stores, 'sender_id = "bob"', app="beta"))[0] == [1]
    assert (await sequences(stores, 'sender_id = "carol"', app="beta"))[0] == []


async def test_message_filters_compose_with_positions(stores: Stores) -> None:
    """Pages hold matching messages only; more_before / more_after tell of matching
    ones, whatever lies between."""
    await message_world(stores)
    alice_or_carol = 'sender_id = "alice" OR sender_id = "carol"'  # 1, 3, 4, 6, 8
    assert await sequences(stores, alice_or_carol, limit=2) == ([6, 8], True, False)
    assert await sequences(stores, alice_or_carol, "before", 6, 2) == ([3, 4], True, True)
    assert await sequences(stores, alice_or_carol, "before", 3, 2) == ([1], False, True)
    assert await sequences(stores, alice_or_carol, "after", 1, 2) == ([3, 4], True, True)
    assert await sequences(stores, alice_or_carol, "after", 6, 5) == ([8], True, False)
    assert await sequences(stores, alice_or_carol, "after", 8, 5) == ([], True, False)
    assert await sequences(stores, alice_or_carol, "around", 5, 2) == ([4, 6], True, True)
    assert await sequences(stores, alice_or_carol, "around", 2, 4) == ([1, 3, 4, 6], False, True)
    assert await sequences(stores, "has_attachments = true", "before", 2, 5) == (
        [], False, True)
    assert await sequences(stores, "has_attachments = true", "after", 6, 5) == (
        [], True, False)


# --- ListUsers -----------------------------------------------------------------------


def person(user_id: str, display_name: str, metadata: dict[str, str], at_seconds: int
           ) -> User:
    at = T0 + at_seconds * SECOND
    return User("alpha", user_id, display_name, "", metadata, at, at)


async def user_world(stores: Stores) -> None:
    for user in (
        person("alice", "Alice", {"plan": "pro", "team.lead": "yes"}, 0),
        person("albert", "albert", {"plan": "free"}, 1),
        person("bob", "Bob", {}, 1),
        person("carol", "Álvaro", {"plan": "pro"}, 2),
        person("ali.baba", "Ali Baba", {"plan": "pro", "team": "x"}, 3),
        person("dave", "Dave", {"plan": "free"}, 4),
    ):
        await stores.users.create_user(user)
    await stores.users.delete_user("alpha", "dave", T0 + 9 * SECOND)
    await stores.users.create_user(replace(person("alice", "Alice", {"plan": "pro"}, 0),
                                           app_id="beta"))


async def users(stores: Stores, text: str = "", order_by: str = "", app: str = "alpha"
                ) -> list[str]:
    rows = await stores.users.list_users(
        app, 50, None, where=parse_filter(text, USER_FILTER),
        ordering=parse_order_by(order_by, USER_ORDERINGS))
    return [u.user_id for u in rows]


@pytest.mark.parametrize(("text", "order_by", "expected"), [
    ("", "", ["alice", "albert", "bob", "carol", "ali.baba", "dave"]),
    ("", "create_time desc", ["dave", "ali.baba", "carol", "bob", "albert", "alice"]),
    ("", "display_name", ["dave", "ali.baba", "alice", "bob", "albert", "carol"]),
    ("", "display_name desc", ["carol", "albert", "bob", "alice", "ali.baba", "dave"]),
    ('user_id = "ali*"', "", ["alice", "ali.baba"]),
    ('user_id = "al*"', "", ["alice", "albert", "ali.baba"]),
    ('user_id = "ali.baba"', "", ["ali.baba"]),
    ('user_id != "al*"', "", ["bob", "carol", "dave"]),
    ('display_name = "Ali*"', "", ["alice", "ali.baba"]),  # case-sensitive
    ('display_name = "A*"', "display_name", ["ali.baba", "alice"]),
    ('display_name = "Á*"', "", ["carol"]),
    ('display_name = "Ali Baba"', "", ["ali.baba"]),
    ('metadata.plan = "pro"', "", ["alice", "carol", "ali.baba"]),
    ('metadata.plan != "pro"', "", ["albert"]),  # bob has none; dave's went with him
    ("metadata:plan", "", ["alice", "albert", "carol", "ali.baba"]),
    ('metadata:"team.lead"', "", ["alice"]),
    ('metadata.team.lead = "yes"', "", ["alice"]),
    ("metadata:team", "", ["ali.baba"]),
    ("NOT metadata:plan", "", ["bob", "dave"]),
    ("state = deleted", "", ["dave"]),
    ("state = active", "create_time desc", ["ali.baba", "carol", "bob", "albert", "alice"]),
    (f'create_time = "{(T0 + SECOND).isoformat()}"', "", ["albert", "bob"]),
    (f'create_time > "{(T0 + SECOND).isoformat()}" AND state = active', "",
     ["carol", "ali.baba"]),
    ('metadata.plan = "pro" AND user_id = "ali*" OR display_name = "Álvaro"', "",
     ["alice", "carol", "ali.baba"]),
    ('(metadata.plan = "pro" AND user_id = "ali*") OR display_name = "albert"', "",
     ["alice", "albert", "ali.baba"]),
])
async def test_user_filters(stores: Stores, text: str, order_by: str,
                            expected: list[str]) -> None:
    await user_world(stores)
    assert await users(stores, text, order_by) == expected


async def test_user_filters_stay_in_the_app(stores: Stores) -> None:
    await user_world(stores)
    assert await users(stores, 'metadata.plan = "pro"', app="beta") == ["alice"]
    assert await users(stores, "state = active", app="gamma") == []


@pytest.mark.parametrize("order_by", [o.text for o in USER_ORDERINGS])
async def test_users_page_under_a_filter(stores: Stores, order_by: str) -> None:
    ordering = parse_order_by(order_by, USER_ORDERINGS)
    for n in range(11):  # display names repeat, creation times come in threes
        await stores.users.create_user(person(f"u{n:02}", f"name {n % 4}",
                                              {"odd": "yes"} if n % 2 else {}, n // 3))
    where = parse_filter("metadata:odd", USER_FILTER)
    whole = await users(stores, "metadata:odd", order_by)
    assert sorted(whole) == ["u01", "u03", "u05", "u07", "u09"]
    keys: dict[str, Callable[[User], int | str]] = {
        "create_time": lambda u: to_ms(u.create_time),
        "display_name": lambda u: u.display_name, "user_id": lambda u: u.user_id}
    seen: list[str] = []
    after = None
    while True:
        rows = await stores.users.list_users("alpha", 2, after, where=where, ordering=ordering)
        seen += [u.user_id for u in rows]
        if len(rows) < 2:
            break
        after = tuple(keys[key](rows[-1]) for key in ordering.keys)
    assert seen == whole

