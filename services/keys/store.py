"""Where data keys are kept (wrapped): one per owner of an app, apart from the data
they seal (a database of their own)."""

from __future__ import annotations

from typing import Protocol

from services.keys.models import DataKey, WrappedKey


class DataKeyStore(Protocol):
    async def migrate(self) -> None: ...

    async def get_key(self, app_id: str, owner: str) -> DataKey | None: ...

    async def add_key(self, key: DataKey) -> DataKey:
        """Store `key` unless the owner has one already; the owner's key either way
        (two processes making the first key at once agree on one)."""

    async def wrapped_by_other(self, kek_id: str, limit: int) -> list[DataKey]:
        """Keys wrapped by a key-encryption key other than `kek_id` (for rotation)."""

    async def rewrap(self, key: DataKey, wrapped: WrappedKey) -> bool:
        """Replace the key's wrapping, if it is still `key.wrapped` (another rotation may
        have been first); whether it was replaced."""

    async def delete_key(self, app_id: str, owner: str) -> bool: ...

    async def delete_app(self, app_id: str) -> int:
        """Delete every key of the app (offboarding); how many."""

    async def compact(self) -> bool:
        """Leave no deleted key on disk (the embedded store's checkpoint); whether it
        could."""
