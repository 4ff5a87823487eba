"""Rotating the local master key, online: a new master key becomes the active one
(processes notice at their next wrap), every data key is rewrapped with it, and the
old master keys, once they wrap nothing, are retired. Until then they keep unwrapping:
data keys not rewrapped yet still open everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from services.keys.keyring import Keyring
from services.keys.provider import LocalKeyProvider

# After the switch, a process that read the old active key just before it may still
# store a data key wrapped by it: the last sweep comes after this long.
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Rotation:
    active: str
    rewrapped: int
    retired: list[str]


async def rotate_master_key(keyring: Keyring, provider: LocalKeyProvider,
                            progress: Callable[[int], None] = lambda _: None) -> Rotation:
    active = provider.add_master_key()
    rewrapped = await keyring.rewrap_all(progress)
    await asyncio.sleep(SETTLE_SECONDS)
    rewrapped += await keyring.rewrap_all(progress)
    retired = [kek for kek in provider.master_keys() if kek != active]
    for kek in retired:
        provider.retire(kek)
    return Rotation(active, rewrapped, retired)
