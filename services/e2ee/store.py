"""The port of the device directory: devices and their KeyPackages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.e2ee.models import Claimed, Device


class DeviceStore(Protocol):
    async def create_device(self, device: Device, limit: int) -> tuple[Device, bool]:
        """Registers the device; the one already registered under its id (and False)
        if there is one, whatever its key. Raises CapacityExceeded past `limit`
        devices of the user."""

    async def get_device(self, app_id: str, user_id: str, device_id: str) -> Device | None:
        """The device, with its stock."""

    async def list_devices(self, app_id: str, user_ids: Sequence[str], stock: bool = True
                           ) -> list[Device]:
        """The devices of these users, oldest first; with their stock (else counts of
        0: cheaper, for who is registered)."""

    async def delete_device(self, app_id: str, user_id: str, device_id: str) -> bool:
        """Deletes it and its KeyPackages; False if there was none."""

    async def delete_session_devices(self, app_id: str, user_id: str, session_ids: Sequence[str]
                                     ) -> list[str]:
        """Deletes the devices these sessions registered; their ids."""

    async def add_key_packages(self, app_id: str, user_id: str, device_id: str,
                               packages: Sequence[tuple[bytes, bytes]], last_resort: bytes,
                               limit: int) -> Device | None:
        """Adds (reference, KeyPackage) pairs (references held already are skipped) and
        replaces the last-resort one when given; None if the device is gone. Raises
        CapacityExceeded, adding nothing, past `limit` held."""

    async def claim(self, app_id: str, devices: Sequence[Device], low: int,
                    now: datetime) -> list[Claimed]:
        """Takes one KeyPackage of each device (for good), or its last-resort one (which
        stays); a device with neither is left out. A device left with fewer than `low`
        (or handing out its last-resort one) gets the `e2ee.key_packages_low` event
        (models.low_stock), in the same transaction."""
