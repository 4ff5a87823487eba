"""Long-running operations (AIP-151): what they are and where they are kept.

An operation is a row a server process claims for a while (a lease), moves on step by
step (saving its stage and counts after each), and marks done. A process that dies
mid-way leaves its lease to run out; the next claim, by any process, resumes at the
saved stage. Steps are idempotent, so a step cut short is simply run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from services.core.clock import Clock

ERASE_USER = "erase_user"
EXPORT_USER_DATA = "export_user_data"
DELETE_APP = "delete_app"
LEASE = timedelta(minutes=10)  # longer than any step (a step's end renews it)
RETRY = timedelta(seconds=5)  # a failed step is tried again this long after
IDLE_SECONDS = 1.0  # how often an idle worker looks for operations

log = logging.getLogger("caas.operations")


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

    async def list_operations(self, app_id: str, limit: int, before: Position | None
                   ) -> list[Operation]:
        """Newest first: ordered by (create_time, operation_id) descending."""

    async def finished_before(self, type: str, before: datetime, limit: int
                              ) -> list[Operation]:
        """Operations of `type` done (without error) and last changed before `before`,
        over every app, oldest first (expiring what they left, as exports)."""

    async def claim(self, now: datetime, until: datetime) -> Operation | None:
        """Take one operation not done whose lease ran out (or never began) for
        ourselves until `until`, counting the attempt; None if there is none."""

    async def save(self, operation: Operation) -> None:
        """Record its stage, progress, counts, error and lease."""


class Deferred(Exception):
    """Raised by a step that cannot run before `until` (a grace period): the operation
    waits, without counting a failure."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"not before {until.isoformat()}")
        self.until = until


class Cancelled(Exception):
    """Raised by a step when the operation no longer applies (an app undeleted): it
    ends, done, with error `cancelled`."""


class Runner(Protocol):
    """What carries out one type of operation: its steps, in order, each idempotent."""

    steps: tuple[str, ...]

    async def step(self, stage: str, op: Operation) -> dict[str, int]:
        """Run one step of `op`; what it did (counts to add to the operation's)."""


class OperationWorker:
    """Carries out the operations (any process's) one at a time, in the background."""

    def __init__(self, store: OperationStore, runners: Mapping[str, Runner],
                 clock: Clock) -> None:
        self._store = store
        self._runners = runners  # by operation type
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                if await self.work_once():
                    continue
            except Exception:
                log.warning("operation step failed; it is tried again", exc_info=True)
            self._wake.clear()
            # An idle look every so often: another process may have started one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)

    async def work_once(self) -> bool:
        """Claim one operation and run its remaining steps; whether there was one."""
        now = self._clock.now()
        op = await self._store.claim(now, now + LEASE)
        if op is None:
            return False
        runner = self._runners[op.type]
        steps = runner.steps
        while not op.done:
            stage = op.stage
            try:
                counts = await runner.step(stage, op)
            except Deferred as wait:
                await self._store.save(replace(op, lease_until=wait.until,
                                               update_time=self._clock.now()))
                return True
            except Cancelled:
                await self._store.save(replace(op, stage="done", error="cancelled",
                                               update_time=self._clock.now(),
                                               lease_until=None))
                return True
            except Exception:
                await self._store.save(replace(
                    op, lease_until=self._clock.now() + RETRY, update_time=self._clock.now()))
                raise
            position = steps.index(stage) + 1
            merged = dict(op.counts)
            for key, value in counts.items():
                merged[key] = merged.get(key, 0) + value
            now = self._clock.now()
            op = replace(op, stage=steps[position] if position < len(steps) else "done",
                         progress=100 * position // len(steps), counts=merged,
                         update_time=now, lease_until=now + LEASE)
            await self._store.save(op)
        log.info("operation done", extra={"app": op.app_id, "type": op.type,
                                          "target": op.target, **op.counts})
        return True
