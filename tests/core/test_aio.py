"""Small asyncio helpers."""

from __future__ import annotations

import asyncio

import pytest

from services.core.aio import KeyedLocks


async def test_one_body_per_key_at_a_time_and_keys_apart() -> None:
    locks = KeyedLocks()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    both = 0

    async def body(key: str) -> None:
        nonlocal both
        async with locks.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            both = max(both, inside["a"] + inside["b"])
            for _ in range(3):
                await asyncio.sleep(0)
            inside[key] -= 1

    await asyncio.gather(*[body(key) for key in "abababab"])
    assert most == {"a": 1, "b": 1}
    assert both == 2  # the two keys ran side by side
    assert len(locks) == 0  # nothing kept once nobody holds or waits


async def test_a_failing_body_and_a_cancelled_waiter_release_their_key() -> None:
    locks = KeyedLocks()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            entered.set()
            await release.wait()
            raise ValueError("boom")

    held = asyncio.create_task(holder())
    await entered.wait()
    waiter = asyncio.create_task(_enter(locks, "k"))
    await asyncio.sleep(0)
    assert len(locks) == 1 and not waiter.done()
    waiter.cancel()
    release.set()
    with pytest.raises(ValueError, match="boom"):
        await held
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(locks) == 0
    await _enter(locks, "k")  # free again
    assert len(locks) == 0


async def _enter(locks: KeyedLocks, key: str) -> None:
    async with locks.hold(key):
        pass
