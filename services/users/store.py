"""The users store port. Every method is scoped by app id."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from services.core.filtering import Expr, Ordering
from services.users.listing import BY_CREATION
from services.users.models import Block, User, UserChanges

Position = tuple[int, str]  # (time in ms, id)
# Position in a listing of some Ordering (services/core/filtering.py): a value per key.
Keyset = tuple[str | int, ...]


class UserStore(Protocol):
    async def migrate(self) -> None:
        """Bring this store's schema and indexes up to date; safe on every start."""

    async def create_user(self, user: User) -> None:
        """Insert a user. Raises StoreConflict if the id is taken (even by a deleted user)."""

    async def get_user(self, app_id: str, user_id: str) -> User | None:
        """The user, deleted ones included (as tombstones)."""

    async def get_users(self, app_id: str, user_ids: Iterable[str]) -> dict[str, User]:
        """The users of `user_ids` that exist (tombstones included), by id."""

    async def list_users(self, app_id: str, limit: int, after: Keyset | None, *,
                         where: Expr | None = None, ordering: Ordering = BY_CREATION
                         ) -> list[User]:
        """Users matching `where` (fields of listing.USER_FILTER), in `ordering` (one of
        listing.USER_ORDERINGS; by default (create_time, user_id))."""

    async def update_user(self, app_id: str, user_id: str, changes: UserChanges,
                          now: datetime, create: User | None = None) -> User | None:
        """Apply `changes` to a live user (update_time = now); a deleted user is returned
        unchanged. A missing user is inserted as `create` when given, else None."""

    async def delete_user(self, app_id: str, user_id: str, now: datetime) -> User | None:
        """Turn the user into a tombstone: profile cleared, delete_time = now (kept if
        already deleted). None if unknown."""

    async def create_block(self, block: Block) -> Block:
        """Store a block, or return the one that exists."""

    async def delete_block(self, app_id: str, user_id: str, blocked_id: str) -> bool:
        """Remove a block; False if there was none."""

    async def list_blocks(self, app_id: str, user_id: str, limit: int,
                          after: Position | None) -> list[Block]:
        """A user's blocks, newest first: (create_time, blocked_id) descending."""

    async def blocked_either_way(self, app_id: str, a: str, b: str) -> bool:
        """Whether `a` blocks `b` or `b` blocks `a`."""

    async def blockers_among(self, app_id: str, blocked_id: str, among: Collection[str]
                             ) -> set[str]:
        """Those of `among` who block `blocked_id`."""

    async def search_users(self, app_id: str, words: Sequence[str], limit: int,
                           among: Collection[str] | None = None) -> list[User]:
        """Live users each of whose folded `words` (services/users/words.py; at least
        one) begins one of their words; only those of `among`, if given. At most
        `limit`, by the first of their words that words[0] begins, then by id."""

