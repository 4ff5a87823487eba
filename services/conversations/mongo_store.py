"""Being written: the MongoDB adapter of this store."""

from __future__ import annotations

from typing import Any


class MongoConversationStore:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def migrate(self) -> None:
        raise NotImplementedError
