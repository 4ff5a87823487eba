"""Builders shared by the chat store contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.conversations.models import Conversation, Kind, Member, Role, direct_key
from services.messages.models import Draft
from services.runtime import Stores

T0 = datetime(2026, 4, 5, 6, 7, 8, 900_000, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def conversation(conversation_id: str, kind: Kind = Kind.GROUP, app_id: str = "alpha",
                 at: datetime = T0, creator: str = "alice") -> Conversation:
    return Conversation(app_id, conversation_id, kind, f"Title {conversation_id}", "",
                        {"topic": "x"}, False, creator, 0, 0, None, at, at, at)


def member(conversation_id: str, user_id: str, role: Role = Role.MEMBER,
           app_id: str = "alpha", at: datetime = T0) -> Member:
    return Member(app_id, conversation_id, user_id, role, at)


async def make_group(stores: Stores, conversation_id: str, users: list[str],
                     app_id: str = "alpha", kind: Kind = Kind.GROUP,
                     at: datetime = T0) -> Conversation:
    """A conversation owned by the first user, with the others as members."""
    members = [member(conversation_id, u, Role.OWNER if i == 0 else Role.MEMBER, app_id,
                      at + i * SECOND) for i, u in enumerate(users)]
    key = direct_key(users[0], users[1]) if kind is Kind.DIRECT else None
    created, _ = await stores.conversations.create_conversation(
        conversation(conversation_id, kind, app_id, at, users[0]), members, key)
    return created


async def send(stores: Stores, conversation_id: str, sender: str, text: str,
               request_id: str | None = None, at: datetime = T0, thread_root: int = 0,
               app_id: str = "alpha") -> int:
    message, _ = await stores.messages.append(
        app_id, conversation_id, Draft(sender, text, thread_root=thread_root),
        request_id or f"r-{sender}-{text}", at)
    return message.sequence
