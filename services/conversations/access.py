"""Who may see and do what in a conversation: the rules every chat action applies.

- A user sees a conversation they belong to; any user of the app also sees a channel.
  Anything else is NOT_FOUND — the same answer as for a conversation that does not
  exist, so nothing leaks.
- Reading and writing messages, listing members: members only (a channel's
  non-members get PERMISSION_DENIED, NOT_A_MEMBER).
- What is shown follows the same rules as what may be read: a channel's non-member
  sees it without what comes from its messages (last sequence, last message, last
  activity time); a member sees another member's who, role and join time, while the
  member's own settings, positions and unread counts (messages, mentions) are theirs
  alone.
- Roles rank member < moderator < admin < owner; an action needing a role accepts
  any higher one.
- The app's backend (API key) and the operator may do everything in the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.conversations.models import Conversation, Kind, Member, Role
from services.conversations.store import ConversationStore
from services.core.errors import FailedPrecondition, PermissionDenied, not_found
from services.core.principal import AppBackend, Operator, Principal, User, require_app


def conversation_name(app_id: str, conversation_id: str) -> str:
    return f"apps/{app_id}/conversations/{conversation_id}"


def conversation_not_found(app_id: str, conversation_id: str) -> Exception:
    return not_found("caas.dev/Conversation", conversation_name(app_id, conversation_id))


def public_member(member: Member) -> Member:
    """What any member may see of another: who, which role, since when. Settings (muted,
    archived, pinned), read and delivery positions and the unread and unread mention
    counts are left at their zero values."""
    return Member(member.app_id, member.conversation_id, member.user_id, member.role,
                  member.join_time)


@dataclass(frozen=True, slots=True)
class ShownConversation:
    """A conversation as one caller may see it."""

    conversation: Conversation
    membership: Member | None  # the caller's own; None for the app's backend, non-members
    messages: bool  # whether what comes from its messages may be shown


@dataclass(frozen=True, slots=True)
class Access:
    """A conversation as one caller may use it."""

    conversation: Conversation
    member: Member | None  # the calling user's membership
    backend: bool  # the app's backend or the operator: every right
    user_id: str = ""  # the calling user ("" for the app's backend and the operator)

    @property
    def app_id(self) -> str:
        return self.conversation.app_id

    @property
    def conversation_id(self) -> str:
        return self.conversation.conversation_id

    @property
    def reads_messages(self) -> bool:
        """Members and the app's backend; not a channel's non-members."""
        return self.backend or self.member is not None

    def shown(self, conversation: Conversation | None = None) -> ShownConversation:
        """The conversation (or its newer state) as this caller may see it."""
        return ShownConversation(conversation or self.conversation, self.member,
                                 self.reads_messages)

    def show_member(self, member: Member) -> Member:
        """A member of this conversation as this caller may see it: whole to the member
        themself and to the app's backend, `public_member` to anyone else."""
        if self.backend or (self.member is not None and self.member.user_id == member.user_id):
            return member
        return public_member(member)

    def role(self) -> Role | None:
        return self.member.role if self.member is not None else None

    def require_member(self) -> None:
        if not self.backend and self.member is None:
            raise PermissionDenied("NOT_A_MEMBER", "only members may do this: join first",
                                   metadata={"conversation": self.conversation_id})

    def require_role(self, role: Role) -> None:
        self.require_member()
        if not self.backend and (self.member is None or self.member.role < role):
            raise PermissionDenied(
                "ROLE_REQUIRED", f"this needs the {role.name.lower()} role or higher",
                metadata={"required_role": role.name.lower()})

    def require_kind(self, *kinds: Kind) -> None:
        if self.conversation.kind not in kinds:
            allowed = " or ".join(k.value for k in kinds)
            raise FailedPrecondition(
                "WRONG_CONVERSATION_KIND", f"only for {allowed} conversations",
                metadata={"kind": self.conversation.kind.value})


async def resolve(store: ConversationStore, principal: Principal, app_id: str,
                  conversation_id: str) -> Access:
    """The conversation as `principal` may see it; NOT_FOUND if they may not."""
    require_app(principal, app_id)
    if isinstance(principal, AppBackend | Operator):
        conversation = await store.get_conversation(app_id, conversation_id)
        if conversation is None:
            raise conversation_not_found(app_id, conversation_id)
        return Access(conversation, None, backend=True)
    assert isinstance(principal, User)
    conversation, member = await store.get_access(app_id, conversation_id, principal.user_id)
    if conversation is None or (member is None and conversation.kind is not Kind.CHANNEL):
        raise conversation_not_found(app_id, conversation_id)
    return Access(conversation, member, backend=False, user_id=principal.user_id)
