"""Push channels of users' devices and the apps' Web Push keys (see
caas.push.v1.PushService)."""

from __future__ import annotations

from collections.abc import Mapping

from services.core.clock import Clock
from services.core.errors import (
    CapacityExceeded,
    FailedPrecondition,
    Unavailable,
    limit_exceeded,
    not_found,
)
from services.core.events import DomainEvent
from services.core.principal import Principal, require_app, require_backend, require_user_or_app
from services.keys.keyring import Keyring
from services.push.models import (
    MAX_PUSH_DEVICES,
    WEB_PUSH,
    PushDevice,
    WebPushKey,
    b64url,
    channel_id,
    from_b64url,
    new_key_pair,
    push_device_name,
)
from services.push.store import PushStore
from services.users.actions import user_not_found
from services.users.store import UserStore

VAPID_CONTEXT = "push.vapid"  # what an app's data key seals its VAPID private keys for
ATTEMPTS = 8  # of a key change losing to concurrent ones


def key_unknown() -> FailedPrecondition:
    return FailedPrecondition(
        "WEB_PUSH_KEY_UNKNOWN", "the subscription was made with a key that is not the app's: "
        "subscribe again with the key of GetWebPushKey")


class PushActions:
    def __init__(self, store: PushStore, users: UserStore, keyring: Keyring,
                 clock: Clock) -> None:
        self._store = store
        self._users = users
        self._keyring = keyring
        self._clock = clock

    async def register(self, principal: Principal, app_id: str, user_id: str,
                       provider: str, address: str, keys: Mapping[str, str], device_id: str,
                       locale: str) -> tuple[PushDevice, bool]:
        require_user_or_app(principal, app_id, user_id)
        if await self._users.get_user(app_id, user_id) is None:
            raise user_not_found(app_id, user_id)
        if provider == WEB_PUSH:
            current = await self.web_push_key(principal, app_id)
            asked = from_b64url(keys.get("application_server_key", ""))
            if asked and not current.knows(asked):
                raise key_unknown()
            keys = {**keys, "application_server_key": b64url(asked or current.public_key)}
        device = PushDevice(app_id, user_id, channel_id(app_id, provider, address), provider,
                            address, dict(keys), device_id, locale,
                            update_time=self._clock.now())
        try:
            return await self._store.put_device(device, MAX_PUSH_DEVICES)
        except CapacityExceeded as full:
            raise limit_exceeded(full.limit, full.maximum) from None

    async def get(self, principal: Principal, app_id: str, user_id: str,
                  push_device_id: str) -> PushDevice:
        require_user_or_app(principal, app_id, user_id)
        device = await self._store.get_device(app_id, user_id, push_device_id)
        if device is None:
            raise not_found("caas.dev/PushDevice",
                            push_device_name(app_id, user_id, push_device_id))
        return device

    async def list(self, principal: Principal, app_id: str, user_id: str) -> list[PushDevice]:
        require_user_or_app(principal, app_id, user_id)
        return await self._store.list_devices(app_id, user_id)

    async def delete(self, principal: Principal, app_id: str, user_id: str,
                     push_device_id: str) -> None:
        require_user_or_app(principal, app_id, user_id)
        if not await self._store.delete_device(app_id, user_id, push_device_id):
            raise not_found("caas.dev/PushDevice",
                            push_device_name(app_id, user_id, push_device_id))

    async def _new_key(self, app_id: str, before: WebPushKey | None) -> WebPushKey:
        public, private = new_key_pair()
        sealed = await self._keyring.seal(app_id, VAPID_CONTEXT, private)
        return WebPushKey(app_id, public, sealed, self._clock.now(),
                          before.public_key if before is not None else b"",
                          before.sealed_private_key if before is not None else b"")

    async def web_push_key(self, principal: Principal, app_id: str) -> WebPushKey:
        """The app's key, made on first ask (concurrent first asks agree on one)."""
        require_app(principal, app_id)
        key = await self._store.get_key(app_id)
        if key is not None:
            return key
        return await self._store.put_key(await self._new_key(app_id, None), b"")

    async def rotate_web_push_key(self, principal: Principal, app_id: str) -> WebPushKey:
        require_backend(principal, app_id, "the Web Push key")
        for _ in range(ATTEMPTS):
            current = await self._store.get_key(app_id)
            new = await self._new_key(app_id, current)
            stored = await self._store.put_key(
                new, current.public_key if current is not None else b"")
            if stored.public_key == new.public_key:
                return stored
        raise Unavailable("UNAVAILABLE", "the key kept changing: try again")

    async def private_key(self, key: WebPushKey, public_key: bytes) -> bytes:
        """The private key (32-byte scalar) of `public_key`, one of `key`'s."""
        sealed = (key.sealed_private_key if public_key == key.public_key
                  else key.previous_sealed_private_key)
        return await self._keyring.open(key.app_id, VAPID_CONTEXT, sealed)

    async def on_event(self, event: DomainEvent) -> None:
        """A deleted user's push channels go with them."""
        if event.type == "user.deleted":
            await self._store.delete_user_devices(event.app_id, event.data["user"])
