"""Organizations of developer accounts, their members and invitations."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from services.core.principal import ALL_SCOPES


class Role(enum.Enum):
    """caas.organizations.v1.OrganizationMember.Role, strongest first."""

    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"
    BILLING = "billing"


READ_SCOPES = frozenset({
    "apps:read", "analytics:read", "audit:read", "conversations:read", "media:read",
    "messages:read", "presence:read", "search:read", "sessions:read", "users:read",
    "billing:read"})
# What a member may do on the organization's apps, as API key scopes.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.OWNER: frozenset({ALL_SCOPES}),
    Role.ADMIN: frozenset({ALL_SCOPES}),
    Role.DEVELOPER: frozenset(),  # every scope but DEVELOPER_EXCLUDED: see scopes_of
    Role.VIEWER: READ_SCOPES,
    Role.BILLING: frozenset({"apps:read", "analytics:read", "billing:read", "billing:write"}),
}
DEVELOPER_EXCLUDED = frozenset({"compliance", "signing_keys:admin", "billing:write"})
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})  # members and invitations
BUILDERS = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})  # create apps


def scopes_of(role: Role, catalogue: frozenset[str]) -> frozenset[str]:
    """The API key scopes of `role` (`catalogue`: every scope a key may hold)."""
    if role is Role.DEVELOPER:
        return catalogue - DEVELOPER_EXCLUDED - {ALL_SCOPES}
    return ROLE_SCOPES[role]


@dataclass(frozen=True, slots=True)
class Organization:
    organization_id: str
    display_name: str
    require_mfa: bool
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Member:
    organization_id: str
    account_id: str
    role: Role
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    organization_id: str
    invitation_id: str
    email: str
    role: Role
    inviter: str  # account id
    token_hash: str
    create_time: datetime
    expire_time: datetime
