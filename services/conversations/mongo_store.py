"""ConversationStore on MongoDB.

Documents are keyed by app (`app/conversation`, `app/conversation/user`), and every
query also names `app_id`, so no lookup crosses apps. A direct conversation is unique
per pair through a `direct_keys` document whose `_id` is the pair's key, inserted in
the conversation's transaction (a plain unique `_id` works on every MongoDB-compatible
server, where partial unique indexes may not). Deleting a conversation is a soft
delete of its document; its members, messages, revisions and reactions are removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.conversations.events import emit_member_changes, member_event
from services.conversations.listing import BY_JOIN, INBOX
from services.conversations.models import (
    Conversation,
    ConversationChanges,
    Kind,
    Member,
    MemberChanges,
    MlsGroup,
    Preview,
    Role,
)
from services.conversations.store import Keyset, Position
from services.core.clock import from_ms, ms
from services.core.db import mongo_filter as mq
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.core.db.mongo_filter import MongoTerm, field, flag
from services.core.errors import CapacityExceeded, StoreConflict
from services.core.events import DomainEvent
from services.core.filtering import Expr, Ordering
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog

# Collections of the messages store, emptied when a conversation is deleted.
MESSAGE_COLLECTIONS = ("messages", "message_revisions", "reactions", "mls_welcomes")


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["conversations"].create_index(
        [("app_id", ASCENDING), ("kind", ASCENDING), ("create_time", DESCENDING),
         ("conversation_id", DESCENDING)])
    await db["members"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("join_time", ASCENDING),
         ("user_id", ASCENDING)])
    await db["members"].create_index(
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("pinned", DESCENDING),
         ("activity_time", DESCENDING), ("conversation_id", DESCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    """A membership carries its conversation's kind and creation time (both never
    change), so that a user's conversations filter and sort on one collection."""
    async for doc in db["conversations"].find(
            {}, {"app_id": 1, "conversation_id": 1, "kind": 1, "create_time": 1}):
        await db["members"].update_many(
            {"app_id": doc["app_id"], "conversation_id": doc["conversation_id"],
             "kind": {"$exists": False}},
            {"$set": {"kind": doc["kind"], "conversation_create_time": doc["create_time"]}})
    await db["members"].create_index(
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("conversation_create_time", DESCENDING),
         ("conversation_id", DESCENDING)])
    await db["members"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("role", ASCENDING),
         ("join_time", ASCENDING), ("user_id", ASCENDING)])


async def _v3(db: AsyncDatabase[Document]) -> None:
    """Unread messages that mention the member, kept by the messages store like
    unread_count: 0 here; the messages store's migration 3 counts the memberships that
    exist already."""
    await db["members"].update_many({"unread_mention_count": {"$exists": False}},
                                    {"$set": {"unread_mention_count": 0}})


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2, _v3)

# ListConversations: the filter's fields and the orderings' keys, as fields of members.
_INBOX_TERMS: dict[str, MongoTerm] = {
    "kind": field("kind"),
    "unread": flag({"unread_count": {"$gt": 0}}, {"unread_count": {"$lte": 0}}),
    "unread_count": field("unread_count"),
    "has_mentions": flag({"unread_mention_count": {"$gt": 0}},
                         {"unread_mention_count": {"$lte": 0}}),
    "unread_mention_count": field("unread_mention_count"), "muted": field("muted"),
    "archived": field("archived"), "pinned": field("pinned", int), "role": field("role"),
    "last_activity_time": field("activity_time"),
    "create_time": field("conversation_create_time")}
_INBOX_KEYS = {"pinned": "pinned", "last_activity_time": "activity_time",
               "create_time": "conversation_create_time", "conversation_id": "conversation_id"}
# ListMembers.
_MEMBER_TERMS: dict[str, MongoTerm] = {
    "role": field("role"), "user_id": field("user_id"), "join_time": field("join_time")}
_MEMBER_KEYS = {"join_time": "join_time", "user_id": "user_id"}


def stored_position(ordering: Ordering, after: Keyset | None) -> list[object] | None:
    """A page position as stored: times (ms in the position) as datetimes."""
    if after is None:
        return None
    return [from_ms(int(value)) if kind == "time" else value
            for kind, value in zip(ordering.kinds, after, strict=True)]


def conversation_key(app_id: str, conversation_id: str) -> str:
    return f"{app_id}/{conversation_id}"


