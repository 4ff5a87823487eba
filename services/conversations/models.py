"""Conversations and their members."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

PREVIEW_LENGTH = 200


class Kind(enum.StrEnum):
    DIRECT = "direct"
    GROUP = "group"
    CHANNEL = "channel"


class Role(enum.IntEnum):
    """Ordered: a higher role may do all a lower one may."""

    MEMBER = 1
    MODERATOR = 2
    ADMIN = 3
    OWNER = 4


@dataclass(frozen=True, slots=True)
class Preview:
    """The start of a conversation's last message."""

    sequence: int
    sender_id: str
    text: str
    deleted: bool
    create_time: datetime


def device_key(user_id: str, device_id: str, signature_key: bytes) -> str:
    """How an MLS group's leaves name a device of the app: its user, its id (neither
    holds a `/`) and its signature key's digest, so that a device deleted and registered
    again under the same id is another device (its old leaf must go)."""
    return f"{user_id}/{device_id}/{hashlib.sha256(signature_key).hexdigest()[:32]}"


def split_key(key: str) -> tuple[str, str]:
    """(user id, device id) of a device_key."""
    user_id, device_id, _ = key.split("/")
    return user_id, device_id


@dataclass(frozen=True, slots=True)
class MlsGroup:
    """What the MLS delivery service keeps of an end-to-end encrypted conversation's
    group (services/e2ee): its epoch, its cipher suite, the sequence number of the
    commit that began the epoch, and the device of each leaf."""

    epoch: int = 0
    cipher_suite: int = 0
    commit_sequence: int = 0
    leaves: tuple[str | None, ...] = ()  # device_key by leaf index; None: blank

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "cipher_suite": self.cipher_suite,
                "commit_sequence": self.commit_sequence, "leaves": list(self.leaves)}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> MlsGroup:
        return cls(stored["epoch"], stored["cipher_suite"], stored["commit_sequence"],
                   tuple(stored["leaves"]))

    def occupied(self) -> dict[int, str]:
        return {i: key for i, key in enumerate(self.leaves) if key is not None}


@dataclass(frozen=True, slots=True)
class Conversation:
    app_id: str
    conversation_id: str
    kind: Kind
    title: str
    image_uri: str
    metadata: Mapping[str, str]
    frozen: bool
    creator_id: str
    member_count: int
    last_sequence: int
    last_message: Preview | None
    create_time: datetime
    update_time: datetime
    last_activity_time: datetime
    # Each member below moderator sends at most once per this; 0: off.
    slow_mode: timedelta = timedelta(0)
    type: str = ""  # an app-defined type (PermissionPolicy.conversation_types); "": none
    mls: MlsGroup | None = None  # end-to-end encrypted: its MLS group; None: plain

    @property
    def encrypted(self) -> bool:
        return self.mls is not None


@dataclass(frozen=True, slots=True)
class ConversationChanges:
    """Settings to change; None leaves one as it is."""

    title: str | None = None
    image_uri: str | None = None
    metadata: Mapping[str, str] | None = None
    frozen: bool | None = None
    slow_mode: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Member:
    app_id: str
    conversation_id: str
    user_id: str
    role: Role
    join_time: datetime
    muted: bool = False
    archived: bool = False
    pinned: bool = False
    read_sequence: int = 0
    delivered_sequence: int = 0
    unread_count: int = 0
    read_time: datetime | None = None
    activity_time: datetime | None = None  # the conversation's last activity, for sorting
    # Messages after read_sequence that mention this member, from others, not deleted.
    unread_mention_count: int = 0


@dataclass(frozen=True, slots=True)
class MemberChanges:
    """Membership fields to change; None leaves one as it is."""

    role: Role | None = None
    muted: bool | None = None
    archived: bool | None = None
    pinned: bool | None = None


def direct_key(a: str, b: str) -> str:
    """The one key of the direct conversation between two users, in either order."""
    first, second = sorted((a, b))
    return f"{first}\x1f{second}"
