"""The domain events of message changes, as the stores record them."""

from __future__ import annotations

from datetime import datetime

from services.conversations.events import member_event
from services.conversations.models import Member
from services.core.events import DomainEvent
from services.events.log import Emit
from services.messages.models import Message


def message_event(kind: str, message: Message, now: datetime, user_id: str = "",
                  **data: str) -> DomainEvent:
    """An event about a message; `user_id` is who acted (the sender by default). Those of
    a shadowed message reach its sender's streams alone (and the app's webhooks)."""
    if message.shadowed:
        return DomainEvent(kind, message.app_id, now, {"sequence": str(message.sequence),
                                                       **data},
                           message.conversation_id, message, message.sender_id, private=True)
    return DomainEvent(kind, message.app_id, now, {"sequence": str(message.sequence), **data},
                       message.conversation_id, message, user_id or message.sender_id)


def emit_mark(emit: Emit, before: Member, after: Member, now: datetime) -> None:
    """The event of a member's read or delivered position that moved (reading is also
    receiving: one read.updated says both)."""
    if after.read_sequence != before.read_sequence:
        emit(member_event("read.updated", after, now))
    elif after.delivered_sequence != before.delivered_sequence:
        emit(member_event("delivered.updated", after, now))
