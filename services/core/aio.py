"""Small asyncio helpers."""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most `seconds` for `event`; whether it was set.

    (Not `asyncio.wait_for(event.wait(), …)`: on Python 3.11 a cancellation arriving
    just as the event is set is swallowed there, and a loop around it never ends.)
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
