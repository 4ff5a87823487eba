"""Health states and supervised background tasks: a failing task is restarted, its
component goes down once and comes back once, and a task never dies silently."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.core import health as health_module
from services.core.health import Background, Health


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "RESTART_FIRST", 0.001)
    monkeypatch.setattr(health_module, "RESTART_MAX", 0.002)


async def test_a_failing_task_is_restarted_and_said_down_once(
        caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    changes: list[tuple[str, bool]] = []
    health.listen(lambda name, ok, _: changes.append((name, ok)))
    background = Background(health)
    attempts = 0
    working = asyncio.Event()

    async def flaky(ok: object) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionError(f"attempt {attempts}")
        ok()  # type: ignore[operator]
        working.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="caas.health"):
        background.start("flaky", flaky)
        await asyncio.wait_for(working.wait(), 5)
    await background.close()
    assert attempts == 4
    assert changes == [("flaky", True), ("flaky", False), ("flaky", True)]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["flaky is down: ConnectionError: attempt 1; restarting",
                        "flaky is back"]
    assert health.states()["flaky"] == (True, "")


async def test_a_task_that_ends_is_restarted() -> None:
    health = Health()
    background = Background(health)
    runs = 0
    again = asyncio.Event()

    async def ends(ok: object) -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            again.set()

    background.start("ends", ends)
    await asyncio.wait_for(again.wait(), 5)
    await background.close()
    assert health.states()["ends"] == (False, "ended; restarting")


def test_readiness_follows_the_components_it_depends_on() -> None:
    health = Health()
    health.register("store-writes", readiness=True)
    health.register("fanout")
    health.down("fanout", "Redis away")
    assert health.ready()  # degraded, still ready
    health.down("store-writes", "disk full")
    assert not health.ready()
    health.up("store-writes")
    assert health.ready()
