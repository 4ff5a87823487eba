"""Envelope encryption's pieces: data keys, and what a key-encryption key wraps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

APP_OWNER = "app"  # the owner of an app's own data key


def user_owner(user_id: str) -> str:
    """The owner of a user's data key (crypto-shredding: erase it, and their content is
    unreadable)."""
    return f"user:{user_id}"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key encrypted by the key-encryption key `kek_id` of a key provider."""

    kek_id: str
    blob: bytes


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key as stored: only ever wrapped."""

    app_id: str
    owner: str  # APP_OWNER, or user_owner(...)
    key_id: str
    wrapped: WrappedKey
    create_time: datetime
