"""RestrictionStore on MongoDB."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.core.errors import CapacityExceeded, StoreConflict
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog
from services.moderation.events import (
    CREATED,
    DELETED,
    REPORTED,
    RESOLVED,
    flag_event,
    restriction_event,
)
from services.moderation.models import (
    REPORTS_SHOWN,
    ContentFilter,
    FailurePolicy,
    FilterAction,
    Flag,
    FlagState,
    Report,
    ReportReason,
    Resolution,
    Restriction,
    RestrictionType,
    SendHook,
)
from services.moderation.permissions import PermissionPolicy, policy_body, policy_of
from services.moderation.store import Position


async def _v1(db: AsyncDatabase[Document]) -> None:
    restrictions = db["restrictions"]
    await restrictions.create_index(  # one per user, place and type
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("conversation_id", ASCENDING),
         ("type", ASCENDING)], unique=True)
    await restrictions.create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("restriction_id", ASCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    flags = db["flags"]
    # open_key: the target while open (one open flag per target), the id once resolved.
    await flags.create_index([("app_id", ASCENDING), ("open_key", ASCENDING)], unique=True)
    await flags.create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("flag_id", ASCENDING)])
    await db["flag_reports"].create_index(
        [("app_id", ASCENDING), ("flag_id", ASCENDING), ("create_time", DESCENDING)])


async def _v3(db: AsyncDatabase[Document]) -> None:
    """Filters: _id is "{app}/{filter}"; listed by app and id."""
    await db["filters"].create_index([("app_id", ASCENDING), ("filter_id", ASCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2, _v3)


def _applies(now: datetime) -> Document:
    return {"$or": [{"expire_time": None}, {"expire_time": {"$gt": now}}]}


def _doc(r: Restriction) -> Document:
    return {"_id": f"{r.app_id}/{r.restriction_id}", "app_id": r.app_id,
            "restriction_id": r.restriction_id, "user_id": r.user_id,
            "conversation_id": r.conversation_id, "type": r.type.value, "reason": r.reason,
            "creator": r.creator, "create_time": r.create_time, "expire_time": r.expire_time}


def _restriction(doc: Document) -> Restriction:
    return Restriction(doc["app_id"], doc["restriction_id"], doc["user_id"],
                       doc["conversation_id"], RestrictionType(doc["type"]), doc["reason"],
                       doc["creator"], doc["create_time"], doc.get("expire_time"))


class MongoRestrictionStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._restrictions = db.db["restrictions"]

    async def migrate(self) -> None:
        await self._mongo.migrate("moderation", MIGRATIONS)

    async def put_restriction(self, restriction: Restriction, now: datetime) -> Restriction:
        place = {"app_id": restriction.app_id, "user_id": restriction.user_id,
                 "conversation_id": restriction.conversation_id,
                 "type": restriction.type.value}

        async def tx(s: AsyncClientSession, emit: Emit) -> Restriction:
            found = await self._restrictions.find_one({**place, **_applies(now)}, session=s)
            # The one it replaces keeps its id.
            stored = restriction if found is None else replace(
                restriction, restriction_id=found["restriction_id"])
            # _id holds the id: a replaced expired one goes, its successor comes.
            await self._restrictions.delete_one(place, session=s)
            await self._restrictions.insert_one(_doc(stored), session=s)
            emit(restriction_event(CREATED, stored, now))
            return stored

        return await self._log.transact(tx)

    async def get_restriction(self, app_id: str, restriction_id: str) -> Restriction | None:
        doc = await self._restrictions.find_one({"_id": f"{app_id}/{restriction_id}",
                                                 "app_id": app_id})
        return None if doc is None else _restriction(doc)

    async def delete_restriction(self, app_id: str, restriction_id: str, now: datetime
                                 ) -> Restriction | None:
        async def tx(s: AsyncClientSession, emit: Emit) -> Restriction | None:
            doc = await self._restrictions.find_one_and_delete(
                {"_id": f"{app_id}/{restriction_id}", "app_id": app_id, **_applies(now)},
                session=s)
            if doc is None:
                return None
            lifted = _restriction(doc)
            emit(restriction_event(DELETED, lifted, now))
            return lifted

        return await self._log.transact(tx)

    async def list_restrictions(self, app_id: str, now: datetime, limit: int,
                                after: Position | None, *, user_id: str = "",
                                conversation_id: str | None = None, unseen_by: str = ""
                                ) -> list[Restriction]:
        query: dict[str, Any] = {"app_id": app_id, "$and": [
            _applies(now), after_position(after, "create_time", "restriction_id")]}
        if unseen_by:
            query["$and"].append({"$nor": [{"type": RestrictionType.SHADOW_BAN.value,
                                            "user_id": unseen_by}]})
        if user_id:
            query["user_id"] = user_id
        if conversation_id is not None:
            query["conversation_id"] = conversation_id
        cursor = self._restrictions.find(query).sort(
            [("create_time", ASCENDING), ("restriction_id", ASCENDING)]).limit(limit)
        return [_restriction(doc) async for doc in cursor]

    async def user_restrictions(self, app_id: str, user_id: str, now: datetime
                                ) -> list[Restriction]:
        cursor = self._restrictions.find({"app_id": app_id, "user_id": user_id,
                                          **_applies(now)})
        return [_restriction(doc) async for doc in cursor]


def _free(claimer: str, now: datetime) -> Document:
    """Nobody but `claimer` holds it at `now`."""
    return {"$or": [{"claimer": {"$in": ["", claimer]}}, {"claim_expire_time": {"$lte": now}}]}


def _report(doc: Document) -> Report:
    return Report(doc["reporter"], ReportReason(doc["reason"]), doc["details"],
                  doc["create_time"])


class MongoFlagStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._log = log
        self._flags = db.db["flags"]
        self._reports = db.db["flag_reports"]

    async def migrate(self) -> None:
        """The restriction store migrates the moderation collections, flags' included."""

    async def _load(self, doc: Document, s: AsyncClientSession | None = None) -> Flag:
        cursor = self._reports.find(
            {"app_id": doc["app_id"], "flag_id": doc["flag_id"]}, session=s
        ).sort([("create_time", DESCENDING), ("reporter", ASCENDING)]).limit(REPORTS_SHOWN)
        reports = tuple([_report(r) async for r in cursor])
        found = doc.get("resolution")
        resolution = None if found is None else Resolution(
            found["resolver"], found["note"], found["message_deleted"],
            found["restriction_id"], found["resolve_time"])
        return Flag(doc["app_id"], doc["flag_id"], doc["conversation_id"], doc["sequence"],
                    doc["user_id"], doc["message_text"], FlagState(doc["state"]),
                    doc["create_time"], doc["update_time"], doc["report_count"], reports,
                    doc["claimer"], doc.get("claim_expire_time"), resolution)

    async def report(self, flag: Flag, report: Report) -> Flag:
        now = report.create_time

        async def tx(s: AsyncClientSession, emit: Emit) -> Flag:
            found = await self._flags.find_one_and_update(
                {"app_id": flag.app_id, "open_key": flag.target},
                {"$setOnInsert": {
                    "_id": f"{flag.app_id}/{flag.flag_id}", "flag_id": flag.flag_id,
                    "conversation_id": flag.conversation_id, "sequence": flag.sequence,
                    "user_id": flag.user_id, "message_text": flag.message_text,
                    "state": FlagState.OPEN.value, "report_count": 0, "claimer": "",
                    "claim_expire_time": None, "resolution": None, "create_time": now}},
                upsert=True, return_document=ReturnDocument.AFTER, session=s)
            assert found is not None  # upserted
            flag_id = found["flag_id"]
            await self._reports.replace_one(
                {"_id": f"{flag.app_id}/{flag_id}/{report.reporter}"},
                {"app_id": flag.app_id, "flag_id": flag_id, "reporter": report.reporter,
                 "reason": report.reason.value, "details": report.details,
                 "create_time": now}, upsert=True, session=s)
            count = await self._reports.count_documents(
                {"app_id": flag.app_id, "flag_id": flag_id}, session=s)
            doc = await self._flags.find_one_and_update(
                {"_id": found["_id"]}, {"$set": {"report_count": count, "update_time": now}},
                return_document=ReturnDocument.AFTER, session=s)
            assert doc is not None
            stored = await self._load(doc, s)
            emit(flag_event(REPORTED, stored, now))
            return stored

        return await self._log.transact(tx)

    async def get_flag(self, app_id: str, flag_id: str) -> Flag | None:
        doc = await self._flags.find_one({"_id": f"{app_id}/{flag_id}", "app_id": app_id})
        return None if doc is None else await self._load(doc)

    async def get_report(self, app_id: str, flag_id: str, reporter: str) -> Report | None:
        doc = await self._reports.find_one({"_id": f"{app_id}/{flag_id}/{reporter}",
                                            "app_id": app_id})
        return None if doc is None else _report(doc)

    async def forget_texts(self, app_id: str, user_id: str) -> int:
        done = await self._flags.update_many(
            {"app_id": app_id, "user_id": user_id, "message_text": {"$ne": ""}},
            {"$set": {"message_text": ""}})
        return done.modified_count

    async def list_flags(self, app_id: str, limit: int, after: Position | None, *,
                         state: FlagState | None = None, conversation_id: str | None = None,
                         user_id: str = "", not_user_id: str = "") -> list[Flag]:
        query: dict[str, Any] = {"app_id": app_id,
                                 **after_position(after, "create_time", "flag_id")}
        if state is not None:
            query["state"] = state.value
        if conversation_id is not None:
            query["conversation_id"] = conversation_id
        if user_id:
            query["user_id"] = user_id
        elif not_user_id:
            query["user_id"] = {"$ne": not_user_id}
        cursor = self._flags.find(query).sort(
            [("create_time", ASCENDING), ("flag_id", ASCENDING)]).limit(limit)
        return [await self._load(doc) async for doc in cursor]

    async def claim(self, app_id: str, flag_id: str, claimer: str,
                    until: datetime | None, now: datetime) -> Flag | None:
        doc = await self._flags.find_one_and_update(
            {"_id": f"{app_id}/{flag_id}", "app_id": app_id, "state": FlagState.OPEN.value,
             **_free(claimer, now)},
            {"$set": {"claimer": "" if until is None else claimer,
                      "claim_expire_time": until, "update_time": now}},
            return_document=ReturnDocument.AFTER)
        return None if doc is None else await self._load(doc)

    async def resolve(self, app_id: str, flag_id: str, resolution: Resolution) -> Flag | None:
        at = resolution.resolve_time

        async def tx(s: AsyncClientSession, emit: Emit) -> Flag | None:
            doc = await self._flags.find_one_and_update(
                {"_id": f"{app_id}/{flag_id}", "app_id": app_id,
                 "state": FlagState.OPEN.value, **_free(resolution.resolver, at)},
                {"$set": {"state": FlagState.RESOLVED.value, "open_key": flag_id,
                          "claimer": "", "claim_expire_time": None, "update_time": at,
                          "resolution": {
                              "resolver": resolution.resolver, "note": resolution.note,
                              "message_deleted": resolution.message_deleted,
                              "restriction_id": resolution.restriction_id,
                              "resolve_time": at}}},
                return_document=ReturnDocument.AFTER, session=s)
            if doc is None:
                return None
            resolved = await self._load(doc, s)
            emit(flag_event(RESOLVED, resolved, at))
            return resolved

        return await self._log.transact(tx)


