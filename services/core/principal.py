"""Who is calling: the result of authentication, passed explicitly to actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.core.errors import PermissionDenied

ALL_SCOPES = "*"  # an API key scope that grants every other
FULL_SCOPE = frozenset({ALL_SCOPES})


@dataclass(frozen=True, slots=True)
class Anonymous:
    """No credentials."""


@dataclass(frozen=True, slots=True)
class Operator:
    """The platform operator: may act on every app."""


@dataclass(frozen=True, slots=True)
class AppBackend:
    """An app's own backend, authenticated by one of the app's API keys: what the key
    may do (`caas.apps.v1.ApiKey.scopes`) and until when. A developer working on an app
    of their organization acts as one too: `key_id` is then `accounts/{account}` and
    `member_role` their role, whose scopes these are."""

    app_id: str
    key_id: str
    scopes: frozenset[str] = FULL_SCOPE
    expire_time: datetime | None = None
    member_role: str = ""

    def has_scope(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes


@dataclass(frozen=True, slots=True)
class User:
    """An end user of an app, authenticated by an access token of one session."""

    app_id: str
    user_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class Developer:
    """A developer on the portal, authenticated by a portal session (caas.accounts.v1):
    acts in their organizations, and on their apps as the app's backend with the
    scopes of their role (the gateway turns them into an AppBackend there)."""

    account_id: str
    session_id: str
    mfa_verified: bool  # the session's login passed a second factor


Principal = Anonymous | Operator | AppBackend | User | Developer


def require_account(principal: Principal, account_id: str, *, operator: bool = False) -> None:
    """Raise PERMISSION_DENIED unless the caller is that developer (or, if `operator`,
    the operator)."""
    if operator and isinstance(principal, Operator):
        return
    if not isinstance(principal, Developer) or principal.account_id != account_id:
        raise PermissionDenied("USER_MISMATCH", "a developer may only act on their own account",
                               metadata={"account": f"accounts/{account_id}"})


def require_app(principal: Principal, app_id: str) -> None:
    """Raise PERMISSION_DENIED unless the caller may act inside `app_id`.

    The operator may act in any app; an app backend or user only in their own.
    The error is the same whether or not `app_id` exists, so it leaks nothing.
    """
    if isinstance(principal, Operator):
        return
    if isinstance(principal, AppBackend | User) and principal.app_id == app_id:
        return
    raise PermissionDenied("APP_MISMATCH", "the credentials do not belong to this app",
                           metadata={"app": app_id})


def require_user_or_app(principal: Principal, app_id: str, user_id: str) -> None:
    """Raise PERMISSION_DENIED unless the caller is that user, or may act for the app."""
    require_app(principal, app_id)
    if isinstance(principal, User) and principal.user_id != user_id:
        raise PermissionDenied("USER_MISMATCH", "a user may only act on their own resources",
                               metadata={"user": user_id})


def require_backend(principal: Principal, app_id: str, managed: str) -> None:
    """The app's backend or the operator; never a user, never another app (`managed`
    names what they manage, for the refusal: "webhooks", "content filters"…)."""
    require_app(principal, app_id)
    if not isinstance(principal, Operator | AppBackend):
        raise PermissionDenied("PRINCIPAL_NOT_ALLOWED",
                               f"{managed} are managed by the app's backend, not by users")
