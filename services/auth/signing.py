"""Each app's signing keys: which key signs, which keys verify, and rotation."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

from services.auth.models import SigningKey
from services.auth.store import AuthStore
from services.auth.tokens import new_key_pair
from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.errors import StoreConflict
from services.core.ids import new_id

# The contract caps a session's access-token lifetime at one hour.
MAX_SESSION_ACCESS_TTL = timedelta(hours=1)


class SigningKeys:
    def __init__(self, store: AuthStore, clock: Clock, cache_ttl: float,
                 verify_window: timedelta) -> None:
        """`verify_window`: how long a replaced key keeps verifying (the longest token life)."""
        self._store = store
        self._clock = clock
        self._verify_window = verify_window
        self._cache: TtlCache[str, list[SigningKey]] = TtlCache(cache_ttl, 50_000)
        self._last_reload: dict[str, float] = {}

    async def _load(self, app_id: str) -> list[SigningKey]:
        keys = await self._store.signing_keys(app_id)
        self._cache.put(app_id, keys)
        self._last_reload[app_id] = time.monotonic()
        return keys

    async def primary(self, app_id: str) -> SigningKey:
        """The key that signs the app's new tokens; created on first use."""
        keys = self._cache.get(app_id) or await self._load(app_id)
        for key in keys:
            if key.primary:
                return key
        private, public = new_key_pair()
        first = SigningKey(app_id, new_id(), private, public, self._clock.now())
        with contextlib.suppress(StoreConflict):  # another call created it first: use theirs
            await self._store.add_first_signing_key(first)
        keys = await self._load(app_id)
        return next(k for k in keys if k.primary)

    async def verifying_key(self, app_id: str, key_id: str) -> SigningKey | None:
        """The app's key `key_id` if it may verify now; reloads on a miss (at most once a
        second per app, so made-up key ids cannot flood the store)."""
        keys = self._cache.get(app_id)
        if keys is None or (all(k.key_id != key_id for k in keys)
                            and time.monotonic() - self._last_reload.get(app_id, 0.0) > 1.0):
            keys = await self._load(app_id)
        now = self._clock.now()
        return next((k for k in keys if k.key_id == key_id and k.verifies_at(now)), None)

    async def valid(self, app_id: str) -> list[SigningKey]:
        """Every key of the app that still verifies, newest first."""
        now = self._clock.now()
        return [k for k in await self._load(app_id) if k.verifies_at(now)]

    async def rotate(self, app_id: str) -> SigningKey:
        """Make a new primary key; the old one verifies for `verify_window` more."""
        now = self._clock.now()
        private, public = new_key_pair()
        key = SigningKey(app_id, new_id(), private, public, now)
        await self._store.rotate_signing_key(key, retire_at=now + self._verify_window)
        await self._load(app_id)
        return key
