"""Devices, KeyPackages and the MLS group state of end-to-end encrypted conversations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from services.conversations.models import device_key
from services.core.events import DomainEvent

# Stated in the contract (E2eeService).
MAX_DEVICES_PER_USER = 20
MAX_KEY_PACKAGES = 500
LOW_KEY_PACKAGES = 10


def device_name(app_id: str, user_id: str, device_id: str) -> str:
    return f"apps/{app_id}/users/{user_id}/devices/{device_id}"


def fingerprint(signature_key: bytes) -> str:
    digest = hashlib.sha256(signature_key).hexdigest()
    return " ".join(digest[i:i + 4] for i in range(0, len(digest), 4))


@dataclass(frozen=True, slots=True)
class Device:
    app_id: str
    user_id: str
    device_id: str
    cipher_suite: int
    signature_key: bytes
    session_id: str  # the session that registered it; "" for the app's backend
    create_time: datetime
    key_package_count: int = 0
    has_last_resort: bool = False

    @property
    def key(self) -> str:
        return device_key(self.user_id, self.device_id, self.signature_key)

    @property
    def name(self) -> str:
        return device_name(self.app_id, self.user_id, self.device_id)

    @property
    def identity(self) -> bytes:
        """What its MLS BasicCredential holds."""
        return self.name.encode()


@dataclass(frozen=True, slots=True)
class Claimed:
    device: Device
    key_package: bytes
    last_resort: bool


def low_stock(device: Device, left: int, now: datetime) -> DomainEvent:
    """The event telling a device's user (their streams only) to upload KeyPackages."""
    return DomainEvent("e2ee.key_packages_low", device.app_id, now,
                       {"device": device.name, "count": str(left)}, user_id=device.user_id,
                       private=True)
