"""Turns the credential of a call into a Principal (the gateway's Authenticator).

Credentials, told apart by their shape:
- `caaso_…`: the operator token;
- `caask_<app>_<key>_…`: an app API key, checked against its stored hash;
- a JWT: a user access token, checked against the app's signing keys and its
  session (which must not be revoked);
- `caasp_<account>_<session>_…`: a developer's portal session (caas.accounts.v1).

Checked API keys and sessions are cached for `auth_cache_ttl`; this process
forgets them at once when they are revoked (events), other processes within
that time.
"""

from __future__ import annotations

from services.accounts.models import SESSION_REVOKED, SESSION_TOKEN_PREFIX, split_session_token
from services.accounts.store import AccountStore
from services.apps.models import API_KEY_PREFIX, split_api_key_secret
from services.apps.store import AppStore
from services.auth import tokens
from services.auth.models import REFRESH_TOKEN_PREFIX, SessionState
from services.auth.signing import SigningKeys
from services.auth.store import AuthStore
from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.errors import Unauthenticated
from services.core.events import DomainEvent, EventBus
from services.core.ids import same_secret, secret_hash
from services.core.principal import Anonymous, AppBackend, Developer, Operator, Principal, User
from services.core.settings import OPERATOR_TOKEN_PREFIX, Settings


class CredentialAuthenticator:
    def __init__(self, apps: AppStore, auth: AuthStore, signing: SigningKeys, clock: Clock,
                 settings: Settings, operator_token: str, bus: EventBus,
                 accounts: AccountStore) -> None:
        self._apps = apps
        self._auth = auth
        self._accounts = accounts
        self._signing = signing
        self._clock = clock
        self._leeway = settings.token_leeway
        self._operator_token = operator_token
        ttl = settings.auth_cache_ttl.total_seconds()
        self._api_keys: TtlCache[str, AppBackend] = TtlCache(ttl)  # by secret hash
        self._sessions: TtlCache[tuple[str, str], bool] = TtlCache(ttl)  # active?
        self._tokens: TtlCache[str, tuple[User, float]] = TtlCache(ttl)  # (user, exp)
        # portal sessions by secret hash: (developer, expiry as a timestamp)
        self._developers: TtlCache[str, tuple[Developer, float]] = TtlCache(ttl)
        # Counts revocations seen: a lookup that raced one must not cache its result.
        self._revocations = 0
        bus.subscribe(self._on_event)

    async def authenticate(self, credential: str | None) -> Principal:
        if credential is None:
            return Anonymous()
        if credential.startswith(OPERATOR_TOKEN_PREFIX):
            if not same_secret(credential, self._operator_token):
                raise Unauthenticated("OPERATOR_TOKEN_INVALID", "operator token rejected")
            return Operator()
        if credential.startswith(API_KEY_PREFIX):
            return await self._api_key(credential)
        if credential.startswith(SESSION_TOKEN_PREFIX):
            return await self._developer(credential)
        if credential.startswith(REFRESH_TOKEN_PREFIX):
            raise Unauthenticated(
                "CREDENTIALS_MALFORMED",
                "a refresh token is not a credential: exchange it with AuthService.RefreshSession")
        if credential.count(".") == 2:
            return await self._access_token(credential)
        raise Unauthenticated("CREDENTIALS_MALFORMED",
                              "unknown credential: expected an API key or an access token")

    async def _api_key(self, secret: str) -> AppBackend:
        digest = secret_hash(secret)
        principal = self._api_keys.get(digest)
        if principal is None:
            named = split_api_key_secret(secret)
            revocations = self._revocations
            key = None if named is None else await self._apps.get_api_key(*named)
            if key is None or not same_secret(key.secret_hash, digest):
                raise Unauthenticated("API_KEY_INVALID", "API key rejected")
            if not key.active:
                raise Unauthenticated("API_KEY_REVOKED", "API key revoked",
                                      metadata={"api_key": key.key_id})
            principal = AppBackend(key.app_id, key.key_id, key.scopes, key.expire_time)
            if revocations == self._revocations:
                self._api_keys.put(digest, principal)
        expire_time = principal.expire_time
        if expire_time is not None and expire_time <= self._clock.now():
            raise Unauthenticated("API_KEY_EXPIRED", "API key expired",
                                  metadata={"api_key": principal.key_id,
                                            "expire_time": expire_time.isoformat()})
        return principal

    async def _developer(self, token: str) -> Developer:
        digest = secret_hash(token)
        now = self._clock.now()
        cached = self._developers.get(digest)
        if cached is not None and now.timestamp() < cached[1]:
            return cached[0]
        named = split_session_token(token)
        revocations = self._revocations
        session = None if named is None else await self._accounts.get_session(*named[:2])
        if (named is None or session is None or not session.active(now)
                or not same_secret(session.secret_hash, secret_hash(named[2]))):
            raise Unauthenticated("ACCOUNT_SESSION_INVALID",
                                  "the portal session is unknown, expired or signed out: "
                                  "log in again")
        developer = Developer(session.account_id, session.session_id, session.mfa_verified)
        if revocations == self._revocations:
            self._developers.put(digest, (developer, session.expire_time.timestamp()))
        return developer

    async def _access_token(self, token: str) -> User:
        now = self._clock.now()
        cached = self._tokens.get(token)
        if cached is not None and now.timestamp() < cached[1] + self._leeway.total_seconds():
            user = cached[0]
        else:
            claimed = tokens.peek(token)
            key = await self._signing.verifying_key(claimed.app_id, claimed.key_id,
                                                    claimed.issued_at)
            if key is None:
                raise Unauthenticated("ACCESS_TOKEN_INVALID",
                                      "access token rejected: unknown signing key")
            claims = tokens.verify(token, key.public_key, now, self._leeway)
            user = User(claims.app_id, claims.user_id, claims.session_id)
            self._tokens.put(token, (user, claims.expire_time.timestamp()))
        if not await self._session_active(user.app_id, user.session_id):
            raise Unauthenticated("SESSION_REVOKED", "the session has ended: sign in again")
        return user

    async def _session_active(self, app_id: str, session_id: str) -> bool:
        active = self._sessions.get((app_id, session_id))
        if active is None:
            revocations = self._revocations
            session = await self._auth.get_session(app_id, session_id)
            active = (session is not None
                      and session.state(self._clock.now()) is SessionState.ACTIVE)
            if revocations == self._revocations:
                self._sessions.put((app_id, session_id), active)
        return active

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type in ("api_key.revoked", "session.revoked", SESSION_REVOKED):
            self._revocations += 1
        if event.type == SESSION_REVOKED:
            session_id = event.data["session"]
            self._developers.discard_where(lambda _, v: v[0].session_id == session_id)
        if event.type == "api_key.revoked":
            key_id = event.data["api_key"]
            self._api_keys.discard_where(
                lambda _, p: p.app_id == event.app_id and p.key_id == key_id)
        elif event.type == "session.revoked":
            session_id = event.data["session"]
            self._sessions.discard((event.app_id, session_id))
            self._tokens.discard_where(
                lambda _, v: v[0].app_id == event.app_id and v[0].session_id == session_id)
