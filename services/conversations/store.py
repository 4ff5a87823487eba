"""The conversations store port. Every method is scoped by app id.

Each write records its domain events in its own transaction (services.events.log):
conversation.created / updated / deleted, member.added / removed / updated (a role
change for everyone; the member's own settings as a private event)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.conversations.listing import BY_JOIN, INBOX
from services.conversations.models import (
    Conversation,
    ConversationChanges,
    Member,
    MemberChanges,
)
from services.core.filtering import Expr, Ordering

Position = tuple[int, str]  # (time in ms, id)
# Position in a listing of some Ordering (services/core/filtering.py): a value per key.
Keyset = tuple[str | int, ...]


class ConversationStore(Protocol):
    async def migrate(self) -> None:
        """Bring this store's schema and indexes up to date; safe on every start."""

    async def create_conversation(self, conversation: Conversation, members: Sequence[Member],
                                  direct_key: str | None) -> tuple[Conversation, bool]:
        """Insert a conversation with its first members, atomically; (stored, created).

        With `direct_key`, a direct conversation with that key that exists already is
        returned instead (created False). Raises StoreConflict if the id is taken.
        """

    async def get_conversation(self, app_id: str, conversation_id: str) -> Conversation | None:
        """The conversation, unless unknown or deleted."""

    async def update_conversation(self, app_id: str, conversation_id: str,
                                  changes: ConversationChanges, now: datetime
                                  ) -> Conversation | None: ...

    async def delete_conversation(self, app_id: str, conversation_id: str, now: datetime
                                  ) -> bool:
        """Delete it for everyone (its members go with it); False if unknown."""

    async def get_member(self, app_id: str, conversation_id: str, user_id: str
                         ) -> Member | None: ...

    async def get_access(self, app_id: str, conversation_id: str, user_id: str
                         ) -> tuple[Conversation | None, Member | None]:
        """The conversation (None if unknown or deleted) and the user's membership of
        it, read together (what every call of a user into a conversation checks)."""

    async def get_memberships(self, app_id: str, user_id: str,
                              conversation_ids: Sequence[str]) -> dict[str, Member]:
        """The user's memberships among these conversations, by conversation id."""

    async def conversation_partners(self, app_id: str, user_id: str,
                                    user_ids: Sequence[str]) -> set[str]:
        """Those of `user_ids`, other than `user_id`, who are members of a direct or group
        conversation (not a channel) that `user_id` is a member of too."""

    async def add_members(self, app_id: str, conversation_id: str, members: Sequence[Member],
                          max_members: int) -> list[Member]:
        """Add those not yet members (each starts with everything read); the added ones.

        Raises CapacityExceeded (adding none) if the conversation would pass max_members.
        """

    async def remove_member(self, app_id: str, conversation_id: str, user_id: str,
                            now: datetime) -> Member | None:
        """Remove a member; if it was the owner, the longest-standing admin (else member)
        becomes owner, in the same transaction. The removed member, or None."""

    async def update_member(self, app_id: str, conversation_id: str, user_id: str,
                            changes: MemberChanges, now: datetime) -> Member | None: ...

    async def list_members(self, app_id: str, conversation_id: str, limit: int,
                           after: Keyset | None, *, where: Expr | None = None,
                           ordering: Ordering = BY_JOIN) -> list[Member]:
        """Members matching `where` (fields of listing.MEMBER_FILTER), in `ordering` (one
        of listing.MEMBER_ORDERINGS; by default (join_time, user_id))."""

    async def list_user_conversations(self, app_id: str, user_id: str, include_archived: bool,
                                      limit: int, after: Keyset | None, *,
                                      where: Expr | None = None, ordering: Ordering = INBOX
                                      ) -> list[tuple[Member, Conversation]]:
        """A user's memberships with their conversations, those matching `where` (fields
        of listing.CONVERSATION_FILTER), in `ordering` (one of
        listing.CONVERSATION_ORDERINGS; by default pinned first, then by last activity,
        newest first: descending (pinned, activity, conversation id))."""

    async def list_channels(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Conversation]:
        """The app's channels, newest first: (create_time, id) descending."""

    async def unread_totals(self, app_id: str, user_id: str) -> tuple[int, int]:
        """(unread messages, conversations with unread) over the user's unmuted
        memberships."""

    async def scan_conversations(self, app_id: str, limit: int, after: str | None
                                 ) -> list[Conversation]:
        """Every live conversation of the app, by id (after `after`): for reindexing."""

    async def join_times(self, app_id: str, user_id: str) -> dict[str, datetime]:
        """When the user joined each conversation they belong to, by conversation id."""

    async def member_ids(self, app_id: str, conversation_id: str) -> list[str]:
        """The ids of the conversation's members."""