def _filter_doc(f: ContentFilter) -> Document:
    return {"_id": f"{f.app_id}/{f.filter_id}", "app_id": f.app_id, "filter_id": f.filter_id,
            "display_name": f.display_name, "words": list(f.words),
            "patterns": list(f.patterns), "blocked_domains": list(f.blocked_domains),
            "allowed_domains": list(f.allowed_domains), "action": int(f.action),
            "kinds": sorted(f.kinds), "create_time": f.create_time,
            "update_time": f.update_time}


def _filter(doc: Document) -> ContentFilter:
    return ContentFilter(doc["app_id"], doc["filter_id"], doc["display_name"],
                         tuple(doc["words"]), tuple(doc["patterns"]),
                         tuple(doc["blocked_domains"]), tuple(doc["allowed_domains"]),
                         FilterAction(doc["action"]), frozenset(doc["kinds"]),
                         doc["create_time"], doc["update_time"])


class MongoFilterStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._filters = db.db["filters"]
        self._apps = db.db["filter_apps"]

    async def create_filter(self, content_filter: ContentFilter, limit: int) -> None:
        async def tx(s: AsyncClientSession) -> None:
            # Two creations at once both write this document: one is retried after the
            # other, and counts it, so the limit holds.
            await self._apps.update_one({"_id": content_filter.app_id},
                                        {"$set": {"last": content_filter.filter_id,
                                                  "at": content_filter.create_time}},
                                        upsert=True, session=s)
            count = await self._filters.count_documents({"app_id": content_filter.app_id},
                                                        session=s)
            if count >= limit:
                raise CapacityExceeded("filters per app", limit)
            try:
                await self._filters.insert_one(_filter_doc(content_filter), session=s)
            except DuplicateKeyError as exc:
                raise StoreConflict(content_filter.filter_id) from exc

        await self._mongo.transaction(tx)

    async def get_filter(self, app_id: str, filter_id: str) -> ContentFilter | None:
        doc = await self._filters.find_one({"_id": f"{app_id}/{filter_id}", "app_id": app_id})
        return None if doc is None else _filter(doc)

    async def list_filters(self, app_id: str, limit: int, after: str = ""
                           ) -> list[ContentFilter]:
        cursor = self._filters.find({"app_id": app_id, "filter_id": {"$gt": after}}).sort(
            "filter_id", ASCENDING).limit(limit)
        return [_filter(doc) async for doc in cursor]

    async def update_filter(self, content_filter: ContentFilter) -> bool:
        doc = _filter_doc(content_filter)
        del doc["create_time"]
        result = await self._filters.update_one(
            {"_id": doc["_id"], "app_id": content_filter.app_id}, {"$set": doc})
        return result.matched_count == 1

    async def delete_filter(self, app_id: str, filter_id: str) -> bool:
        result = await self._filters.delete_one({"_id": f"{app_id}/{filter_id}",
                                                 "app_id": app_id})
        return result.deleted_count == 1


