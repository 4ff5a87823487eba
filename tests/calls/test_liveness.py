"""Devices in a call without a stream leave it, whichever process their stream was on:
every process's sweeper looks at who is in a call and asks presence (which streams
tell) whether each device has a stream. In process, SQLite, with a clock the test moves
and `check_devices` called by the test (the background sweep's first look is half the
grace of real time away, 15 s, far beyond the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.calls import models
from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import Operator, User
from services.core.settings import load_settings
from services.runtime import Runtime, build_runtime
from tests.support.clock import MovableClock

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
async def clock() -> MovableClock:
    return MovableClock(T0)


@pytest.fixture
async def runtime(tmp_path: Path, clock: MovableClock) -> AsyncIterator[Runtime]:
    built = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40), clock=clock)
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob", "carol"):
        await built.users.ensure_user("alpha", user_id)
    yield built
    await built.close()


async def test_devices_without_a_stream_are_dropped_by_the_sweep(
        runtime: Runtime, clock: MovableClock) -> None:
    alice, bob, carol = (User("alpha", u, f"s-{u}") for u in ("alice", "bob", "carol"))
    group, _ = await runtime.conversations.do_create(
        alice, "alpha", NewConversation(Kind.GROUP, member_ids=["bob", "carol"]))
    conversation = group.conversation_id
    call, _ = await runtime.calls.start(alice, "alpha", conversation, "audio", "a1", "k1", [])
    await runtime.calls.accept(bob, "alpha", conversation, call.call_id, "b1")
    await runtime.calls.accept(carol, "alpha", conversation, call.call_id, "c1")
    # Alice's device holds a stream (what a stream tells presence); bob's and carol's none.
    await runtime.presence.connect("alpha", "alice", "a1")
    assert await runtime.calls.check_devices() == 0  # first seen without a stream: noted
    clock.moment = T0 + timedelta(seconds=29)
    assert await runtime.calls.check_devices() == 0  # within the grace
    clock.moment = T0 + timedelta(seconds=30)
    assert await runtime.calls.check_devices() == 2
    after = await runtime.calls.get(alice, "alpha", conversation, call.call_id)
    assert {p.user_id: (p.state, p.leave_reason) for p in after.participants} == {
        "alice": (models.LEFT, models.CALL_ENDED),  # alone: the call ended
        "bob": (models.LEFT, models.CONNECTION_LOST),
        "carol": (models.LEFT, models.CONNECTION_LOST)}
    assert after.ended and after.outcome == models.COMPLETED
    assert await runtime.calls.check_devices() == 0  # nothing under way any more


async def test_a_device_back_within_the_grace_stays(runtime: Runtime,
                                                    clock: MovableClock) -> None:
    alice, bob = User("alpha", "alice", "s-a"), User("alpha", "bob", "s-b")
    direct, _ = await runtime.conversations.do_create(
        alice, "alpha", NewConversation(Kind.DIRECT, member_ids=["bob"]))
    conversation = direct.conversation_id
    call, _ = await runtime.calls.start(alice, "alpha", conversation, "audio", "a1", "k1", [])
    await runtime.calls.accept(bob, "alpha", conversation, call.call_id, "b1")
    await runtime.presence.connect("alpha", "alice", "a1")
    assert await runtime.calls.check_devices() == 0  # bob's device: seen missing
    clock.moment = T0 + timedelta(seconds=20)
    await runtime.presence.connect("alpha", "bob", "b1")  # back
    assert await runtime.calls.check_devices() == 0
    clock.moment = T0 + timedelta(seconds=40)  # past the grace since first missing
    assert await runtime.calls.check_devices() == 0  # connected: forgotten
    now = await runtime.calls.get(alice, "alpha", conversation, call.call_id)
    assert now.in_call("bob", "b1") and not now.ended
