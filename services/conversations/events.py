"""The domain events of conversation and member changes, as the stores record them."""

from __future__ import annotations

from datetime import datetime

from services.conversations.models import Member
from services.core.events import DomainEvent
from services.events.log import Emit


def emit_member_changes(emit: Emit, before: Member, after: Member, now: datetime) -> None:
    """A role change is news to every member; settings (mute, archive, pin) only to the
    member themself."""
    if after.role is not before.role:
        emit(member_event("member.updated", after, now))
    if (before.muted, before.archived, before.pinned) != (after.muted, after.archived,
                                                          after.pinned):
        emit(member_event("member.updated", after, now, private=True))


def member_event(kind: str, member: Member, now: datetime, private: bool = False
                 ) -> DomainEvent:
    return DomainEvent(kind, member.app_id, now, conversation_id=member.conversation_id,
                       payload=member, user_id=member.user_id, private=private)
