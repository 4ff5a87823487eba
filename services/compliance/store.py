"""The compliance store port: retention policies and legal holds, by app."""

from __future__ import annotations

from typing import Protocol

from services.compliance.models import LegalHold, RetentionPolicy

# Listing position: (time in ms, id).
Position = tuple[int, str]


class ComplianceStore(Protocol):
    async def migrate(self) -> None: ...

    async def get_policy(self, app_id: str) -> RetentionPolicy | None: ...

    async def put_policy(self, policy: RetentionPolicy) -> None: ...

    async def policies(self) -> list[RetentionPolicy]:
        """Every app's policy (the sweep's work list)."""

    async def create_hold(self, hold: LegalHold, limit: int) -> bool:
        """Store the hold unless the app has `limit` already; whether it was."""

    async def list_holds(self, app_id: str, limit: int, after: Position | None
                         ) -> list[LegalHold]:
        """Ordered by (create_time, hold_id)."""

    async def delete_hold(self, app_id: str, hold_id: str) -> bool: ...
