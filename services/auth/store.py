"""The auth store port: signing keys, sessions, refresh tokens — all scoped by app id."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.auth.models import RefreshToken, RevokeReason, RotateResult, Session, SigningKey

# How many generations of used refresh tokens a session keeps to detect reuse.
KEPT_GENERATIONS = 20

# Listing position of sessions, newest first: (create_time in ms, session id).
Position = tuple[int, str]


class AuthStore(Protocol):
    async def migrate(self) -> None:
        """Bring this store's schema and indexes up to date; safe on every start."""

    async def signing_keys(self, app_id: str) -> list[SigningKey]:
        """Every stored key of the app, newest first (expired ones may be included)."""

    async def add_first_signing_key(self, key: SigningKey) -> None:
        """Store the app's first key. Raises StoreConflict if the app has any key."""

    async def rotate_signing_key(self, key: SigningKey, retire_at: datetime) -> None:
        """Atomically: the current primary key expires at `retire_at`, `key` becomes primary."""

    async def create_session(self, session: Session, token: RefreshToken) -> None:
        """Store a new session with its first refresh token, atomically.

        Raises StoreConflict (and stores neither) if either id is taken.
        """

    async def get_session(self, app_id: str, session_id: str) -> Session | None: ...

    async def list_sessions(self, app_id: str, user_id: str, limit: int,
                            after: Position | None) -> list[Session]:
        """A user's sessions, newest first: ordered by (create_time, session_id) descending."""

    async def revoke_session(self, app_id: str, session_id: str, when: datetime,
                             reason: RevokeReason) -> Session | None:
        """Revoke unless already revoked; the session as stored after, None if unknown."""

    async def revoke_user_sessions(self, app_id: str, user_id: str, when: datetime,
                                   reason: RevokeReason) -> list[str]:
        """Revoke every live session of a user; the ids of those it revoked."""

    async def find_refresh_token(self, app_id: str, token_hash: str) -> Session | None:
        """The session the refresh token `token_hash` belongs to (used or not), if any.

        A read: lets callers refuse unknown tokens without a write transaction.
        """

    async def rotate_refresh_token(self, app_id: str, token_hash: str, new_hash: str,
                                   now: datetime, expire_time: datetime) -> RotateResult:
        """Atomically use up the refresh token `token_hash` and issue `new_hash` after it.

        - unknown token: UNKNOWN, nothing changes;
        - token already used: the session is revoked (REFRESH_TOKEN_REUSED): REUSED;
        - session revoked or expired at `now`: ENDED, nothing changes;
        - else: the token is marked used, `new_hash` becomes the next generation, the
          session's refresh_time is `now` and its expire_time `expire_time`, but never
          later than its end_time: ROTATED.

        Used tokens are kept for the last KEPT_GENERATIONS generations only, so a
        session's storage stays bounded; an older token is then UNKNOWN (still refused,
        but no longer proof of theft).
        """
