"""What can be done with restrictions (mutes, bans): `check_*` authorises, `do_*` writes.

Who may restrict:
- the app's backend (API key with the `moderation` scope) and the operator: anyone,
  in the app or in any conversation;
- a moderator, admin or owner of a conversation: there only, members of a lower role
  and users who are not members (never themselves, never app-wide).
A user may read their own restrictions, and those of the conversations they moderate;
never their own shadow bans, which they are not told of.
"""

from __future__ import annotations

from datetime import datetime

from services.auth.models import RevokeReason
from services.auth.store import AuthStore
from services.conversations.access import Access
from services.conversations.actions import ConversationsActions
from services.conversations.models import Kind, Role
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms, truncate_ms
from services.core.errors import PermissionDenied, not_found
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id
from services.core.names import api_key_name, restriction_name, user_name
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import AppBackend, Operator, Principal, User, require_app
from services.moderation.conditions import Facts
from services.moderation.models import APP_WIDE, Restriction, RestrictionType
from services.moderation.permissions import STAFF, Permission
from services.moderation.store import RestrictionStore
from services.users.actions import check_users
from services.users.store import UserStore


def creator_of(principal: Principal) -> str:
    if isinstance(principal, AppBackend):
        return api_key_name(principal.app_id, principal.key_id)
    if isinstance(principal, User):
        return user_name(principal.app_id, principal.user_id)
    return "operator"


def _not_allowed(message: str) -> PermissionDenied:
    return PermissionDenied("RESTRICTION_NOT_ALLOWED", message)


