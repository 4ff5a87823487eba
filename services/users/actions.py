"""What can be done with an app's users and their blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from services.apps.store import AppStore
from services.auth.models import RevokeReason
from services.auth.store import AuthStore
from services.core.clock import Clock, to_ms
from services.core.errors import (
    FailedPrecondition,
    PermissionDenied,
    StoreConflict,
    already_exists,
    invalid_field,
    not_found,
)
from services.core.events import DomainEvent, EventBus
from services.core.filter_syntax import parse_filter
from services.core.filtering import parse_order_by, token_scope
from services.core.ids import new_id
from services.core.names import app_name, user_name
from services.core.pagination import (
    Page,
    make_page,
    ordered_position,
    page_request,
    time_id_position,
)
from services.core.principal import Principal, User, require_app, require_user_or_app
from services.users.listing import USER_FILTER, USER_ORDERINGS
from services.users.models import Block, UserChanges
from services.users.models import User as UserRecord
from services.users.store import UserStore

GUEST_ID_PREFIX = "guest-"  # the ids of the users CreateGuestSession makes


def user_deleted(app_id: str, user_id: str) -> FailedPrecondition:
    return FailedPrecondition("USER_DELETED", f"{user_name(app_id, user_id)} was deleted",
                              metadata={"user": user_id})


def user_not_found(app_id: str, user_id: str) -> Exception:
    return not_found("caas.dev/User", user_name(app_id, user_id))


async def check_users(store: UserStore, app_id: str, user_ids: Sequence[str]) -> None:
    """NOT_FOUND for an unknown user, FAILED_PRECONDITION for a deleted one."""
    found = await store.get_users(app_id, user_ids)
    for user_id in user_ids:
        user = found.get(user_id)
        if user is None:
            raise user_not_found(app_id, user_id)
        if user.deleted:
            raise user_deleted(app_id, user_id)


async def check_not_blocked(store: UserStore, app_id: str, a: str, b: str) -> None:
    """PERMISSION_DENIED (USER_BLOCKED) if either user blocks the other."""
    if await store.blocked_either_way(app_id, a, b):
        raise PermissionDenied("USER_BLOCKED",
                               "no direct messages between these users: one blocks the other")


class RoleCheck(Protocol):
    async def __call__(self, app_id: str, role: str) -> None:
        """ROLE_UNKNOWN unless the app has the role (Permissions.check_role)."""


class UsersActions:
    def __init__(self, store: UserStore, apps: AppStore, auth: AuthStore, clock: Clock,
                 bus: EventBus, check_role: RoleCheck) -> None:
        self._store = store
        self._apps = apps
        self._auth = auth
        self._clock = clock
        self._bus = bus
        self._check_role = check_role

    async def _check_app(self, principal: Principal, app_id: str) -> None:
        require_app(principal, app_id)
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))

    def _new(self, app_id: str, user_id: str, changes: UserChanges) -> UserRecord:
        now = self._clock.now()
        return UserRecord(app_id, user_id, changes.display_name or "", changes.image_uri or "",
                          dict(changes.metadata or {}), now, now, role=changes.role or "")

    async def do_create_user(self, principal: Principal, app_id: str, user_id: str,
                             profile: UserChanges) -> UserRecord:
        await self._check_app(principal, app_id)
        if profile.role:
            await self._check_role(app_id, profile.role)
        user = self._new(app_id, user_id, profile)
        try:
            await self._store.create_user(user)
        except StoreConflict as exc:
            raise already_exists("caas.dev/User", user_name(app_id, user_id)) from exc
        await self._bus.publish(DomainEvent("user.created", app_id, user.create_time,
                                            {"user": user_id}, payload=user))
        return user

    async def create_guest(self, app_id: str, display_name: str) -> UserRecord:
        """A new user of the app (AuthService.CreateGuestSession) with the role `guest`
        and an id chosen here: `guest-` and 16 characters of [a-z2-7]."""
        user = self._new(app_id, f"{GUEST_ID_PREFIX}{new_id()}",
                         UserChanges(display_name=display_name, role="guest"))
        await self._store.create_user(user)  # 80 random bits: never taken
        await self._bus.publish(DomainEvent("user.created", app_id, user.create_time,
                                            {"user": user.user_id}, payload=user))
        return user

    async def ensure_user(self, app_id: str, user_id: str) -> UserRecord:
        """The user, created with an empty profile if missing (signing in does this).
        FAILED_PRECONDITION (USER_DELETED) for a deleted user."""
        user = await self._store.update_user(app_id, user_id, UserChanges(),
                                             self._clock.now(),
                                             create=self._new(app_id, user_id, UserChanges()))
        assert user is not None
        if user.deleted:
            raise user_deleted(app_id, user_id)
        return user

    async def get_user(self, principal: Principal, app_id: str, user_id: str) -> UserRecord:
        require_app(principal, app_id)
        user = await self._store.get_user(app_id, user_id)
        if user is None:
            raise user_not_found(app_id, user_id)
        return user

    async def list_users(self, principal: Principal, app_id: str, page_size: int,
                         page_token: str, filter_text: str = "", order_by: str = ""
                         ) -> Page[UserRecord]:
        """The app's users matching `filter_text`, in the order `order_by` names
        (services/users/listing.py). Raises InvalidArgument for a bad filter, order_by
        or page token."""
        require_app(principal, app_id)
        where = parse_filter(filter_text, USER_FILTER)
        ordering = parse_order_by(order_by, USER_ORDERINGS)
        scope = [app_id, "users", *token_scope(where, ordering, USER_ORDERINGS[0])]
        request = page_request(page_size, page_token, scope)
        users = await self._store.list_users(app_id, request.size + 1,
                                             ordered_position(request, ordering.kinds),
                                             where=where, ordering=ordering)
        keys: dict[str, Callable[[UserRecord], int | str]] = {
            "create_time": lambda u: to_ms(u.create_time),
            "display_name": lambda u: u.display_name, "user_id": lambda u: u.user_id}
        return make_page(users, request, scope,
                         lambda u: tuple(keys[key](u) for key in ordering.keys))

    async def do_update_user(self, principal: Principal, app_id: str, user_id: str,
                             changes: UserChanges, allow_missing: bool) -> UserRecord:
        """Change a profile; with allow_missing (not for users) create it if missing."""
        require_user_or_app(principal, app_id, user_id)
        if isinstance(principal, User):
            allow_missing = False
            if changes.role is not None:  # no one raises their own role
                raise PermissionDenied("PRINCIPAL_NOT_ALLOWED",
                                       "a user's role is set by the app's backend only")
        else:
            await self._check_app(principal, app_id)
        if changes.role:
            await self._check_role(app_id, changes.role)
        create = self._new(app_id, user_id, changes) if allow_missing else None
        user = await self._store.update_user(app_id, user_id, changes, self._clock.now(),
                                             create=create)
        if user is None:
            raise user_not_found(app_id, user_id)
        if user.deleted:
            raise user_deleted(app_id, user_id)
        await self._bus.publish(DomainEvent("user.updated", app_id, user.update_time,
                                            {"user": user_id}, payload=user))
        return user

    async def do_delete_user(self, principal: Principal, app_id: str, user_id: str
                             ) -> UserRecord:
        """Turn a user into a tombstone and end their sessions."""
        require_app(principal, app_id)
        now = self._clock.now()
        user = await self._store.delete_user(app_id, user_id, now)
        if user is None:
            raise user_not_found(app_id, user_id)
        revoked = await self._auth.revoke_user_sessions(app_id, user_id, now,
                                                        RevokeReason.REVOKED_BY_APP)
        for session_id in revoked:
            await self._bus.publish(DomainEvent("session.revoked", app_id, now,
                                                {"session": session_id, "user": user_id}))
        await self._bus.publish(DomainEvent("user.deleted", app_id, now, {"user": user_id},
                                            payload=user))
        return user

    async def do_create_block(self, principal: Principal, app_id: str, user_id: str,
                              blocked_id: str) -> Block:
        require_user_or_app(principal, app_id, user_id)
        if blocked_id == user_id:
            raise invalid_field("block.blocked_user_id", "a user cannot block themself")
        if await self._store.get_user(app_id, blocked_id) is None:
            raise user_not_found(app_id, blocked_id)
        block = await self._store.create_block(Block(app_id, user_id, blocked_id,
                                                     self._clock.now()))
        await self._bus.publish(DomainEvent("block.created", app_id, block.create_time,
                                            {"user": user_id, "blocked": blocked_id}))
        return block

    async def do_delete_block(self, principal: Principal, app_id: str, user_id: str,
                              blocked_id: str) -> None:
        require_user_or_app(principal, app_id, user_id)
        if not await self._store.delete_block(app_id, user_id, blocked_id):
            raise not_found("caas.dev/Block",
                            f"{user_name(app_id, user_id)}/blocks/{blocked_id}")
        await self._bus.publish(DomainEvent("block.deleted", app_id, self._clock.now(),
                                            {"user": user_id, "blocked": blocked_id}))

    async def list_blocks(self, principal: Principal, app_id: str, user_id: str,
                          page_size: int, page_token: str) -> Page[Block]:
        require_user_or_app(principal, app_id, user_id)
        scope = [app_id, user_id, "blocks"]
        request = page_request(page_size, page_token, scope)
        blocks = await self._store.list_blocks(app_id, user_id, request.size + 1,
                                               time_id_position(request))
        return make_page(blocks, request, scope,
                         lambda b: (to_ms(b.create_time), b.blocked_id))
