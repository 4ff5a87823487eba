"""Usage analytics on MongoDB: counters, distinct members, and what has been written
(the log position per app, the last flush per process), each batch one multi-document
transaction. Two writers of the same batch at once (a relay's lease passing on) collide
on the position's document: the transaction that loses is retried, finds the batch
written, and skips it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.analytics.models import (
    Changes,
    CounterKey,
    Fact,
    Granularity,
    Kind,
    Metric,
    count_events,
)
from services.analytics.store import LOG, Span
from services.core.db.mongo import Document, MongoDatabase, MongoMigration


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["analytics_counters"].create_index(
        [("app_id", ASCENDING), ("metric", ASCENDING), ("granularity", ASCENDING),
         ("bucket", ASCENDING)])
    # Collections exist before the first transaction writes to them.
    await db["analytics_members"].create_index([("app_id", ASCENDING)])
    await db["analytics_positions"].create_index([("app_id", ASCENDING)])
    await db["analytics_flushes"].create_index([("write_time", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _counter_id(key: CounterKey) -> str:
    app_id, metric, granularity, bucket, dimension = key
    return f"{app_id}/{metric}/{granularity}/{bucket}/{dimension}"


def _counter(key: CounterKey, value: int, operator: str) -> UpdateOne:
    app_id, metric, granularity, bucket, dimension = key
    return UpdateOne({"_id": _counter_id(key)}, {
        operator: {"value": value},
        "$setOnInsert": {"app_id": app_id, "metric": metric, "granularity": granularity,
                         "bucket": bucket, "dimension": dimension}}, upsert=True)


class MongoAnalyticsStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._counters = db.db["analytics_counters"]
        self._members = db.db["analytics_members"]
        self._positions = db.db["analytics_positions"]
        self._flushes = db.db["analytics_flushes"]

    async def migrate(self) -> None:
        await self._mongo.migrate("analytics", MIGRATIONS)

    async def _write(self, changes: Changes, s: AsyncClientSession) -> None:
        """The changes, in the session's transaction: new members first, then the
        counts (those of the new members' counters included)."""
        counts = dict(changes.counts)
        members = {"/".join(map(str, key)): (key, counters)
                   for key, counters in changes.distinct.items()}
        if members:
            # One read for those known already (most, in a busy hour), inserts for the
            # others: cheaper than an upsert each. A member another writer inserted
            # since this transaction's snapshot is a write conflict: retried.
            known = {doc["_id"] async for doc in self._members.find(
                {"_id": {"$in": list(members)}}, {"_id": 1}, session=s)}
            new = [(member_id, key, counters)
                   for member_id, (key, counters) in members.items() if member_id not in known]
            if new:
                await self._members.insert_many(
                    [{"_id": member_id, "app_id": key[0]} for member_id, key, _ in new],
                    session=s)
            for _, _, counters in new:
                for counter in counters:
                    counts[counter] = counts.get(counter, 0) + 1
        updates = [_counter(key, value, "$inc") for key, value in counts.items()]
        updates += [_counter(key, value, "$max") for key, value in changes.peaks.items()]
        if updates:
            await self._counters.bulk_write(updates, session=s)

    async def apply_events(self, app_id: str, facts: Sequence[Fact], through: int) -> int:
        key = f"{app_id}/{LOG}"

        async def tx(s: AsyncClientSession) -> int:
            found = await self._positions.find_one({"_id": key}, session=s)
            done = found["position"] if found else 0
            if through <= done:
                return 0
            fresh = [f for f in facts if f.position > done]
            await self._write(count_events(app_id, fresh), s)
            await self._positions.update_one(
                {"_id": key}, {"$set": {"app_id": app_id, "source": LOG, "position": through}},
                upsert=True, session=s)
            return len(fresh)

        return await self._mongo.transaction(tx)

    async def apply_flush(self, source: str, sequence: int, changes: Changes) -> bool:
        async def tx(s: AsyncClientSession) -> bool:
            found = await self._flushes.find_one({"_id": source}, session=s)
            if found is not None and found["sequence"] >= sequence:
                return False
            await self._write(changes, s)
            await self._flushes.update_one(
                {"_id": source}, {"$set": {"sequence": sequence,
                                           "write_time": datetime.now(UTC)}},
                upsert=True, session=s)
            return True

        return await self._mongo.transaction(tx)

    async def is_member(self, app_id: str, kind: Kind, granularity: Granularity, bucket: int,
                        member: str) -> bool:
        member_id = "/".join(map(str, (app_id, kind.value, granularity.value, bucket, member)))
        return await self._members.find_one({"_id": member_id}, {"_id": 1}) is not None

    async def position(self, app_id: str) -> int:
        found = await self._positions.find_one({"_id": f"{app_id}/{LOG}"})
        return int(found["position"]) if found else 0

    async def series(self, app_id: str, metric: Metric, span: Span, by_dimension: bool = True
                     ) -> list[tuple[int, str, int]]:
        match = {"app_id": app_id, "metric": metric.value,
                 "granularity": span.granularity.value,
                 "bucket": {"$gte": span.start, "$lt": span.end}}
        if by_dimension:
            cursor = self._counters.find(
                match, {"_id": 0, "bucket": 1, "dimension": 1, "value": 1}
            ).sort("bucket", ASCENDING)
            return [(doc["bucket"], doc["dimension"], doc["value"]) async for doc in cursor]
        sums = await self._counters.aggregate([
            {"$match": match}, {"$group": {"_id": "$bucket", "value": {"$sum": "$value"}}},
            {"$sort": {"_id": ASCENDING}}])
        return [(doc["_id"], "", doc["value"]) async for doc in sums]

    async def top(self, app_id: str, metric: Metric, spans: Sequence[Span], limit: int
                  ) -> list[tuple[str, int]]:
        if not spans:
            return []
        match: dict[str, Any] = {"$or": [
            {"app_id": app_id, "metric": metric.value, "granularity": span.granularity.value,
             "bucket": {"$gte": span.start, "$lt": span.end}} for span in spans]}
        pipeline: list[Document] = [
            {"$match": match},
            {"$group": {"_id": "$dimension", "total": {"$sum": "$value"}}},
            {"$sort": {"total": DESCENDING, "_id": ASCENDING}},
            {"$limit": limit}]
        return [(doc["_id"], doc["total"])
                async for doc in await self._counters.aggregate(pipeline)]
