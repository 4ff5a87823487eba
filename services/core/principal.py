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
    may do (`caas.apps.v1.ApiKey.scopes`) and until when."""

    app_id: str
    key_id: str
    scopes: frozenset[str] = FULL_SCOPE
    expire_time: datetime | None = None

    def has_scope(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes


@dataclass(frozen=True, slots=True)
class User:
    """An end user of an app, authenticated by an access token of one session."""

    app_id: str
    user_id: str
    session_id: str


Principal = Anonymous | Operator | AppBackend | User


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
