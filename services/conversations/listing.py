"""What ListConversations and ListMembers filter on and order by (docs/filtering.md;
the grammar is services/core/filtering.py's). Stated in the contract comments of
their `filter` and `order_by` fields."""

from __future__ import annotations

from services.conversations.models import Kind, Role
from services.core.filtering import (
    Ordering,
    Schema,
    boolean,
    choice,
    integer,
    string,
    timestamp,
)

KIND_CHOICES: dict[str, str | int] = {
    "direct": Kind.DIRECT.value, "group": Kind.GROUP.value, "channel": Kind.CHANNEL.value,
    "KIND_DIRECT": Kind.DIRECT.value, "KIND_GROUP": Kind.GROUP.value,
    "KIND_CHANNEL": Kind.CHANNEL.value}
ROLE_CHOICES: dict[str, str | int] = {
    "member": int(Role.MEMBER), "moderator": int(Role.MODERATOR), "admin": int(Role.ADMIN),
    "owner": int(Role.OWNER), "ROLE_MEMBER": int(Role.MEMBER),
    "ROLE_MODERATOR": int(Role.MODERATOR), "ROLE_ADMIN": int(Role.ADMIN),
    "ROLE_OWNER": int(Role.OWNER)}

# A user's conversations, filtered on the conversation and on the user's membership.
CONVERSATION_FILTER = Schema((
    choice("kind", KIND_CHOICES),
    boolean("unread"),
    integer("unread_count"),
    boolean("has_mentions"),
    integer("unread_mention_count"),
    boolean("muted"),
    boolean("archived"),
    boolean("pinned"),
    choice("role", ROLE_CHOICES, ordered=True),
    timestamp("last_activity_time"),
    timestamp("create_time"),
))

INBOX = Ordering("pinned desc, last_activity_time desc",
                 ("pinned", "last_activity_time", "conversation_id"), ("flag", "time", "id"),
                 descending=True)
CONVERSATION_ORDERINGS = (
    INBOX,
    Ordering("last_activity_time desc", ("last_activity_time", "conversation_id"),
             ("time", "id"), descending=True),
    Ordering("last_activity_time", ("last_activity_time", "conversation_id"), ("time", "id")),
    Ordering("create_time desc", ("create_time", "conversation_id"), ("time", "id"),
             descending=True),
    Ordering("create_time", ("create_time", "conversation_id"), ("time", "id")),
)

# Members, on what every member may see of the others (never their own settings).
MEMBER_FILTER = Schema((
    choice("role", ROLE_CHOICES, ordered=True),
    string("user_id", prefix=True),
    timestamp("join_time"),
))

BY_JOIN = Ordering("join_time", ("join_time", "user_id"), ("time", "id"))
MEMBER_ORDERINGS = (
    BY_JOIN,
    Ordering("join_time desc", ("join_time", "user_id"), ("time", "id"), descending=True),
)
