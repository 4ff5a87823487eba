"""The port of the push store: users' push channels and apps' Web Push keys."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from services.push.models import (
    NotificationSettings,
    Outcome,
    Push,
    PushConfig,
    PushDevice,
    WebPushKey,
)


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

    async def forget_user(self, app_id: str, user_id: str) -> int:
        """Deletes what the store holds of a deleted user — channels, notification
        settings, pushes; how many channels went."""

    async def get_key(self, app_id: str) -> WebPushKey | None: ...

    async def put_key(self, key: WebPushKey, replaces: bytes) -> WebPushKey:
        """Stores `key` if the app's current public key is `replaces` (b"": it has
        none); else changes nothing. The app's key after it (the winner of concurrent
        makers or rotations)."""

    async def has_devices(self, app_id: str) -> bool:
        """Whether any user of the app has a channel."""

    async def devices_of(self, app_id: str, user_ids: Collection[str]) -> list[PushDevice]:
        """The channels of all those users."""

    async def get_config(self, app_id: str) -> PushConfig | None: ...

    async def put_config(self, config: PushConfig) -> None: ...

    async def get_settings(self, app_id: str, user_ids: Collection[str]
                           ) -> dict[str, NotificationSettings]:
        """The settings of those users who have some."""

    async def put_settings(self, settings: NotificationSettings) -> None: ...

    async def enqueue(self, pushes: Sequence[Push], window: timedelta) -> int:
        """Queue each push for its channel (one transaction for all): skipped if the
        channel's newest push of its group carries its event already (`through`; events
        come in the log's order, so an event handed over again changes nothing); joined
        to the group's pending push if no sender holds it (`count` + 1, its content and
        `through`); else added — due when its `due_time` says or, if the group's last
        push was sent less than `window` before, when the window ends. How many were
        added or joined."""

    async def cancel_group(self, app_id: str, user_id: str, group: str, sequence: int,
                           now: datetime) -> list[tuple[str, str]]:
        """Cancel the group's pending pushes to the user's channels that no sender holds
        and tell of messages up to `sequence` (read); (push device id, provider) of the
        channels whose newest push of the group was sent, is not a clear and tells of
        such a message: what they show is to be cleared."""

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Push]:
        """Up to `limit` pending pushes due by `now` that no sender holds, soonest due
        first, held until `now + lease` (a sender that dies lets them go)."""

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record claimed pushes' outcomes in one write: each one's attempt and new
        state (pending again: due at its `due_time`), releasing it; sent sets its send
        time."""

    async def list_pushes(self, app_id: str, user_id: str, limit: int,
                          before: tuple[int, str] | None) -> list[Push]:
        """The user's pushes, newest first (by creation time and id), after `before`
        (creation time in epoch ms, id)."""

    async def purge_pushes(self, before: datetime) -> int:
        """Delete the pushes created before `before` that are no longer pending."""
