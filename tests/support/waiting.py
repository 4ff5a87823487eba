"""Waiting for a state that a background task reaches without an event to await."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10,
                     every: float = 0.01) -> None:
    """Return once `check()` holds; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(every)  # polls: the state comes with no event to await
