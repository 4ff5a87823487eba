"""The organizations' storage port."""

from __future__ import annotations

import enum
from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from services.organizations.models import Invitation, Member, Organization, Role

Position = tuple[int, str]  # (time in ms, id) of the last item of the previous page


class Outcome(enum.Enum):
    """What a membership change did."""

    DONE = "done"
    MISSING = "missing"  # no such member
    LAST_OWNER = "last_owner"  # refused: the organization would have no owner


class OrganizationStore(Protocol):
    async def migrate(self) -> None: ...

    async def create_organization(self, organization: Organization, owner: Member) -> bool:
        """Store the organization and its first member, atomically; False if the id is
        taken."""

    async def get_organization(self, organization_id: str) -> Organization | None: ...

    async def save_organization(self, organization: Organization) -> None:
        """Replace the stored organization (it exists)."""

    async def list_organizations(self, ids: Collection[str] | None, limit: int,
                                 after: Position | None) -> list[Organization]:
        """Oldest first: those of `ids`, or every one (None)."""

    async def memberships(self, account_id: str) -> list[Member]:
        """The account's memberships, of every organization."""

    async def get_member(self, organization_id: str, account_id: str) -> Member | None: ...

    async def list_members(self, organization_id: str, limit: int,
                           after: Position | None) -> list[Member]:
        """Oldest first."""

    async def add_member(self, member: Member) -> bool:
        """False if the account is a member already (its role stays)."""

    async def set_role(self, organization_id: str, account_id: str, role: Role) -> Outcome:
        """Change the role, unless that would leave no owner (atomically)."""

    async def remove_member(self, organization_id: str, account_id: str) -> Outcome:
        """Remove the member, unless that would leave no owner (atomically)."""

    async def put_invitation(self, invitation: Invitation) -> None:
        """Store it, replacing a pending invitation of the same email to the organization."""

    async def get_invitation(self, organization_id: str, invitation_id: str
                             ) -> Invitation | None: ...

    async def list_invitations(self, organization_id: str, now: datetime, limit: int,
                               after: Position | None) -> list[Invitation]:
        """Those not expired, newest first."""

    async def delete_invitation(self, organization_id: str, invitation_id: str) -> bool: ...

    async def take_invitation(self, token_hash: str, now: datetime) -> Invitation | None:
        """Remove and return the invitation of this token, if it has not expired."""
