"""What developers do with organizations: create them, manage members and roles,
invite by email, accept invitations."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from services.accounts.models import PORTAL_KEYS, Account
from services.accounts.store import AccountStore
from services.core.clock import Clock
from services.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    already_exists,
    invalid_field,
    not_found,
)
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id, new_secret, secret_hash
from services.core.mail import Email, Mailer
from services.core.principal import Developer, Operator, Principal
from services.edge.portal import PortalAddress
from services.gateway.gateway import spend
from services.gateway.ratelimit import Bucket, RateLimiter
from services.organizations.access import (
    MEMBERSHIP_CHANGED,
    MemberAccess,
    mfa_refused,
    role_required,
)
from services.organizations.models import (
    MANAGERS,
    Invitation,
    Member,
    Organization,
    Role,
)
from services.organizations.store import OrganizationStore, Outcome, Position

log = logging.getLogger("caas.organizations")


def organization_name(organization_id: str) -> str:
    return f"organizations/{organization_id}"


def _last_owner(organization_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "LAST_OWNER", "the organization would have no owner: make another member owner first",
        metadata={"organization": organization_name(organization_id)})


def _unverified() -> FailedPrecondition:
    return FailedPrecondition("EMAIL_NOT_VERIFIED",
                              "verify your email address first (see the email we sent)")


class Organizations:
    def __init__(self, store: OrganizationStore, accounts: AccountStore, access: MemberAccess,
                 mailer: Mailer, clock: Clock, bus: EventBus, portal: PortalAddress,
                 invitation_lifetime: timedelta, limiter: RateLimiter,
                 invitations_per_window: int) -> None:
        self._store = store
        self._accounts = accounts
        self._access = access
        self._mailer = mailer
        self._clock = clock
        self._bus = bus
        self._portal = portal
        self._invitation_lifetime = invitation_lifetime
        self._limiter = limiter
        self._invitations_per_window = invitations_per_window

    async def _changed(self, organization_id: str) -> None:
        await self._bus.publish(DomainEvent(MEMBERSHIP_CHANGED, PORTAL_KEYS, self._clock.now(),
                                            {"organization": organization_id}))

    async def _account(self, developer: Developer) -> Account:
        account = await self._accounts.get_account(developer.account_id)
        if account is None:  # a session outlived its account: refuse as a stranger
            raise PermissionDenied("NOT_AN_ORGANIZATION_MEMBER", "unknown account")
        return account

    async def member(self, principal: Principal, organization_id: str
                     ) -> tuple[Member | None, Organization]:
        """The caller's membership (None: the operator) and the organization."""
        if isinstance(principal, Operator):
            organization = await self._store.get_organization(organization_id)
            if organization is None:
                raise not_found("caas.dev/Organization", organization_name(organization_id))
            return None, organization
        assert isinstance(principal, Developer), "the access policy admits developers"
        member, organization = await self._access.membership(principal, organization_id)
        return member, organization

    async def _manager(self, principal: Principal, organization_id: str
                       ) -> tuple[Member | None, Organization]:
        member, organization = await self.member(principal, organization_id)
        if member is not None and member.role not in MANAGERS:
            raise role_required("owner or admin", member)
        return member, organization

    # -- organizations ----------------------------------------------------------------

    async def create(self, principal: Principal, organization_id: str, display_name: str,
                     require_mfa: bool) -> Organization:
        assert isinstance(principal, Developer)
        account = await self._account(principal)
        if not account.email_verified:
            raise _unverified()
        now = self._clock.now()
        organization = Organization(organization_id, display_name, require_mfa, now)
        if require_mfa and not principal.mfa_verified:
            raise mfa_refused(organization)
        if not await self._store.create_organization(
                organization, Member(organization_id, principal.account_id, Role.OWNER, now)):
            raise already_exists("caas.dev/Organization", organization_name(organization_id))
        await self._changed(organization_id)
        return organization

    async def get(self, principal: Principal, organization_id: str) -> Organization:
        return (await self.member(principal, organization_id))[1]

    async def listed(self, principal: Principal, limit: int, after: Position | None
                     ) -> list[Organization]:
        ids = None
        if isinstance(principal, Developer):
            ids = [m.organization_id for m in await self._store.memberships(
                principal.account_id)]
        return await self._store.list_organizations(ids, limit, after)

    async def update(self, principal: Principal, organization_id: str,
                     display_name: str | None, require_mfa: bool | None) -> Organization:
        member, organization = await self._manager(principal, organization_id)
        if require_mfa is not None and require_mfa != organization.require_mfa:
            if member is not None and member.role is not Role.OWNER:
                raise role_required("owner", member)
            if require_mfa and isinstance(principal, Developer) and not principal.mfa_verified:
                raise mfa_refused(replace(organization, require_mfa=True))
            organization = replace(organization, require_mfa=require_mfa)
        if display_name is not None:
            if not display_name.strip():
                raise invalid_field("organization.display_name", "must not be empty",
                                    "REQUEST_INVALID")
            organization = replace(organization, display_name=display_name)
        await self._store.save_organization(organization)
        await self._changed(organization_id)
        return organization

    # -- members --------------------------------------------------------------------------

    async def members(self, principal: Principal, organization_id: str, limit: int,
                      after: Position | None) -> list[tuple[Member, Account | None]]:
        await self.member(principal, organization_id)
        members = await self._store.list_members(organization_id, limit, after)
        return [(m, await self._accounts.get_account(m.account_id)) for m in members]

    async def _target(self, principal: Principal, organization_id: str, account_id: str,
                      role: Role | None) -> Member:
        """The member `principal` changes to `role` (None: removes), if allowed."""
        caller, _ = await self.member(principal, organization_id)
        target = await self._store.get_member(organization_id, account_id)
        if target is None:
            raise not_found("caas.dev/OrganizationMember",
                            f"{organization_name(organization_id)}/members/{account_id}")
        leaving = role is None and caller is not None and caller.account_id == account_id
        if caller is not None and not leaving:
            if caller.role not in MANAGERS:
                raise role_required("owner or admin", caller)
            if caller.role is not Role.OWNER and Role.OWNER in (target.role, role):
                raise role_required("owner", caller)
        return target

    async def update_member(self, principal: Principal, organization_id: str,
                            account_id: str, role: Role) -> tuple[Member, Account | None]:
        target = await self._target(principal, organization_id, account_id, role)
        outcome = await self._store.set_role(organization_id, account_id, role)
        if outcome is Outcome.LAST_OWNER:
            raise _last_owner(organization_id)
        await self._changed(organization_id)
        return replace(target, role=role), await self._accounts.get_account(account_id)

    async def remove_member(self, principal: Principal, organization_id: str,
                            account_id: str) -> None:
        await self._target(principal, organization_id, account_id, None)
        outcome = await self._store.remove_member(organization_id, account_id)
        if outcome is Outcome.LAST_OWNER:
            raise _last_owner(organization_id)
        await self._changed(organization_id)

    # -- invitations ----------------------------------------------------------------------

    async def invite(self, principal: Principal, organization_id: str, email: str,
                     role: Role) -> Invitation:
        caller, organization = await self._manager(principal, organization_id)
        if role is Role.OWNER and caller is not None and caller.role is not Role.OWNER:
            raise role_required("owner", caller)
        email = email.strip().lower()
        # Each invitation emails an address of the inviter's choosing: a budget per
        # organization, so that no one sends mail through CAAS in bulk.
        await spend(self._limiter, [Bucket(
            f"{{portal}}:invite:{organization_id}", self._invitations_per_window,
            f"organization:{organization_id}")], "too many invitations",
            {"organization": organization_id}, "invitations per window")
        invitee = await self._accounts.account_by_email(email)
        if invitee is not None and await self._store.get_member(
                organization_id, invitee.account_id) is not None:
            raise already_exists("caas.dev/OrganizationMember",
                                 f"{organization_name(organization_id)}"
                                 f"/members/{invitee.account_id}")
        token = new_secret()
        now = self._clock.now()
        inviter = caller.account_id if caller is not None else ""
        invitation = Invitation(organization_id, new_id(), email, role, inviter,
                                secret_hash(token), now, now + self._invitation_lifetime)
        await self._store.put_invitation(invitation)
        try:
            await self._mailer.send(Email(email, f"Join {organization.display_name} on CAAS", (
                f"You are invited to join {organization.display_name} on CAAS as "
                f"{role.value}. Sign up or log in with this address, then open:\n\n"
                f"{self._portal.url}accept-invitation?token={token}\n\n"
                f"The link works until {invitation.expire_time:%Y-%m-%d %H:%M} UTC.\n")))
        except Exception:
            log.exception("invitation email to %s failed", email)
        return invitation

    async def invitations(self, principal: Principal, organization_id: str, limit: int,
                          after: Position | None) -> list[Invitation]:
        await self.member(principal, organization_id)
        return await self._store.list_invitations(organization_id, self._clock.now(), limit,
                                                  after)

    async def withdraw(self, principal: Principal, organization_id: str,
                       invitation_id: str) -> None:
        await self._manager(principal, organization_id)
        if not await self._store.delete_invitation(organization_id, invitation_id):
            raise not_found("caas.dev/Invitation", f"{organization_name(organization_id)}"
                                                   f"/invitations/{invitation_id}")

    async def accept(self, principal: Principal, token: str) -> tuple[Member, Account]:
        assert isinstance(principal, Developer)
        account = await self._account(principal)
        if not account.email_verified:
            raise _unverified()
        invitation = await self._store.take_invitation(secret_hash(token), self._clock.now())
        if invitation is None:
            raise InvalidArgument("ACCOUNT_TOKEN_INVALID",
                                  "the invitation is invalid, expired or withdrawn")
        if invitation.email != account.email:
            await self._store.put_invitation(invitation)  # it stays for its invitee
            raise FailedPrecondition(
                "INVITATION_EMAIL_MISMATCH",
                "this invitation was sent to another email address: log in with that one")
        member = Member(invitation.organization_id, account.account_id, invitation.role,
                        self._clock.now())
        if not await self._store.add_member(member):
            existing = await self._store.get_member(invitation.organization_id,
                                                    account.account_id)
            assert existing is not None
            member = existing
        await self._changed(invitation.organization_id)
        return member, account
