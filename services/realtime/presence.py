"""Who is connected, per device: the presence of users of this process's streams."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Status(enum.IntEnum):
    """Values of caas.realtime.v1.Presence.Status."""

    OFFLINE = 1
    ONLINE = 2
    AWAY = 3


@dataclass(frozen=True, slots=True)
class Presence:
    user_id: str
    status: Status
    last_seen: datetime | None


class PresenceBoard:
    """Connected devices per user: online if any device is online, away if all are
    away, offline (with the time the last one left) when none is connected."""

    def __init__(self) -> None:
        # (app, user) → device → [streams open, status]
        self._devices: dict[tuple[str, str], dict[str, list[int]]] = {}
        self._last_seen: dict[tuple[str, str], datetime] = {}

    def get(self, app_id: str, user_id: str) -> Presence:
        devices = self._devices.get((app_id, user_id))
        if not devices:
            return Presence(user_id, Status.OFFLINE, self._last_seen.get((app_id, user_id)))
        online = any(status == Status.ONLINE for _, status in devices.values())
        return Presence(user_id, Status.ONLINE if online else Status.AWAY, None)

    def connect(self, app_id: str, user_id: str, device_id: str) -> bool:
        """A stream of the device opened; whether the user's presence changed."""
        before = self.get(app_id, user_id).status
        device = self._devices.setdefault((app_id, user_id), {}).setdefault(
            device_id, [0, Status.ONLINE])
        device[0] += 1
        return self.get(app_id, user_id).status != before

    def disconnect(self, app_id: str, user_id: str, device_id: str, now: datetime) -> bool:
        """A stream of the device closed; whether the user's presence changed."""
        before = self.get(app_id, user_id).status
        devices = self._devices.get((app_id, user_id), {})
        device = devices.get(device_id)
        if device is None:
            return False
        device[0] -= 1
        if device[0] == 0:
            del devices[device_id]
        if not devices:
            self._devices.pop((app_id, user_id), None)
            self._last_seen[(app_id, user_id)] = now
        return self.get(app_id, user_id).status != before

    def set(self, app_id: str, user_id: str, device_id: str, status: Status) -> bool:
        """Set one connected device (every device when `device_id` is empty); whether
        the user's presence changed."""
        before = self.get(app_id, user_id).status
        for name, device in self._devices.get((app_id, user_id), {}).items():
            if not device_id or name == device_id:
                device[1] = status
        return self.get(app_id, user_id).status != before
