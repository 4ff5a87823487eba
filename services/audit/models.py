"""The audit log's records, and the hash that chains them.

A record's hash is SHA-256 over its canonical form: a JSON object of its fields (the
time in milliseconds since the epoch, the details as an object), keys sorted, no
spaces, UTF-8, with the previous record's hash among them. Changing, removing or
inserting a record after the fact breaks the chain from there on; `verify` finds the
first break. (Records cut off at the end leave an intact, shorter chain: keep the
head elsewhere to notice that.)
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.core.clock import to_ms

GENESIS = "0" * 64  # the previous_hash of an app's first record


class ActorKind(enum.StrEnum):
    OPERATOR = "operator"
    API_KEY = "api_key"
    USER = "user"
    DEVELOPER = "developer"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened, as the gateway saw it at the end of a call."""

    app_id: str
    time: datetime
    actor_kind: ActorKind
    actor_id: str
    action: str  # "caas.apps.v1.AppsService/CreateApiKey"
    target: str  # a resource name
    request_id: str
    code: str  # "OK" or a gRPC status code's name
    reason: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry at its place in the app's chain."""

    entry: AuditEntry
    sequence: int
    previous_hash: str
    hash: str


def record_hash(entry: AuditEntry, sequence: int, previous_hash: str) -> str:
    canonical = {
        "app_id": entry.app_id, "sequence": sequence, "time": to_ms(entry.time),
        "actor_kind": entry.actor_kind.value, "actor_id": entry.actor_id,
        "action": entry.action, "target": entry.target, "request_id": entry.request_id,
        "code": entry.code, "reason": entry.reason, "details": dict(entry.details),
        "previous_hash": previous_hash,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def chained(entry: AuditEntry, sequence: int, previous_hash: str) -> AuditRecord:
    """`entry` as the record after the one whose hash is `previous_hash`."""
    return AuditRecord(entry, sequence, previous_hash,
                       record_hash(entry, sequence, previous_hash))


@dataclass(frozen=True, slots=True)
class Verification:
    """What checking a chain found."""

    records: int = 0
    head_sequence: int = 0
    head_hash: str = GENESIS
    broken_sequence: int = 0  # the first record that breaks it; 0: intact
    problem: str = ""  # "hash", "link" or "gap"

    @property
    def intact(self) -> bool:
        return self.broken_sequence == 0


class Verifier:
    """Checks records fed in order (`feed`, batch after batch); `result` at the end."""

    def __init__(self) -> None:
        self._result = Verification()

    def feed(self, records: Iterable[AuditRecord]) -> bool:
        """Check the next records; False once the chain is broken (stop feeding)."""
        done = self._result
        for record in records:
            problem = ""
            if record.sequence != done.head_sequence + 1:
                problem = "gap"
            elif record.previous_hash != done.head_hash:
                problem = "link"
            elif record_hash(record.entry, record.sequence, record.previous_hash) != record.hash:
                problem = "hash"
            if problem:
                self._result = Verification(done.records, done.head_sequence, done.head_hash,
                                            record.sequence, problem)
                return False
            done = Verification(done.records + 1, record.sequence, record.hash)
        self._result = done
        return True

    @property
    def result(self) -> Verification:
        return self._result
