"""The audit store on both engines: appends chain without gaps, even at once, and the
listing filters and pages newest first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.audit.actions import verify_chain
from services.audit.models import GENESIS, ActorKind, AuditEntry, record_hash
from services.audit.store import AuditQuery
from services.runtime import Stores

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(app_id: str, n: int, **fields: object) -> AuditEntry:
    base: dict[str, object] = {
        "app_id": app_id, "time": T0 + timedelta(seconds=n), "actor_kind": ActorKind.API_KEY,
        "actor_id": "key1", "action": "caas.apps.v1.AppsService/UpdateApp",
        "target": f"apps/{app_id}", "request_id": f"r{n}", "code": "OK"}
    base.update(fields)
    return AuditEntry(**base)  # type: ignore[arg-type]


async def test_appends_chain_in_order_per_app(stores: Stores) -> None:
    first = await stores.audit.append(entry("alpha", 1, details={"update_mask": "plan"}))
    assert (first.sequence, first.previous_hash) == (1, GENESIS)
    assert first.hash == record_hash(first.entry, 1, GENESIS)
    second = await stores.audit.append(entry("alpha", 2))
    assert (second.sequence, second.previous_hash) == (2, first.hash)
    other = await stores.audit.append(entry("beta", 3))
    assert (other.sequence, other.previous_hash) == (1, GENESIS)  # each app its own chain
    scanned = await stores.audit.scan("alpha", 0, 10)
    assert [r.hash for r in scanned] == [first.hash, second.hash]
    assert scanned[0].entry == first.entry  # stored as given, details included
    found = await verify_chain(stores.audit, "alpha")
    assert (found.intact, found.records, found.head_sequence, found.head_hash) == (
        True, 2, 2, second.hash)


async def test_appends_at_once_take_distinct_places(stores: Stores) -> None:
    await asyncio.gather(*(stores.audit.append(entry("alpha", n)) for n in range(30)))
    records = await stores.audit.scan("alpha", 0, 100)
    assert [r.sequence for r in records] == list(range(1, 31))
    assert sorted(r.entry.request_id for r in records) == sorted(f"r{n}" for n in range(30))
    assert (await verify_chain(stores.audit, "alpha")).intact


async def test_listing_filters_and_pages_newest_first(stores: Stores) -> None:
    for n in range(6):
        await stores.audit.append(entry(
            "alpha", n, code="OK" if n % 2 else "PERMISSION_DENIED",
            actor_kind=ActorKind.USER if n == 5 else ActorKind.API_KEY,
            actor_id="alice" if n == 5 else "key1"))
    newest = await stores.audit.list_records("alpha", AuditQuery(), 3, None)
    assert [r.sequence for r in newest] == [6, 5, 4]
    rest = await stores.audit.list_records("alpha", AuditQuery(), 10, before=4)
    assert [r.sequence for r in rest] == [3, 2, 1]
    refused = await stores.audit.list_records("alpha", AuditQuery(code="PERMISSION_DENIED"),
                                              10, None)
    assert [r.sequence for r in refused] == [5, 3, 1]
    alice = await stores.audit.list_records(
        "alpha", AuditQuery(actor_kind=ActorKind.USER, actor_id="alice"), 10, None)
    assert [r.sequence for r in alice] == [6]
    window = await stores.audit.list_records(
        "alpha", AuditQuery(start_time=T0 + timedelta(seconds=2),
                            end_time=T0 + timedelta(seconds=4)), 10, None)
    assert [r.sequence for r in window] == [4, 3]
    assert await stores.audit.list_records("beta", AuditQuery(), 10, None) == []
