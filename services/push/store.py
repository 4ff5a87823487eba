"""The port of the push store: users' push channels and apps' Web Push keys."""

from __future__ import annotations

from typing import Protocol

from services.push.models import PushDevice, WebPushKey


class PushStore(Protocol):
    async def migrate(self) -> None: ...

    async def put_device(self, device: PushDevice, limit: int) -> tuple[PushDevice, bool]:
        """Registers the channel under its id: (the stored channel, True if new). One
        registered already (by this user or another of the app) takes the new keys,
        device id, locale, user and update time, keeping its create time. Raises
        CapacityExceeded, changing nothing, if that would give the user more than
        `limit`."""

    async def get_device(self, app_id: str, user_id: str, push_device_id: str
                         ) -> PushDevice | None: ...

    async def list_devices(self, app_id: str, user_id: str) -> list[PushDevice]:
        """The user's channels, oldest first."""

    async def delete_device(self, app_id: str, user_id: str, push_device_id: str) -> bool:
        """False if there was none."""

    async def delete_user_devices(self, app_id: str, user_id: str) -> int:
        """Deletes every channel of the user (deleted); how many."""

    async def get_key(self, app_id: str) -> WebPushKey | None: ...

    async def put_key(self, key: WebPushKey, replaces: bytes) -> WebPushKey:
        """Stores `key` if the app's current public key is `replaces` (b"": it has
        none); else changes nothing. The app's key after it (the winner of concurrent
        makers or rotations)."""
