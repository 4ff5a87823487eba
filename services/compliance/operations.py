"""Long-running operations (AIP-151): what they are and where they are kept.

An operation is a row a server process claims for a while (a lease), moves on step by
step (saving its stage and counts after each), and marks done. A process that dies
mid-way leaves its lease to run out; the next claim, by any process, resumes at the
saved stage. Steps are idempotent, so a step cut short is simply run again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

ERASE_USER = "erase_user"


@dataclass(frozen=True, slots=True)
class Operation:
    app_id: str
    operation_id: str
    type: str  # ERASE_USER
    target: str  # the user id
    stage: str  # the step to run next; "done" once done
    progress: int  # percent
    counts: Mapping[str, int] = field(default_factory=dict)  # what the steps did
    error: str = ""  # a step's failure, when done without success
    attempts: int = 0  # claims so far
    create_time: datetime | None = None
    update_time: datetime | None = None
    lease_until: datetime | None = None

    @property
    def done(self) -> bool:
        return self.stage == "done"


# Listing position: (create time in ms, id), newest first.
Position = tuple[int, str]


class OperationStore(Protocol):
    async def migrate(self) -> None: ...

    async def start(self, operation: Operation) -> Operation:
        """Store `operation`, unless one of the same type and target of the app is not
        done yet: that one then (asking twice starts one operation)."""

    async def get(self, app_id: str, operation_id: str) -> Operation | None: ...

    async def list(self, app_id: str, limit: int, before: Position | None
                   ) -> list[Operation]:
        """Newest first: ordered by (create_time, operation_id) descending."""

    async def claim(self, now: datetime, until: datetime) -> Operation | None:
        """Take one operation not done whose lease ran out (or never began) for
        ourselves until `until`, counting the attempt; None if there is none."""

    async def save(self, operation: Operation) -> None:
        """Record its stage, progress, counts, error and lease."""
