"""Each app's signing keys: which key signs, which keys verify, and rotation."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from datetime import timedelta

from services.auth.models import SigningKey
from services.auth.store import AuthStore
from services.auth.tokens import new_key_pair
from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.errors import StoreConflict
from services.core.ids import new_id
from services.keys.keyring import Keyring

CONTEXT = "signing_key.private"  # where private keys are sealed (services/keys)

# The contract caps a session's access-token lifetime at one hour.
MAX_SESSION_ACCESS_TTL = timedelta(hours=1)


# A key-id miss reloads an app's keys only for tokens issued after they were loaded,
# and, after a reload caused by a miss, not again for this long (so made-up key ids
# cannot flood the store).
_RELOAD_INTERVAL = 0.05
_CLOCK_SKEW = 2.0


@dataclass(frozen=True, slots=True)
class _Loaded:
    keys: list[SigningKey]
    wall_time: float  # when they were read from the store
    monotonic: float
    after_miss: bool  # read because a token named a key id not known then


class SigningKeys:
    def __init__(self, store: AuthStore, clock: Clock, cache_ttl: float,
                 verify_window: timedelta, keyring: Keyring) -> None:
        """`verify_window`: how long a replaced key keeps verifying. It must cover the
        longest token lifetime plus the time other processes may keep signing with a
        replaced key (their cache time). Private keys are sealed at rest by `keyring`."""
        self._store = store
        self._keyring = keyring
        self._clock = clock
        self._verify_window = verify_window
        self._cache: TtlCache[str, _Loaded] = TtlCache(cache_ttl, 50_000)

    async def _sealed(self, key: SigningKey) -> SigningKey:
        return replace(key, private_key=await self._keyring.seal(
            key.app_id, f"{CONTEXT}/{key.key_id}", key.private_key))

    async def _load(self, app_id: str, after_miss: bool = False) -> list[SigningKey]:
        keys = [replace(k, private_key=await self._keyring.open(
                    app_id, f"{CONTEXT}/{k.key_id}", k.private_key))
                for k in await self._store.signing_keys(app_id)]
        self._cache.put(app_id, _Loaded(keys, time.time(), time.monotonic(), after_miss))
        return keys

    async def _keys(self, app_id: str) -> list[SigningKey]:
        loaded = self._cache.get(app_id)
        return loaded.keys if loaded is not None else await self._load(app_id)

    async def primary(self, app_id: str) -> SigningKey:
        """The key that signs the app's new tokens; created on first use."""
        for key in await self._keys(app_id):
            if key.primary:
                return key
        private, public = new_key_pair()
        first = SigningKey(app_id, new_id(), private, public, self._clock.now())
        with contextlib.suppress(StoreConflict):  # another call created it first: use theirs
            await self._store.add_first_signing_key(await self._sealed(first))
        keys = await self._load(app_id)
        return next(k for k in keys if k.primary)

    async def verifying_key(self, app_id: str, key_id: str, issued_at: float
                            ) -> SigningKey | None:
        """The app's key `key_id` if it may verify now. A key unknown here is looked up
        again when the token is newer than what was loaded (another process may have
        rotated since), throttled per app."""
        loaded = self._cache.get(app_id)
        if loaded is None:
            keys = await self._load(app_id)
        else:
            keys = loaded.keys
            if (all(k.key_id != key_id for k in keys)
                    and issued_at >= loaded.wall_time - _CLOCK_SKEW
                    and (not loaded.after_miss
                         or time.monotonic() - loaded.monotonic > _RELOAD_INTERVAL)):
                keys = await self._load(app_id, after_miss=True)
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
        await self._store.rotate_signing_key(await self._sealed(key),
                                             retire_at=now + self._verify_window)
        await self._load(app_id)
        return key
