"""WebhookStore on MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.webhooks.models import (
    DeadLetter,
    Delivery,
    DeliveryAttempt,
    Webhook,
)
from services.webhooks.store import PARK, Position, claim_window

NEVER = datetime.fromtimestamp(0, UTC)
DUPLICATE_KEY = 11000


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["webhooks"].create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("webhook_id", ASCENDING)])
    await db["webhooks"].create_index([("active", ASCENDING)])
    await db["webhooks"].create_index([("blocked_until", ASCENDING)])
    deliveries = db["webhook_deliveries"]
    await deliveries.create_index([("next_attempt_time", ASCENDING)])
    await deliveries.create_index([("hook", ASCENDING), ("next_attempt_time", ASCENDING)])
    await deliveries.create_index([("claim_until", ASCENDING)])
    await deliveries.create_index(
        [("hook", ASCENDING), ("conversation", ASCENDING), ("position", ASCENDING)])
    await deliveries.create_index([("create_time", ASCENDING)])
    await db["webhook_attempts"].create_index(
        [("hook", ASCENDING), ("create_time", DESCENDING), ("attempt_id", DESCENDING)])
    await db["webhook_attempts"].create_index([("create_time", ASCENDING)])
    await db["webhook_dead_letters"].create_index(
        [("hook", ASCENDING), ("create_time", ASCENDING), ("dead_letter_id", ASCENDING)])
    await db["webhook_dead_letters"].create_index([("create_time", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _key(app_id: str, webhook_id: str) -> str:
    return f"{app_id}/{webhook_id}"


def _hook_doc(h: Webhook) -> Document:
    return {"_id": _key(h.app_id, h.webhook_id), "app_id": h.app_id,
            "webhook_id": h.webhook_id, "url": h.url, "event_types": list(h.event_types),
            "ordered": h.ordered, "active": h.active, "description": h.description,
            "secret": h.secret, "previous_secret": h.previous_secret,
            "previous_secret_expire_time": h.previous_secret_expire_time,
            "create_time": h.create_time, "update_time": h.update_time,
            "revision": h.revision, "blocked_until": h.blocked_until or NEVER}


def _hook(doc: Document) -> Webhook:
    return Webhook(doc["app_id"], doc["webhook_id"], doc["url"], tuple(doc["event_types"]),
                   doc["ordered"], doc["active"], doc["description"], doc["secret"],
                   doc.get("previous_secret"), doc.get("previous_secret_expire_time"),
                   doc["create_time"], doc["update_time"], doc["revision"],
                   None if doc.get("blocked_until", NEVER) == NEVER else doc["blocked_until"])


def _delivery_doc(d: Delivery) -> Document:
    hook_key = _key(d.app_id, d.webhook_id)
    return {"_id": f"{hook_key}/{d.event}", "hook": hook_key, "app_id": d.app_id,
            "webhook_id": d.webhook_id, "event": d.event, "event_type": d.event_type,
            "conversation": d.conversation, "position": d.position, "body": d.body,
            "failures": d.failures, "next_attempt_time": d.next_attempt_time,
            "create_time": d.create_time, "claim_until": NEVER}


def _delivery(doc: Document) -> Delivery:
    return Delivery(doc["app_id"], doc["webhook_id"], doc["event"], doc["event_type"],
                    doc["conversation"], doc["position"], bytes(doc["body"]), doc["failures"],
                    doc["next_attempt_time"], doc["create_time"])


def _attempt_doc(a: DeliveryAttempt) -> Document:
    hook_key = _key(a.app_id, a.webhook_id)
    return {"_id": f"{hook_key}/{a.attempt_id}", "hook": hook_key, "app_id": a.app_id,
            "webhook_id": a.webhook_id, "attempt_id": a.attempt_id, "event": a.event,
            "event_type": a.event_type, "attempt_number": a.attempt_number,
            "succeeded": a.succeeded, "status_code": a.status_code, "error": a.error,
            "latency_ms": a.latency_ms, "response_excerpt": a.response_excerpt,
            "create_time": a.create_time}


def _attempt(doc: Document) -> DeliveryAttempt:
    return DeliveryAttempt(doc["app_id"], doc["webhook_id"], doc["attempt_id"], doc["event"],
                           doc["event_type"], doc["attempt_number"], doc["succeeded"],
                           doc["status_code"], doc["error"], doc["latency_ms"],
                           doc["response_excerpt"], doc["create_time"])


def _dead_doc(d: DeadLetter) -> Document:
    hook_key = _key(d.app_id, d.webhook_id)
    return {"_id": f"{hook_key}/{d.dead_letter_id}", "hook": hook_key, "app_id": d.app_id,
            "webhook_id": d.webhook_id, "dead_letter_id": d.dead_letter_id,
            "event": d.event, "event_type": d.event_type, "conversation": d.conversation,
            "position": d.position, "body": d.body, "attempts": d.attempts,
            "last_error": d.last_error, "create_time": d.create_time}


def _dead(doc: Document) -> DeadLetter:
    return DeadLetter(doc["app_id"], doc["webhook_id"], doc["dead_letter_id"], doc["event"],
                      doc["event_type"], doc["conversation"], doc["position"],
                      bytes(doc["body"]), doc["attempts"], doc["last_error"],
                      doc["create_time"])


class MongoWebhookStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._hooks = db.db["webhooks"]
        self._deliveries = db.db["webhook_deliveries"]
        self._attempts = db.db["webhook_attempts"]
        self._dead = db.db["webhook_dead_letters"]

    async def migrate(self) -> None:
        await self._mongo.migrate("webhooks", MIGRATIONS)

    async def create_webhook(self, webhook: Webhook, limit: int) -> bool:
        async def tx(session: AsyncClientSession) -> bool:
            count = await self._hooks.count_documents({"app_id": webhook.app_id},
                                                      session=session)
            if count >= limit:
                return False
            await self._hooks.insert_one(_hook_doc(webhook), session=session)
            return True

        return await self._mongo.transaction(tx)

    async def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None:
        doc = await self._hooks.find_one({"_id": _key(app_id, webhook_id), "app_id": app_id})
        return None if doc is None else _hook(doc)

    async def list_webhooks(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Webhook]:
        query = {"app_id": app_id, **after_position(after, "create_time", "webhook_id")}
        cursor = self._hooks.find(query).sort(
            [("create_time", ASCENDING), ("webhook_id", ASCENDING)]).limit(limit)
        return [_hook(doc) async for doc in cursor]

    async def update_webhook(self, webhook: Webhook) -> bool:
        hook_key = _key(webhook.app_id, webhook.webhook_id)
        replaced = await self._hooks.replace_one(
            {"_id": hook_key, "revision": webhook.revision - 1}, _hook_doc(webhook))
        if replaced.matched_count != 1:
            return False
        if webhook.active:  # resumed, maybe: what was parked goes now
            now = webhook.update_time
            await self._deliveries.update_many(
                {"hook": hook_key, "next_attempt_time": {"$gt": now, "$lte": now + PARK}},
                {"$set": {"next_attempt_time": now}})
        return True

    async def delete_webhook(self, app_id: str, webhook_id: str) -> bool:
        hook_key = _key(app_id, webhook_id)

        async def tx(session: AsyncClientSession) -> bool:
            for collection in (self._deliveries, self._attempts, self._dead):
                await collection.delete_many({"hook": hook_key}, session=session)
            deleted = await self._hooks.delete_one({"_id": hook_key}, session=session)
            return deleted.deleted_count == 1

        return await self._mongo.transaction(tx)

    async def _insert_deliveries(self, docs: list[Document]) -> None:
        if not docs:
            return
        try:
            await self._deliveries.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != DUPLICATE_KEY for e in error.details["writeErrors"]):
                raise

    async def block_webhook(self, app_id: str, webhook_id: str, until: datetime) -> None:
        await self._hooks.update_one({"_id": _key(app_id, webhook_id)},
                                     {"$set": {"blocked_until": until}})

    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        await self._insert_deliveries([_delivery_doc(d) for d in deliveries])

    async def claim(self, now: datetime, until: datetime, limit: int, per_webhook: int
                    ) -> list[tuple[Delivery, Webhook]]:
        busy: dict[str, int] = {}
        async for row in await self._deliveries.aggregate([
                {"$match": {"claim_until": {"$gt": now}}},
                {"$group": {"_id": "$hook", "taken": {"$sum": 1}}}]):
            busy[row["_id"]] = row["taken"]
        # Skipped in the query, so that they cannot crowd out the others: the endpoints
        # that are paused or blocked (their due deliveries parked), and those with all
        # their deliveries in flight.
        skipped = [hook for hook, taken in busy.items() if taken >= per_webhook]
        async for stopped in self._hooks.find(
                {"$or": [{"active": False}, {"blocked_until": {"$gt": now}}]},
                projection={"active": 1, "blocked_until": 1}):
            skipped.append(stopped["_id"])
            await self._deliveries.update_many(
                {"hook": stopped["_id"], "next_attempt_time": {"$lte": now},
                 "claim_until": {"$lte": now}},
                {"$set": {"next_attempt_time": stopped["blocked_until"] if stopped["active"]
                          else now + PARK}})
        candidates = await self._deliveries.find(
            {"next_attempt_time": {"$lte": now}, "claim_until": {"$lte": now},
             "hook": {"$nin": skipped}}
        ).sort([("next_attempt_time", ASCENDING), ("position", ASCENDING)]
               ).limit(claim_window(limit)).to_list()
        hooks = {doc["_id"]: doc async for doc in self._hooks.find(
            {"_id": {"$in": list({doc["hook"] for doc in candidates})}})}
        orphans = {doc["hook"] for doc in candidates} - set(hooks)
        if orphans:  # queued while their endpoint was being deleted
            await self._deliveries.delete_many({"hook": {"$in": list(orphans)}})
        claimed: list[tuple[Delivery, Webhook]] = []
        for doc in candidates:
            hook = hooks.get(doc["hook"])
            if len(claimed) >= limit:
                break
            if (hook is None or not hook["active"] or hook.get("blocked_until", NEVER) > now
                    or busy.get(doc["hook"], 0) >= per_webhook):
                continue
            if hook["ordered"] and await self._deliveries.find_one(
                    {"hook": doc["hook"], "conversation": doc["conversation"],
                     "position": {"$lt": doc["position"]}}, projection={"_id": 1}):
                continue
            taken = await self._deliveries.find_one_and_update(
                {"_id": doc["_id"], "claim_until": {"$lte": now}},
                {"$set": {"claim_until": until}})
            if taken is not None:
                busy[doc["hook"]] = busy.get(doc["hook"], 0) + 1
                claimed.append((_delivery(taken), _hook(hook)))
        return claimed

    async def finish(self, delivery: Delivery, attempt: DeliveryAttempt,
                     retry_at: datetime | None, dead: DeadLetter | None) -> None:
        selector = {"_id": f"{_key(delivery.app_id, delivery.webhook_id)}/{delivery.event}"}

        async def tx(session: AsyncClientSession) -> None:
            if await self._deliveries.find_one(selector, projection={"_id": 1},
                                               session=session) is None:
                return
            await self._attempts.insert_one(_attempt_doc(attempt), session=session)
            if retry_at is not None and not attempt.succeeded:
                await self._deliveries.update_one(
                    selector, {"$inc": {"failures": 1},
                               "$set": {"next_attempt_time": retry_at, "claim_until": NEVER}},
                    session=session)
                return
            await self._deliveries.delete_one(selector, session=session)
            if dead is not None and not attempt.succeeded:
                await self._dead.insert_one(_dead_doc(dead), session=session)

        await self._mongo.transaction(tx)

    async def list_attempts(self, app_id: str, webhook_id: str, event: str, limit: int,
                            after: Position | None) -> list[DeliveryAttempt]:
        query: Document = {"hook": _key(app_id, webhook_id),
                           **after_position(after, "create_time", "attempt_id",
                                            descending=True)}
        if event:
            query["event"] = event
        cursor = self._attempts.find(query).sort(
            [("create_time", DESCENDING), ("attempt_id", DESCENDING)]).limit(limit)
        return [_attempt(doc) async for doc in cursor]

    async def list_dead_letters(self, app_id: str, webhook_id: str, limit: int,
                                after: Position | None) -> list[DeadLetter]:
        query = {"hook": _key(app_id, webhook_id),
                 **after_position(after, "create_time", "dead_letter_id")}
        cursor = self._dead.find(query).sort(
            [("create_time", ASCENDING), ("dead_letter_id", ASCENDING)]).limit(limit)
        return [_dead(doc) async for doc in cursor]

    async def replay(self, app_id: str, webhook_id: str, dead_letter_ids: Sequence[str] | None,
                     now: datetime) -> int:
        hook_key = _key(app_id, webhook_id)
        query: Document = {"hook": hook_key}
        if dead_letter_ids is not None:
            query["dead_letter_id"] = {"$in": list(dead_letter_ids)}

        async def tx(session: AsyncClientSession) -> int:
            dead = [_dead(doc) async for doc in self._dead.find(query, session=session)]
            docs = {doc["_id"]: doc for doc in (_delivery_doc(d.replayed(now)) for d in dead)}
            # An event waiting already (handed over again meanwhile) stays as it is: a
            # duplicate key would abort the transaction.
            async for doc in self._deliveries.find({"_id": {"$in": list(docs)}},
                                                   projection={"_id": 1}, session=session):
                docs.pop(doc["_id"])
            if docs:
                await self._deliveries.insert_many(list(docs.values()), session=session)
            await self._dead.delete_many(
                {"_id": {"$in": [f"{hook_key}/{d.dead_letter_id}" for d in dead]}},
                session=session)
            return len(dead)

        return await self._mongo.transaction(tx)

    async def drop_events(self, app_id: str, events: Sequence[str]) -> int:
        gone = 0
        for collection in (self._deliveries, self._dead):
            done = await collection.delete_many({"app_id": app_id, "event": {"$in": list(events)}})
            gone += done.deleted_count
        return gone

    async def queued(self) -> int:
        return await self._deliveries.estimated_document_count()

    async def purge(self, before: datetime, now: datetime) -> int:
        gone = 0
        for collection in (self._attempts, self._dead):
            result = await collection.delete_many({"create_time": {"$lt": before}})
            gone += result.deleted_count
        expired = {"create_time": {"$lt": before}}
        async for doc in self._deliveries.find(expired):
            letter = _delivery(doc).expired(now)
            await self._dead.insert_one(_dead_doc(letter))  # then it goes: never lost
            await self._deliveries.delete_one({"_id": doc["_id"]})
            gone += 1
        return gone
