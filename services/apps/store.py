"""The apps store port. Every method but the app-level ones is scoped by app id."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from services.apps.models import KEEP, ApiKey, App, GuestAccess, Keep

# Listing position: (create_time in ms, id); lists resume strictly after it.
Position = tuple[int, str]


class AppStore(Protocol):
    async def migrate(self) -> None:
        """Bring this store's schema and indexes up to date; safe on every start."""

    async def create_app(self, app: App, first_key: ApiKey | None) -> None:
        """Insert an app and, atomically with it, its first API key.

        Raises StoreConflict if the app id is taken (and writes nothing).
        """

    async def get_app(self, app_id: str) -> App | None: ...

    async def list_apps(self, limit: int, after: Position | None,
                        organization_id: str | None = None) -> list[App]:
        """Apps ordered by (create_time, app_id): every one, or `organization_id`'s
        ("": those of no organization)."""

    async def update_app(self, app_id: str, update_time: datetime, *,
                         display_name: str | None = None, plan: str | None = None,
                         media_retention: timedelta | Keep | None = KEEP,
                         guest_access: GuestAccess | None = None) -> App | None:
        """Change the given fields (None, or KEEP for `media_retention`, leaves one as
        it is; a None `media_retention` unsets it); None if the app does not exist.

        `media_retention` and `guest_access.session_lifetime` are kept at millisecond
        precision."""

    async def mark_deleted(self, app_id: str, when: datetime | None,
                           purge_time: datetime | None) -> App | None:
        """Set (or, with None, clear) the app's deletion; the app, or None if unknown."""

    async def create_api_key(self, key: ApiKey) -> None:
        """Insert a key. Raises StoreConflict if its id is taken in its app."""

    async def get_api_key(self, app_id: str, key_id: str) -> ApiKey | None: ...

    async def list_api_keys(self, app_id: str, limit: int, after: Position | None
                            ) -> list[ApiKey]:
        """The app's keys ordered by (create_time, key_id)."""

    async def revoke_api_key(self, app_id: str, key_id: str, when: datetime) -> ApiKey | None:
        """Mark a key revoked at `when` unless it already is; the key as stored after,
        or None if it does not exist."""
