"""Sessions, refresh tokens and signing keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

REFRESH_TOKEN_PREFIX = "caasr_"  # noqa: S105 - a prefix, not a secret


class SessionState(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class RevokeReason(enum.StrEnum):
    SIGNED_OUT = "signed_out"
    REVOKED_BY_APP = "revoked_by_app"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 key pair signing one app's access tokens; `kid` is `key_id`."""

    app_id: str
    key_id: str
    private_key: bytes  # raw 32 bytes
    public_key: bytes  # raw 32 bytes
    create_time: datetime
    expire_time: datetime | None = None  # None: the primary key

    @property
    def primary(self) -> bool:
        return self.expire_time is None

    def verifies_at(self, now: datetime) -> bool:
        return self.expire_time is None or now < self.expire_time


@dataclass(frozen=True, slots=True)
class Session:
    app_id: str
    session_id: str
    user_id: str
    device_name: str
    access_ttl: timedelta
    create_time: datetime
    refresh_time: datetime
    expire_time: datetime
    revoke_time: datetime | None = None
    revoke_reason: RevokeReason | None = None
    # When the session ends however often it refreshes (a guest's); None: never.
    end_time: datetime | None = None

    def state(self, now: datetime) -> SessionState:
        if self.revoke_time is not None:
            return SessionState.REVOKED
        if now >= self.expire_time:
            return SessionState.EXPIRED
        return SessionState.ACTIVE


    def capped(self, expire_time: datetime) -> datetime:
        """`expire_time`, but no later than the session's end."""
        return expire_time if self.end_time is None else min(expire_time, self.end_time)


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One generation of a session's refresh token, kept (hashed) to detect reuse."""

    app_id: str
    token_hash: str
    session_id: str
    generation: int
    create_time: datetime
    used: bool = False


class RotateOutcome(enum.Enum):
    ROTATED = "rotated"  # the token was current: a new one replaced it
    UNKNOWN = "unknown"  # no such token in this app
    REUSED = "reused"  # the token had been used already: the session is now revoked
    ENDED = "ended"  # the session is revoked or expired


@dataclass(frozen=True, slots=True)
class RotateResult:
    outcome: RotateOutcome
    session: Session | None = None
    generation: int = 0


def refresh_token_secret(app_id: str, random_part: str) -> str:
    return f"{REFRESH_TOKEN_PREFIX}{app_id}_{random_part}"


def refresh_token_app(token: str) -> str | None:
    """The app id a refresh token names, or None if it is not shaped like one."""
    if not token.startswith(REFRESH_TOKEN_PREFIX):
        return None
    app_id, sep, rest = token[len(REFRESH_TOKEN_PREFIX):].partition("_")
    return app_id if sep and rest else None
