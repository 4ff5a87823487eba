"""What can be done with apps and API keys: `check_*` authorises, `do_*` writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.apps.models import (
    KEEP,
    NO_GUESTS,
    ApiKey,
    App,
    GuestAccess,
    Keep,
    api_key_secret,
)
from services.apps.store import AppStore
from services.core.cache import TtlCache
from services.core.clock import Clock, to_ms, truncate_ms
from services.core.errors import (
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    StoreConflict,
    Unauthenticated,
    already_exists,
    not_found,
)
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id, new_secret, secret_hash
from services.core.names import api_key_name, app_name
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import (
    FULL_SCOPE,
    AppBackend,
    Developer,
    Operator,
    Principal,
    require_app,
)
from services.core.settings import Plan, Settings
from services.organizations.access import MemberAccess, role_required
from services.organizations.models import BUILDERS


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once


def _whole_ms(retention: timedelta | None) -> timedelta | None:
    """`retention` at the millisecond precision the stores keep (the contract bounds it)."""
    if retention is None:
        return None
    return timedelta(milliseconds=retention // timedelta(milliseconds=1))


def _whole_ms_guests(guests: GuestAccess) -> GuestAccess:
    return GuestAccess(guests.enabled, _whole_ms(guests.session_lifetime))


def check_no_escalation(creator: AppBackend, scopes: frozenset[str],
                        expire_time: datetime | None) -> None:
    """PERMISSION_DENIED (`API_KEY_SCOPE_ESCALATION`) unless a key with `scopes`, expiring
    at `expire_time`, can do no more than `creator` and lives no longer."""
    beyond = sorted(s for s in scopes if not creator.has_scope(s))
    if beyond:
        raise PermissionDenied("API_KEY_SCOPE_ESCALATION",
                               f"an API key cannot grant a scope it lacks: {', '.join(beyond)}",
                               metadata={"scope": beyond[0]})
    if creator.expire_time is not None and (expire_time is None
                                            or expire_time > creator.expire_time):
        raise PermissionDenied(
            "API_KEY_SCOPE_ESCALATION", "a key created by an expiring key must expire no "
            f"later than it ({creator.expire_time.isoformat()})",
            metadata={"expire_time": creator.expire_time.isoformat()})


def check_operator(principal: Principal) -> None:
    if not isinstance(principal, Operator):
        raise PermissionDenied("PRINCIPAL_NOT_ALLOWED", "only the operator may do this")


def _organization_of(name: str) -> str:
    return name.removeprefix("organizations/")


def _named(organization: str, field: str, advice: str) -> None:
    """INVALID_ARGUMENT unless a developer's request names its organization."""
    if not organization:
        raise InvalidArgument("REQUEST_INVALID", advice, field_violations=(
            FieldViolation(field, "required of a developer"),))