def member_key(app_id: str, conversation_id: str, user_id: str) -> str:
    return f"{app_id}/{conversation_id}/{user_id}"


def preview_doc(preview: Preview | None) -> Document | None:
    if preview is None:
        return None
    return {"sequence": preview.sequence, "sender_id": preview.sender_id, "text": preview.text,
            "deleted": preview.deleted, "create_time": preview.create_time}


def _preview(doc: Document | None) -> Preview | None:
    if doc is None:
        return None
    return Preview(doc["sequence"], doc["sender_id"], doc["text"], doc["deleted"],
                   doc["create_time"])


def conversation_from_doc(doc: Document) -> Conversation:
    return Conversation(doc["app_id"], doc["conversation_id"], Kind(doc["kind"]), doc["title"],
                        doc["image_uri"], doc["metadata"], doc["frozen"], doc["creator_id"],
                        doc["member_count"], doc["last_sequence"],
                        _preview(doc.get("last_message")), doc["create_time"],
                        doc["update_time"], doc["last_activity_time"],
                        timedelta(milliseconds=doc.get("slow_mode_ms", 0)),
                        doc.get("type", ""),
                        None if doc.get("mls") is None else MlsGroup.from_dict(doc["mls"]))


def member_doc(member: Member, conversation: Conversation) -> Document:
    return {"_id": member_key(member.app_id, member.conversation_id, member.user_id),
            "app_id": member.app_id, "conversation_id": member.conversation_id,
            "user_id": member.user_id, "role": int(member.role), "join_time": member.join_time,
            "muted": member.muted, "archived": member.archived,
            "pinned": int(member.pinned),  # 0/1: the inbox pages on it as a number
            "read_sequence": member.read_sequence,
            "delivered_sequence": member.delivered_sequence,
            "unread_count": member.unread_count, "read_time": member.read_time,
            "unread_mention_count": member.unread_mention_count,
            "activity_time": conversation.last_activity_time,
            # the conversation's, which never change: to filter and sort memberships on
            "kind": conversation.kind.value, "conversation_create_time": conversation.create_time}


def member_from_doc(doc: Document) -> Member:
    return Member(doc["app_id"], doc["conversation_id"], doc["user_id"], Role(doc["role"]),
                  doc["join_time"], doc["muted"], doc["archived"], bool(doc["pinned"]),
                  doc["read_sequence"], doc["delivered_sequence"], doc["unread_count"],
                  doc.get("read_time"), doc["activity_time"],
                  doc.get("unread_mention_count", 0))


def live(app_id: str, conversation_id: str) -> Document:
    """Selector of a conversation that is not deleted."""
    return {"_id": conversation_key(app_id, conversation_id), "app_id": app_id,
            "delete_time": None}


def after_join(position: Position | None) -> Document:
    """Filter for members strictly after (join_time, user_id)."""
    return after_position(position, "join_time", "user_id")


class MongoConversationStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._conversations = db.db["conversations"]
        self._direct_keys = db.db["direct_keys"]
        self._members = db.db["members"]

    async def migrate(self) -> None:
        await self._mongo.migrate("conversations", MIGRATIONS)

    async def _direct(self, app_id: str, direct_key: str,
                      session: AsyncClientSession | None = None) -> Conversation | None:
        found = await self._direct_keys.find_one({"_id": f"{app_id}/{direct_key}"},
                                                 session=session)
        if found is None:
            return None
        doc = await self._conversations.find_one(live(app_id, found["conversation_id"]),
                                                 session=session)
        return None if doc is None else conversation_from_doc(doc)

    async def create_conversation(self, conversation: Conversation, members: Sequence[Member],
                                  direct_key: str | None) -> tuple[Conversation, bool]:
        c = conversation
        stored = replace(c, metadata=dict(c.metadata), member_count=len(members))
        doc = {"_id": conversation_key(c.app_id, c.conversation_id), "app_id": c.app_id,
               "conversation_id": c.conversation_id, "kind": c.kind.value, "title": c.title,
               "image_uri": c.image_uri, "metadata": dict(c.metadata), "frozen": c.frozen,
               "creator_id": c.creator_id, "member_count": len(members),
               "last_sequence": c.last_sequence, "last_message": preview_doc(c.last_message),
               "create_time": c.create_time, "update_time": c.update_time,
               "last_activity_time": c.last_activity_time, "slow_mode_ms": ms(c.slow_mode),
               "type": c.type, "direct_key": direct_key, "delete_time": None,
               "mls": None if c.mls is None else c.mls.to_dict()}

        async def tx(s: AsyncClientSession, emit: Emit) -> tuple[Conversation, bool]:
            if direct_key is not None:
                existing = await self._direct(c.app_id, direct_key, s)
                if existing is not None:
                    return existing, False
                await self._direct_keys.insert_one(
                    {"_id": f"{c.app_id}/{direct_key}", "app_id": c.app_id,
                     "conversation_id": c.conversation_id}, session=s)
            await self._conversations.insert_one(doc, session=s)
            if members:
                await self._members.insert_many(
                    [member_doc(m, c) for m in members], session=s)
            emit(DomainEvent("conversation.created", c.app_id, c.create_time,
                             {"members": ",".join(m.user_id for m in members)},
                             c.conversation_id, stored, c.creator_id))
            return stored, True

        try:
            return await self._log.transact(tx)
        except DuplicateKeyError as exc:
            if direct_key is not None:  # the same pair, created concurrently
                existing = await self._direct(c.app_id, direct_key)
                if existing is not None:
                    return existing, False
            raise StoreConflict(c.conversation_id) from exc

    async def get_conversation(self, app_id: str, conversation_id: str) -> Conversation | None:
        doc = await self._conversations.find_one(live(app_id, conversation_id))
        return None if doc is None else conversation_from_doc(doc)

    async def update_conversation(self, app_id: str, conversation_id: str,
                                  changes: ConversationChanges, now: datetime
                                  ) -> Conversation | None:
        changed: Document = {"update_time": now}
        for name in ("title", "image_uri", "frozen"):
            value = getattr(changes, name)
            if value is not None:
                changed[name] = value
        if changes.metadata is not None:
            changed["metadata"] = dict(changes.metadata)
        if changes.slow_mode is not None:
            changed["slow_mode_ms"] = ms(changes.slow_mode)

        async def tx(s: AsyncClientSession, emit: Emit) -> Conversation | None:
            doc = await self._conversations.find_one_and_update(
                live(app_id, conversation_id), {"$set": changed},
                return_document=ReturnDocument.AFTER, session=s)
            if doc is None:
                return None
            updated = conversation_from_doc(doc)
            emit(DomainEvent("conversation.updated", app_id, now,
                             conversation_id=conversation_id, payload=updated))
            return updated

        return await self._log.transact(tx)

    async def delete_conversation(self, app_id: str, conversation_id: str, now: datetime
                                  ) -> bool:
        async def tx(s: AsyncClientSession, emit: Emit) -> bool:
            doc = await self._conversations.find_one_and_update(
                live(app_id, conversation_id),
                {"$set": {"delete_time": now, "direct_key": None}}, session=s)
            if doc is None:
                return False
            if doc.get("direct_key") is not None:
                await self._direct_keys.delete_one(
                    {"_id": f"{app_id}/{doc['direct_key']}"}, session=s)
            selector = {"app_id": app_id, "conversation_id": conversation_id}
            await self._members.delete_many(selector, session=s)
            for name in MESSAGE_COLLECTIONS:
                await self._mongo.db[name].delete_many(selector, session=s)
            emit(DomainEvent("conversation.deleted", app_id, now,
                             conversation_id=conversation_id,
                             payload=conversation_from_doc(doc)))
            return True

        return await self._log.transact(tx)

    async def get_member(self, app_id: str, conversation_id: str, user_id: str
                         ) -> Member | None:
        doc = await self._members.find_one(
            {"_id": member_key(app_id, conversation_id, user_id), "app_id": app_id})
        return None if doc is None else member_from_doc(doc)

    async def get_access(self, app_id: str, conversation_id: str, user_id: str
                         ) -> tuple[Conversation | None, Member | None]:
        conversation, member = await asyncio.gather(
            self.get_conversation(app_id, conversation_id),
            self.get_member(app_id, conversation_id, user_id))
        return conversation, None if conversation is None else member

    async def get_memberships(self, app_id: str, user_id: str,
                              conversation_ids: Sequence[str]) -> dict[str, Member]:
        if not conversation_ids:
            return {}
        keys = [member_key(app_id, c, user_id) for c in conversation_ids]
        return {doc["conversation_id"]: member_from_doc(doc)
                async for doc in self._members.find({"_id": {"$in": keys}, "app_id": app_id})}

    async def conversation_partners(self, app_id: str, user_id: str,
                                    user_ids: Sequence[str]) -> set[str]:
        others = [u for u in user_ids if u != user_id]
        if not others:
            return set()
        mine = [conversation_key(app_id, doc["conversation_id"])
                async for doc in self._members.find({"app_id": app_id, "user_id": user_id},
                                                    {"conversation_id": 1})]
        if not mine:
            return set()
        shared = [doc["conversation_id"] async for doc in self._conversations.find(
            {"_id": {"$in": mine}, "app_id": app_id, "kind": {"$ne": Kind.CHANNEL.value},
             "delete_time": None}, {"conversation_id": 1})]
        if not shared:
            return set()
        found = await self._members.distinct(
            "user_id", {"app_id": app_id, "conversation_id": {"$in": shared},
                        "user_id": {"$in": others}})
        return set(found)

    async def add_members(self, app_id: str, conversation_id: str, members: Sequence[Member],
                          max_members: int) -> list[Member]:
        async def tx(s: AsyncClientSession, emit: Emit) -> list[Member]:
            doc = await self._conversations.find_one(live(app_id, conversation_id), session=s)
            if doc is None:
                return []
            conversation = conversation_from_doc(doc)
            wanted = {m.user_id: m for m in members}
            keys = [member_key(app_id, conversation_id, u) for u in wanted]
            present = {d["user_id"] async for d in self._members.find(
                {"_id": {"$in": keys}, "app_id": app_id}, {"user_id": 1}, session=s)}
            new = [m for u, m in wanted.items() if u not in present]
            if conversation.member_count + len(new) > max_members:
                raise CapacityExceeded("members per conversation", max_members)
            last = conversation.last_sequence
            added = [Member(app_id, conversation_id, m.user_id, m.role, m.join_time,
                            read_sequence=last, delivered_sequence=last,
                            activity_time=conversation.last_activity_time) for m in new]
            if added:
                await self._members.insert_many(
                    [member_doc(m, conversation) for m in added], session=s)
                await self._conversations.update_one(
                    {"_id": doc["_id"]}, {"$inc": {"member_count": len(added)}}, session=s)
            for member in added:
                emit(member_event("member.added", member, member.join_time))
            return added

        return await self._log.transact(tx)

    async def remove_member(self, app_id: str, conversation_id: str, user_id: str,
                            now: datetime) -> Member | None:
        async def tx(s: AsyncClientSession, emit: Emit) -> Member | None:
            doc = await self._members.find_one_and_delete(
                {"_id": member_key(app_id, conversation_id, user_id), "app_id": app_id},
                session=s)
            if doc is None:
                return None
            removed = member_from_doc(doc)
            await self._conversations.update_one(
                {"_id": conversation_key(app_id, conversation_id)},
                {"$inc": {"member_count": -1}}, session=s)
            emit(member_event("member.removed", removed, now))
            if removed.role is Role.OWNER:
                selector = {"app_id": app_id, "conversation_id": conversation_id}
                order = [("join_time", ASCENDING), ("user_id", ASCENDING)]
                heir = await self._members.find_one(
                    {**selector, "role": int(Role.ADMIN)}, sort=order, session=s)
                if heir is None:
                    heir = await self._members.find_one(selector, sort=order, session=s)
                if heir is not None:
                    owner = await self._members.find_one_and_update(
                        {"_id": heir["_id"]}, {"$set": {"role": int(Role.OWNER)}},
                        return_document=ReturnDocument.AFTER, session=s)
                    assert owner is not None
                    emit(member_event("member.updated", member_from_doc(owner), now))
            return removed

        return await self._log.transact(tx)

    async def update_member(self, app_id: str, conversation_id: str, user_id: str,
                            changes: MemberChanges, now: datetime) -> Member | None:
        changed: Document = {}
        if changes.role is not None:
            changed["role"] = int(changes.role)
        if changes.muted is not None:
            changed["muted"] = changes.muted
        if changes.archived is not None:
            changed["archived"] = changes.archived
        if changes.pinned is not None:
            changed["pinned"] = int(changes.pinned)
        selector = {"_id": member_key(app_id, conversation_id, user_id), "app_id": app_id}
        if not changed:
            return await self.get_member(app_id, conversation_id, user_id)

        async def tx(s: AsyncClientSession, emit: Emit) -> Member | None:
            before = await self._members.find_one_and_update(selector, {"$set": changed},
                                                             session=s)
            if before is None:
                return None
            after = await self._members.find_one(selector, session=s)
            assert after is not None
            emit_member_changes(emit, member_from_doc(before), member_from_doc(after), now)
            return member_from_doc(after)

        return await self._log.transact(tx)

    async def list_members(self, app_id: str, conversation_id: str, limit: int,
                           after: Keyset | None, *, where: Expr | None = None,
                           ordering: Ordering = BY_JOIN) -> list[Member]:
        beyond, sort = mq.keyset([_MEMBER_KEYS[k] for k in ordering.keys],
                                 ordering.descending, stored_position(ordering, after))
        query = mq.combine({"app_id": app_id, "conversation_id": conversation_id},
                           mq.query(where, _MEMBER_TERMS), beyond)
        cursor = self._members.find(query).sort(sort).limit(limit)
        return [member_from_doc(doc) async for doc in cursor]

    async def list_user_conversations(self, app_id: str, user_id: str, include_archived: bool,
                                      limit: int, after: Keyset | None, *,
                                      where: Expr | None = None, ordering: Ordering = INBOX
                                      ) -> list[tuple[Member, Conversation]]:
        mine: Document = {"app_id": app_id, "user_id": user_id}
        if not include_archived:
            mine["archived"] = False
        beyond, sort = mq.keyset([_INBOX_KEYS[k] for k in ordering.keys],
                                 ordering.descending, stored_position(ordering, after))
        cursor = self._members.find(mq.combine(mine, mq.query(where, _INBOX_TERMS), beyond)
                                    ).sort(sort).limit(limit)
        members = [member_from_doc(doc) async for doc in cursor]
        if not members:
            return []
        keys = [conversation_key(app_id, m.conversation_id) for m in members]
        conversations = {
            doc["conversation_id"]: conversation_from_doc(doc)
            async for doc in self._conversations.find(
                {"_id": {"$in": keys}, "app_id": app_id, "delete_time": None})}
        return [(m, conversations[m.conversation_id]) for m in members
                if m.conversation_id in conversations]

    async def list_channels(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Conversation]:
        query = {"app_id": app_id, "kind": Kind.CHANNEL.value, "delete_time": None,
                 **after_position(after, "create_time", "conversation_id", descending=True)}
        cursor = self._conversations.find(query).sort(
            [("create_time", DESCENDING), ("conversation_id", DESCENDING)]).limit(limit)
        return [conversation_from_doc(doc) async for doc in cursor]

    async def unread_totals(self, app_id: str, user_id: str) -> tuple[int, int]:
        cursor = await self._members.aggregate([
            {"$match": {"app_id": app_id, "user_id": user_id, "muted": False,
                        "unread_count": {"$gt": 0}}},
            {"$group": {"_id": None, "messages": {"$sum": "$unread_count"},
                        "conversations": {"$sum": 1}}}])
        totals = [doc async for doc in cursor]
        if not totals:
            return 0, 0
        return int(totals[0]["messages"]), int(totals[0]["conversations"])

    async def scan_conversations(self, app_id: str, limit: int, after: str | None
                                 ) -> list[Conversation]:
        start = conversation_key(app_id, after) if after else conversation_key(app_id, "")
        cursor = self._conversations.find(
            {"_id": {"$gt": start, "$lt": conversation_key(app_id, "\U0010ffff")},
             "app_id": app_id, "delete_time": None}).sort("_id", ASCENDING).limit(limit)
        return [conversation_from_doc(doc) async for doc in cursor]

    async def join_times(self, app_id: str, user_id: str) -> dict[str, datetime]:
        cursor = self._members.find({"app_id": app_id, "user_id": user_id},
                                    {"conversation_id": 1, "join_time": 1})
        return {doc["conversation_id"]: doc["join_time"] async for doc in cursor}

    async def member_ids(self, app_id: str, conversation_id: str) -> list[str]:
        cursor = self._members.find({"app_id": app_id, "conversation_id": conversation_id},
                                    {"user_id": 1})
        return [doc["user_id"] async for doc in cursor]
