"""Signing users in and out: sessions, token refresh, signing keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.apps.store import AppStore
from services.auth import tokens
from services.auth.models import (
    RefreshToken,
    RevokeReason,
    RotateOutcome,
    Session,
    SigningKey,
    refresh_token_app,
    refresh_token_secret,
)
from services.auth.signing import SigningKeys
from services.auth.store import AuthStore
from services.core.budget import Charge
from services.core.clock import Clock, to_ms
from services.core.errors import FailedPrecondition, Unauthenticated, not_found
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id, new_secret, secret_hash
from services.core.names import app_name, is_app_id, session_name
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import Principal, User, require_app, require_user_or_app
from services.core.settings import Settings
from services.gateway.gateway import spend
from services.gateway.ratelimit import Bucket, RateLimiter
from services.moderation.restrictions import Restrictions
from services.users.models import User as UserRecord


@dataclass(frozen=True, slots=True)
class Credentials:
    access_token: str
    access_token_expire_time: datetime
    refresh_token: str
    refresh_token_expire_time: datetime


class AuthActions:
    def __init__(self, apps: AppStore, store: AuthStore, signing: SigningKeys, clock: Clock,
                 bus: EventBus, settings: Settings,
                 ensure_user: Callable[[str, str], Awaitable[object]],
                 restrictions: Restrictions, limiter: RateLimiter,
                 create_guest: Callable[[str, str], Awaitable[UserRecord]]) -> None:
        """`ensure_user(app_id, user_id)` creates a missing user and refuses a deleted one;
        `create_guest(app_id, display_name)` creates a new guest of the app."""
        self._apps = apps
        self._restrictions = restrictions
        self._ensure_user = ensure_user
        self._create_guest = create_guest
        self._limiter = limiter
        self._guests_per_address = settings.guest_sessions_per_address
        self._store = store
        self._signing = signing
        self._clock = clock
        self._bus = bus
        self._access_ttl = settings.access_token_ttl
        self._refresh_ttl = settings.refresh_token_ttl

    async def _credentials(self, session: Session, refresh_token: str, now: datetime
                           ) -> Credentials:
        key = await self._signing.primary(session.app_id)
        ttl = session.access_ttl
        if session.end_time is not None:  # no token outlives its session
            ttl = min(ttl, session.end_time - now)
        access, access_expiry = tokens.issue(key, session.user_id, session.session_id, now,
                                             ttl)
        return Credentials(access, access_expiry, refresh_token, session.expire_time)

    async def do_create_session(self, principal: Principal, app_id: str, user_id: str,
                                device_name: str, access_ttl: timedelta | None,
                                charge: Charge) -> tuple[Session, Credentials]:
        """Sign a user in on a device, counted against that user's sign-in budget; a user
        id not seen before becomes a user.

        NOT_FOUND if the app does not exist; FAILED_PRECONDITION if the user was deleted.
        """
        require_app(principal, app_id)
        await charge(app_id, user_id)
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))
        await self._ensure_user(app_id, user_id)
        await self._restrictions.check_sign_in(app_id, user_id)
        now = self._clock.now()
        session = Session(app_id, new_id(), user_id, device_name, access_ttl or self._access_ttl,
                          now, now, now + self._refresh_ttl)
        return session, await self._open(session, now)

    async def _open(self, session: Session, now: datetime) -> Credentials:
        """Store a new session with its first refresh token, say so, and answer its
        first credentials."""
        refresh = refresh_token_secret(session.app_id, new_secret())
        await self._store.create_session(
            session, RefreshToken(session.app_id, secret_hash(refresh), session.session_id, 1,
                                  now))
        await self._bus.publish(DomainEvent("session.created", session.app_id, now,
                                            {"session": session.session_id,
                                             "user": session.user_id}))
        return await self._credentials(session, refresh, now)

    async def do_create_guest_session(self, app_id: str, display_name: str,
                                      device_name: str, address: str, charge: Charge
                                      ) -> tuple[UserRecord, Session, Credentials]:
        """A new guest of the app (role `guest`) signed in, for an anonymous caller from
        `address`: counted against the address's guest budget (every app together),
        then the app's budget for the RPC. The session ends the app's guest session
        lifetime from now, however often it refreshes.

        FAILED_PRECONDITION (GUEST_ACCESS_DISABLED) alike for an app without guest
        access, a deleted app and an unknown one: the caller learns no more than that;
        RESOURCE_EXHAUSTED (RATE_LIMITED) when a budget is spent.
        """
        await spend(self._limiter, [Bucket(f"{{guests}}:address:{address}",
                                           self._guests_per_address, f"address:{address}")],
                    "too many guest sessions from this address", {"address": address},
                    "guest sessions per window")
        app = await self._apps.get_app(app_id)
        if app is None or app.delete_time is not None or not app.guest_access.enabled:
            raise FailedPrecondition("GUEST_ACCESS_DISABLED",
                                     f"{app_name(app_id)} does not admit guests",
                                     metadata={"app": app_id})
        await charge(app_id, None)
        guest = await self._create_guest(app_id, display_name)
        now = self._clock.now()
        end = now + app.guest_access.lifetime
        session = Session(app_id, new_id(), guest.user_id, device_name,
                          min(self._access_ttl, end - now), now, now,
                          min(now + self._refresh_ttl, end), end_time=end)
        return guest, session, await self._open(session, now)

    async def do_refresh_session(self, refresh_token: str, charge: Charge
                                 ) -> tuple[Session, Credentials]:
        """Exchange a refresh token for new tokens; the presented token is used up.
        Counted against the budgets of the session's user and app.

        Raises UNAUTHENTICATED: REFRESH_TOKEN_INVALID (unknown or expired),
        REFRESH_TOKEN_REUSED (used before: the session is now revoked), or
        SESSION_REVOKED.
        """
        app_id = refresh_token_app(refresh_token)
        if app_id is None or not is_app_id(app_id):
            raise Unauthenticated("REFRESH_TOKEN_INVALID", "refresh token rejected")
        presented = secret_hash(refresh_token)
        owner = await self._store.find_refresh_token(app_id, presented)  # a read, no write
        if owner is None:
            raise Unauthenticated("REFRESH_TOKEN_INVALID", "refresh token rejected")
        await charge(app_id, owner.user_id)
        # A session made while its user was being banned outlives the ban's revocation.
        await self._restrictions.check_sign_in(app_id, owner.user_id)
        now = self._clock.now()
        new_token = refresh_token_secret(app_id, new_secret())
        result = await self._store.rotate_refresh_token(
            app_id, presented, secret_hash(new_token), now, now + self._refresh_ttl)
        session = result.session
        if result.outcome is RotateOutcome.UNKNOWN or session is None:
            raise Unauthenticated("REFRESH_TOKEN_INVALID", "refresh token rejected")
        if result.outcome is RotateOutcome.REUSED:
            await self._publish_revoked(session, now)
            raise Unauthenticated(
                "REFRESH_TOKEN_REUSED",
                "this refresh token was used before, so it may be stolen: the session is "
                "revoked; sign in again")
        if result.outcome is RotateOutcome.ENDED:
            if session.revoke_time is not None:
                raise Unauthenticated("SESSION_REVOKED", "the session was revoked: sign in again")
            raise Unauthenticated("REFRESH_TOKEN_INVALID",
                                  "refresh token expired: sign in again")
        return session, await self._credentials(session, new_token, now)

    async def _find_session(self, principal: Principal, app_id: str, user_id: str,
                            session_id: str) -> Session:
        require_user_or_app(principal, app_id, user_id)
        session = await self._store.get_session(app_id, session_id)
        if session is None or session.user_id != user_id:
            raise not_found("caas.dev/Session", session_name(app_id, user_id, session_id))
        return session

    async def get_session(self, principal: Principal, app_id: str, user_id: str,
                          session_id: str) -> Session:
        return await self._find_session(principal, app_id, user_id, session_id)

    async def list_sessions(self, principal: Principal, app_id: str, user_id: str,
                            page_size: int, page_token: str) -> Page[Session]:
        require_user_or_app(principal, app_id, user_id)
        scope = [app_id, user_id, "sessions"]
        request = page_request(page_size, page_token, scope)
        sessions = await self._store.list_sessions(app_id, user_id, request.size + 1,
                                                   time_id_position(request))
        return make_page(sessions, request, scope, lambda s: (to_ms(s.create_time),
                                                              s.session_id))

    async def do_revoke_session(self, principal: Principal, app_id: str, user_id: str,
                                session_id: str) -> Session:
        await self._find_session(principal, app_id, user_id, session_id)
        reason = (RevokeReason.SIGNED_OUT if isinstance(principal, User)
                  else RevokeReason.REVOKED_BY_APP)
        now = self._clock.now()
        session = await self._store.revoke_session(app_id, session_id, now, reason)
        if session is None:
            raise not_found("caas.dev/Session", session_name(app_id, user_id, session_id))
        await self._publish_revoked(session, now)
        return session

    async def _publish_revoked(self, session: Session, now: datetime) -> None:
        await self._bus.publish(DomainEvent("session.revoked", session.app_id, now,
                                            {"session": session.session_id,
                                             "user": session.user_id}))

    async def do_rotate_signing_key(self, principal: Principal, app_id: str) -> SigningKey:
        require_app(principal, app_id)
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))
        return await self._signing.rotate(app_id)

    async def list_signing_keys(self, principal: Principal, app_id: str) -> list[SigningKey]:
        require_app(principal, app_id)
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))
        return await self._signing.valid(app_id)
