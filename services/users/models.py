"""Users of an app and their blocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    app_id: str
    user_id: str
    display_name: str
    image_uri: str
    metadata: Mapping[str, str]
    create_time: datetime
    update_time: datetime
    delete_time: datetime | None = None
    role: str = ""  # the app role: "" is `user` (services/moderation/permissions.py)

    @property
    def deleted(self) -> bool:
        return self.delete_time is not None


@dataclass(frozen=True, slots=True)
class UserChanges:
    """Profile fields to change; None leaves a field as it is."""

    display_name: str | None = None
    image_uri: str | None = None
    metadata: Mapping[str, str] | None = field(default=None)
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    app_id: str
    user_id: str
    blocked_id: str
    create_time: datetime