class MongoSendHookStore:
    """One document per app: _id is the app id."""

    def __init__(self, db: MongoDatabase) -> None:
        self._hooks = db.db["send_hooks"]

    async def get_send_hook(self, app_id: str) -> SendHook | None:
        doc = await self._hooks.find_one({"_id": app_id})
        if doc is None:
            return None
        return SendHook(doc["_id"], doc["url"], doc["secret"],
                        timedelta(milliseconds=doc["timeout_ms"]),
                        FailurePolicy(doc["failure_policy"]), frozenset(doc["kinds"]),
                        doc["create_time"], doc["update_time"])

    async def create_send_hook(self, hook: SendHook) -> bool:
        try:
            await self._hooks.insert_one({"_id": hook.app_id, "secret": hook.secret,
                                          "create_time": hook.create_time, **_hook_fields(hook)})
        except DuplicateKeyError:
            return False
        return True

    async def update_send_hook(self, hook: SendHook) -> bool:
        result = await self._hooks.update_one({"_id": hook.app_id},
                                              {"$set": _hook_fields(hook)})
        return result.matched_count == 1

    async def delete_send_hook(self, app_id: str) -> bool:
        return (await self._hooks.delete_one({"_id": app_id})).deleted_count == 1


def _hook_fields(hook: SendHook) -> Document:
    """What an update replaces (not the secret, not the create time)."""
    return {"url": hook.url, "timeout_ms": hook.timeout // timedelta(milliseconds=1),
            "failure_policy": hook.failure_policy.value, "kinds": sorted(hook.kinds),
            "update_time": hook.update_time}


class MongoPolicyStore:
    """One document per app: _id is the app id."""

    def __init__(self, db: MongoDatabase) -> None:
        self._policies = db.db["permission_policies"]

    async def get_policy(self, app_id: str) -> PermissionPolicy | None:
        doc = await self._policies.find_one({"_id": app_id})
        return None if doc is None else policy_of(app_id, doc["body"], doc["update_time"])

    async def put_policy(self, policy: PermissionPolicy) -> None:
        await self._policies.replace_one(
            {"_id": policy.app_id},
            {"body": policy_body(policy), "update_time": policy.update_time}, upsert=True)
