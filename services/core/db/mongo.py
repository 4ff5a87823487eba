"""The production store engine: MongoDB through PyMongo's asyncio API.

(Motor, named in the original design, is deprecated in favour of
`pymongo.AsyncMongoClient`.) Multi-document changes run in transactions, so the
deployment must be a replica set, as production MongoDB deployments are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.clock import from_ms

T = TypeVar("T")
Document = dict[str, Any]


def after(position: tuple[int, str] | None, time_field: str, id_field: str,
          descending: bool = False) -> Document:
    """Filter for the documents strictly after `position` (time in ms, id) in a listing
    ordered by (time_field, id_field), ascending or descending."""
    if position is None:
        return {}
    when = from_ms(position[0])
    beyond = "$lt" if descending else "$gt"
    return {"$or": [{time_field: {beyond: when}},
                    {time_field: when, id_field: {beyond: position[1]}}]}

# A migration changes the schema of one version (indexes, backfills); it must be
# idempotent, because two processes starting together may both run it.
MongoMigration = Callable[[AsyncDatabase[Document]], Awaitable[None]]


class MongoDatabase:
    """An open MongoDB database. Create with `await MongoDatabase.open(url, name)`."""

    def __init__(self, client: AsyncMongoClient[Document], name: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[name]

    @classmethod
    async def open(cls, url: str, name: str) -> MongoDatabase:
        """Connect and check the server answers; raises pymongo errors if it does not."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=10_000,
            appname="caas")
        await client.admin.command("ping")
        return cls(client, name)

    async def transaction(self, body: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run `body` in a transaction (retried by the driver on transient errors)."""
        async with self.client.start_session() as session:
            return await session.with_transaction(body)

    async def migrate(self, component: str, migrations: Sequence[MongoMigration]) -> None:
        """Apply the migrations of `component` not applied yet, in order."""
        applied = self.db["schema_migrations"]
        for version, migration in enumerate(migrations, start=1):
            key = f"{component}:{version}"
            if await applied.find_one({"_id": key}) is not None:
                continue
            await migration(self.db)
            with contextlib.suppress(DuplicateKeyError):  # another process applied it too
                await applied.insert_one({"_id": key, "applied_at": datetime.now(UTC)})

    async def close(self) -> None:
        await self.client.close()