class AppsActions:
    def __init__(self, store: AppStore, clock: Clock, bus: EventBus, settings: Settings,
                 members: MemberAccess) -> None:
        self._store = store
        self._members = members
        self._clock = clock
        self._bus = bus
        self._plans = settings.plans
        self._default_plan = settings.default_plan
        self._grace = settings.app_deletion_grace

    def check_plan(self, plan: str) -> str:
        """The plan to store for `plan` ("" means the default); INVALID_ARGUMENT if unknown."""
        chosen = plan or self._default_plan
        if chosen not in self._plans:
            known = ", ".join(sorted(self._plans))
            raise InvalidArgument(
                "PLAN_UNKNOWN", f"plan {chosen!r} is not configured (known: {known})",
                field_violations=(FieldViolation("app.plan", f"must be one of: {known}"),))
        return chosen

    def _new_key(self, app_id: str, display_name: str, scopes: frozenset[str] = FULL_SCOPE,
                 expire_time: datetime | None = None) -> NewApiKey:
        key_id = new_id()
        secret = api_key_secret(app_id, key_id, new_secret())
        key = ApiKey(app_id, key_id, display_name, secret_hash(secret), self._clock.now(),
                     scopes=scopes, expire_time=expire_time)
        return NewApiKey(key, secret)

    async def _check_builder(self, principal: Principal, organization: str, plan: str) -> None:
        """A developer creates apps in an organization where they build, on the default
        plan; the operator anywhere."""
        if isinstance(principal, Operator):
            return
        assert isinstance(principal, Developer), "the access policy admits developers"
        _named(organization, "app.organization", "name the organization that will own the app")
        if plan:
            raise PermissionDenied("PRINCIPAL_NOT_ALLOWED",
                                   "plans are the operator's to choose: leave app.plan empty")
        member, _ = await self._members.membership(principal, _organization_of(organization))
        if member.role not in BUILDERS:
            raise role_required("owner, admin or developer", member)

    async def do_create_app(self, principal: Principal, app_id: str, display_name: str,
                            plan: str, media_retention: timedelta | None = None,
                            organization: str = "", guest_access: GuestAccess = NO_GUESTS
                            ) -> tuple[App, NewApiKey]:
        """Create an app with its first API key, atomically. ALREADY_EXISTS if taken.

        `media_retention` None: the server's default. `organization`
        (`organizations/{id}`): its owner."""
        await self._check_builder(principal, organization, plan)
        now = self._clock.now()
        app = App(app_id, display_name, self.check_plan(plan), now, now,
                  _whole_ms(media_retention), organization_id=_organization_of(organization),
                  guest_access=_whole_ms_guests(guest_access))
        first = self._new_key(app_id, "first key")
        try:
            await self._store.create_app(app, first.key)
        except StoreConflict as exc:
            raise already_exists("caas.dev/App", app_name(app_id)) from exc
        await self._bus.publish(DomainEvent("app.created", app_id, now))
        return app, first

    async def get_app(self, principal: Principal, app_id: str) -> App:
        require_app(principal, app_id)
        app = await self._store.get_app(app_id)
        if app is None:
            raise not_found("caas.dev/App", app_name(app_id))
        return app

    async def list_apps(self, principal: Principal, page_size: int, page_token: str,
                        organization: str = "") -> Page[App]:
        """Every app (the operator) or those of `organization` (`organizations/{id}`),
        which a developer must name and belong to."""
        if isinstance(principal, Developer):
            _named(organization, "organization", "name the organization whose apps to list")
            await self._members.membership(principal, _organization_of(organization))
        else:
            check_operator(principal)
        scope = ["apps", organization]
        request = page_request(page_size, page_token, scope)
        apps = await self._store.list_apps(request.size + 1, time_id_position(request),
                                           _organization_of(organization) or None)
        return make_page(apps, request, scope, lambda a: (to_ms(a.create_time), a.app_id))

    async def do_update_app(self, principal: Principal, app_id: str, *,
                            display_name: str | None, plan: str | None,
                            media_retention: timedelta | Keep | None = KEEP,
                            guest_access: GuestAccess | None = None) -> App:
        """Change the given fields: None (KEEP for `media_retention`) leaves one as it
        is; a None `media_retention` goes back to the server's default.

        The operator changes any app; the app's backend its own (APP_MISMATCH
        otherwise), its display name and guest access only: the plan and the media
        retention are the operator's (PERMISSION_DENIED, PRINCIPAL_NOT_ALLOWED)."""
        require_app(principal, app_id)
        if not isinstance(principal, Operator):
            assert isinstance(principal, AppBackend), "the access policy admits app backends"
            if plan is not None or not isinstance(media_retention, Keep):
                raise PermissionDenied("PRINCIPAL_NOT_ALLOWED",
                                       "the plan and the media retention are the operator's "
                                       "to change: leave them out of the update_mask")
        if plan is not None:
            plan = self.check_plan(plan)
        if not isinstance(media_retention, Keep):
            media_retention = _whole_ms(media_retention)
        now = self._clock.now()
        app = await self._store.update_app(
            app_id, now, display_name=display_name, plan=plan, media_retention=media_retention,
            guest_access=None if guest_access is None else _whole_ms_guests(guest_access))
        if app is None:
            raise not_found("caas.dev/App", app_name(app_id))
        await self._bus.publish(DomainEvent("app.updated", app_id, now))
        return app

    async def do_delete_app(self, principal: Principal, app_id: str) -> App:
        """Refuse the app's credentials from now on, and set when its data goes (once;
        deleting again keeps the first deletion's times)."""
        check_operator(principal)
        now = self._clock.now()
        app = await self._store.get_app(app_id)
        if app is None:
            raise not_found("caas.dev/App", app_name(app_id))
        if app.delete_time is None:
            app = await self._store.mark_deleted(app_id, now,
                                                 now + self._grace)
            assert app is not None
            await self._bus.publish(DomainEvent("app.updated", app_id, now))
        return app

    async def do_undelete_app(self, principal: Principal, app_id: str) -> App:
        check_operator(principal)
        app = await self._store.mark_deleted(app_id, None, None)
        if app is None:
            raise not_found("caas.dev/App", app_name(app_id))
        await self._bus.publish(DomainEvent("app.updated", app_id, self._clock.now()))
        return app

    async def do_create_api_key(self, principal: Principal, app_id: str, display_name: str,
                                scopes: frozenset[str] = frozenset(),
                                expire_time: datetime | None = None) -> NewApiKey:
        """A new key with `scopes` (none: every scope) that expires at `expire_time`
        (None: never). A key creating one grants no scope it lacks, and no longer life."""
        await self.get_app(principal, app_id)  # another app's caller learns nothing more
        if not scopes and isinstance(principal, AppBackend) and principal.member_role:
            scopes = principal.scopes  # a developer's key: their role's scopes
        scopes = scopes or FULL_SCOPE
        expire_time = None if expire_time is None else truncate_ms(expire_time)
        if isinstance(principal, AppBackend):
            check_no_escalation(principal, scopes, expire_time)
        new = self._new_key(app_id, display_name, scopes, expire_time)
        await self._store.create_api_key(new.key)
        await self._bus.publish(DomainEvent("api_key.created", app_id, new.key.create_time,
                                            {"api_key": new.key.key_id}))
        return new

    async def list_api_keys(self, principal: Principal, app_id: str, page_size: int,
                            page_token: str) -> Page[ApiKey]:
        require_app(principal, app_id)
        scope = [app_name(app_id), "apiKeys"]
        request = page_request(page_size, page_token, scope)
        keys = await self._store.list_api_keys(app_id, request.size + 1, time_id_position(request))
        return make_page(keys, request, scope, lambda k: (to_ms(k.create_time), k.key_id))

    async def do_revoke_api_key(self, principal: Principal, app_id: str, key_id: str
                                ) -> ApiKey:
        require_app(principal, app_id)
        now = self._clock.now()
        key = await self._store.revoke_api_key(app_id, key_id, now)
        if key is None:
            raise not_found("caas.dev/ApiKey", api_key_name(app_id, key_id))
        await self._bus.publish(DomainEvent("api_key.revoked", app_id, now,
                                            {"api_key": key_id}))
        return key


