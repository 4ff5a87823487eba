"""Slow mode in the message store, on every engine: a sender's next message waits for
the interval, checked in the send's own transaction; a retried send still returns the
first; the conversation keeps its setting."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.conversations.models import ConversationChanges
from services.conversations.mongo_store import MongoConversationStore
from services.core.db.mongo import MongoDatabase
from services.core.events import InProcessBus
from services.events.mongo_log import MongoEventLog
from services.messages.models import Draft
from services.messages.store import TooSoon
from services.runtime import Stores
from tests.store.chat import SECOND, T0, conversation, make_group, member
from tests.support.servers import ExternalServer

MINUTE = timedelta(minutes=1)


async def test_a_sender_waits_out_the_interval(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    append = stores.messages.append
    first, _ = await append("alpha", "g1", Draft("bob", "one"), "r1", T0, MINUTE)
    with pytest.raises(TooSoon) as early:
        await append("alpha", "g1", Draft("bob", "two"), "r2", T0 + 59 * SECOND, MINUTE)
    assert early.value.ready_at == T0 + MINUTE
    again, created = await append("alpha", "g1", Draft("bob", "one"), "r1",
                                  T0 + 30 * SECOND, MINUTE)  # a retry: the first send
    assert (again.sequence, created) == (first.sequence, False)
    await append("alpha", "g1", Draft("alice", "hi"), "r3", T0 + 30 * SECOND, MINUTE)
    second, created = await append("alpha", "g1", Draft("bob", "two"), "r2", T0 + MINUTE,
                                   MINUTE)
    assert (second.sequence, created) == (3, True)  # nothing was taken by the refusal
    head = await stores.conversations.get_conversation("alpha", "g1")
    assert head is not None and head.last_sequence == 3


async def test_sends_without_slow_mode_are_recorded_for_later(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    await stores.messages.append("alpha", "g1", Draft("bob", "one"), "r1", T0)
    with pytest.raises(TooSoon):  # slow mode switched on just after bob's send
        await stores.messages.append("alpha", "g1", Draft("bob", "two"), "r2",
                                     T0 + SECOND, MINUTE)


async def test_the_conversation_keeps_its_slow_mode(stores: Stores) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    changed = await stores.conversations.update_conversation(
        "alpha", "g1", ConversationChanges(slow_mode=30 * SECOND), T0 + SECOND)
    assert changed is not None and changed.slow_mode == 30 * SECOND
    titled = await stores.conversations.update_conversation(
        "alpha", "g1", ConversationChanges(title="kept"), T0 + 2 * SECOND)
    assert titled is not None and titled.slow_mode == 30 * SECOND
    stored = await stores.conversations.get_conversation("alpha", "g1")
    assert stored == titled
    off = await stores.conversations.update_conversation(
        "alpha", "g1", ConversationChanges(slow_mode=timedelta(0)), T0 + 3 * SECOND)
    assert off is not None and off.slow_mode == timedelta(0)


async def test_conversations_made_before_slow_mode_have_it_off_mongodb(
        mongo: ExternalServer) -> None:
    db = await MongoDatabase.open(mongo.url, f"t{uuid.uuid4().hex[:12]}")
    try:
        log = MongoEventLog(db, InProcessBus(), lambda event, position: b"")
        store = MongoConversationStore(db, log)
        await store.migrate()
        await store.create_conversation(conversation("g1"), [member("g1", "alice")], None)
        await db.db["conversations"].update_many({}, {"$unset": {"slow_mode_ms": ""}})
        old = await store.get_conversation("alpha", "g1")
        assert old is not None and old.slow_mode == timedelta(0)
    finally:
        await db.client.drop_database(db.db.name)
        await db.close()
