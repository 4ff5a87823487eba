"""Developer accounts of the portal, their sessions, login history and emailed tokens."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

SESSION_TOKEN_PREFIX = "caasp_"  # noqa: S105 - a prefix, not a secret
# The keyring's "app" of portal secrets (TOTP seeds): not a valid app id, so no app's
# keys are ever these.
PORTAL_KEYS = "_portal"
RECOVERY_CODES = 10
SESSION_REVOKED = "account_session.revoked"  # bus event: authenticators forget the session


class Outcome(enum.Enum):
    """How a login attempt ended (caas.accounts.v1.LoginEvent.Outcome)."""

    SUCCEEDED = "succeeded"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - an outcome
    MFA_REQUIRED = "mfa_required"
    WRONG_MFA_CODE = "wrong_mfa_code"
    LOCKED = "locked"


class Purpose(enum.Enum):
    """What an emailed token is for."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    email: str  # lowercased
    display_name: str
    password_hash: str  # argon2id, PHC string
    create_time: datetime
    email_verified: bool = False
    totp_secret: str = ""  # sealed (PORTAL_KEYS); set while enrolling or enrolled
    mfa_enabled: bool = False
    totp_last_step: int = 0  # the last TOTP time step accepted: a code works once
    recovery_hashes: tuple[str, ...] = ()  # hashes of the unused recovery codes
    failed_logins: int = 0  # in a row
    locked_until: datetime | None = None
    version: int = 0  # bumped by every update (optimistic concurrency)


@dataclass(frozen=True, slots=True)
class AccountSession:
    account_id: str
    session_id: str
    secret_hash: str
    create_time: datetime
    expire_time: datetime
    mfa_verified: bool
    ip_address: str
    user_agent: str
    revoke_time: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoke_time is None and now < self.expire_time


@dataclass(frozen=True, slots=True)
class LoginEvent:
    account_id: str
    event_id: str
    time: datetime
    outcome: Outcome
    ip_address: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class AccountToken:
    """A single-use token sent by email; the store keeps its hash only."""

    token_hash: str
    purpose: Purpose
    account_id: str
    create_time: datetime
    expire_time: datetime


def session_token(session: AccountSession, secret: str) -> str:
    return f"{SESSION_TOKEN_PREFIX}{session.account_id}_{session.session_id}_{secret}"


def split_session_token(token: str) -> tuple[str, str, str] | None:
    """(account id, session id, secret) of a `caasp_` token, None if malformed."""
    parts = token.removeprefix(SESSION_TOKEN_PREFIX).split("_", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None
