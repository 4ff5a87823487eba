"""The accounts' storage port, and the documents both adapters keep.

Accounts are read, changed by a pure function and written back atomically
(`update_account`): the adapters retry on a concurrent change (a version number),
so the rules (lockout counters, single-use TOTP steps and recovery codes) live in
the actions, once, and no two logins can both use one code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from services.accounts.models import (
    Account,
    AccountSession,
    AccountToken,
    LoginEvent,
    Outcome,
    Purpose,
)
from services.core.clock import from_ms, opt_from_ms, to_ms

Change = Callable[[Account], Account]
Position = tuple[int, str]  # (time in ms, id) of the last item of the previous page


class AccountStore(Protocol):
    async def migrate(self) -> None: ...

    async def create_account(self, account: Account) -> bool:
        """Store a new account; False if its email has one already."""

    async def get_account(self, account_id: str) -> Account | None: ...

    async def account_by_email(self, email: str) -> Account | None: ...

    async def update_account(self, account_id: str, change: Change) -> Account | None:
        """Apply `change` to the stored account and store the result (version + 1), as
        one atomic step; None if there is no such account. What `change` raises
        propagates and nothing is written."""

    async def put_token(self, token: AccountToken) -> None:
        """Store `token`, dropping the account's earlier tokens of the same purpose."""

    async def take_token(self, purpose: Purpose, token_hash: str, now: datetime
                         ) -> AccountToken | None:
        """Remove and return the token, if it exists and has not expired."""

    async def create_session(self, session: AccountSession) -> None: ...

    async def get_session(self, account_id: str, session_id: str) -> AccountSession | None:
        ...

    async def list_sessions(self, account_id: str, now: datetime, limit: int,
                            after: Position | None) -> list[AccountSession]:
        """Sessions not expired (revoked ones included), newest first."""

    async def revoke_sessions(self, account_id: str, now: datetime,
                              session_id: str | None = None) -> list[str]:
        """Revoke one active session (or all of the account's): the ids revoked."""

    async def verify_session_mfa(self, account_id: str, session_id: str) -> None:
        """Mark the session as having passed a second factor."""

    async def add_login_event(self, event: LoginEvent) -> None: ...

    async def list_login_events(self, account_id: str, since: datetime, limit: int,
                                after: Position | None) -> list[LoginEvent]:
        """Attempts since `since`, newest first."""


def account_doc(a: Account) -> dict[str, Any]:
    return {"account_id": a.account_id, "email": a.email, "display_name": a.display_name,
            "password_hash": a.password_hash, "create_time": to_ms(a.create_time),
            "email_verified": a.email_verified, "totp_secret": a.totp_secret,
            "mfa_enabled": a.mfa_enabled, "totp_last_step": a.totp_last_step,
            "recovery_hashes": list(a.recovery_hashes), "failed_logins": a.failed_logins,
            "locked_until": None if a.locked_until is None else to_ms(a.locked_until),
            "version": a.version}


def account_of(doc: dict[str, Any]) -> Account:
    return Account(doc["account_id"], doc["email"], doc["display_name"],
                   doc["password_hash"], from_ms(doc["create_time"]), doc["email_verified"],
                   doc["totp_secret"], doc["mfa_enabled"], doc["totp_last_step"],
                   tuple(doc["recovery_hashes"]), doc["failed_logins"],
                   opt_from_ms(doc["locked_until"]), doc["version"])


def session_of(doc: dict[str, Any]) -> AccountSession:
    return AccountSession(doc["account_id"], doc["session_id"], doc["secret_hash"],
                          from_ms(doc["create_time"]), from_ms(doc["expire_time"]),
                          bool(doc["mfa_verified"]), doc["ip_address"], doc["user_agent"],
                          opt_from_ms(doc["revoke_time"]))


def session_doc(s: AccountSession) -> dict[str, Any]:
    return {"account_id": s.account_id, "session_id": s.session_id,
            "secret_hash": s.secret_hash, "create_time": to_ms(s.create_time),
            "expire_time": to_ms(s.expire_time), "mfa_verified": s.mfa_verified,
            "ip_address": s.ip_address, "user_agent": s.user_agent,
            "revoke_time": None if s.revoke_time is None else to_ms(s.revoke_time)}


def login_event_doc(e: LoginEvent) -> dict[str, Any]:
    return {"account_id": e.account_id, "event_id": e.event_id, "time": to_ms(e.time),
            "outcome": e.outcome.value, "ip_address": e.ip_address,
            "user_agent": e.user_agent}


def login_event_of(doc: dict[str, Any]) -> LoginEvent:
    return LoginEvent(doc["account_id"], doc["event_id"], from_ms(doc["time"]),
                      Outcome(doc["outcome"]), doc["ip_address"], doc["user_agent"])


def token_of(doc: dict[str, Any]) -> AccountToken:
    return AccountToken(doc["token_hash"], Purpose(doc["purpose"]), doc["account_id"],
                        from_ms(doc["create_time"]), from_ms(doc["expire_time"]))
