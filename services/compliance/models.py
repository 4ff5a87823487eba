"""Retention policies and legal holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MAX_HOLDS = 1000  # per app


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    app_id: str
    messages: timedelta | None = None  # None: kept for ever
    # A conversation kind ("group") or app-defined type → its retention, instead.
    types: Mapping[str, timedelta] = field(default_factory=dict)
    update_time: datetime | None = None  # None: never set

    def retention(self, kind: str, conversation_type: str) -> timedelta | None:
        """How long a conversation of this kind and type keeps its messages."""
        if conversation_type and conversation_type in self.types:
            return self.types[conversation_type]
        return self.types.get(kind, self.messages)


@dataclass(frozen=True, slots=True)
class LegalHold:
    app_id: str
    hold_id: str
    conversation_id: str  # one of the two is set
    user_id: str
    reason: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Holds:
    """What an app's holds keep."""

    conversations: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    @classmethod
    def of(cls, holds: list[LegalHold]) -> Holds:
        return cls(frozenset(h.conversation_id for h in holds if h.conversation_id),
                   frozenset(h.user_id for h in holds if h.user_id))
