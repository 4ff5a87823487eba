"""MessageStore on MongoDB.

Sending is one transaction: `$inc` of the conversation's `last_sequence`, the message,
the thread root, and every member's unread count (and the mentioned members' unread
mention count). Concurrent senders write the same conversation document: those of one
process queue for it (`MongoDatabase.transaction`'s serial key), and of the senders of
several processes all but one get a write conflict and the driver retries their
transaction from the start, which is what keeps sequences gapless. A retried send is
caught by the unique (app, conversation, sender, request id) index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.calls.codec import call_doc, call_of
from services.conversations.models import Member, MlsGroup, Preview, split_key
from services.conversations.mongo_store import (
    after_join,
    conversation_from_doc,
    live,
    member_from_doc,
    member_key,
    preview_doc,
)
from services.core.clock import from_ms, to_ms
from services.core.db import mongo_filter as mq
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.core.db.mongo_filter import MongoTerm, field, flag, string_map
from services.core.errors import CapacityExceeded
from services.core.filtering import Comparison, Expr, Op
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog
from services.messages.events import emit_mark, message_event
from services.messages.listing import DELETED
from services.messages.models import (
    Attachment,
    Draft,
    Mention,
    Message,
    MessageChanges,
    MlsContent,
    MlsDraft,
    Page,
    Reaction,
    ReceiptSummary,
    Revision,
    Welcome,
    mentioned_others,
    welcome_position,
)
from services.messages.store import Direction, Position, StaleEpoch, TooSoon, around_page


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["messages"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("sender_id", ASCENDING),
         ("request_id", ASCENDING)], unique=True)
    await db["messages"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("thread_root", ASCENDING),
         ("sequence", ASCENDING)])
    await db["message_revisions"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("sequence", ASCENDING),
         ("revision", ASCENDING)])
    await db["reactions"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("sequence", ASCENDING),
         ("create_time", ASCENDING), ("position", ASCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    # ListMessages filtered by sender.
    await db["messages"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("thread_root", ASCENDING),
         ("sender_id", ASCENDING), ("sequence", ASCENDING)])


_MENTIONING: Document = {"mentions.0": {"$exists": True}, "delete_time": None}


async def _v3(db: AsyncDatabase[Document]) -> None:
    """Count the unread mentions of the memberships that exist already (the field is
    the conversations store's migration 3): what `mark` would count. One transaction
    per conversation with mentions, so that sends committing meanwhile are not lost;
    running it again sets the same counts."""
    conversations = {(doc["app_id"], doc["conversation_id"]) async for doc in
                     db["messages"].find(_MENTIONING, {"app_id": 1, "conversation_id": 1})}
    for app_id, conversation_id in sorted(conversations):
        of_conversation = {"app_id": app_id, "conversation_id": conversation_id}

        async def count(s: AsyncClientSession, selector: Document = of_conversation) -> None:
            mentioning = [(doc["sequence"], set(mentioned_others(
                doc["sender_id"], (Mention(**m) for m in doc["mentions"]))))
                async for doc in db["messages"].find(
                    {**selector, **_MENTIONING},
                    {"sequence": 1, "sender_id": 1, "mentions": 1}, session=s)]
            async for member in db["members"].find(selector, {"user_id": 1,
                                                              "read_sequence": 1},
                                                   session=s):
                unread = sum(1 for sequence, users in mentioning
                             if sequence > member["read_sequence"]
                             and member["user_id"] in users)
                await db["members"].update_one(
                    {"_id": member["_id"]}, {"$set": {"unread_mention_count": unread}},
                    session=s)

        async with db.client.start_session() as session:
            await session.with_transaction(count)


async def _v4(db: AsyncDatabase[Document]) -> None:
    """Retention: the live messages of a conversation by age."""
    await db["messages"].create_index(
        [("app_id", ASCENDING), ("conversation_id", ASCENDING), ("delete_time", ASCENDING),
         ("create_time", ASCENDING)])


async def _v5(db: AsyncDatabase[Document]) -> None:
    """Erasure: a user's messages and reactions, over the app."""
    await db["messages"].create_index(
        [("app_id", ASCENDING), ("sender_id", ASCENDING), ("delete_time", ASCENDING)])
    await db["reactions"].create_index([("app_id", ASCENDING), ("user_id", ASCENDING)])


async def _v6(db: AsyncDatabase[Document]) -> None:
    """What metadata filters compare (blind tokens of sealed values, Draft): the
    metadata of the messages written before."""
    async for doc in db["messages"].find({"metadata_index": {"$exists": False}},
                                         {"metadata": 1}):
        await db["messages"].update_one({"_id": doc["_id"]},
                                        {"$set": {"metadata_index": doc["metadata"]}})


async def _v7(db: AsyncDatabase[Document]) -> None:
    """The Welcomes of MLS commits, listed by device, newest first."""
    await db["mls_welcomes"].create_index([
        ("app_id", ASCENDING), ("user_id", ASCENDING), ("device_id", ASCENDING),
        ("create_time", DESCENDING), ("position", DESCENDING)])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2, _v3, _v4, _v5, _v6, _v7)


