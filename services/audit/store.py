"""The audit log's storage port: an append-only chain of records per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.audit.models import ActorKind, AuditEntry, AuditRecord


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What a listing keeps: each field given must match."""

    action: str = ""
    target: str = ""
    actor_kind: ActorKind | None = None
    actor_id: str = ""
    code: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None


class AuditStore(Protocol):
    async def migrate(self) -> None: ...

    async def append(self, entry: AuditEntry) -> AuditRecord:
        """Chain `entry` after the app's last record (sequence one more, its hash as
        previous_hash), atomically: two appends at once get two places."""

    async def list_records(self, app_id: str, query: AuditQuery, limit: int,
                           before: int | None) -> list[AuditRecord]:
        """The app's records matching `query`, newest first, below sequence `before`."""

    async def scan(self, app_id: str, after: int, limit: int) -> list[AuditRecord]:
        """The app's records in sequence order, from sequence `after` + 1 (as stored:
        checking them is the verifier's)."""
