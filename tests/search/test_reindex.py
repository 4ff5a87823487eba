"""Reindexing while people keep writing, and a new index on existing data: in one
process with the whole runtime (embedded store and index)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import AppBackend, Operator, User
from services.core.settings import load_settings
from services.messages.actions import Outgoing
from services.messages.models import MessageChanges
from services.runtime import Runtime, build_runtime
from services.search import indexer as indexer_module
from services.search.actions import MessageSearch
from services.search.index import Order
from tests.support.waiting import eventually

ALICE = User("alpha", "alice", "s1")
BACKEND = AppBackend("alpha", "k1")


async def start(data_dir: Path) -> Runtime:
    runtime = await build_runtime(load_settings(data_dir=data_dir,
                                                operator_token="caaso_" + "t" * 40))
    return runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    built = await start(tmp_path)
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob"):
        await built.users.ensure_user("alpha", user_id)
    yield built
    await built.close()


async def conversation(runtime: Runtime, title: str = "") -> str:
    created, _ = await runtime.conversations.do_create(
        Operator(), "alpha", NewConversation(Kind.GROUP, title=title,
                                             member_ids=["alice", "bob"], owner_id="alice"))
    return created.conversation_id


async def indexed(runtime: Runtime) -> set[tuple[str, int, str]]:
    """Every message the app's backend finds: (conversation, sequence, text)."""
    seen: set[tuple[str, int, str]] = set()
    token = ""
    while True:
        page = await runtime.search.search_messages(BACKEND, "alpha", MessageSearch(
            "", order=Order.OLDEST, page_size=50, page_token=token))
        seen |= {(s.message.conversation_id, s.message.sequence, s.message.text)
                 for s, _ in page.hits}
        token = page.next_page_token
        if not token:
            return seen


async def stored(runtime: Runtime, conversations: list[str]) -> set[tuple[str, int, str]]:
    live = set()
    for conversation_id in conversations:
        for message in await runtime.stores.messages.scan_messages(
                "alpha", conversation_id, 0, 10_000):
            if not message.deleted:
                live.add((conversation_id, message.sequence, message.text))
    return live


async def caught_up(runtime: Runtime) -> None:
    async def done() -> bool:
        return bool(runtime.indexer.consumer) and not await runtime.indexer.lag()

    await eventually(done, within=20)


async def test_a_reindex_during_traffic_ends_with_the_index_equal_to_the_store(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer_module, "SCAN_BATCH", 5)  # many steps to interleave with
    conversations = [await conversation(runtime, f"Room {n}") for n in range(3)]
    for n in range(150):
        await runtime.messages.do_send(ALICE, "alpha", conversations[n % 3],
                                       Outgoing(f"message number {n}"), f"r{n}")
    await caught_up(runtime)
    rng = random.Random(7)
    stop = asyncio.Event()

    async def traffic() -> int:
        done = 0
        while not stop.is_set():
            target = rng.choice(conversations)
            action = rng.random()
            if action < 0.1:  # a short-lived conversation: created, written, deleted
                doomed = await conversation(runtime, f"Doomed {done}")
                await runtime.messages.do_send(ALICE, "alpha", doomed,
                                               Outgoing(f"doomed {done}"), f"x{done}")
                await asyncio.sleep(0)
                await runtime.conversations.do_delete(Operator(), "alpha", doomed)
            elif action < 0.5:
                await runtime.messages.do_send(ALICE, "alpha", target,
                                               Outgoing(f"during {done}"), f"d{done}")
            else:
                last = (await runtime.stores.conversations.get_conversation(
                    "alpha", target))
                assert last is not None
                sequence = rng.randint(1, last.last_sequence)
                message = await runtime.stores.messages.get("alpha", target, sequence)
                if message is not None and not message.deleted:
                    if action < 0.8:
                        await runtime.messages.do_edit(ALICE, "alpha", target, sequence,
                                                       MessageChanges(text=f"edited {done}"))
                    else:
                        await runtime.messages.do_delete(ALICE, "alpha", target, sequence)
            done += 1
            wrote.set()
            await asyncio.sleep(0)  # let the reindex interleave with every write
        return done

    # Each batch the reindex writes waits for a change of the traffic first: they
    # interleave whatever the machine's speed (no test of a reindex that met nothing).
    wrote = asyncio.Event()
    scan_write = runtime.indexer.index.scan_write

    async def interleaved(*args: Any) -> Any:
        wrote.clear()
        await asyncio.wait_for(wrote.wait(), 30)
        return await scan_write(*args)

    monkeypatch.setattr(runtime.indexer.index, "scan_write", interleaved)
    writer = asyncio.create_task(traffic())
    lines: list[str] = []
    written = await runtime.indexer.reindex("alpha", lines.append)
    stop.set()
    changes = await writer
    assert changes >= 10 and written >= 150  # the reindex met many changes
    assert lines[0].startswith("reindexing app alpha") and lines[-1].endswith("done")
    await caught_up(runtime)
    assert await indexed(runtime) == await stored(runtime, conversations)
    counted = await runtime.indexer.index.count("alpha")
    assert counted == (len(await stored(runtime, conversations)), len(conversations))


def lose_the_index(data_dir: Path) -> None:
    for path in data_dir.glob("search.db*"):
        path.unlink()


async def test_a_new_index_on_existing_data_is_filled_from_the_store(
        tmp_path: Path) -> None:
    runtime = await start(tmp_path)
    try:
        await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
        for user_id in ("alice", "bob"):
            await runtime.users.ensure_user("alpha", user_id)
        conversations = [await conversation(runtime, "Old room")]
        for n in range(30):
            await runtime.messages.do_send(ALICE, "alpha", conversations[0],
                                           Outgoing(f"old message {n}"), f"o{n}")
        await caught_up(runtime)
        # The log forgets everything (as after its retention), then the index is lost.
        await runtime.stores.events.purge(runtime.clock.now() + timedelta(days=1))
    finally:
        await runtime.close()
    lose_the_index(tmp_path)
    runtime = await start(tmp_path)
    try:
        await caught_up(runtime)
        assert await indexed(runtime) == await stored(runtime, conversations)
        found = await runtime.search.search_conversations(BACKEND, "alpha", "old room",
                                                          False, 0, "")
        assert [shown.conversation.title for shown, _ in found.hits] == ["Old room"]
    finally:
        await runtime.close()
