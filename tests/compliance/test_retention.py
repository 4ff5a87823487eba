"""The retention sweep on both engines, with a clock the test moves: expired messages
become tombstones (content, previews and search entries gone, sequences kept), held
conversations and users keep theirs, per-kind retention beats the app's, and a
sweep run twice deletes nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import Operator, User
from services.messages.actions import Outgoing
from services.runtime import Runtime, build_runtime
from tests.store.conftest import engine_settings
from tests.support.clock import MovableClock

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "mongodb"])
async def world(request: pytest.FixtureRequest, tmp_path: Path
                ) -> AsyncIterator[tuple[Runtime, MovableClock]]:
    clock = MovableClock(T0)
    runtime = await build_runtime(engine_settings(request, tmp_path), clock=clock)
    await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob"):
        await runtime.users.ensure_user("alpha", user_id)
    yield runtime, clock
    await runtime.close()


async def conversation(runtime: Runtime, kind: Kind = Kind.GROUP) -> str:
    made, _ = await runtime.conversations.do_create(
        User("alpha", "alice", "s1"), "alpha", NewConversation(kind, member_ids=["bob"]))
    return made.conversation_id


async def send(runtime: Runtime, cid: str, sender: str, text: str) -> None:
    await runtime.messages.do_send(User("alpha", sender, "s1"), "alpha", cid,
                                   Outgoing(text), text)


async def texts(runtime: Runtime, cid: str) -> list[str]:
    page = await runtime.stores.messages.scan_messages("alpha", cid, 0, 100)
    return [m.text if not m.deleted else "<deleted>" for m in page]


async def test_expired_messages_become_tombstones(world: tuple[Runtime, MovableClock]
                                                  ) -> None:
    runtime, clock = world
    cid = await conversation(runtime)
    await send(runtime, cid, "alice", "old one")
    clock.moment = T0 + 2 * DAY
    await send(runtime, cid, "bob", "old two")
    clock.moment = T0 + 9 * DAY
    await send(runtime, cid, "alice", "recent")
    assert await runtime.sweeper.sweep() == 0  # no policy: everything is kept

    await runtime.retention.put_policy(Operator(), "alpha", 7 * DAY, {})
    clock.moment = T0 + 10 * DAY
    assert await runtime.sweeper.sweep() == 2
    assert await texts(runtime, cid) == ["<deleted>", "<deleted>", "recent"]
    made = await runtime.stores.conversations.get_conversation("alpha", cid)
    assert made is not None and made.last_sequence == 3  # sequences kept
    assert made.last_message is not None and made.last_message.text == "recent"
    assert await runtime.sweeper.sweep() == 0  # idempotent

    clock.moment = T0 + 17 * DAY
    assert await runtime.sweeper.sweep("alpha") == 1
    made = await runtime.stores.conversations.get_conversation("alpha", cid)
    assert made is not None and made.last_message is not None
    assert (made.last_message.text, made.last_message.deleted) == ("", True)


async def test_holds_keep_and_types_decide(world: tuple[Runtime, MovableClock]) -> None:
    runtime, clock = world
    held, by_bob, short, plain = [await conversation(runtime) for _ in range(4)]
    direct = await conversation(runtime, Kind.DIRECT)
    for cid in (held, by_bob, short, plain, direct):
        await send(runtime, cid, "alice", "from alice")
        await send(runtime, cid, "bob", "from bob")
    await runtime.retention.put_policy(Operator(), "alpha", 30 * DAY, {"direct": 2 * DAY})
    await runtime.retention.create_hold(Operator(), "alpha", held, "", "litigation")
    bob_hold = await runtime.retention.create_hold(Operator(), "alpha", "", "bob", "audit")

    clock.moment = T0 + 3 * DAY  # past the direct conversations' 2 days only
    assert await runtime.sweeper.sweep() == 1
    assert await texts(runtime, direct) == ["<deleted>", "from bob"]  # bob is held
    assert await texts(runtime, plain) == ["from alice", "from bob"]

    clock.moment = T0 + 31 * DAY
    await runtime.sweeper.sweep()
    assert await texts(runtime, held) == ["from alice", "from bob"]
    for cid in (by_bob, short, plain):
        assert await texts(runtime, cid) == ["<deleted>", "from bob"]

    await runtime.retention.delete_hold(Operator(), "alpha", bob_hold.hold_id)
    await runtime.sweeper.sweep()
    assert await texts(runtime, plain) == ["<deleted>", "<deleted>"]
    assert await texts(runtime, held) == ["from alice", "from bob"]  # still held
