"""Erasure operations in the process, on both engines, with a clock the test moves: a
process that dies mid-erasure (after claiming, or in a failing step) leaves the
operation to the next claim once its lease runs out, which resumes at the saved
step; no step's work is counted twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.compliance.exports import EXPIRED, expire_exports
from services.compliance.operations import LEASE, RETRY, OperationWorker
from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import Operator, User
from services.media.delivery import export_key
from services.messages.actions import Outgoing
from services.runtime import Runtime, build_runtime
from tests.store.conftest import engine_settings
from tests.support.clock import MovableClock

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


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


async def test_a_crashed_erasure_resumes_where_it_stopped(
        world: tuple[Runtime, MovableClock]) -> None:
    runtime, clock = world
    made, _ = await runtime.conversations.do_create(
        User("alpha", "alice", "s1"), "alpha", NewConversation(Kind.GROUP, member_ids=["bob"]))
    cid = made.conversation_id
    for n in range(3):
        await runtime.messages.do_send(User("alpha", "alice", "s1"), "alpha", cid,
                                       Outgoing(f"text {n}"), f"r{n}")
    op = await runtime.user_data.erase_user(Operator(), "alpha", "alice")
    assert (op.stage, op.progress) == ("profile", 0)

    # A process claims it and dies at once: nobody else takes it during the lease.
    assert await runtime.stores.operations.claim(clock.now(), clock.now() + LEASE)
    worker = runtime.operations
    assert not await worker.work_once()

    # After the lease, another process takes it, and fails in the `copies` step.
    clock.moment += LEASE + timedelta(seconds=1)
    events: Any = runtime.stores.events
    real_redact = events.redact
    failures = [RuntimeError("the store went away")]

    async def failing(*args: Any) -> list[int]:
        if failures:
            raise failures.pop()
        return await real_redact(*args)  # type: ignore[no-any-return]

    events.redact = failing
    with pytest.raises(RuntimeError, match="went away"):
        await worker.work_once()
    saved = await runtime.stores.operations.get("alpha", op.operation_id)
    assert saved is not None
    assert saved.stage == "copies" and saved.counts["messages_erased"] == 3
    assert saved.attempts == 2
    assert not await worker.work_once()  # it waits RETRY before another try

    clock.moment += RETRY + timedelta(seconds=1)
    elsewhere = OperationWorker(runtime.stores.operations, worker._runners, clock)
    assert await elsewhere.work_once()
    done = await runtime.stores.operations.get("alpha", op.operation_id)
    assert done is not None and done.done and done.progress == 100
    assert done.counts["messages_erased"] == 3  # not counted again
    assert done.counts["events_redacted"] >= 3
    assert done.attempts == 3
    left = await runtime.stores.messages.scan_messages("alpha", cid, 0, 10)
    assert [(m.sequence, m.deleted, m.text) for m in left] == [
        (1, True, ""), (2, True, ""), (3, True, "")]
    assert not await elsewhere.work_once()  # nothing left to do


async def test_exports_are_deleted_after_their_time(world: tuple[Runtime, MovableClock]
                                                    ) -> None:
    runtime, clock = world
    op = await runtime.user_data.export_user(Operator(), "alpha", "alice")
    assert await runtime.operations.work_once()
    key = export_key("alpha", "alice", op.operation_id)
    assert await runtime.blobs.stat(key)
    ttl = runtime.settings.export_ttl
    clock.moment += ttl - timedelta(seconds=1)
    assert await expire_exports(runtime.stores.operations, runtime.blobs, clock.now(),
                                ttl) == 0
    clock.moment += timedelta(seconds=2)
    assert await expire_exports(runtime.stores.operations, runtime.blobs, clock.now(),
                                ttl) == 1
    assert await runtime.blobs.stat(key) is None
    done = await runtime.stores.operations.get("alpha", op.operation_id)
    assert done is not None and done.counts[EXPIRED] == 1
    assert await expire_exports(runtime.stores.operations, runtime.blobs, clock.now(),
                                ttl) == 0  # once
