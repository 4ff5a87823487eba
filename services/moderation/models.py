"""Restrictions: a mute or a ban of one user, in a whole app or in one conversation."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class RestrictionType(enum.Enum):
    MUTE = "mute"  # reads, does not write
    BAN = "ban"  # kept out


APP_WIDE = ""  # the conversation id of a restriction that applies in the whole app


@dataclass(frozen=True, slots=True)
class Restriction:
    app_id: str
    restriction_id: str
    user_id: str
    conversation_id: str  # APP_WIDE, or where it applies
    type: RestrictionType
    reason: str
    creator: str  # "operator", "apps/{app}/apiKeys/{key}" or "apps/{app}/users/{user}"
    create_time: datetime
    expire_time: datetime | None = None  # None: until lifted

    def applies(self, now: datetime) -> bool:
        return self.expire_time is None or now < self.expire_time

    def covers(self, conversation_id: str) -> bool:
        """Whether it applies in `conversation_id` (an app-wide one applies everywhere)."""
        return self.conversation_id in (APP_WIDE, conversation_id)
