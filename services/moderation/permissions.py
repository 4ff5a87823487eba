"""Role-based permissions: what each role may do in each kind of conversation (see
caas.moderation.v1.PermissionPolicy for the rules and the defaults).

A user may do what their app role or their conversation role is granted (each role's
grant is its whole set: the defaults of a higher conversation role hold those of the
lower ones), and every app role but `guest` also has what `user` has. App staff
(`moderator`, `admin`) outrank every conversation role but the owner's. The hot path
asks `Permissions.require`, which keeps each app's policy and each user's app role for
the auth cache's TTL: this process forgets them at once when they change, the others
within the TTL.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from services.conversations.models import Role
from services.core.cache import TtlCache
from services.core.clock import Clock, truncate_ms
from services.core.errors import FailedPrecondition, PermissionDenied, invalid_field
from services.core.events import DomainEvent, EventBus
from services.core.principal import Principal, require_backend
from services.moderation.conditions import ConditionError, Conditions, Facts, Subject


class Permission(enum.StrEnum):
    SEND_MESSAGE = "send_message"
    SEND_LINKS = "send_links"
    ATTACH_MEDIA = "attach_media"
    REACT = "react"
    DELETE_ANY_MESSAGE = "delete_any_message"
    MODERATE = "moderate"
    SKIP_SLOW_MODE = "skip_slow_mode"
    UPDATE_CONVERSATION = "update_conversation"
    ADD_MEMBERS = "add_members"
    REMOVE_MEMBERS = "remove_members"
    UPDATE_MEMBER_ROLES = "update_member_roles"
    SEND_WHEN_FROZEN = "send_when_frozen"
    DELETE_CONVERSATION = "delete_conversation"
    CREATE_CONVERSATION = "create_conversation"
    JOIN = "join"
    READ_HISTORY = "read_history"


log = logging.getLogger("caas.permissions")
P = Permission
BUILT_IN_ROLES = ("user", "guest", "moderator", "admin")
STAFF = ("moderator", "admin")  # app roles that moderate any member
CONVERSATION_ROLES = {Role.MEMBER: "conversation:member", Role.MODERATOR: "conversation:moderator",
                      Role.ADMIN: "conversation:admin", Role.OWNER: "conversation:owner"}
_MEMBER = frozenset({P.SEND_MESSAGE, P.SEND_LINKS, P.ATTACH_MEDIA, P.REACT, P.JOIN,
                     P.READ_HISTORY})
_MODERATOR = _MEMBER | {P.DELETE_ANY_MESSAGE, P.MODERATE, P.SKIP_SLOW_MODE}
_ADMIN = _MODERATOR | {P.UPDATE_CONVERSATION, P.ADD_MEMBERS, P.REMOVE_MEMBERS,
                       P.UPDATE_MEMBER_ROLES, P.SEND_WHEN_FROZEN}
# Each role's whole set (a grant replaces one role's set, and no other's).
DEFAULTS: Mapping[str, frozenset[Permission]] = {
    "conversation:member": _MEMBER,
    "conversation:moderator": _MODERATOR,
    "conversation:admin": _ADMIN,
    "conversation:owner": _ADMIN | {P.DELETE_CONVERSATION},
    "user": frozenset({P.CREATE_CONVERSATION, P.JOIN}),
    "guest": frozenset({P.JOIN}),
    "moderator": frozenset({P.DELETE_ANY_MESSAGE, P.MODERATE, P.SKIP_SLOW_MODE}),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Condition:
    """A CEL expression a permission needs to be true (conditions.py)."""

    condition_id: str
    permission: Permission
    kinds: frozenset[str]  # conversation kinds it applies in; empty: all
    expression: str
    description: str = ""

    def applies(self, permission: Permission, kind: str) -> bool:
        return self.permission is permission and (not self.kinds or kind in self.kinds)


@dataclass(frozen=True, slots=True)
class PermissionPolicy:
    app_id: str
    custom_roles: tuple[str, ...] = ()
    # (scope, role) → what that role may do there, replacing the default; the scope is a
    # conversation kind ("group") or an app-defined type of one ("group/support")
    grants: Mapping[tuple[str, str], frozenset[Permission]] = field(default_factory=dict)
    update_time: datetime | None = None  # None: never changed (the defaults)
    conditions: tuple[Condition, ...] = ()
    types: Mapping[str, str] = field(default_factory=dict)  # app-defined type → its kind

    def granted(self, kind: str, role: str, conversation_type: str = ""
                ) -> frozenset[Permission]:
        if conversation_type:
            found = self.grants.get((f"{kind}/{conversation_type}", role))
            if found is not None:
                return found
        found = self.grants.get((kind, role))
        if found is not None:
            return found
        return DEFAULTS.get(role, frozenset())

    def knows(self, role: str) -> bool:
        return role in BUILT_IN_ROLES or role in self.custom_roles

    def allows(self, kind: str, app_role: str, conversation_role: Role | None,
               permission: Permission, conversation_type: str = "") -> bool:
        roles = [app_role] if app_role == "guest" else ["user", app_role]
        if conversation_role is not None:
            roles.append(CONVERSATION_ROLES[conversation_role])
        return any(permission in self.granted(kind, role, conversation_type)
                   for role in roles)

    def check_type(self, kind: str, conversation_type: str) -> None:
        """CONVERSATION_TYPE_UNKNOWN unless the app has the type, of this kind."""
        if conversation_type and self.types.get(conversation_type) != kind:
            raise FailedPrecondition(
                "CONVERSATION_TYPE_UNKNOWN", f"{conversation_type} is not a conversation "
                f"type of the app for {kind} conversations",
                metadata={"type": conversation_type})


def policy_body(policy: PermissionPolicy) -> dict[str, Any]:
    """The policy as stores keep it (JSON)."""
    return {"custom_roles": list(policy.custom_roles),
            "grants": [[kind, role, sorted(p.value for p in permissions)]
                       for (kind, role), permissions in sorted(policy.grants.items())],
            "conditions": [[c.condition_id, c.permission.value, sorted(c.kinds), c.expression,
                            c.description] for c in policy.conditions],
            "types": dict(policy.types)}


def policy_of(app_id: str, body: Mapping[str, Any], update_time: datetime
              ) -> PermissionPolicy:
    return PermissionPolicy(
        app_id, tuple(body["custom_roles"]),
        {(kind, role): frozenset(Permission(p) for p in permissions)
         for kind, role, permissions in body["grants"]}, update_time,
        tuple(Condition(i, Permission(p), frozenset(kinds), expression, description)
              for i, p, kinds, expression, description in body.get("conditions", ())),
        dict(body.get("types", {})))


class PolicyStore(Protocol):
    async def get_policy(self, app_id: str) -> PermissionPolicy | None: ...

    async def put_policy(self, policy: PermissionPolicy) -> None: ...


class SubjectLookup(Protocol):
    async def __call__(self, app_id: str, user_id: str) -> Subject:
        """The user's app role ("" for `user`), metadata and creation time."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """An app's policy with its conditions compiled."""

    policy: PermissionPolicy
    conditions: tuple[tuple[Condition, Any | None], ...]  # None: did not compile


def role_unknown(role: str) -> FailedPrecondition:
    return FailedPrecondition(
        "ROLE_UNKNOWN", f"{role} is neither a built-in role nor a custom role of the app",
        metadata={"role": role})


class Permissions:
    def __init__(self, store: PolicyStore, subject_of: SubjectLookup, ttl: float,
                 bus: EventBus, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._subject_of = subject_of
        self._conditions = Conditions()
        self._policies: TtlCache[str, Compiled] = TtlCache(ttl)
        self._subjects: TtlCache[tuple[str, str], Subject] = TtlCache(ttl)
        bus.subscribe(self._on_event)

    async def _compiled(self, app_id: str) -> Compiled:
        found = self._policies.get(app_id)
        if found is None:
            policy = await self._store.get_policy(app_id) or PermissionPolicy(app_id)
            found = Compiled(policy, tuple((c, self._compile_stored(c))
                                           for c in policy.conditions))
            self._policies.put(app_id, found)
        return found

    def _compile_stored(self, condition: Condition) -> Any | None:
        try:
            return self._conditions.compile(condition.expression)
        except ConditionError:  # checked when saved: only a newer CEL could refuse it
            log.warning("a stored permission condition no longer compiles; it refuses",
                        extra={"condition": condition.condition_id})
            return None

    async def policy(self, app_id: str) -> PermissionPolicy:
        return (await self._compiled(app_id)).policy

    async def subject(self, app_id: str, user_id: str) -> Subject:
        key = (app_id, user_id)
        found = self._subjects.get(key)
        if found is None:
            found = await self._subject_of(app_id, user_id)
            self._subjects.put(key, found)
        return found

    async def role(self, app_id: str, user_id: str) -> str:
        return (await self.subject(app_id, user_id)).role or "user"

    async def allows(self, app_id: str, user_id: str, kind: str,
                     conversation_role: Role | None, permission: Permission,
                     facts: Facts | None = None) -> bool:
        return await self._refusal(app_id, user_id, kind, conversation_role, permission,
                                   facts) is None

    async def require(self, app_id: str, user_id: str, kind: str,
                      conversation_role: Role | None, permission: Permission,
                      facts: Facts | None = None) -> None:
        """PERMISSION_DENIED unless the user's roles are granted the permission in
        conversations of `kind` (PERMISSION_MISSING, naming it) and each condition on it
        holds (POLICY_DENIED, naming the condition)."""
        refusal = await self._refusal(app_id, user_id, kind, conversation_role, permission,
                                      facts)
        if refusal is not None:
            raise refusal

    async def _refusal(self, app_id: str, user_id: str, kind: str,
                       conversation_role: Role | None, permission: Permission,
                       facts: Facts | None) -> PermissionDenied | None:
        compiled = await self._compiled(app_id)
        subject = await self.subject(app_id, user_id)
        role = subject.role or "user"
        conversation_type = facts.conversation_type if facts is not None else ""
        if not compiled.policy.allows(kind, role, conversation_role, permission,
                                      conversation_type):
            return PermissionDenied(
                "PERMISSION_MISSING", f"this needs the {permission.value} permission, "
                f"which your roles are not granted here",
                metadata={"permission": permission.value, "role": role})
        data: dict[str, Any] | None = None
        for condition, program in compiled.conditions:
            if not condition.applies(permission, kind):
                continue
            if data is None:
                data = Conditions.data(user_id, subject, facts or Facts(kind=kind),
                                       self._clock.now())
            if program is None or not Conditions.holds(program, data):
                metadata = {"condition": condition.condition_id,
                            "permission": permission.value}
                if condition.description:
                    metadata["description"] = condition.description
                return PermissionDenied(
                    "POLICY_DENIED", f"the app's condition {condition.condition_id} on "
                    f"{permission.value} does not hold"
                    f"{': ' + condition.description if condition.description else ''}",
                    metadata=metadata)
        return None

    async def check_type(self, app_id: str, kind: str, conversation_type: str) -> None:
        """CONVERSATION_TYPE_UNKNOWN unless the app has the type, of this kind."""
        if conversation_type:
            (await self.policy(app_id)).check_type(kind, conversation_type)

    async def check_role(self, app_id: str, role: str) -> None:
        """ROLE_UNKNOWN unless `role` is built in or one of the app's custom roles."""
        if role and not (await self.policy(app_id)).knows(role):
            raise role_unknown(role)

    # Managing the policy: the app's backend and the operator.

    async def get(self, principal: Principal, app_id: str) -> PermissionPolicy:
        require_backend(principal, app_id, "permission policies")
        return await self._store.get_policy(app_id) or PermissionPolicy(app_id)

    async def do_update(self, principal: Principal, policy: PermissionPolicy
                        ) -> PermissionPolicy:
        """Replace the app's policy; ROLE_UNKNOWN for a grant to a role it does not have."""
        require_backend(principal, policy.app_id, "permission policies")
        unknown = {role for _, role in policy.grants
                   if not role.startswith("conversation:") and not policy.knows(role)}
        if unknown:
            raise role_unknown(sorted(unknown)[0])
        for scope, _ in policy.grants:
            kind, _, conversation_type = scope.partition("/")
            policy.check_type(kind, conversation_type)
        for index, condition in enumerate(policy.conditions):
            try:
                self._conditions.compile(condition.expression)
            except ConditionError as exc:
                raise invalid_field(f"policy.conditions[{index}].expression",
                                    f"CEL refuses it: {exc}") from None
        stored = replace(policy, update_time=truncate_ms(self._clock.now()))
        await self._store.put_policy(stored)
        self._policies.discard(policy.app_id)
        return stored

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type in ("user.updated", "user.deleted") and "user" in event.data:
            self._subjects.discard((event.app_id, event.data["user"]))
