"""The permission rules by themselves: the defaults grant what the fixed conversation
roles allowed before policies existed, a grant changes one role in one kind only, and
app roles add to conversation roles (guests excepted from what users have)."""

from __future__ import annotations

import pytest

from services.conversations.models import Role
from services.moderation.permissions import Permission, PermissionPolicy

P = Permission
DEFAULT = PermissionPolicy("alpha")


@pytest.mark.parametrize(("role", "allowed", "refused"), [
    (Role.MEMBER, {P.SEND_MESSAGE, P.SEND_LINKS, P.REACT},
     {P.DELETE_ANY_MESSAGE, P.MODERATE, P.UPDATE_CONVERSATION}),
    (Role.MODERATOR, {P.DELETE_ANY_MESSAGE, P.MODERATE, P.SKIP_SLOW_MODE, P.SEND_MESSAGE},
     {P.ADD_MEMBERS, P.SEND_WHEN_FROZEN}),
    (Role.ADMIN, {P.ADD_MEMBERS, P.REMOVE_MEMBERS, P.SEND_WHEN_FROZEN, P.MODERATE},
     {P.DELETE_CONVERSATION}),
    (Role.OWNER, set(Permission) - {P.CREATE_CONVERSATION}, set()),
])
def test_the_defaults_are_the_conversation_roles_of_before(
        role: Role, allowed: set[Permission], refused: set[Permission]) -> None:
    for permission in allowed:
        assert DEFAULT.allows("group", "guest", role, permission), permission
    for permission in refused:
        assert not DEFAULT.allows("group", "guest", role, permission), permission


def test_app_roles_add_to_conversation_roles() -> None:
    assert DEFAULT.allows("group", "user", None, P.CREATE_CONVERSATION)
    assert not DEFAULT.allows("group", "guest", None, P.CREATE_CONVERSATION)
    assert DEFAULT.allows("channel", "moderator", Role.MEMBER, P.DELETE_ANY_MESSAGE)
    assert DEFAULT.allows("channel", "moderator", None, P.CREATE_CONVERSATION)  # as a user
    assert DEFAULT.allows("direct", "admin", None, P.DELETE_CONVERSATION)
    assert not DEFAULT.allows("group", "vip", Role.MEMBER, P.MODERATE)  # custom: nothing


def test_a_grant_changes_one_role_in_one_kind() -> None:
    policy = PermissionPolicy("alpha", ("vip",), {
        ("channel", "conversation:member"): frozenset({P.REACT}),
        ("channel", "vip"): frozenset({P.SEND_MESSAGE})})
    assert not policy.allows("channel", "user", Role.MEMBER, P.SEND_MESSAGE)
    assert policy.allows("channel", "vip", Role.MEMBER, P.SEND_MESSAGE)
    assert policy.allows("channel", "user", Role.MODERATOR, P.SEND_MESSAGE)  # untouched
    assert policy.allows("group", "user", Role.MEMBER, P.SEND_MESSAGE)  # another kind
    assert policy.knows("vip") and policy.knows("guest") and not policy.knows("wizard")
