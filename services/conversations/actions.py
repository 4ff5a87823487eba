"""What can be done with conversations and their members, and what each caller is shown
of them (rules in access.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.conversations.access import (
    Access,
    ShownConversation,
    conversation_name,
    resolve,
)
from services.conversations.listing import (
    CONVERSATION_FILTER,
    CONVERSATION_ORDERINGS,
    MEMBER_FILTER,
    MEMBER_ORDERINGS,
)
from services.conversations.models import (
    Conversation,
    ConversationChanges,
    Kind,
    Member,
    MemberChanges,
    MlsGroup,
    Role,
    direct_key,
)
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import (
    CapacityExceeded,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    StoreConflict,
    already_exists,
    invalid_field,
    limit_exceeded,
    not_found,
)
from services.core.filter_syntax import parse_filter
from services.core.filtering import names_field, parse_order_by, token_scope
from services.core.ids import new_id
from services.core.pagination import (
    Page,
    make_page,
    ordered_position,
    page_request,
    time_id_position,
)
from services.core.principal import Principal, User, require_app, require_user_or_app
from services.core.settings import Settings
from services.moderation.conditions import Facts
from services.moderation.models import APP_WIDE
from services.moderation.permissions import Permission, Permissions
from services.moderation.restrictions import Restrictions
from services.users.actions import check_not_blocked, check_users
from services.users.store import UserStore


@dataclass(frozen=True, slots=True)
class NewConversation:
    """What a caller asks for when creating a conversation."""

    kind: Kind
    conversation_id: str = ""
    title: str = ""
    image_uri: str = ""
    metadata: dict[str, str] | None = None
    frozen: bool = False
    member_ids: Sequence[str] = ()
    owner_id: str = ""
    slow_mode: timedelta = timedelta(0)
    type: str = ""  # an app-defined type of `kind`
    encrypted: bool = False  # end-to-end, with MLS (services/e2ee)


def facts(access: Access, request: Mapping[str, Any] | None = None) -> Facts:
    """The conversation (and the request) as permission conditions see them."""
    conversation = access.conversation
    role = access.role()
    return Facts(conversation.conversation_id, conversation.kind.value,
                 dict(conversation.metadata), conversation.member_count,
                 "" if role is None else role.name.lower(), request or {},
                 conversation.type)


class ConversationsActions:
    def __init__(self, store: ConversationStore, users: UserStore, clock: Clock,
                 settings: Settings, restrictions: Restrictions,
                 permissions: Permissions) -> None:
        self._store = store
        self._restrictions = restrictions
        self.permissions = permissions
        self._users = users
        self._clock = clock
        self._max_members = {Kind.DIRECT: 2, Kind.GROUP: settings.max_group_members,
                             Kind.CHANNEL: settings.max_channel_members}

    async def access(self, principal: Principal, app_id: str, conversation_id: str) -> Access:
        return await resolve(self._store, principal, app_id, conversation_id)

    async def permits(self, access: Access, permission: Permission) -> bool:
        """Whether `require` would let the caller (a member, or the app's backend) do it."""
        return access.backend or await self.permissions.allows(
            access.app_id, access.user_id, access.conversation.kind.value, access.role(),
            permission, facts(access))

    async def require(self, access: Access, *permissions: Permission,
                      member: bool = True, request: Mapping[str, Any] | None = None) -> None:
        """NOT_A_MEMBER for a non-member (unless `member` is off), then, for a user, for
        each of `permissions` in turn, what their roles are granted and the app's
        conditions say (permissions.py), with the conversation and `request` as the
        conditions' facts. The app's backend may do anything."""
        if member:
            access.require_member()
        if not access.backend:
            seen = facts(access, request)
            for permission in permissions:
                await self.permissions.require(access.app_id, access.user_id,
                                               access.conversation.kind.value, access.role(),
                                               permission, seen)

    def _roster(self, principal: Principal, new: NewConversation) -> tuple[list[str], str]:
        """(member ids in joining order, owner id or "") for a new conversation."""
        others = list(dict.fromkeys(new.member_ids))
        if isinstance(principal, User):
            me = principal.user_id
            if new.kind is Kind.DIRECT:
                if len(others) != 1 or others[0] == me:
                    raise invalid_field("member_ids", "a direct conversation takes exactly "
                                        "one other user")
                return [me, others[0]], ""
            return [me, *[u for u in others if u != me]], me
        if new.kind is Kind.DIRECT:
            if len(others) != 2:
                raise invalid_field("member_ids", "a direct conversation takes exactly two "
                                    "users")
            return others, ""
        owner = new.owner_id
        if owner and owner not in others:
            others.insert(0, owner)
        return others, owner

    async def _refuse_chosen_id(self, principal: User, app_id: str, conversation_id: str
                                ) -> None:
        """A user may not choose a conversation's id. ALREADY_EXISTS if the id names a
        conversation they can see (what GetConversation would tell them too), else the
        same PERMISSION_DENIED whether the id is free or taken by a conversation hidden
        from them: ids are one namespace per app, so any other answer would tell them
        that a conversation they may not see exists."""
        try:
            await self.access(principal, app_id, conversation_id)
        except NotFound:
            raise PermissionDenied(
                "PRINCIPAL_NOT_ALLOWED", "only the app's backend chooses conversation ids: "
                "leave conversation_id empty and the server chooses one") from None
        raise already_exists("caas.dev/Conversation", conversation_name(app_id, conversation_id))

    async def do_create(self, principal: Principal, app_id: str, new: NewConversation
                        ) -> tuple[Conversation, bool]:
        """Create a conversation; for a direct one asked again, return the existing one.
        Users may not choose its id (see `_refuse_chosen_id`)."""
        require_app(principal, app_id)
        if new.encrypted and new.kind is Kind.CHANNEL:
            raise FailedPrecondition(
                "E2EE_NOT_SUPPORTED", "channels are public: only direct and group"
                " conversations are end-to-end encrypted", metadata={"feature": "channel"})
        await self.permissions.check_type(app_id, new.kind.value, new.type)
        if isinstance(principal, User) and new.conversation_id and new.kind is not Kind.DIRECT:
            await self._refuse_chosen_id(principal, app_id, new.conversation_id)
        member_ids, owner = self._roster(principal, new)
        if len(member_ids) > self._max_members[new.kind]:
            raise limit_exceeded(f"members in a {new.kind.value}", self._max_members[new.kind])
        await check_users(self._users, app_id, member_ids)
        if isinstance(principal, User):  # creating is writing: not while muted or banned
            await self._restrictions.check_write(app_id, principal.user_id, APP_WIDE)
            await self.permissions.require(
                app_id, principal.user_id, new.kind.value, None,
                Permission.CREATE_CONVERSATION,
                Facts("", new.kind.value, dict(new.metadata or {}), len(member_ids),
                      conversation_type=new.type))
        for user_id in member_ids:  # nobody banned from the app is put in
            await self._restrictions.check_entry(app_id, user_id, APP_WIDE)
        key = None
        if new.kind is Kind.DIRECT:
            await check_not_blocked(self._users, app_id, member_ids[0], member_ids[1])
            key = direct_key(member_ids[0], member_ids[1])
            key += "\x1fe2ee" if new.encrypted else ""  # not the pair's plain one
        now = self._clock.now()
        conversation_id = (new.conversation_id if new.kind is not Kind.DIRECT
                           and new.conversation_id else new_id())
        creator = principal.user_id if isinstance(principal, User) else ""
        conversation = Conversation(
            app_id, conversation_id, new.kind, new.title, new.image_uri,
            dict(new.metadata or {}), new.frozen, creator, len(member_ids), 0, None, now, now,
            now, new.slow_mode, new.type, MlsGroup() if new.encrypted else None)
        members = [Member(app_id, conversation_id, user_id,
                          Role.OWNER if user_id == owner else Role.MEMBER, now)
                   for user_id in member_ids]
        try:
            stored, created = await self._store.create_conversation(conversation, members, key)
        except StoreConflict as exc:
            raise already_exists("caas.dev/Conversation",
                                 conversation_name(app_id, conversation_id)) from exc
        return stored, created

    async def get(self, principal: Principal, app_id: str, conversation_id: str
                  ) -> ShownConversation:
        return (await self.access(principal, app_id, conversation_id)).shown()

    async def do_update(self, principal: Principal, app_id: str, conversation_id: str,
                        changes: ConversationChanges) -> ShownConversation:
        access = await self.access(principal, app_id, conversation_id)
        if access.conversation.kind is Kind.DIRECT and not access.backend:
            raise PermissionDenied("ROLE_REQUIRED", "only the app's backend may change a "
                                   "direct conversation", metadata={"required_role": "app"})
        await self.require(access, Permission.UPDATE_CONVERSATION)
        updated = await self._store.update_conversation(app_id, conversation_id, changes,
                                                        self._clock.now())
        if updated is None:
            raise not_found("caas.dev/Conversation", conversation_name(app_id, conversation_id))
        return access.shown(updated)

    async def do_delete(self, principal: Principal, app_id: str, conversation_id: str) -> None:
        access = await self.access(principal, app_id, conversation_id)
        if access.conversation.kind is Kind.DIRECT and not access.backend:
            raise PermissionDenied("ROLE_REQUIRED", "only the app's backend may delete a "
                                   "direct conversation", metadata={"required_role": "app"})
        await self.require(access, Permission.DELETE_CONVERSATION)
        await self._store.delete_conversation(app_id, conversation_id, self._clock.now())

    async def list_for_user(self, principal: Principal, app_id: str, user_id: str,
                            include_archived: bool, page_size: int, page_token: str,
                            filter_text: str = "", order_by: str = ""
                            ) -> Page[ShownConversation]:
        """The user's conversations, each with the user's membership (a user lists only
        their own; the app's backend anyone's), matching `filter_text` and in the order
        `order_by` names (services/conversations/listing.py). A filter that names
        `archived` decides by itself which archived conversations it lists.

        Raises InvalidArgument for a bad filter, order_by or page token."""
        require_user_or_app(principal, app_id, user_id)
        where = parse_filter(filter_text, CONVERSATION_FILTER)
        ordering = parse_order_by(order_by, CONVERSATION_ORDERINGS)
        include_archived = include_archived or names_field(where, "archived")
        scope = [app_id, user_id, "conversations", str(include_archived),
                 *token_scope(where, ordering, CONVERSATION_ORDERINGS[0])]
        request = page_request(page_size, page_token, scope)
        rows = await self._store.list_user_conversations(
            app_id, user_id, include_archived, request.size + 1,
            ordered_position(request, ordering.kinds), where=where, ordering=ordering)
        keys: dict[str, Callable[[Member, Conversation], int | str]] = {
            "pinned": lambda m, c: int(m.pinned),
            "last_activity_time": lambda m, c: to_ms(m.activity_time or c.last_activity_time),
            "create_time": lambda m, c: to_ms(c.create_time),
            "conversation_id": lambda m, c: c.conversation_id}
        page = make_page(rows, request, scope, lambda row: tuple(
            keys[key](*row) for key in ordering.keys))
        return Page([ShownConversation(c, m, messages=True) for m, c in page.items],
                    page.next_page_token)

    async def list_channels(self, principal: Principal, app_id: str, page_size: int,
                            page_token: str) -> Page[ShownConversation]:
        """The app's channels; a user sees those they belong to with their membership
        and last message, the others without what comes from their messages."""
        require_app(principal, app_id)
        scope = [app_id, "channels"]
        request = page_request(page_size, page_token, scope)
        rows = await self._store.list_channels(app_id, request.size + 1,
                                               time_id_position(request))
        page = make_page(rows, request, scope,
                         lambda c: (to_ms(c.create_time), c.conversation_id))
        if not isinstance(principal, User):
            return Page([Access(c, None, backend=True).shown() for c in page.items],
                        page.next_page_token)
        mine = await self._store.get_memberships(
            app_id, principal.user_id, [c.conversation_id for c in page.items])
        return Page([Access(c, mine.get(c.conversation_id), backend=False).shown()
                     for c in page.items], page.next_page_token)

    async def _add(self, access: Access, user_ids: Sequence[str]) -> list[Member]:
        for user_id in user_ids:  # nobody banned here (or from the app) joins or is added
            await self._restrictions.check_entry(access.app_id, user_id,
                                                 access.conversation_id)
        now = self._clock.now()
        wanted = [Member(access.app_id, access.conversation_id, user_id, Role.MEMBER, now)
                  for user_id in user_ids]
        limit = self._max_members[access.conversation.kind]
        try:
            return await self._store.add_members(access.app_id, access.conversation_id,
                                                 wanted, limit)
        except CapacityExceeded as exc:
            raise limit_exceeded(exc.limit, exc.maximum) from exc

    async def do_join(self, principal: User, app_id: str, conversation_id: str) -> Member:
        access = await self.access(principal, app_id, conversation_id)
        if access.member is not None:
            return access.member
        access.require_kind(Kind.CHANNEL)
        await self.require(access, Permission.JOIN, member=False)
        await check_users(self._users, app_id, [principal.user_id])
        await self._add(access, [principal.user_id])
        member = await self._store.get_member(app_id, conversation_id, principal.user_id)
        assert member is not None
        return member

    async def do_add_members(self, principal: Principal, app_id: str, conversation_id: str,
                             user_ids: Sequence[str]) -> list[Member]:
        """The members added, as the caller may see them (`Access.show_member`)."""
        access = await self.access(principal, app_id, conversation_id)
        access.require_kind(Kind.GROUP, Kind.CHANNEL)
        await self.require(access, Permission.ADD_MEMBERS)
        await check_users(self._users, app_id, user_ids)
        return [access.show_member(m) for m in await self._add(access, user_ids)]

    async def _remove(self, access: Access, user_id: str) -> None:
        await self._store.remove_member(access.app_id, access.conversation_id, user_id,
                                        self._clock.now())

    async def do_leave(self, principal: User, app_id: str, conversation_id: str) -> None:
        access = await self.access(principal, app_id, conversation_id)
        access.require_member()
        access.require_kind(Kind.GROUP, Kind.CHANNEL)
        await self._remove(access, principal.user_id)

    async def _target(self, access: Access, user_id: str) -> Member:
        target = await self._store.get_member(access.app_id, access.conversation_id, user_id)
        if target is None:
            raise not_found("caas.dev/Member",
                            f"{conversation_name(access.app_id, access.conversation_id)}"
                            f"/members/{user_id}")
        return target

    async def do_remove_member(self, principal: Principal, app_id: str, conversation_id: str,
                               user_id: str) -> None:
        access = await self.access(principal, app_id, conversation_id)
        access.require_member()
        if isinstance(principal, User) and principal.user_id == user_id:
            await self.do_leave(principal, app_id, conversation_id)
            return
        access.require_kind(Kind.GROUP, Kind.CHANNEL)
        await self.require(access, Permission.REMOVE_MEMBERS)
        target = await self._target(access, user_id)
        self._check_outranks(access, target.role)
        await self._remove(access, user_id)

    @staticmethod
    def _check_outranks(access: Access, role: Role) -> None:
        """Owners act on anyone but the owner; admins on moderators and members."""
        if role is Role.OWNER:
            raise PermissionDenied("ROLE_REQUIRED", "nobody may act on the owner's membership",
                                   metadata={"required_role": "owner"})
        if not access.backend and access.role() is not Role.OWNER and role >= Role.ADMIN:
            raise PermissionDenied("ROLE_REQUIRED", "only the owner may act on an admin",
                                   metadata={"required_role": "owner"})

    async def get_member(self, principal: Principal, app_id: str, conversation_id: str,
                         user_id: str) -> Member:
        """The member as the caller may see it (`Access.show_member`)."""
        access = await self.access(principal, app_id, conversation_id)
        access.require_member()
        return access.show_member(await self._target(access, user_id))

    async def list_members(self, principal: Principal, app_id: str, conversation_id: str,
                           page_size: int, page_token: str, filter_text: str = "",
                           order_by: str = "") -> Page[Member]:
        """Members in joining order (or as `order_by` says), each as the caller may see
        it, matching `filter_text`, which names only what every member may see of the
        others (services/conversations/listing.py). Raises InvalidArgument for a bad
        filter, order_by or page token (after the caller's access is checked)."""
        access = await self.access(principal, app_id, conversation_id)
        access.require_member()
        where = parse_filter(filter_text, MEMBER_FILTER)
        ordering = parse_order_by(order_by, MEMBER_ORDERINGS)
        scope = [app_id, conversation_id, "members",
                 *token_scope(where, ordering, MEMBER_ORDERINGS[0])]
        request = page_request(page_size, page_token, scope)
        rows = await self._store.list_members(app_id, conversation_id, request.size + 1,
                                              ordered_position(request, ordering.kinds),
                                              where=where, ordering=ordering)
        page = make_page(rows, request, scope, lambda m: (to_ms(m.join_time), m.user_id))
        return Page([access.show_member(m) for m in page.items], page.next_page_token)

    async def do_update_member(self, principal: Principal, app_id: str, conversation_id: str,
                               user_id: str, changes: MemberChanges) -> Member:
        """Roles by those who outrank; muted/archived/pinned by the member (or backend).
        The member after the change, as the caller may see it."""
        access = await self.access(principal, app_id, conversation_id)
        access.require_member()
        target = await self._target(access, user_id)
        settings_changed = (changes.muted, changes.archived, changes.pinned) != (None,) * 3
        if (settings_changed and not access.backend
                and not (isinstance(principal, User) and principal.user_id == user_id)):
            raise PermissionDenied("USER_MISMATCH",
                                   "muted, archived and pinned are the member's own settings",
                                   metadata={"user": user_id})
        if changes.role is not None and changes.role is not target.role:
            access.require_kind(Kind.GROUP, Kind.CHANNEL)
            await self.require(access, Permission.UPDATE_MEMBER_ROLES)
            self._check_outranks(access, target.role)
            self._check_outranks(access, changes.role)
        updated = await self._store.update_member(app_id, conversation_id, user_id, changes,
                                                  self._clock.now())
        if updated is None:  # left meanwhile
            raise not_found("caas.dev/Member",
                            f"{conversation_name(app_id, conversation_id)}/members/{user_id}")
        return access.show_member(updated)