@dataclass(frozen=True, slots=True)
class _AppSettings:
    plan: Plan
    media_retention: timedelta | None
    deleted: bool = False


class AppPlans:
    """The per-app settings other domains read on hot paths (rate-limit plan, media
    retention), cached for 30 s; forgets an app when it changes ("app.updated")."""

    def __init__(self, store: AppStore, settings: Settings, bus: EventBus) -> None:
        self._store = store
        self._plans = settings.plans
        self._default = settings.plans[settings.default_plan]
        self._cache: TtlCache[str, _AppSettings] = TtlCache(ttl=30.0, max_entries=50_000)
        bus.subscribe(self._on_event)

    async def _settings_of(self, app_id: str) -> _AppSettings:
        found = self._cache.get(app_id)
        if found is None:
            app = await self._store.get_app(app_id)
            if app is None:  # gone (DeleteApp erased it): its tokens must not work either
                found = _AppSettings(self._default, None, deleted=True)
            else:
                found = _AppSettings(self._plans.get(app.plan, self._default),
                                     app.media_retention, app.delete_time is not None)
            self._cache.put(app_id, found)
        return found

    async def plan_of(self, app_id: str) -> Plan:
        """The app's plan (the default for an unknown plan). Every call of an app's
        backend or users asks: those of a deleted or unknown app are refused here
        (UNAUTHENTICATED, APP_UNAVAILABLE), in every process within the cache's 30 s."""
        found = await self._settings_of(app_id)
        if found.deleted:
            raise Unauthenticated("APP_UNAVAILABLE", "this app was deleted")
        return found.plan

    async def media_retention(self, app_id: str) -> timedelta | None:
        """How long the app keeps the media of deleted messages and users; None when
        the app sets none (or is unknown): the caller applies the server's default."""
        return (await self._settings_of(app_id)).media_retention

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type == "app.updated":
            self._cache.discard(event.app_id)