class ModerationActions:
    def __init__(self, store: RestrictionStore, conversations: ConversationsActions,
                 conversation_store: ConversationStore, users: UserStore, auth: AuthStore,
                 clock: Clock, bus: EventBus) -> None:
        self._store = store
        self._conversations = conversations
        self._conversation_store = conversation_store
        self._users = users
        self._auth = auth
        self._clock = clock
        self._bus = bus

    async def moderated(self, principal: Principal, app_id: str, conversation_id: str
                         ) -> Access:
        """The conversation, where the caller may moderate (ROLE_REQUIRED otherwise)."""
        access = await self._conversations.access(principal, app_id, conversation_id)
        await self._conversations.require(access, Permission.MODERATE)
        return access

    async def check_restrict(self, principal: Principal, app_id: str, user_id: str,
                             conversation_id: str) -> Access | None:
        """Whether the caller may restrict `user_id` there; the conversation (None for
        the whole app)."""
        require_app(principal, app_id)
        if conversation_id == APP_WIDE:
            if isinstance(principal, User):
                raise _not_allowed("only the app's backend restricts a user app-wide")
            return None
        access = await self.moderated(principal, app_id, conversation_id)
        if access.backend:
            return access
        assert isinstance(principal, User) and access.member is not None
        if user_id == principal.user_id:
            raise _not_allowed("a moderator cannot restrict themself")
        target = await self._conversation_store.get_member(app_id, conversation_id, user_id)
        permissions = self._conversations.permissions
        if await permissions.role(app_id, principal.user_id) in STAFF:
            if await permissions.role(app_id, user_id) in STAFF or (
                    target is not None and target.role is Role.OWNER):
                raise _not_allowed(f"{user_id} is the owner or of the app's staff: only the "
                                   "app's backend restricts them")
        elif target is not None and target.role >= access.member.role:
            raise _not_allowed(f"{user_id} is a {target.role.name.lower()}: only a higher "
                               "role restricts them")
        return access

    async def do_restrict(self, principal: Principal, app_id: str, user_id: str,
                          conversation_id: str, kind: RestrictionType, reason: str,
                          expire_time: datetime | None) -> Restriction:
        """Mute or ban (or replace the user's restriction of that type there); a ban in
        a conversation removes the member, a ban in the app ends the user's sessions.
        The restriction is written first: if what follows fails, the call fails and a
        retry completes it, while the restriction already applies."""
        access = await self.check_restrict(principal, app_id, user_id, conversation_id)
        if kind is RestrictionType.BAN and access is not None:
            access.require_kind(Kind.GROUP, Kind.CHANNEL)  # a direct chat has blocks
        await check_users(self._users, app_id, [user_id])
        now = self._clock.now()
        restriction = await self._store.put_restriction(Restriction(
            app_id, new_id(), user_id, conversation_id, kind, reason, creator_of(principal),
            now, None if expire_time is None else truncate_ms(expire_time)), now)
        if kind is RestrictionType.BAN and conversation_id != APP_WIDE:
            await self._conversation_store.remove_member(app_id, conversation_id, user_id, now)
        elif kind is RestrictionType.BAN:
            revoked = await self._auth.revoke_user_sessions(app_id, user_id, now,
                                                            RevokeReason.REVOKED_BY_APP)
            for session_id in revoked:
                await self._bus.publish(DomainEvent("session.revoked", app_id, now,
                                                    {"session": session_id, "user": user_id}))
        return restriction

    async def _visible(self, principal: Principal, app_id: str, restriction_id: str
                       ) -> Restriction:
        """A restriction that applies, if the caller may see it; NOT_FOUND otherwise
        (the same answer as for none, so nothing leaks)."""
        require_app(principal, app_id)
        found = await self._store.get_restriction(app_id, restriction_id)
        if found is None or not found.applies(self._clock.now()) or not (
                await self._may_see(principal, found)):
            raise not_found("caas.dev/Restriction", restriction_name(app_id, restriction_id))
        return found

    async def _may_see(self, principal: Principal, restriction: Restriction) -> bool:
        if isinstance(principal, AppBackend | Operator):
            return True
        assert isinstance(principal, User)
        if restriction.user_id == principal.user_id:  # a shadow ban is not told to its user
            return restriction.type is not RestrictionType.SHADOW_BAN
        if restriction.conversation_id == APP_WIDE:
            return False
        return await self.moderates(principal, restriction.app_id,
                                    restriction.conversation_id)

    async def moderates(self, principal: User, app_id: str, conversation_id: str) -> bool:
        """Whether the user, a member there, is granted MODERATE there."""
        member = await self._conversation_store.get_member(app_id, conversation_id,
                                                           principal.user_id)
        conversation = await self._conversation_store.get_conversation(app_id,
                                                                       conversation_id)
        return member is not None and conversation is not None and (
            await self._conversations.permissions.allows(
                app_id, principal.user_id, conversation.kind.value, member.role,
                Permission.MODERATE, Facts(conversation_id, conversation.kind.value,
                                           conversation_type=conversation.type)))

    async def get(self, principal: Principal, app_id: str, restriction_id: str) -> Restriction:
        return await self._visible(principal, app_id, restriction_id)

    async def do_lift(self, principal: Principal, app_id: str, restriction_id: str
                      ) -> Restriction:
        """Lift a restriction the caller may set: the app's backend any, a conversation's
        moderator those of their conversation (not their own)."""
        found = await self._visible(principal, app_id, restriction_id)
        await self.check_restrict(principal, app_id, found.user_id, found.conversation_id)
        lifted = await self._store.delete_restriction(app_id, restriction_id,
                                                      self._clock.now())
        if lifted is None:  # lifted or expired meanwhile
            raise not_found("caas.dev/Restriction", restriction_name(app_id, restriction_id))
        return lifted

    async def list_restrictions(self, principal: Principal, app_id: str, user_id: str,
                                conversation_id: str | None, page_size: int,
                                page_token: str) -> Page[Restriction]:
        require_app(principal, app_id)
        if isinstance(principal, User) and user_id != principal.user_id:
            if conversation_id is None or conversation_id == APP_WIDE:
                raise PermissionDenied(
                    "USER_MISMATCH", "a user lists their own restrictions (user_id), or "
                    "those of a conversation they moderate", metadata={"user": user_id})
            await self.moderated(principal, app_id, conversation_id)
        scope = [app_id, user_id, "" if conversation_id is None else conversation_id,
                 "" if conversation_id is None else "1"]
        request = page_request(page_size, page_token, scope)
        rows = await self._store.list_restrictions(
            app_id, self._clock.now(), request.size + 1, time_id_position(request),
            user_id=user_id, conversation_id=conversation_id,
            # A shadow ban is not told to its user.
            unseen_by=principal.user_id if isinstance(principal, User) else "")
        return make_page(rows, request, scope,
                         lambda r: (to_ms(r.create_time), r.restriction_id))