def _state(c: Comparison) -> Document:
    deleted = (c.value == DELETED) == (c.op is Op.EQ)
    return {"delete_time": {"$ne": None}} if deleted else {"delete_time": None}


# ListMessages: the filter's fields (services/messages/listing.py) as document fields.
_TERMS: dict[str, MongoTerm] = {
    "sender_id": field("sender_id"), "create_time": field("create_time"),
    "has_attachments": flag({"attachments.0": {"$exists": True}},
                            {"attachments.0": {"$exists": False}}),
    "mention_ids": lambda c: {"mentions.user_id": c.value}, "state": _state,
    "reply_count": field("reply_count"), "metadata": string_map("metadata_index")}


def _key(app_id: str, conversation_id: str, sequence: int) -> str:
    return f"{app_id}/{conversation_id}/{sequence}"


def _message(doc: Document) -> Message:
    return Message(
        doc["app_id"], doc["conversation_id"], doc["sequence"], doc["sender_id"], doc["text"],
        tuple(Attachment.from_dict(a) for a in doc["attachments"]),
        tuple(Mention(**m) for m in doc["mentions"]), doc["metadata"], doc["thread_root"],
        doc["reply_count"], doc.get("last_reply_time"),
        {emoji: count for emoji, count in doc["reactions"]}, doc["create_time"],
        doc.get("edit_time"), doc.get("delete_time"), doc.get("shadow", False),
        None if doc.get("mls") is None else MlsContent(doc["mls"]["kind"], doc["mls"]["epoch"],
                                                       bytes(doc["mls"]["data"]),
                                                       doc["mls"].get("device_id", "")),
        None if doc.get("call") is None else call_of(doc["call"]))


def _reactions(counts: dict[str, int]) -> list[list[Any]]:
    # A list of pairs keeps first-reaction order and allows any emoji (field names may not).
    return [[emoji, count] for emoji, count in counts.items()]


class MongoMessageStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._messages = db.db["messages"]
        self._revisions = db.db["message_revisions"]
        self._reactions = db.db["reactions"]
        self._conversations = db.db["conversations"]
        self._members = db.db["members"]
        self._welcomes = db.db["mls_welcomes"]

    async def migrate(self) -> None:
        await self._mongo.migrate("messages", MIGRATIONS)

    def _selector(self, app_id: str, conversation_id: str, sequence: int) -> Document:
        return {"_id": _key(app_id, conversation_id, sequence), "app_id": app_id}

    async def _find(self, app_id: str, conversation_id: str, sequence: int,
                    session: AsyncClientSession | None = None) -> Message | None:
        doc = await self._messages.find_one(self._selector(app_id, conversation_id, sequence),
                                            session=session)
        return None if doc is None else _message(doc)

    async def _by_request(self, app_id: str, conversation_id: str, sender_id: str,
                          request_id: str, session: AsyncClientSession | None = None
                          ) -> Message | None:
        doc = await self._messages.find_one(
            {"app_id": app_id, "conversation_id": conversation_id, "sender_id": sender_id,
             "request_id": request_id}, session=session)
        return None if doc is None else _message(doc)

    async def append(self, app_id: str, conversation_id: str, draft: Draft, request_id: str,
                     now: datetime, slow_mode: timedelta = timedelta(0)
                     ) -> tuple[Message, bool]:
        sender_key = member_key(app_id, conversation_id, draft.sender_id)

        async def tx(s: AsyncClientSession, emit: Emit) -> tuple[Message, bool]:
            sent = await self._by_request(app_id, conversation_id, draft.sender_id,
                                          request_id, s)
            if sent is not None:
                return sent, False
            if slow_mode:  # two sends at once both write the sender's document: one retries
                sender = await self._members.find_one({"_id": sender_key}, session=s)
                last = None if sender is None else sender.get("last_send_time")
                if last is not None and last + slow_mode > now:
                    raise TooSoon(last + slow_mode)
            # A shadowed message is its sender's alone, a commit the group's: nobody
            # else's counts move.
            shown = draft.counted
            content = None if draft.mls is None else draft.mls.content
            selector = live(app_id, conversation_id)
            if content is not None:  # only in the epoch it was built on
                selector["mls.epoch"] = content.epoch
            doc = await self._conversations.find_one_and_update(
                selector, {"$inc": {"last_sequence": 1},
                           **({"$set": {"last_activity_time": now}} if shown else {})},
                return_document=ReturnDocument.AFTER, session=s)
            if doc is None:
                current = await self._conversations.find_one(live(app_id, conversation_id),
                                                             session=s)
                if current is not None and content is not None:
                    raise StaleEpoch(MlsGroup.from_dict(current["mls"]))
                raise LookupError(conversation_id)
            sequence = doc["last_sequence"]
            if draft.mls is not None and draft.mls.group is not None:
                await self._commit(app_id, conversation_id, sequence, draft.mls, now, s)
            message = Message(app_id, conversation_id, sequence, draft.sender_id, draft.text,
                              draft.attachments, draft.mentions, dict(draft.metadata),
                              draft.thread_root, 0, None, {}, now, shadowed=draft.shadowed,
                              mls=content, call=draft.call)
            await self._messages.insert_one(
                {"_id": _key(app_id, conversation_id, sequence), "app_id": app_id,
                 "conversation_id": conversation_id, "sequence": sequence,
                 "sender_id": draft.sender_id, "text": draft.text,
                 "attachments": [asdict(a) for a in draft.attachments],
                 "mentions": [asdict(m) for m in draft.mentions],
                 "metadata": dict(draft.metadata),
                 "metadata_index": dict(draft.indexed_metadata),
                 "thread_root": draft.thread_root,
                 "reply_count": 0, "last_reply_time": None, "reactions": [],
                 "request_id": request_id, "create_time": now, "edit_time": None,
                 "delete_time": None, "shadow": draft.shadowed,
                 "mls": None if content is None else asdict(content),
                 "call": None if draft.call is None else call_doc(draft.call)}, session=s)
            if shown and draft.thread_root:
                await self._messages.update_one(
                    self._selector(app_id, conversation_id, draft.thread_root),
                    {"$inc": {"reply_count": 1}, "$set": {"last_reply_time": now}}, session=s)
            elif shown:
                preview = Preview(sequence, draft.sender_id, draft.preview_text, False, now)
                await self._conversations.update_one(
                    {"_id": doc["_id"]}, {"$set": {"last_message": preview_doc(preview)}},
                    session=s)
            selector = {"app_id": app_id, "conversation_id": conversation_id}
            if shown:
                await self._members.update_many(
                    {**selector, "user_id": {"$ne": draft.sender_id}},
                    {"$inc": {"unread_count": 1}, "$set": {"activity_time": now}}, session=s)
            mentioned = mentioned_others(draft.sender_id, draft.mentions) if shown else []
            if mentioned:  # members only: the others have no document
                await self._members.update_many(
                    {**selector, "user_id": {"$in": mentioned}},
                    {"$inc": {"unread_mention_count": 1}}, session=s)
            await self._members.update_one(
                {"_id": sender_key},
                {"$set": {"read_sequence": sequence, "delivered_sequence": sequence,
                          "read_time": now, "unread_count": 0, "unread_mention_count": 0,
                          "activity_time": now, "last_send_time": now}},
                session=s)
            emit(message_event("message.created", message, now))
            return message, True

        try:  # this process's sends to the conversation queue for its sequence
            return await self._log.transact(tx, ("sequence", app_id, conversation_id))
        except DuplicateKeyError:  # the same request, committed concurrently
            sent = await self._by_request(app_id, conversation_id, draft.sender_id, request_id)
            if sent is None:
                raise
            return sent, False

    async def _commit(self, app_id: str, conversation_id: str, sequence: int, mls: MlsDraft,
                      now: datetime, s: AsyncClientSession) -> None:
        """A commit's next group, and its Welcome for each device it adds."""
        assert mls.group is not None
        group = replace(mls.group, commit_sequence=sequence)
        await self._conversations.update_one(live(app_id, conversation_id),
                                             {"$set": {"mls": group.to_dict()}}, session=s)
        if mls.welcomed:
            await self._welcomes.insert_many([
                {"_id": f"{app_id}/{device}/{conversation_id}/{sequence}", "app_id": app_id,
                 "user_id": split_key(device)[0], "device_id": split_key(device)[1],
                 "conversation_id": conversation_id, "sequence": sequence,
                 "epoch": group.epoch, "data": mls.welcome, "create_time": now,
                 "position": welcome_position(conversation_id, sequence)}
                for device in mls.welcomed], session=s)

    async def get(self, app_id: str, conversation_id: str, sequence: int) -> Message | None:
        return await self._find(app_id, conversation_id, sequence)

    async def sent(self, app_id: str, conversation_id: str, sender_id: str, request_id: str
                   ) -> Message | None:
        return await self._by_request(app_id, conversation_id, sender_id, request_id)

    async def list_welcomes(self, app_id: str, user_id: str, device_id: str, limit: int,
                            after: Position | None) -> list[Welcome]:
        query: dict[str, Any] = {"app_id": app_id, "user_id": user_id, "device_id": device_id}
        found: list[Welcome] = []
        while len(found) < limit:  # those of conversations the user left are skipped
            if after is not None:
                at = from_ms(after[0])
                query["$or"] = [{"create_time": {"$lt": at}},
                                {"create_time": at, "position": {"$lt": after[1]}}]
            batch = await self._welcomes.find(query).sort(
                [("create_time", DESCENDING), ("position", DESCENDING)]).limit(limit).to_list()
            if not batch:
                break
            conversations = {doc["conversation_id"] for doc in batch}
            member_of = {doc["conversation_id"] async for doc in self._members.find(
                {"app_id": app_id, "user_id": user_id,
                 "conversation_id": {"$in": sorted(conversations)}}, {"conversation_id": 1})}
            found += [Welcome(app_id, doc["conversation_id"], doc["sequence"], doc["epoch"],
                              bytes(doc["data"]), doc["create_time"])
                      for doc in batch if doc["conversation_id"] in member_of]
            last = batch[-1]
            after = (to_ms(last["create_time"]), last["position"])
            if len(batch) < limit:
                break
        return found[:limit]

    async def forget_device(self, app_id: str, user_id: str, device_id: str) -> None:
        await self._welcomes.delete_many({"app_id": app_id, "user_id": user_id,
                                          "device_id": device_id})

    async def get_many(self, app_id: str, conversation_id: str, sequences: Iterable[int]
                       ) -> dict[int, Message]:
        keys = [_key(app_id, conversation_id, s) for s in set(sequences)]
        if not keys:
            return {}
        cursor = self._messages.find({"_id": {"$in": keys}, "app_id": app_id})
        return {doc["sequence"]: _message(doc) async for doc in cursor}

    async def list_page(self, app_id: str, conversation_id: str, thread_root: int,
                        direction: Direction, sequence: int, limit: int, *,
                        where: Expr | None = None, viewer: str | None = None,
                        since: datetime | None = None) -> Page:
        base = mq.combine(
            {"app_id": app_id, "conversation_id": conversation_id, "thread_root": thread_root},
            mq.query(where, _TERMS))
        if viewer is not None:  # shadowed messages: their senders' alone
            base = mq.combine(base, {"$or": [{"shadow": {"$ne": True}},
                                             {"sender_id": viewer}]})
        if since is not None:
            base = mq.combine(base, {"create_time": {"$gte": since}})

        async def page(condition: Document | None, order: int, count: int) -> list[Message]:
            query = base if condition is None else mq.combine(base, {"sequence": condition})
            cursor = self._messages.find(query).sort("sequence", order).limit(count)
            return [_message(doc) async for doc in cursor]

        async def exists(condition: Document) -> bool:
            return await self._messages.find_one(mq.combine(base, {"sequence": condition}),
                                                 {"_id": 1}) is not None

        if direction == "latest":
            rows = await page(None, DESCENDING, limit + 1)
            return Page(rows[:limit][::-1], len(rows) > limit, False)
        if direction == "before":
            rows = await page({"$lt": sequence}, DESCENDING, limit + 1)
            return Page(rows[:limit][::-1], len(rows) > limit,
                        await exists({"$gte": sequence}))
        if direction == "after":
            rows = await page({"$gt": sequence}, ASCENDING, limit + 1)
            return Page(rows[:limit], await exists({"$lte": sequence}), len(rows) > limit)
        older = await page({"$lt": sequence}, DESCENDING, limit + 1)
        newer = await page({"$gte": sequence}, ASCENDING, limit + 1)
        return around_page(older, newer, limit)

    async def edit(self, app_id: str, conversation_id: str, sequence: int,
                   changes: MessageChanges, now: datetime) -> Message | None:
        selector = self._selector(app_id, conversation_id, sequence)

        async def tx(s: AsyncClientSession, emit: Emit) -> Message | None:
            current = await self._find(app_id, conversation_id, sequence, s)
            if current is None or current.deleted:
                return current
            changed: Document = {}
            if changes.text is not None and changes.text != current.text:
                revision = {"app_id": app_id, "conversation_id": conversation_id,
                            "sequence": sequence}
                count = await self._revisions.count_documents(revision, session=s)
                if count == 0:  # keep the original text as revision 1
                    await self._revisions.insert_one(
                        {**revision, "_id": f"{selector['_id']}/1", "revision": 1,
                         "text": current.text, "create_time": current.create_time}, session=s)
                    count = 1
                await self._revisions.insert_one(
                    {**revision, "_id": f"{selector['_id']}/{count + 1}",
                     "revision": count + 1, "text": changes.text, "create_time": now},
                    session=s)
                changed["text"] = changes.text
                changed["edit_time"] = now
            if changes.attachments is not None:
                changed["attachments"] = [asdict(a) for a in changes.attachments]
            if changes.metadata is not None:
                changed["metadata"] = dict(changes.metadata)
                changed["metadata_index"] = dict(changes.indexed_metadata or {})
            if not changed:
                return current
            doc = await self._messages.find_one_and_update(
                selector, {"$set": changed}, return_document=ReturnDocument.AFTER, session=s)
            assert doc is not None
            edited = _message(doc)
            if edited != current:
                emit(message_event("message.updated", edited, now))
            return edited

        return await self._log.transact(tx)

    async def revisions(self, app_id: str, conversation_id: str, sequence: int
                        ) -> list[Revision]:
        cursor = self._revisions.find(
            {"app_id": app_id, "conversation_id": conversation_id, "sequence": sequence}
        ).sort("revision", ASCENDING)
        found = [Revision(d["revision"], d["text"], d["create_time"]) async for d in cursor]
        if found:
            return found
        message = await self._find(app_id, conversation_id, sequence)
        if message is None or message.deleted:
            return []
        return [Revision(1, message.text, message.create_time)]

    async def delete(self, app_id: str, conversation_id: str, sequence: int, now: datetime
                     ) -> Message | None:
        async def tx(s: AsyncClientSession, emit: Emit) -> Message | None:
            current = await self._find(app_id, conversation_id, sequence, s)
            if current is None or current.deleted:
                return current
            doc = await self._messages.find_one_and_update(
                self._selector(app_id, conversation_id, sequence),
                {"$set": {"text": "", "attachments": [], "mentions": [], "metadata": {},
                          "metadata_index": {}, "reactions": [], "delete_time": now}},
                return_document=ReturnDocument.AFTER, session=s)
            assert doc is not None
            of_message = {"app_id": app_id, "conversation_id": conversation_id,
                          "sequence": sequence}
            await self._revisions.delete_many(of_message, session=s)
            await self._reactions.delete_many(of_message, session=s)
            if not current.shadowed:  # a shadowed one was never counted
                await self._members.update_many(
                    {"app_id": app_id, "conversation_id": conversation_id,
                     "user_id": {"$ne": current.sender_id},
                     "read_sequence": {"$lt": sequence}, "unread_count": {"$gt": 0}},
                    {"$inc": {"unread_count": -1}}, session=s)
            # Counted for exactly the mentioned members it is still unread for: a member
            # who joined after it has a read position at or past it.
            mentioned = [] if current.shadowed else mentioned_others(current.sender_id,
                                                                     current.mentions)
            if mentioned:
                await self._members.update_many(
                    {"app_id": app_id, "conversation_id": conversation_id,
                     "user_id": {"$in": mentioned}, "read_sequence": {"$lt": sequence},
                     "unread_mention_count": {"$gt": 0}},
                    {"$inc": {"unread_mention_count": -1}}, session=s)
            await self._conversations.update_one(
                {**live(app_id, conversation_id), "last_message.sequence": sequence},
                {"$set": {"last_message.text": "", "last_message.deleted": True}}, session=s)
            tombstone = _message(doc)
            emit(message_event("message.deleted", tombstone, now))
            return tombstone

        return await self._log.transact(tx)

    async def add_reaction(self, app_id: str, conversation_id: str, sequence: int,
                           user_id: str, emoji: str, now: datetime, max_emoji: int,
                           max_per_user: int) -> Message | None:
        async def tx(s: AsyncClientSession, emit: Emit) -> Message | None:
            current = await self._find(app_id, conversation_id, sequence, s)
            if current is None or current.deleted:
                return current
            of_message = {"app_id": app_id, "conversation_id": conversation_id,
                          "sequence": sequence}
            mine = [d["emoji"] async for d in self._reactions.find(
                {**of_message, "user_id": user_id}, {"emoji": 1}, session=s)]
            if emoji in mine:
                return current
            if len(mine) >= max_per_user:
                raise CapacityExceeded("reactions per user per message", max_per_user)
            if emoji not in current.reactions and len(current.reactions) >= max_emoji:
                raise CapacityExceeded("distinct emoji per message", max_emoji)
            await self._reactions.insert_one(
                {**of_message, "_id": f"{_key(app_id, conversation_id, sequence)}/{user_id}"
                                      f"/{emoji}",
                 "user_id": user_id, "emoji": emoji, "create_time": now,
                 "position": f"{user_id}\x1f{emoji}"}, session=s)
            counts = dict(current.reactions)
            counts[emoji] = counts.get(emoji, 0) + 1
            changed = await self._set_reactions(app_id, conversation_id, sequence, counts, s)
            emit(message_event("reaction.added", changed, now, user_id, emoji=emoji))
            return changed

        return await self._log.transact(tx)

    async def _set_reactions(self, app_id: str, conversation_id: str, sequence: int,
                             counts: dict[str, int], session: AsyncClientSession) -> Message:
        doc = await self._messages.find_one_and_update(
            self._selector(app_id, conversation_id, sequence),
            {"$set": {"reactions": _reactions(counts)}}, return_document=ReturnDocument.AFTER,
            session=session)
        assert doc is not None
        return _message(doc)

    async def remove_reaction(self, app_id: str, conversation_id: str, sequence: int,
                              user_id: str, emoji: str, now: datetime) -> Message | None:
        async def tx(s: AsyncClientSession, emit: Emit) -> Message | None:
            current = await self._find(app_id, conversation_id, sequence, s)
            if current is None or current.deleted:
                return current
            removed = await self._reactions.delete_one(
                {"_id": f"{_key(app_id, conversation_id, sequence)}/{user_id}/{emoji}",
                 "app_id": app_id}, session=s)
            if not removed.deleted_count:
                return current
            counts = dict(current.reactions)
            counts[emoji] -= 1
            if counts[emoji] <= 0:
                del counts[emoji]
            changed = await self._set_reactions(app_id, conversation_id, sequence, counts, s)
            emit(message_event("reaction.removed", changed, now, user_id, emoji=emoji))
            return changed

        return await self._log.transact(tx)

    async def reacted(self, app_id: str, conversation_id: str, sequences: Iterable[int],
                      user_id: str) -> dict[int, set[str]]:
        wanted = sorted(set(sequences))
        if not wanted:
            return {}
        found: dict[int, set[str]] = {}
        async for doc in self._reactions.find(
                {"app_id": app_id, "conversation_id": conversation_id,
                 "sequence": {"$in": wanted}, "user_id": user_id},
                {"sequence": 1, "emoji": 1}):
            found.setdefault(doc["sequence"], set()).add(doc["emoji"])
        return found

    async def list_reactions(self, app_id: str, conversation_id: str, sequence: int,
                             limit: int, after: Position | None) -> list[Reaction]:
        query = {"app_id": app_id, "conversation_id": conversation_id, "sequence": sequence,
                 **after_position(after, "create_time", "position")}
        cursor = self._reactions.find(query).sort(
            [("create_time", ASCENDING), ("position", ASCENDING)]).limit(limit)
        return [Reaction(d["user_id"], d["emoji"], d["create_time"]) async for d in cursor]

    async def mark(self, app_id: str, conversation_id: str, user_id: str,
                   which: Literal["read", "delivered"], sequence: int, now: datetime
                   ) -> Member | None:
        selector = {"_id": member_key(app_id, conversation_id, user_id), "app_id": app_id}

        async def tx(s: AsyncClientSession, emit: Emit) -> Member | None:
            member_doc = await self._members.find_one(selector, session=s)
            conversation_doc = await self._conversations.find_one(
                live(app_id, conversation_id), session=s)
            if member_doc is None or conversation_doc is None:
                return None
            member = member_from_doc(member_doc)
            last = conversation_from_doc(conversation_doc).last_sequence
            target = last if sequence == 0 or sequence > last else sequence
            if which == "delivered":
                change: Document = {"$max": {"delivered_sequence": target}}
            elif target > member.read_sequence:
                after_read = {"app_id": app_id, "conversation_id": conversation_id,
                              "sequence": {"$gt": target}, "sender_id": {"$ne": user_id},
                              "delete_time": None, "shadow": {"$ne": True}}
                unread = await self._messages.count_documents(after_read, session=s)
                mentions = await self._messages.count_documents(
                    {**after_read, "mentions.user_id": user_id}, session=s)
                change = {"$set": {"read_sequence": target, "read_time": now,
                                   "unread_count": unread, "unread_mention_count": mentions},
                          "$max": {"delivered_sequence": target}}
            else:
                return member
            doc = await self._members.find_one_and_update(
                selector, change, return_document=ReturnDocument.AFTER, session=s)
            assert doc is not None
            after = member_from_doc(doc)
            emit_mark(emit, member, after, now)
            return after

        return await self._log.transact(tx)

    async def receipts(self, app_id: str, conversation_id: str, message: Message, limit: int,
                       after: Position | None) -> tuple[list[Member], ReceiptSummary]:
        others = {"app_id": app_id, "conversation_id": conversation_id,
                  "user_id": {"$ne": message.sender_id}}
        cursor = self._members.find({**others, **after_join(after)}).sort(
            [("join_time", ASCENDING), ("user_id", ASCENDING)]).limit(limit)
        members = [member_from_doc(doc) async for doc in cursor]
        read = await self._members.count_documents(
            {**others, "read_sequence": {"$gte": message.sequence}})
        delivered = await self._members.count_documents(
            {**others, "delivered_sequence": {"$gte": message.sequence}})
        return members, ReceiptSummary(read, delivered)

    async def expired(self, app_id: str, conversation_id: str, before: datetime, limit: int,
                      kept_senders: frozenset[str]) -> list[int]:
        cursor = self._messages.find(
            {"app_id": app_id, "conversation_id": conversation_id, "delete_time": None,
             "create_time": {"$lt": before}, "sender_id": {"$nin": sorted(kept_senders)}},
            {"sequence": 1}).sort([("create_time", ASCENDING), ("sequence", ASCENDING)]
                                  ).limit(limit)
        return [doc["sequence"] async for doc in cursor]

    async def sent_by(self, app_id: str, user_id: str, limit: int,
                      after: tuple[str, int] | None = None) -> list[tuple[str, int]]:
        match: Document = {"app_id": app_id, "sender_id": user_id, "delete_time": None}
        if after is not None:
            match["$or"] = [{"conversation_id": {"$gt": after[0]}},
                            {"conversation_id": after[0], "sequence": {"$gt": after[1]}}]
        cursor = self._messages.find(match, {"conversation_id": 1, "sequence": 1}).sort(
            [("conversation_id", ASCENDING), ("sequence", ASCENDING)]).limit(limit)
        return [(doc["conversation_id"], doc["sequence"]) async for doc in cursor]

    async def reactions_by(self, app_id: str, user_id: str, limit: int
                           ) -> list[tuple[str, int, str]]:
        cursor = self._reactions.find({"app_id": app_id, "user_id": user_id},
                                      {"conversation_id": 1, "sequence": 1, "emoji": 1}
                                      ).limit(limit)
        return [(doc["conversation_id"], doc["sequence"], doc["emoji"]) async for doc in cursor]

    async def scan_messages(self, app_id: str, conversation_id: str, after: int, limit: int
                            ) -> list[Message]:
        cursor = self._messages.find(
            {"_id": {"$in": [_key(app_id, conversation_id, s)
                             for s in range(after + 1, after + 1 + limit)]},
             "app_id": app_id}).sort("sequence", ASCENDING)
        return [_message(doc) async for doc in cursor]
