"""Who a developer is in an organization, and what that lets them do on its apps.

The gateway asks `acting_for` when a developer calls an app's RPC (one that API keys
call): the developer acts as the app's backend with the scopes of their role. The
answers are cached for `auth_cache_ttl`; this process forgets them at once when a
membership or an organization changes (other processes within that time).
"""

from __future__ import annotations

from buf.validate import validate_pb2
from caas.apps.v1 import resources_pb2 as apps_res

from services.apps.store import AppStore
from services.core.cache import TtlCache
from services.core.errors import PermissionDenied
from services.core.events import DomainEvent, EventBus
from services.core.principal import AppBackend, Developer
from services.organizations.models import Member, Organization, Role, scopes_of
from services.organizations.store import OrganizationStore

MEMBERSHIP_CHANGED = "organization.membership_changed"  # bus event: forget what is cached


def key_scope_catalogue() -> frozenset[str]:
    """Every scope an API key may hold: the `in` rule of `caas.apps.v1.ApiKey.scopes`."""
    rules = apps_res.ApiKey.DESCRIPTOR.fields_by_name["scopes"].GetOptions().Extensions[
        validate_pb2.field]
    return frozenset(getattr(rules.repeated.items.string, "in"))


def mfa_refused(organization: Organization) -> PermissionDenied:
    return PermissionDenied(
        "MFA_REQUIRED_BY_ORGANIZATION",
        f"organizations/{organization.organization_id} requires two-factor authentication: "
        "enroll an authenticator and log in with its code",
        metadata={"organization": f"organizations/{organization.organization_id}"})


def role_required(required: str, member: Member | None) -> PermissionDenied:
    """PERMISSION_DENIED, ORGANIZATION_ROLE_REQUIRED: `member`'s role (None: the
    operator's) is not among `required` (in words: "owner or admin")."""
    role = "operator" if member is None else member.role.value
    return PermissionDenied("ORGANIZATION_ROLE_REQUIRED",
                            f"your role ({role}) does not allow this: {required} only",
                            metadata={"required_role": required, "role": role})


def app_mismatch(app_id: str) -> PermissionDenied:
    return PermissionDenied("APP_MISMATCH", "the credentials do not belong to this app",
                            metadata={"app": app_id})


class MemberAccess:
    def __init__(self, store: OrganizationStore, apps: AppStore, ttl: float,
                 bus: EventBus) -> None:
        self._store = store
        self._apps = apps
        self._catalogue = key_scope_catalogue()
        # (account, app) → ((role, organization),) or (None,): not a member
        self._cache: TtlCache[tuple[str, str], tuple[tuple[Role, Organization] | None]] = \
            TtlCache(ttl)
        bus.subscribe(self._on_event)

    async def membership(self, developer: Developer, organization_id: str
                         ) -> tuple[Member, Organization]:
        """The developer's membership of the organization, checked against its MFA rule;
        PERMISSION_DENIED (NOT_AN_ORGANIZATION_MEMBER, the same whether or not it exists;
        MFA_REQUIRED_BY_ORGANIZATION) otherwise."""
        member = await self._store.get_member(organization_id, developer.account_id)
        organization = None if member is None else await self._store.get_organization(
            organization_id)
        if member is None or organization is None:
            raise PermissionDenied(
                "NOT_AN_ORGANIZATION_MEMBER", "you are not a member of this organization",
                metadata={"organization": f"organizations/{organization_id}"})
        if organization.require_mfa and not developer.mfa_verified:
            raise mfa_refused(organization)
        return member, organization

    async def acting_for(self, developer: Developer, app_id: str) -> AppBackend:
        """The developer as the backend of `app_id`, with their role's scopes;
        PERMISSION_DENIED (APP_MISMATCH, as for another app's key) unless a member of
        the app's organization, MFA_REQUIRED_BY_ORGANIZATION if its rule is not met."""
        key = (developer.account_id, app_id)
        cached = self._cache.get(key)
        if cached is None:
            cached = (await self._lookup(developer.account_id, app_id),)
            self._cache.put(key, cached)
        found = cached[0]
        if found is None:
            raise app_mismatch(app_id)
        role, organization = found
        if organization.require_mfa and not developer.mfa_verified:
            raise mfa_refused(organization)
        return AppBackend(app_id, f"accounts/{developer.account_id}",
                          scopes_of(role, self._catalogue), member_role=role.value)

    async def _lookup(self, account_id: str, app_id: str) -> tuple[Role, Organization] | None:
        app = await self._apps.get_app(app_id)
        if app is None or not app.organization_id:
            return None
        member = await self._store.get_member(app.organization_id, account_id)
        organization = await self._store.get_organization(app.organization_id)
        if member is None or organization is None:
            return None
        return member.role, organization

    async def mfa_required_by(self, account_id: str) -> str | None:
        """An organization of the account that requires MFA (its name), if any."""
        for member in await self._store.memberships(account_id):
            organization = await self._store.get_organization(member.organization_id)
            if organization is not None and organization.require_mfa:
                return f"organizations/{organization.organization_id}"
        return None

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type == MEMBERSHIP_CHANGED:
            self._cache.discard_where(lambda _key, _value: True)
